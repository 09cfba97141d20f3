"""The FastAPI application of the recommendation service (notebook 12).

Endpoints::

    GET  /health                      200 {"status": "ok", "model_version", "scorer"}
    POST /recommend                   {"history": [item ids, oldest first], "k": 10}
                                      -> {"items": [{"item_id", "title", "score"}...],
                                          "model_version", "fallback", "unknown_items",
                                          "history_used"}
    GET  /items/{item_id}/similar?k=  -> {"item_id", "title", "items": [...], "model_version"}
    POST /admin/reload                {"bundle": "<folder>"} -> {"model_version",
                                                                 "previous_version"}

Bad requests never reach the model and never give a 500: malformed JSON -> 400; wrong
types, missing or unknown fields, bools or floats as ids, ``k`` outside ``[1, max_k]`` ->
422; a history longer than ``max_history`` -> 413; an unknown item for ``similar`` -> 404; a
damaged bundle for ``reload`` -> 409 (the old model keeps serving). Every error body is
``{"detail": "<field>: <what is wrong>", "fields": [...]}``.

Hot reload loads and warms up the new bundle outside any lock, then swaps one reference:
a request reads the reference once at its start, so in-flight requests finish on the model
they started with, and every response carries the version of the model that scored it.
"""

import asyncio
import json
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from recsys_lib.checks import check_choice, check_int
from recsys_lib.serving.bundle import BundleError, load_bundle
from recsys_lib.serving.scoring import SCORER_KINDS, make_scorer

#: The largest ``k`` a request may ask for (default of :func:`create_app`).
MAX_K = 100
#: The longest history a request may send (default of :func:`create_app`).
MAX_HISTORY = 1000
DEFAULT_K = 10


def request_models(max_k: int, max_history: int) -> tuple[type, type]:
    """The pydantic models of the two JSON bodies, with this app's limits.

    Ints are strict: ``true``, ``1.0`` and ``"1"`` are refused, not converted. Unknown keys
    are refused, so a typo such as ``"histroy"`` is named in the error.

    Returns:
        ``(RecommendRequest, ReloadRequest)``.

    Notebook 12 explains it.
    """

    class RecommendRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        history: list[StrictInt] = Field(max_length=max_history)
        k: StrictInt = Field(DEFAULT_K, ge=1, le=max_k)

    class ReloadRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        bundle: StrictStr = Field(min_length=1)

    return RecommendRequest, ReloadRequest


def field_name(loc: tuple) -> str:
    """A field name from a pydantic error location: ``history[2]``, ``k``, ``body``.

    Notebook 12 explains it.
    """
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path") else list(loc)
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def describe_error(error: dict) -> tuple[str, str]:
    """``(field, "field: message (got ...)")`` for one pydantic error.

    A query or path parameter is named as such: ``k (query parameter): ...``.

    Notebook 12 explains it.
    """
    loc = tuple(error.get("loc", ()))
    field = field_name(loc)
    where = {"query": " (query parameter)", "path": " (in the path)"}.get(loc[:1] and loc[0],
                                                                          "")
    message = f"{field}{where}: {error.get('msg', 'invalid value')}"
    if error.get("type") not in ("missing", "json_invalid") and "input" in error:
        message += f" (got {_short(error['input'])})"
    return field, message


