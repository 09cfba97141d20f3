"""The Colab side of the course: badges and setup cells, the stamping command, the record of
Colab's package versions (constraints-colab.txt), and the setup cell run in a faked Colab.

The faked-Colab tests put a module ``google.colab`` into ``sys.modules`` of a subprocess, point
the cell at a bare git repository made from a copy of this working tree, and let it install the
course into a throwaway virtual environment that sees this environment's packages (so
TensorFlow is not installed again) with pip cut off from any package index: an install that
needed to fetch or upgrade anything would fail.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nbformat
import pytest

from recsys_lib import course
from recsys_lib.config import REPO_ROOT, environment_summary

SHARED_COLAB_ENV_VAR = "RECSYS_SHARED_COLAB"
GIT = ["git", "-c", "user.name=course tests", "-c", "user.email=tests@example.invalid",
       "-c", "init.defaultBranch=main", "-c", "advice.detachedHead=false"]
LESSONS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def fake_colab(test):
    """Marks a test that runs the setup cell or pip: slow, and part of the Colab-stack job."""
    return pytest.mark.colab(pytest.mark.slow(reason="runs the Colab setup cell or pip")(test))


@pytest.fixture
def offline_build() -> None:
    """pip builds the course here without an index, with this environment's setuptools."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("no setuptools in this environment: the course cannot be built offline")


@pytest.fixture(scope="module")
def shared_colab() -> Path:
    """Colab's published package list in ``../shared/colab`` beside the repository."""
    override = os.environ.get(SHARED_COLAB_ENV_VAR)
    path = Path(override).expanduser() if override else REPO_ROOT.parent / "shared" / "colab"
    if not (path / "pip-freeze.txt").is_file():
        pytest.skip("../shared/colab/pip-freeze.txt not found: Colab's listing is needed")
    return path


# ---------------------------------------------------------------- Colab's package versions
def test_constraints_file_is_the_shared_listing_refreshed(shared_colab, tmp_path):
    out = tmp_path / "constraints-colab.txt"
    assert course.main(["colab-constraints", str(shared_colab / "pip-freeze.txt"),
                        "--out", str(out)]) == 0
    assert out.read_text() == (REPO_ROOT / course.COLAB_CONSTRAINTS).read_text(), (
        "constraints-colab.txt is not what ../shared/colab/pip-freeze.txt gives; run "
        "`python -m recsys_lib.course colab-constraints ../shared/colab/pip-freeze.txt`"
    )


def test_readme_names_the_colab_versions_it_was_checked_against():
    versions = course.colab_tested_versions()
    assert versions is not None and set(versions) >= {"python", "date", "tensorflow"}
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Google Colab"):readme.index("## The notebooks")]
    for name, shown in (("tensorflow", "TensorFlow"), ("keras", "Keras"), ("numpy", "NumPy"),
                        ("pandas", "pandas"), ("python", "Python")):
        assert f"{shown} {versions[name]}" in section, f"README: {shown} {versions[name]}"
    assert f"**{versions['date']}**" in section
    text = (REPO_ROOT / course.COLAB_CONSTRAINTS).read_text()
    assert " @ " not in text and "# Source: " in text


def _write_listing(folder: Path, *, with_source: bool) -> Path:
    folder.mkdir()
    freeze = folder / "pip-freeze.txt"
    lines = ["# a comment", "Zlib-Thing==1.0", "google-colab @ file:///colabtools/x.tar.gz"]
    lines += [f"{name}==1.{i}" for i, name in enumerate(course.COLAB_COURSE_PACKAGES)]
    lines.append("aardvark==0.1")
    freeze.write_text("\n".join(lines) + "\n")
    if with_source:
        (folder / "SOURCE.md").write_text(
            "copied from `googlecolab/backend-info` (commit " + "ab" * 20 + ", 2031-02-03)\n")
        (folder / "os-info.txt").write_text("# header\nUbuntu\nPython 3.14.2\n")
    return freeze


def test_refresh_from_a_new_listing(tmp_path, capsys):
    freeze = _write_listing(tmp_path / "colab", with_source=True)
    out = tmp_path / "constraints.txt"
    assert course.main(["colab-constraints", str(freeze), "--out", str(out)]) == 0
    assert "2031-02-03" in capsys.readouterr().out
    text = out.read_text()
    pins = [line for line in text.splitlines() if "==" in line and not line.startswith("#")]
    assert pins[:len(course.COLAB_COURSE_PACKAGES)] == [
        f"{name}==1.{i}" for i, name in enumerate(course.COLAB_COURSE_PACKAGES)]
    assert pins[len(course.COLAB_COURSE_PACKAGES):] == ["aardvark==0.1", "Zlib-Thing==1.0"]
    assert "# Source: googlecolab/backend-info " + "ab" * 20 in text
    assert "not pinned here: google-colab." in text
    assert course.colab_tested_versions(out) == {
        "python": "3.14.2", "date": "2031-02-03", "tensorflow": "1.0", "keras": "1.1",
        "numpy": "1.2", "pandas": "1.3"}


