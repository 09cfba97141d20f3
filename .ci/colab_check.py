"""Helpers of the Colab-stack CI job (.ci/colab); standard library only.

    python .ci/colab_check.py tools-constraints OUT
        writes the pins of constraints.txt for the packages Colab does not preinstall (the test
        tools and their dependencies), so that the job adds them at the main suite's versions;
    python .ci/colab_check.py check
        fails unless every installed package that constraints-colab.txt pins has Colab's
        version, and unless installing the course as the notebooks' setup cell does
        (``pip install -e .``, no constraints) would install nothing but recsys_lib.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
WATCHED = ("tensorflow", "keras", "numpy", "pandas")  # what a learner's Colab must keep


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line.strip())
        if match:
            found[normalise(match[1])] = match[2]
    return found


def tools_constraints(out: Path) -> int:
    colab = pins(ROOT / "constraints-colab.txt")
    lines = [f"{name}=={version}" for name, version in pins(ROOT / "constraints.txt").items()
             if name not in colab]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


def check() -> int:
    colab = pins(ROOT / "constraints-colab.txt")
    installed = {normalise(d.metadata["Name"]): d.version for d in metadata.distributions()}
    moved = {n: (v, colab[n]) for n, v in installed.items() if n in colab and v != colab[n]}
    extra = sorted(n for n in installed if n not in colab)
    held = sum(n in colab for n in installed)
    print(f"Colab stack: {held} installed packages at Colab's versions; not on Colab: "
          f"{', '.join(extra)}")
    problems = [f"{n} is {v}, Colab has {c}" for n, (v, c) in sorted(moved.items())]

    # What the setup cell runs in Colab, resolved against the Colab versions installed here.
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "-q",
                           "--report", "-", "-e", str(ROOT)],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        problems.append(f"pip install --dry-run -e . failed:\n{done.stderr}")
    else:
        report = json.loads(done.stdout)
        would = {normalise(i["metadata"]["name"]): i["metadata"]["version"]
                 for i in report["install"]}
        changes = {n: v for n, v in would.items() if n != "recsys-lib"}
        problems += [f"the setup cell's install would put {n} {v} over Colab's {colab.get(n)}"
                     for n, v in sorted(changes.items())]
        if not changes:
            kept = ", ".join(f"{n} {installed.get(n)}" for n in WATCHED)
            print(f"The setup cell's install (pip install -e .) adds only recsys_lib; it keeps "
                  f"{kept}")
    for problem in problems:
        print("COLAB CHECK FAILED:", problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["tools-constraints"] and len(sys.argv) == 3:
        sys.exit(tools_constraints(Path(sys.argv[2])))
    if sys.argv[1:] == ["check"]:
        sys.exit(check())
    sys.exit(__doc__)
