"""The cells every course notebook starts with (title badge, Colab link, setup cell) and the
record of Google Colab's package versions the course is tested against.

The repository address and the course version live here and only here. After changing them,
restamp every notebook:

    python -m recsys_lib.course

A test checks that each notebook's badge and setup cell equal what this module produces.

``constraints-colab.txt`` holds Colab's package versions for the CI job that tests the course
on Colab's stack (``.ci/colab``). Refresh it from a newer ``pip freeze`` of Colab's image
(published in the ``googlecolab/backend-info`` repository):

    python -m recsys_lib.course colab-constraints path/to/pip-freeze.txt
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from pathlib import Path

import nbformat

from recsys_lib.config import REPO_ROOT

#: The course's public repository (GitHub): the badges open notebooks from it and the setup
#: cells fetch it. A fork changes it here and restamps.
REPO_URL = "https://github.com/recsys-course/recsys-course"
#: The version of the course that the badges open and the setup cells install: a branch, a tag
#: or a commit. "main" follows the newest course. A release pins its own tag: set it here,
#: restamp, commit, then tag that commit with the same name and push the tag.
COURSE_REF = "main"
NOTEBOOK_FOLDERS = ("notebooks", "exercises", "solutions")
BADGE_TAG = "colab-badge"
SETUP_TAG = "setup"

#: Environment variables a Colab user (or a test) sets to override the stamped values.
URL_ENV_VAR = "RECSYS_COURSE_URL"
REF_ENV_VAR = "RECSYS_COURSE_REF"
DIR_ENV_VAR = "RECSYS_COURSE_DIR"
ZIP_ENV_VAR = "RECSYS_COURSE_ZIP"
#: Where the setup cell puts the course in Colab (the default working folder is /content).
COLAB_COURSE_DIR = "/content/recsys-course"

#: The file of Colab's versions, and the packages the course itself uses from Colab's image
#: (listed first in that file and named in the README and in the environment summary).
COLAB_CONSTRAINTS = "constraints-colab.txt"
COLAB_COURSE_PACKAGES = (
    "tensorflow", "keras", "numpy", "pandas", "scipy", "matplotlib", "tqdm", "nbformat",
    "nbclient", "ipykernel", "ipython", "jupyter_client", "pytest", "setuptools", "pip",
    "fastapi", "uvicorn", "httpx",  # notebook 12's service
    "dm-tree", "mpmath",  # what notebook 14's privacy accountant (dp-accounting) needs
)
#: The ones the environment summary names.
COLAB_HEADLINE_PACKAGES = ("tensorflow", "keras", "numpy", "pandas")


def colab_url(relative_path: str) -> str:
    """The Open-in-Colab address of a notebook, given its path inside the repository.

    Explained in notebook 00 (the badge and the setup cell at the top of every notebook).
    """
    github = REPO_URL.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{github}/blob/{COURSE_REF}/{relative_path}"


def badge_source(relative_path: str) -> str:
    """Markdown for the "Open in Colab" badge of one notebook.

    Explained in notebook 00 (the badge and the setup cell at the top of every notebook).
    """
    return (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({colab_url(relative_path)})"
    )


def setup_cell_source() -> str:
    """The first code cell of every notebook; works in JupyterLab and in Google Colab.

    In Colab it fetches the course at ``COURSE_REF`` into ``/content/recsys-course`` (or uses a
    zip of the repository the learner uploaded to ``/content``), installs ``recsys_lib`` when a
    fresh Python cannot import it (so a rerun after an interrupted install installs again, and a
    rerun after a good one does nothing), and says what to do when the fetch fails. It installs
    only the course library: Colab's TensorFlow, Keras, NumPy and pandas stay as they are.

    Explained in notebook 00 (the badge and the setup cell at the top of every notebook).
    """
    return f'''# Setup: in a local clone the course library is already installed (see README).
# In Google Colab this cell fetches the course (the version this notebook belongs to) and
# installs its library, keeping Colab's own packages; running it again is safe.
import sys

if "google.colab" in sys.modules:
    import glob
    import os
    import shutil
    import subprocess
    import zipfile

    REPO_URL = os.environ.get("{URL_ENV_VAR}", "{REPO_URL}")
    COURSE_REF = os.environ.get("{REF_ENV_VAR}", "{COURSE_REF}")  # a branch, tag or commit
    COURSE_DIR = os.environ.get("{DIR_ENV_VAR}", "{COLAB_COURSE_DIR}")
    ZIPS = os.environ.get("{ZIP_ENV_VAR}", os.path.join(os.path.dirname(COURSE_DIR), "*.zip"))

    def fetch_course():
        """Unpack an uploaded zip of the repository if there is one, else fetch it with git."""
        for path in sorted(glob.glob(ZIPS)):
            with zipfile.ZipFile(path) as archive:
                inits = [n for n in archive.namelist() if n.endswith("recsys_lib/__init__.py")]
                if inits:
                    unpacked = COURSE_DIR + ".unpacking"
                    shutil.rmtree(unpacked, ignore_errors=True)
                    archive.extractall(unpacked)
                    top = min(inits, key=len).removesuffix("recsys_lib/__init__.py")
                    os.rename(os.path.join(unpacked, top), COURSE_DIR)
                    shutil.rmtree(unpacked, ignore_errors=True)
                    return path
        for step in (["init", "-q", COURSE_DIR], ["remote", "add", "origin", REPO_URL],
                     ["fetch", "-q", "--depth", "1", "origin", COURSE_REF],
                     ["checkout", "-q", "FETCH_HEAD"]):
            git = ["git"] if step[0] == "init" else ["git", "-C", COURSE_DIR]
            done = subprocess.run(git + step, capture_output=True, text=True,
                                  env={{**os.environ, "GIT_TERMINAL_PROMPT": "0"}})
            if done.returncode:
                shutil.rmtree(COURSE_DIR, ignore_errors=True)
                reason = (done.stderr.strip() or "git failed").splitlines()[0]
                raise RuntimeError(
                    f"Could not fetch the course from {{REPO_URL}} (version {{COURSE_REF}}):\\n"
                    f"    {{reason}}\\n"
                    "Do one of these, then run this cell again:\\n"
                    "  * give the address of the course's repository (or of your fork):\\n"
                    "        %env {URL_ENV_VAR}=https://github.com/OWNER/REPOSITORY\\n"
                    f"  * if the repository has no version {{COURSE_REF}}, take its newest one:\\n"
                    "        %env {REF_ENV_VAR}=main\\n"
                    "  * or upload the repository as a zip (on GitHub: Code > Download ZIP)\\n"
                    f"    to {{os.path.dirname(COURSE_DIR)}} with the Files panel on the left."
                ) from None
        return f"{{REPO_URL}} at {{COURSE_REF}}"

    if not os.path.isfile(os.path.join(COURSE_DIR, "pyproject.toml")):
        shutil.rmtree(COURSE_DIR, ignore_errors=True)  # what an interrupted fetch left
        print("Fetched the course from", fetch_course())
    if subprocess.run([sys.executable, "-c", "import recsys_lib"], cwd="/",
                      capture_output=True).returncode:  # not installed, or pip was interrupted
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", COURSE_DIR],
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"pip could not install the course library:\\n{{done.stderr}}\\n"
                               "Run this cell again; if that fails too, use Runtime > "
                               "Disconnect and delete runtime, then run the notebook again.")
        print("Installed the course library from", COURSE_DIR)
    if COURSE_DIR not in sys.path:
        sys.path.insert(0, COURSE_DIR)'''


def course_notebooks(root: Path = REPO_ROOT) -> list[Path]:
    """Every notebook in notebooks/, exercises/ and solutions/, sorted.

    Explained in notebook 00 (the badge and the setup cell at the top of every notebook).
    """
    return sorted(p for folder in NOTEBOOK_FOLDERS for p in (root / folder).glob("*.ipynb"))


def stamp(nb: nbformat.NotebookNode, relative_path: str) -> bool:
    """Rewrite the badge and setup cells (found by their tags) of a notebook in memory.

    Returns:
        True if anything changed.

    Raises:
        ValueError: the notebook has no cell tagged ``colab-badge`` or ``setup``.

    Explained in notebook 00 (the badge and the setup cell at the top of every notebook).
    """
    wanted = {BADGE_TAG: badge_source(relative_path), SETUP_TAG: setup_cell_source()}
    changed, found = False, set()
    for cell in nb.cells:
        for tag in set(cell.get("metadata", {}).get("tags", [])) & wanted.keys():
            found.add(tag)
            if cell.source != wanted[tag]:
                cell.source, changed = wanted[tag], True
    missing = wanted.keys() - found
    if missing:
        raise ValueError(f"{relative_path}: no cell tagged {sorted(missing)}")
    return changed


def stamp_all(root: Path = REPO_ROOT) -> list[Path]:
    """Restamp every course notebook under ``root`` in place; returns the ones that changed.

    Explained in notebook 00 (the badge and the setup cell at the top of every notebook).
    """
    changed = []
    for path in course_notebooks(root):
        nb = nbformat.read(path, as_version=4)
        if stamp(nb, path.relative_to(root).as_posix()):
            nbformat.write(nb, path)
            changed.append(path)
    return changed


def header_cells(title_markdown: str, relative_path: str) -> list[nbformat.NotebookNode]:
    """The first three cells of a lesson notebook: title, tagged Colab badge, tagged setup.

    Args:
        title_markdown: the title cell (``# 00 · ...`` and the "what you will learn" paragraph).
        relative_path: the notebook's path in the repository, e.g. ``notebooks/00_tour.ipynb``.

    Explained in notebook 00 (the badge and the setup cell at the top of every notebook).
    """
    return [
        nbformat.v4.new_markdown_cell(title_markdown),
        nbformat.v4.new_markdown_cell(badge_source(relative_path),
                                      metadata={"tags": [BADGE_TAG]}),
        nbformat.v4.new_code_cell(setup_cell_source(), metadata={"tags": [SETUP_TAG]}),
    ]


# ---------------------------------------------------------------- Colab's package versions
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)\s*$")
_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")
_COMMIT = re.compile(r"\b([0-9a-f]{40})\b")
_REPOSITORY = re.compile(r"`([\w.-]+/[\w.-]+)`")
_PYTHON = re.compile(r"^Python (\d+\.\d+\.\d+)\s*$", re.MULTILINE)
_IMAGE = re.compile(r"^# Colab image: Python (?P<python>\S+) of (?P<date>\d{4}-\d{2}-\d{2})",
                    re.MULTILINE)


def normalise(name: str) -> str:
    """A distribution name in the form pip compares (PEP 503): lower case, runs of -_. as -.

    Explained in notebook 00 (the badge and the setup cell at the top of every notebook).
    """
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_freeze(text: str) -> tuple[dict[str, str], list[str]]:
    """Read a ``pip freeze`` listing.

    Returns:
        ``({name: version}, [names installed from a URL or a file])``; the names keep the
        spelling of the listing. Comments and blank lines are ignored.

    Raises:
        ValueError: a line is neither a pin, a direct reference (``name @ url``) nor a comment.

    Explained in notebook 00 (the badge and the setup cell at the top of every notebook).
    """
    pins, unpinned = {}, []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pin = _PIN.match(line)
        if pin:
            pins[pin["name"]] = pin["version"]
        elif " @ " in line:
            unpinned.append(line.split(" @ ", 1)[0].strip())
        else:
            raise ValueError(f"not a pip freeze line: {line!r}")
    return pins, unpinned


def _describe_source(freeze_path: Path) -> dict[str, str]:
    """Date, origin and Python version from the SOURCE.md and os-info.txt next to a freeze."""
    found: dict[str, str] = {}
    source_md = freeze_path.with_name("SOURCE.md")
    if source_md.is_file():
        text = source_md.read_text(encoding="utf-8")
        for key, pattern in (("date", _DATE), ("commit", _COMMIT), ("repository", _REPOSITORY)):
            match = pattern.search(text)
            if match:
                found[key] = match.group(1)
    os_info = freeze_path.with_name("os-info.txt")
    if os_info.is_file():
        match = _PYTHON.search(os_info.read_text(encoding="utf-8"))
        if match:
            found["python"] = match.group(1)
    return found


def colab_constraints(freeze_text: str, *, date: str, python: str, source: str) -> str:
    """The text of ``constraints-colab.txt`` for one ``pip freeze`` of Colab's image.

    Every package Colab pins is kept (not only the course's), so that installing the course
    and the test tools Colab lacks can never move a package Colab preinstalls; the course's
    own packages come first. Packages Colab installs from a URL cannot be pinned here and are
    named in a comment.

    Raises:
        ValueError: the listing has a line pip freeze does not write, or lacks one of the
            course's packages (``COLAB_COURSE_PACKAGES``).

    Explained in notebook 00 (the badge and the setup cell at the top of every notebook).
    """
    pins, unpinned = parse_freeze(freeze_text)
    by_name = {normalise(name): name for name in pins}
    missing = [p for p in COLAB_COURSE_PACKAGES if normalise(p) not in by_name]
    if missing:
        raise ValueError(f"Colab's listing lacks the course's packages {missing}")
    course = [by_name[normalise(p)] for p in COLAB_COURSE_PACKAGES]
    rest = sorted((n for n in pins if n not in course), key=normalise)
    lines = [
        "# Google Colab's package versions, for the CI job that tests the course on Colab's",
        "# stack (.ci/colab). Generated; do not edit by hand. Refresh from a newer listing with",
        "#     python -m recsys_lib.course colab-constraints PIP_FREEZE",
        f"# Source: {source}",
        f"# Colab image: Python {python} of {date}",
        "# Every package Colab pins is held, so that installing the course and the test tools",
        "# Colab lacks never moves one of Colab's packages.",
    ]
    if unpinned:
        note = f"Installed from a URL on Colab, not pinned here: {', '.join(unpinned)}."
        lines += [f"# {part}" for part in textwrap.wrap(note, width=96)]
    lines += ["", "# The packages the course uses from Colab's image:"]
    lines += [f"{name}=={pins[name]}" for name in course]
    lines += ["", "# Everything else Colab preinstalls:"]
    lines += [f"{name}=={pins[name]}" for name in rest]
    return "\n".join(lines) + "\n"


def colab_tested_versions(path: Path | None = None) -> dict[str, str] | None:
    """What ``constraints-colab.txt`` says about Colab: ``python``, ``date`` and the versions of
    ``COLAB_HEADLINE_PACKAGES``; None when the file is absent (an installed, not cloned, course).

    Explained in notebook 00 (the badge and the setup cell at the top of every notebook).
    """
    path = REPO_ROOT / COLAB_CONSTRAINTS if path is None else path
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    image = _IMAGE.search(text)
    pins, _ = parse_freeze(text)
    versions = {normalise(name): version for name, version in pins.items()}
    found = {"python": image["python"], "date": image["date"]} if image else {}
    found.update({p: versions[p] for p in COLAB_HEADLINE_PACKAGES if p in versions})
    return found


def colab_tested_line(path: Path | None = None) -> str | None:
    """One line for the environment summary: the Colab versions the course was tested with.

    Explained in notebook 00 (the badge and the setup cell at the top of every notebook).
    """
    found = colab_tested_versions(path)
    if not found:
        return None
    packages = ", ".join(f"{p} {found[p]}" for p in COLAB_HEADLINE_PACKAGES if p in found)
    python = f"Python {found['python']}, " if "python" in found else ""
    date = f" (image of {found['date']})" if "date" in found else ""
    return f"tested with {python}{packages}{date}"


# ---------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    """``python -m recsys_lib.course [--root DIR]`` restamps the notebooks;
    ``python -m recsys_lib.course colab-constraints PIP_FREEZE`` refreshes the Colab versions.

    Explained in notebook 00 (the badge and the setup cell at the top of every notebook).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["colab-constraints"]:
        return _colab_constraints_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m recsys_lib.course",
        description="Restamp the Colab badge and setup cell of every course notebook "
                    "(notebooks/, exercises/, solutions/). The subcommand `colab-constraints "
                    "PIP_FREEZE` rewrites constraints-colab.txt instead.")
    parser.add_argument("--root", type=Path, default=REPO_ROOT,
                        help="the repository to restamp (default: this clone)")
    args = parser.parse_args(argv)
    for path in stamp_all(args.root):
        print(f"restamped {path.relative_to(args.root)}")
    return 0


def _colab_constraints_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recsys_lib.course colab-constraints",
        description="Write constraints-colab.txt from a `pip freeze` of Google Colab's image "
                    "(googlecolab/backend-info publishes one as pip-freeze.txt). The date, "
                    "source and Python version are read from the SOURCE.md and os-info.txt "
                    "next to the listing when there are such files; give them otherwise.")
    parser.add_argument("freeze", type=Path, help="Colab's pip freeze (pip-freeze.txt)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / COLAB_CONSTRAINTS,
                        help=f"where to write (default: {COLAB_CONSTRAINTS} in this clone)")
    parser.add_argument("--date", help="the date of Colab's listing, YYYY-MM-DD")
    parser.add_argument("--python", help="Colab's Python version, e.g. 3.13.15")
    parser.add_argument("--source", help="where the listing comes from (repository, commit)")
    args = parser.parse_args(argv)
    if not args.freeze.is_file():
        parser.error(f"{args.freeze} not found")
    found = _describe_source(args.freeze)
    date = args.date or found.get("date")
    python = args.python or found.get("python")
    source = args.source or " ".join(
        x for x in (found.get("repository", ""), found.get("commit", "")) if x)
    if not (date and python and source):
        parser.error("give --date, --python and --source (no SOURCE.md / os-info.txt found "
                     "next to the listing that says them)")
    try:
        text = colab_constraints(args.freeze.read_text(encoding="utf-8"), date=date,
                                 python=python, source=f"{source}, pip-freeze.txt")
    except ValueError as error:
        parser.error(str(error))
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} (Colab image of {date}, Python {python})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
