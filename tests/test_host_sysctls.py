"""The tuning scenarios change sysctls only inside their own network namespaces.

Every file under the host's ``/proc/sys/net`` is read (a read-only walk: write-only and
unreadable entries are skipped) before and after ``tcplab run`` of the scenarios that set
or probe tunables, in a separate process exactly as a user runs them; nothing may differ.
The scenarios themselves must pass too, or a run that died early would prove nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NET = Path("/proc/sys/net")

#: The scenarios that declare sysctls or run probes in namespaces of their own.
TUNING = ["fin-wait2-timeout", "tw-reuse", "tw-recycle", "tw-buckets", "port-exhaustion",
          "time-wait-length"]

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the scenarios need root (network namespaces)"),
]


def snapshot() -> dict[str, bytes]:
    """Every readable file under /proc/sys/net, by path."""
    values: dict[str, bytes] = {}
    for directory, _, files in os.walk(NET):
        for name in files:
            path = os.path.join(directory, name)
            try:
                with open(path, "rb") as f:
                    values[path] = f.read()
            except OSError:  # write-only (route/flush) or refusing reads: nothing to compare
                continue
    return values


def test_tuning_scenarios_leave_host_sysctls_alone(tmp_path: Path) -> None:
    before = snapshot()
    assert len(before) > 100, "the walk found almost nothing under /proc/sys/net"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "tcplab", "run", *TUNING, "--results", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False,
    )
    after = snapshot()
    changed = {p: (before[p], after.get(p)) for p in before if after.get(p) != before[p]}
    added = sorted(set(after) - set(before))
    assert not changed and not added, f"host sysctls changed: {changed} added: {added}"
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
