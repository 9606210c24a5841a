"""The realworld libraries are optional (``tcplab[realworld]``): without them every scenario
file still loads (``tcplab list`` shows them all, no "skipped" line), and a run of one is
skipped with the reason rather than crashing. Each library is made unimportable in a child
(``sys.modules[name] = None``), as on a machine where it was never installed."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The top-level modules of the realworld extra (pyproject.toml).
OPTIONAL = ("aiohttp", "requests", "urllib3", "redis", "psycopg", "psycopg_pool", "grpc",
            "uvicorn", "gunicorn", "uvloop", "httptools")

PROGRAM = f"""
import sys
for name in {OPTIONAL!r}:
    sys.modules[name] = None  # import raises ImportError, as if never installed
from tcplab import catalog
found = catalog.discover({str(ROOT / "scenarios")!r})
print(sorted(s.id for s in found.values() if "realworld" in s.tags))
"""


def test_every_scenario_loads_without_the_realworld_libraries() -> None:
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "skipped" not in done.stderr, done.stderr
    ids = ast.literal_eval(done.stdout)  # a list of str printed by the child
    assert len(ids) >= 8 and "rw-redis" in ids and "rw-aiohttp" in ids, ids
