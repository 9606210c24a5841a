"""The alternating runs of one suite: without the check, with it, without, ... (N of each).

Each run is one pytest process in the suite's virtualenv, its wall time measured from
outside (start-up and collection included: what a user waits for), its log kept, and the
probe's record read back. Runs alternate so that a machine that gets busier or quieter
during the session weighs on both modes alike.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .prepare import PROBE, Prepared
from .suites import COMMON_ARGS
from .table import WITH, WITHOUT

#: A whole suite run never takes this long here (aiohttp's part, with the old check: ~5 min).
RUN_TIMEOUT_S = 3600


def hosts_wrapper(work: Path) -> list[str]:
    """A command prefix that gives the run an /etc/hosts where ``localhost`` is also ``::1``.

    The suites' IPv6 tests bind and connect to ``("localhost", 0)`` with AF_INET6, as on any
    Debian-like host, whose /etc/hosts names ``::1 localhost``. Where the host's file lacks
    that line (this machine's does), the run gets a private mount namespace in which a copy
    of the file with the line added is bind-mounted over /etc/hosts: nothing outside the run
    changes. Without root or ``unshare`` the runs go as they are (and those tests fail).
    """
    try:
        hosts = Path("/etc/hosts").read_text()
    except OSError:
        return []
    for line in hosts.splitlines():
        words = line.split("#", 1)[0].split()
        if words[:1] == ["::1"] and "localhost" in words[1:]:
            return []
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        print("field: /etc/hosts has no '::1 localhost' and no private mount namespace can be "
              "made here: the suites' IPv6 tests will fail", flush=True)
        return []
    fixed = work / "hosts"
    fixed.write_text(hosts.rstrip("\n") + "\n::1 localhost ip6-localhost ip6-loopback\n")
    return [unshare, "--mount", "--propagation", "private", "--", "sh", "-c",
            'mount --bind "$0" /etc/hosts && exec "$@"', str(fixed)]


def run_once(prepared: Prepared, work: Path, out_dir: Path, mode: str, index: int,
             extra: Sequence[str]) -> dict[str, Any]:
    """One pytest run; its record (mode, wall time, exit status, the probe's data)."""
    suite = prepared.suite
    layout = suite.layout(prepared.tree, work / "run" / suite.name, prepared.package)
    probe_dir = work / "probe"
    probe_dir.mkdir(parents=True, exist_ok=True)
    (probe_dir / PROBE.name).write_text(PROBE.read_text())
    name = f"{suite.name}-{index}-{mode}"
    probe_out = out_dir / f"{name}.probe.json"
    probe_out.unlink(missing_ok=True)
    # As a user's shell would have it: not nox's session variables (its TMPDIR, deep inside
    # .nox, would lengthen the suites' AF_UNIX socket paths towards their 108-byte limit).
    env = {key: value for key, value in os.environ.items()
           if key not in {"PYTHONPATH", "PYTEST_ADDOPTS", "VIRTUAL_ENV", "TMPDIR"}}
    env.update(PYTHONPATH=str(probe_dir), TCPLAB_FIELD_OUT=str(probe_out),
               PYTHONDONTWRITEBYTECODE="1")
    args = [*hosts_wrapper(work), str(prepared.pytest), *COMMON_ARGS, *layout.args, *extra]
    if mode == WITH:
        args.append("--tcplab-leaks")
    log = out_dir / f"{name}.log"
    print(f"field: {suite.name} run {index + 1} {mode} the check ...", end=" ", flush=True)
    started = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(args, cwd=layout.cwd, env=env, stdout=out,
                              stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT_S, check=False)
    wall = time.monotonic() - started
    probe: dict[str, Any] = json.loads(probe_out.read_text()) if probe_out.exists() else {}
    outcomes = probe.get("outcomes", {})
    print(f"{wall:.1f} s, {len(outcomes)} tests, exit {done.returncode}, "
          f"{len(probe.get('flagged', []))} flagged", flush=True)
    if not probe:
        raise RuntimeError(f"{name}: the probe wrote nothing (exit {done.returncode}); see {log}")
    return {"suite": suite.name, "mode": mode, "index": index, "wall_s": round(wall, 3),
            "exitstatus": done.returncode, "command": args, "cwd": str(layout.cwd),
            "log": str(log), "probe": probe}


def alternate(prepared: Prepared, work: Path, out_dir: Path, runs: int,
              extra: Sequence[str]) -> list[dict[str, Any]]:
    """``runs`` runs of each mode, alternating, without the check first."""
    records = []
    for index in range(runs):
        for mode in (WITHOUT, WITH):
            records.append(run_once(prepared, work, out_dir, mode, index, extra))
    return records
