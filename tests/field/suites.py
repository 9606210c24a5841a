"""The three suites: pinned versions, their own test dependencies, and how each is run.

Each suite gets a virtualenv of its own (their test dependencies differ, and anyio's suite
adds a backend for every event loop it finds installed). The pins below are the same in every
virtualenv (tcplab itself depends on trio, and through httpx on anyio).

What is left out, and why:

* uvloop (in anyio's and aiohttp's test dependencies) is not installed: anyio's suite then
  runs its asyncio and trio backends (``asyncio+uvloop`` is skipped, as it is where uvloop is
  missing), and aiohttp's tests use the standard loop, their default.
* pytest-cov, pytest-xdist, pytest-codspeed, linters and type checkers: tooling of the
  projects' CI, not of their tests (coverage itself is installed for aiohttp: a warning
  filter in its pytest.ini names a coverage class, and pytest refuses an unimportable one).
  Each suite runs in one process (the leak check is
  per process, and the timings compare one core's work).
* aiohttp: only 13 test files, the ones that open real sockets the most. The rule, applied
  to aiohttp 3.14.5's tests/test_*.py without the benchmark files (they need
  pytest-codspeed): the 13 with the most lines naming ``aiohttp_client``,
  ``aiohttp_server``, ``aiohttp_raw_server``, ``unused_port``, ``unused_tcp_port``,
  ``start_server``, ``create_server`` or ``open_connection`` (545 lines in
  test_client_functional.py down to 17 in test_connector.py; the next, test_web_log.py, has
  15). Its pytest.ini is kept but for ``addopts``: xdist, coverage, doctests of the test
  modules, ``--showlocals`` and ``--durations`` are dropped; ``--strict-markers`` and its
  marker selection are kept.
* trio: its tests ship inside the installed package (``trio/_tests``, ``trio/_core/_tests``);
  they run from an empty directory with the ``[tool.pytest.ini_options]`` of trio's sdist,
  as trio's CI runs them, without ``--run-slow``, and with trio's own
  ``--skip-optional-imports``: the tests of trio's code generators (``_tests/tools``) import
  its lint and build tooling (astor, PyYAML, black, ...), not test dependencies; they skip.
"""

from __future__ import annotations

import configparser
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: The pinned versions (pip requirement specifiers); the sdist of each is downloaded too.
PINS: dict[str, str] = {
    "trio": "trio==0.35.0",
    "anyio": "anyio>=4.16,<4.17",
    "aiohttp": "aiohttp>=3.14,<3.15",
}

AIOHTTP_FILES: tuple[str, ...] = (
    "test_client_functional.py",
    "test_web_functional.py",
    "test_web_websocket_functional.py",
    "test_client_ws_functional.py",
    "test_web_sendfile_functional.py",
    "test_web_urldispatcher.py",
    "test_web_server.py",
    "test_client_middleware.py",
    "test_client_middleware_digest_auth.py",
    "test_run_app.py",
    "test_pytest_plugin.py",
    "test_web_middleware.py",
    "test_connector.py",
)
#: The lines counted to choose AIOHTTP_FILES (see the module docstring).
AIOHTTP_SOCKET_WORDS: tuple[str, ...] = (
    "aiohttp_client", "aiohttp_server", "aiohttp_raw_server", "unused_port",
    "unused_tcp_port", "start_server", "create_server", "open_connection",
)
#: aiohttp's addopts, less xdist, coverage, doctests, --showlocals and --durations.
AIOHTTP_ADDOPTS = '--strict-markers -ra -m "not dev_mode and not autobahn and not internal"'

#: Options of every run: no cache written into the sdists, our probe loaded.
COMMON_ARGS: tuple[str, ...] = ("-p", "no:cacheprovider", "-p", "tcplab_field_probe")


@dataclass(frozen=True)
class Layout:
    """Where a suite runs from and what pytest is given (after COMMON_ARGS)."""

    cwd: Path
    args: tuple[str, ...]


@dataclass(frozen=True)
class Suite:
    """One third-party suite: what its virtualenv holds and how its tests are laid out."""

    name: str
    title: str
    #: Installed with tcplab and the pins: the project (with extras) and its test dependencies.
    install: tuple[str, ...]
    #: ``(sdist tree, run directory, the project's installed package directory) -> Layout``.
    layout: Callable[[Path, Path, Path], Layout]


def _trio_layout(tree: Path, run_dir: Path, package: Path) -> Layout:
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(tree / "pyproject.toml", run_dir / "pyproject.toml")
    # Named explicitly: the installed package lies outside run_dir, and pytest would take the
    # first config file above it (tcplab's own, when the work directory is in this checkout).
    return Layout(run_dir, ("-c", str(run_dir / "pyproject.toml"), "--rootdir", str(run_dir),
                            "--skip-optional-imports", str(package)))


def _anyio_layout(tree: Path, run_dir: Path, package: Path) -> Layout:
    # tests/ is a package; its rootdir (the sdist) holds src/anyio, never imported from there.
    return Layout(tree, ("tests",))


def _aiohttp_layout(tree: Path, run_dir: Path, package: Path) -> Layout:
    # The tests and their data, without the sdist's aiohttp/ source tree (the installed wheel,
    # with its compiled parsers, is what a user runs).
    if not (run_dir / "tests").exists():
        shutil.copytree(tree / "tests", run_dir / "tests")
    # test_static_file_directory_traversal_attack serves ../README.rst from tests/.
    shutil.copy(tree / "README.rst", run_dir / "README.rst")
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(tree / "pytest.ini")
    ini["pytest"]["addopts"] = AIOHTTP_ADDOPTS
    with (run_dir / "pytest.ini").open("w") as out:
        ini.write(out)
    return Layout(run_dir, tuple(f"tests/{name}" for name in AIOHTTP_FILES))


SUITES: dict[str, Suite] = {
    "trio": Suite(
        "trio", "trio 0.35",
        ("trio", "pytest>=8.4", "async_generator>=1.9", "pyOpenSSL>=22.0.0", "trustme",
         "cryptography>=41.0.0", "jedi", "pylint"),
        _trio_layout,
    ),
    "anyio": Suite(
        "anyio", "anyio 4.16, asyncio and trio backends",
        ("anyio[trio]", "blockbuster>=1.5.29", "hypothesis>=4.18.2", "psutil>=5.9",
         "pytest>=9.0", "pytest-mock>=3.14", "pytest-timeout>=2.4.0", "trustme>=1.0.0",
         "truststore>=0.9.1"),
        _anyio_layout,
    ),
    "aiohttp": Suite(
        "aiohttp", f"aiohttp 3.14, {len(AIOHTTP_FILES)} socket-heavy test files",
        ("aiohttp[speedups]", "blockbuster", "coverage", "freezegun", "proxy.py>=2.4.4rc5",
         "pytest", "pytest-mock", "pytest-timeout", "trustme", "isal", "zlib_ng"),
        _aiohttp_layout,
    ),
}