def test_refresh_asks_for_the_date_when_the_listing_does_not_say(tmp_path, capsys):
    freeze = _write_listing(tmp_path / "colab", with_source=False)
    with pytest.raises(SystemExit) as stop:
        course.main(["colab-constraints", str(freeze), "--out", str(tmp_path / "c.txt")])
    assert stop.value.code == 2 and "--date" in capsys.readouterr().err
    assert course.main(["colab-constraints", str(freeze), "--out", str(tmp_path / "c.txt"),
                        "--date", "2031-01-01", "--python", "3.14.0", "--source", "a copy"]) == 0
    assert "# Colab image: Python 3.14.0 of 2031-01-01" in (tmp_path / "c.txt").read_text()


def test_refresh_refuses_a_listing_without_the_course_stack(tmp_path, capsys):
    freeze = tmp_path / "pip-freeze.txt"
    freeze.write_text("numpy==2.0\n")
    with pytest.raises(SystemExit):
        course.main(["colab-constraints", str(freeze), "--out", str(tmp_path / "c.txt"),
                     "--date", "2031-01-01", "--python", "3.14.0", "--source", "x"])
    assert "lacks the course's packages" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a pip freeze line"):
        course.parse_freeze("numpy>=2\n")


def test_colab_requirements_are_the_course_stack_plus_tools_colab_lacks():
    names = [line.split("#")[0].strip() for line in
             (REPO_ROOT / "requirements-colab.txt").read_text().splitlines()]
    names = [course.normalise(n) for n in names if n]
    stack = [course.normalise(n) for n in course.COLAB_COURSE_PACKAGES]
    assert names[:len(stack)] == stack
    colab, _ = course.parse_freeze((REPO_ROOT / course.COLAB_CONSTRAINTS).read_text())
    colab = {course.normalise(n) for n in colab}
    assert set(stack) <= colab
    assert not set(names[len(stack):]) & colab, "a test tool is on Colab now: list it above"


def test_environment_summary_says_which_colab_versions_were_tested():
    line = next(x for x in environment_summary().splitlines() if x.startswith("Colab"))
    assert "Python 3.13" in line and "tensorflow 2.20.0" in line and "2026-08-19" in line


# ---------------------------------------------------------------- badge, setup cell, stamping
def test_badge_and_setup_cell_use_the_course_version(monkeypatch):
    monkeypatch.setattr(course, "COURSE_REF", "v1.2")
    assert course.badge_source("notebooks/x.ipynb").endswith(
        "/recsys-course/blob/v1.2/notebooks/x.ipynb)")
    source = course.setup_cell_source()
    assert 'os.environ.get("RECSYS_COURSE_REF", "v1.2")' in source
    assert f'os.environ.get("RECSYS_COURSE_URL", "{course.REPO_URL}")' in source


def test_setup_cell_does_nothing_outside_colab():
    assert "google.colab" not in sys.modules
    namespace: dict = {}
    path = list(sys.path)
    exec(compile(course.setup_cell_source(), "setup-cell", "exec"), namespace)
    assert "COURSE_DIR" not in namespace and sys.path == path


def test_stamping_rewrites_copies_of_the_notebooks(tmp_path, capsys):
    for folder in course.NOTEBOOK_FOLDERS:
        shutil.copytree(REPO_ROOT / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("source", ".ipynb_checkpoints"))
    copies = course.course_notebooks(tmp_path)
    assert len(copies) == len(course.course_notebooks())
    old = nbformat.read(copies[0], as_version=4)
    for cell in old.cells:
        if {course.BADGE_TAG, course.SETUP_TAG} & set(cell.metadata.get("tags", [])):
            cell.source = "old"
    nbformat.write(old, copies[0])
    assert course.main(["--root", str(tmp_path)]) == 0
    assert f"restamped {copies[0].relative_to(tmp_path)}" in capsys.readouterr().out
    for path in copies:
        nb = nbformat.read(path, as_version=4)
        assert not course.stamp(nb, path.relative_to(tmp_path).as_posix())
        setup = next(c for c in nb.cells if course.SETUP_TAG in c.metadata.get("tags", []))
        assert setup.source == course.setup_cell_source()
    assert course.stamp_all(tmp_path) == []


