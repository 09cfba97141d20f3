"""Serve a bundle: ``python -m recsys_lib.serving --bundle BUNDLE --port 8000`` (notebook 12).

Loads and warms up the model before the port opens, so a client that reaches ``/health``
gets 200. TensorFlow is imported quietly (no C++ start-up lines on standard error); uvicorn
logs warnings only, and no access log (it would cost time on every request).
"""

from __future__ import annotations

import argparse
import sys

from recsys_lib.serving.scoring import SCORER_KINDS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of the server.

    Notebook 12 explains it.
    """
    parser = argparse.ArgumentParser(prog="python -m recsys_lib.serving",
                                     description="Serve SASRec recommendations over HTTP.")
    parser.add_argument("--bundle", required=True, help="bundle folder (serving.export)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--scorer", choices=SCORER_KINDS, default="compiled")
    parser.add_argument("--log-level", default="warning",
                        choices=("critical", "error", "warning", "info", "debug"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Load the bundle, build the app and run uvicorn until interrupted.

    Returns:
        0 after a clean shutdown; 2 when the bundle cannot be loaded (message on stderr).

    Notebook 12 explains it.
    """
    args = parse_args(argv)
    from recsys_lib.config import import_tensorflow_quietly

    import_tensorflow_quietly()
    import uvicorn

    from recsys_lib.serving.app import create_app
    from recsys_lib.serving.bundle import BundleError

    try:
        app = create_app(args.bundle, scorer=args.scorer)
    except BundleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    version = app.state.service.scorer.model_version
    print(f"serving {version} ({args.scorer} scorer) on http://{args.host}:{args.port}",
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
