"""The sdists (tests) and a virtualenv per suite (the project, its test dependencies, tcplab).

Everything lands under one work directory (``.nox/plugin-field/tmp`` from nox), reused from
one session to the next: the sdists are downloaded once, ``pip install`` finds the
virtualenvs satisfied, and only tcplab is installed again each time (from this checkout, not
editable: what a user gets from ``pip install``).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from .suites import PINS, Suite

PROBE = Path(__file__).with_name("tcplab_field_probe.py")


@dataclass(frozen=True)
class Prepared:
    """A suite ready to run: its sdist tree, virtualenv and installed versions."""

    suite: Suite
    tree: Path
    venv: Path
    package: Path
    version: str
    freeze: tuple[str, ...]

    @property
    def pytest(self) -> Path:
        return self.venv / "bin" / "pytest"


def _run(*args: str | Path) -> str:
    done = subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True)
    return done.stdout


def sdists(work: Path) -> dict[str, tuple[str, Path]]:
    """Each pinned project's version and unpacked sdist tree (downloaded once)."""
    into = work / "sdist"
    into.mkdir(parents=True, exist_ok=True)
    found: dict[str, tuple[str, Path]] = {}
    for name, pin in PINS.items():
        archives = sorted(into.glob(f"{name}-*.tar.gz"))
        if not archives:
            print(f"field: downloading the sdist of {pin}", flush=True)
            _run(sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:",
                 "--no-deps", pin, "-d", into)
            archives = sorted(into.glob(f"{name}-*.tar.gz"))
        archive = archives[-1]
        match = re.fullmatch(rf"{name}-(.+)\.tar\.gz", archive.name)
        if match is None:
            raise RuntimeError(f"unexpected sdist name {archive.name}")
        version = match[1]
        tree = work / "src" / f"{name}-{version}"
        if not tree.exists():
            with tarfile.open(archive) as tar:
                tar.extractall(work / "src", filter="data")
        found[name] = (version, tree)
    return found


def prepare(suite: Suite, work: Path, repo: Path) -> Prepared:
    """The suite's virtualenv, with the pins, its test dependencies and tcplab installed."""
    trees = sdists(work)
    constraints = work / "constraints.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, (version, _) in trees.items()))
    venv = work / "venv" / suite.name
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"field: making the virtualenv of {suite.name}", flush=True)
        _run(sys.executable, "-m", "venv", venv)
    print(f"field: installing {suite.name}'s tests' dependencies and tcplab", flush=True)
    _run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-c", constraints, *suite.install, repo)
    _run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--force-reinstall", repo)
    package = Path(_run(python, "-c", f"import {suite.name}, os; "
                                      f"print(os.path.dirname({suite.name}.__file__))").strip())
    freeze = tuple(_run(python, "-m", "pip", "freeze", "--disable-pip-version-check")
                   .splitlines())
    version, tree = trees[suite.name]
    return Prepared(suite, tree, venv, package, version, freeze)