def test_slow_tier_rules_point_at_real_tests(request):
    plugin = next(p for p in request.config.pluginmanager.get_plugins()
                  if getattr(p, "__file__", None) == str(REPO_ROOT / "tests" / "conftest.py"))
    for name in plugin.SLOW_FILES:
        assert (REPO_ROOT / "tests" / name).is_file(), f"conftest.SLOW_FILES: {name} is gone"
    assert plugin._kernel_section_line(REPO_ROOT / "tests" / "test_grading.py"), (
        "test_grading.py lost its 'runs a kernel' comment, so its kernel tests became fast")


# ---------------------------------------------------------------- the setup cell in a fake Colab
def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run([*GIT, *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def course_remote(tmp_path_factory) -> dict:
    """A bare repository of this working tree (tracked and untracked, not ignored, files).

    ``main`` has two commits: the working tree, tagged ``v0.0-test``, then one more file
    ``LATER.txt``. Returns the bare repository, the first commit, and the working copy.
    """
    if not (REPO_ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs git and a git clone of the course")
    base = tmp_path_factory.mktemp("remote")
    listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"],
                            cwd=REPO_ROOT, capture_output=True, check=True).stdout
    work = base / "work"
    for name in filter(None, listed.decode().split("\0")):
        if (REPO_ROOT / name).is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, work / name)
    _git("init", "-q", ".", cwd=work)
    _git("add", "-A", cwd=work)
    _git("commit", "-q", "-m", "the working tree", cwd=work)
    first = _git("rev-parse", "HEAD", cwd=work)
    _git("tag", "v0.0-test", cwd=work)
    (work / "LATER.txt").write_text("a later commit\n")
    _git("add", "LATER.txt", cwd=work)
    _git("commit", "-q", "-m", "later", cwd=work)
    _git("clone", "-q", "--bare", ".", str(base / "course.git"), cwd=work)
    return {"url": str(base / "course.git"), "first": first, "work": work}


def _child_python(folder: Path) -> Path:
    """A virtual environment without pip that sees this environment's installed packages
    (through a .pth file, which does not run this environment's own .pth files, so its
    editable recsys_lib is not importable there)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    ask = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = subprocess.run([python, "-c", ask], capture_output=True, text=True,
                             check=True).stdout.strip()
    parents = dict.fromkeys([*site.getsitepackages(), sysconfig.get_path("platlib")])
    Path(purelib, "parent-environment.pth").write_text("\n".join(parents) + "\n")
    return python


def _lesson_imports() -> str:
    """The import statements of every lesson's first code cell after the setup cell."""
    statements: dict[str, None] = {}
    for path in LESSONS:
        code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        setup = next(i for i, c in enumerate(code)
                     if course.SETUP_TAG in c.metadata.get("tags", []))
        for node in ast.parse(code[setup + 1].source).body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                statements[ast.unparse(node)] = None
    return "\n".join(statements)


def _run_in_fake_colab(python: Path, content: Path, *, url: str, runs: int = 1, after: str = "",
                       ref: str | None = None) -> subprocess.CompletedProcess:
    """Run the setup cell ``runs`` times, then ``after``, in a process that looks like Colab."""
    driver = content.parent / "driver.py"
    driver.write_text(
        "import sys, types\n"
        "sys.modules['google.colab'] = types.ModuleType('google.colab')  # what Colab has\n"
        f"cell = {course.setup_cell_source()!r}\n"
        f"for _ in range({runs}):\n"
        "    exec(compile(cell, 'setup-cell', 'exec'), {'__name__': '__main__'})\n"
        f"exec({after!r}, {{'__name__': '__main__'}})\n"
        "import recsys_lib\n"
        "print('recsys_lib from', recsys_lib.__file__)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "RECSYS_COURSE"))}
    env.update({course.URL_ENV_VAR: url, course.DIR_ENV_VAR: str(content / "recsys-course"),
                "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "RECSYS_QUICK": "1",
                "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "2"})
    if ref is not None:
        env[course.REF_ENV_VAR] = ref
    content.mkdir(exist_ok=True)
    return subprocess.run([python, str(driver)], cwd=content, env=env, capture_output=True,
                          text=True, timeout=600)


@fake_colab
@pytest.mark.usefixtures("offline_build")
def test_fake_colab_fetches_installs_and_runs_the_lessons_imports(course_remote, tmp_path):
    python = _child_python(tmp_path / "venv")
    content = tmp_path / "content"
    imports = _lesson_imports() + "\nprint(environment_summary())"
    done = _run_in_fake_colab(python, content, url=course_remote["url"], runs=2, after=imports)
    assert done.returncode == 0, done.stdout + done.stderr
    course_dir = content / "recsys-course"
    assert done.stdout.count(f"Fetched the course from {course_remote['url']} at main") == 1
    assert done.stdout.count(f"Installed the course library from {course_dir}") == 1, (
        "the second run must find the installed library and do nothing")
    assert f"recsys_lib from {course_dir}/recsys_lib/__init__.py" in done.stdout
    assert "Running in  Google Colab" in done.stdout and "tested with Python 3.13" in done.stdout
    assert (course_dir / "LATER.txt").is_file()  # main, the newest commit
    fresh = subprocess.run([python, "-c", "import recsys_lib; print(recsys_lib.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True)
    assert fresh.stdout.strip() == f"{course_dir}/recsys_lib/__init__.py", fresh.stderr


@fake_colab
@pytest.mark.parametrize("ref", ["v0.0-test", "first commit"])
def test_fake_colab_fetches_the_pinned_version(course_remote, tmp_path, ref):
    # This environment already has recsys_lib, so the cell fetches and installs nothing.
    ref = course_remote["first"] if ref == "first commit" else ref
    done = _run_in_fake_colab(Path(sys.executable), tmp_path / "content",
                              url=course_remote["url"], ref=ref)
    assert done.returncode == 0, done.stdout + done.stderr
    course_dir = tmp_path / "content" / "recsys-course"
    assert _git("rev-parse", "HEAD", cwd=course_dir) == course_remote["first"]
    assert not (course_dir / "LATER.txt").exists()
    assert "Installed" not in done.stdout


@fake_colab
@pytest.mark.usefixtures("offline_build")
def test_fake_colab_installs_when_the_fetch_finished_but_pip_did_not(course_remote, tmp_path):
    python = _child_python(tmp_path / "venv")
    content = tmp_path / "content"
    _git("clone", "-q", course_remote["url"], str(content / "recsys-course"), cwd=tmp_path)
    done = _run_in_fake_colab(python, content, url=str(tmp_path / "gone.git"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Fetched" not in done.stdout
    assert f"Installed the course library from {content / 'recsys-course'}" in done.stdout


@fake_colab
@pytest.mark.usefixtures("offline_build")
def test_fake_colab_uses_an_uploaded_zip(course_remote, tmp_path):
    python = _child_python(tmp_path / "venv")
    content = tmp_path / "content"
    content.mkdir()
    upload = content / "recsys-course-main.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        for path in course_remote["work"].rglob("*"):
            if path.is_file() and ".git" not in path.relative_to(course_remote["work"]).parts:
                name = path.relative_to(course_remote["work"])
                archive.write(path, f"recsys-course-main/{name.as_posix()}")
    done = _run_in_fake_colab(python, content, url=str(tmp_path / "gone.git"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Fetched the course from {upload}" in done.stdout
    assert f"recsys_lib from {content / 'recsys-course'}/recsys_lib" in done.stdout
    assert not (content / "recsys-course.unpacking").exists()


@fake_colab
def test_fake_colab_says_what_to_do_when_the_address_is_wrong(tmp_path):
    done = _run_in_fake_colab(Path(sys.executable), tmp_path / "content",
                              url=str(tmp_path / "gone.git"))
    assert done.returncode != 0
    assert "CalledProcessError" not in done.stderr
    message = done.stderr[done.stderr.index("RuntimeError: Could not fetch the course"):]
    for words in ("gone.git (version main)", "%env RECSYS_COURSE_URL=", "%env RECSYS_COURSE_REF",
                  "Download ZIP", str(tmp_path / "content")):
        assert words in message, message
    assert not (tmp_path / "content" / "recsys-course").exists()


@fake_colab
@pytest.mark.usefixtures("offline_build")
def test_installing_the_course_moves_no_installed_package():
    """What the setup cell runs (``pip install -e``), resolved against this environment: on the
    Colab-stack job (Colab's versions installed) it must install recsys_lib and nothing else."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "-q", "--report", "-",
         "--no-index", "--no-build-isolation", "-e", str(REPO_ROOT)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    installs = {course.normalise(i["metadata"]["name"]): i["metadata"]["version"]
                for i in json.loads(done.stdout)["install"]}
    assert set(installs) <= {"recsys-lib"}, installs