def _short(value) -> str:
    """The value as JSON (``repr`` if it is not JSON), cut to 60 characters."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def error_status(errors: list[dict]) -> int:
    """400 for malformed JSON, 413 for a history over the limit, else 422.

    Notebook 12 explains it.
    """
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400
    if any(e.get("type") == "too_long" and tuple(e.get("loc", ()))[-1:] == ("history",)
           for e in errors):
        return 413
    return 422


def error_response(status: int, detail: str, fields: list[str]) -> JSONResponse:
    """The service's one error shape: ``{"detail": ..., "fields": [...]}``.

    Notebook 12 explains it.
    """
    return JSONResponse({"detail": detail, "fields": fields}, status_code=status)


async def validation_error_handler(request: Request, exc: RequestValidationError):
    """Turn pydantic's error list into one readable message that names each field.

    Notebook 12 explains it.
    """
    errors = list(exc.errors())
    status = error_status(errors)
    described = [describe_error(e) for e in errors]
    fields = list(dict.fromkeys(f for f, _ in described))
    detail = "; ".join(m for _, m in described)
    if status == 400:
        reason = errors[0].get("ctx", {}).get("error", "it cannot be parsed")
        detail = (f"body: malformed JSON ({reason}); send a JSON object such as "
                  '{"history": [1, 2], "k": 10}')
        fields = ["body"]
    return error_response(status, detail, fields)


def items_payload(scorer, items: list[int], scores: list[float]) -> list[dict]:
    """``[{"item_id", "title", "score"}, ...]`` for ranked item ids.

    Notebook 12 explains it.
    """
    titles, index = scorer.titles, scorer.index_of
    return [{"item_id": item, "title": titles[index[item]], "score": score}
            for item, score in zip(items, scores, strict=True)]


class ServiceState:
    """The one reference to the live scorer, and the lock that orders reloads.

    Notebook 12 explains it.
    """

    def __init__(self, scorer, kind: str) -> None:
        self.scorer, self.kind = scorer, kind
        self.reload_lock = asyncio.Lock()

    async def reload(self, bundle_path: str) -> tuple[str, str]:
        """Load and warm up a new bundle (in a thread, outside the lock), then swap.

        Returns:
            ``(new_version, previous_version)``.

        Raises:
            BundleError: the bundle is damaged; the old scorer stays in place.

        Notebook 12 explains it.
        """
        new = await asyncio.to_thread(lambda: make_scorer(load_bundle(bundle_path), self.kind))
        async with self.reload_lock:
            old, self.scorer = self.scorer, new  # the atomic swap: one reference
        old.close()
        return new.model_version, old.model_version


def create_app(bundle_path: str | Path, *, scorer: str = "compiled", max_k: int = MAX_K,
               max_history: int = MAX_HISTORY) -> FastAPI:
    """Load a bundle, warm up its scorer and return the service's FastAPI app.

    Args:
        bundle_path: a bundle folder written by ``python -m recsys_lib.serving.export``.
        scorer: ``"compiled"`` (default), ``"naive"`` or ``"batched"``.
        max_k: the largest ``k`` a request may ask for.
        max_history: the longest history a request may send.

    Returns:
        The app; the model is loaded and warmed up, so ``/health`` is ok at once.

    Raises:
        BundleError: a damaged or missing bundle.
        ArgumentError: an unknown scorer, bad limits.

    Notebook 12 explains it.
    """
    check_choice("scorer", scorer, SCORER_KINDS)
    max_k, max_history = check_int("max_k", max_k), check_int("max_history", max_history)
    state = ServiceState(make_scorer(load_bundle(bundle_path), scorer), scorer)
    recommend_model, reload_model = request_models(max_k, max_history)
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        state.scorer.close()  # a batching scorer finishes its queue, then stops

    app = FastAPI(title="recsys_lib recommendation service",
                  description="SASRec recommendations (notebook 12)", lifespan=lifespan)
    app.state.service = state
    app.add_exception_handler(RequestValidationError, validation_error_handler)

    @app.get("/health")
    async def health():
        live = state.scorer
        return {"status": "ok", "model_version": live.model_version, "scorer": live.kind}

    @app.post("/recommend")
    async def recommend(body: recommend_model):
        live = state.scorer  # read once: a reload does not change this request's model
        answer = await live.arecommend(body.history, body.k)
        return JSONResponse({"items": items_payload(live, answer.items, answer.scores),
                             "model_version": live.model_version,
                             "fallback": answer.fallback, "unknown_items": answer.unknown,
                             "history_used": answer.history_used})

    @app.get("/items/{item_id}/similar")
    async def similar(item_id: int, k: int = Query(DEFAULT_K, ge=1, le=max_k)):
        live = state.scorer
        if item_id not in live.index_of:
            return error_response(404, f"item_id: item {item_id} is not in the catalogue of "
                                  f"model {live.model_version}", ["item_id"])
        items, scores = live.similar(item_id, k)
        return JSONResponse({"item_id": item_id, "title": live.titles[live.index_of[item_id]],
                             "items": items_payload(live, items, scores),
                             "model_version": live.model_version})

    @app.post("/admin/reload")
    async def reload(body: reload_model):
        try:
            new, old = await state.reload(body.bundle)
        except BundleError as err:
            return error_response(409, f"bundle: {err}; still serving "
                                  f"{state.scorer.model_version}", ["bundle"])
        return {"model_version": new, "previous_version": old}

    return app
