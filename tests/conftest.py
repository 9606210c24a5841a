"""Shared test configuration: pytest's own ``pytester`` runs inner pytest sessions (the
tcplab plugin's tests), and the suite's own leak check.

The suite must leave nothing on the host. At the end of the session (``pytest_sessionfinish``)
it fails if

* a TCP socket on loopback that one of the suite's processes connected to or bound (its
  ports are logged by an audit hook, here and, through a ``sitecustomize`` on PYTHONPATH, in
  every Python child) is still in FIN_WAIT1, LAST_ACK or CLOSING: an orphan retransmitting
  its FIN (a socket closed with data unacknowledged, or behind a filter) for minutes;
* a ``tcplab-*`` entry is left in the suite's temporary directory. The suite runs with
  ``TMPDIR`` pointing to a directory of its own, so what it and its children leave there is
  its own, whatever else runs on the machine (``/tmp`` is shared with other users' runs);
  the directory itself is removed at the end.

Sockets already lingering when the session started, and those of other processes on the
same loopback, are not the suite's and are left out.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tcplab.kernel.diag import SockDiag
from tcplab.kernel.model import FourTuple
from tcplab.states import TcpState

pytest_plugins = ["pytester"]

#: States of a closed socket that still retransmits its FIN (an orphan when nobody holds it).
LINGERING = (TcpState.FIN_WAIT1, TcpState.LAST_ACK, TcpState.CLOSING)
#: How long a normal close may take to leave those states before it counts as a leak.
SETTLE_S = 3.0
PORT_LOG = "TCPLAB_TEST_PORT_LOG"

#: Installed in every Python child of the suite: log the ports it binds and connects to.
SITECUSTOMIZE = f'''"""Written by tests/conftest.py: logs the ports this process binds or connects to."""
import atexit, os, sys

_ports = set()
_log = os.environ.get({PORT_LOG!r})


def _hook(event, args):
    if event in ("socket.bind", "socket.connect", "socket.connect_ex"):
        address = args[1]
        if isinstance(address, tuple) and len(address) >= 2 and isinstance(address[1], int):
            _ports.add(address[1])


def _flush():
    if _log and _ports:
        with open(_log, "a") as f:
            f.write("".join(f"{{p}}\\n" for p in _ports if p))


if _log:
    sys.addaudithook(_hook)
    atexit.register(_flush)
'''


class Watch:
    """What the session started with, and where the suite's leftovers would be."""

    def __init__(self) -> None:
        self.tmpdir = Path(tempfile.mkdtemp(prefix="pytest-tcplab-tmp-"))
        (self.tmpdir / "site").mkdir()
        (self.tmpdir / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
        self.port_log = self.tmpdir / "ports.log"
        self.ports: set[int] = set()
        self.before = set(lingering_on_loopback())

    def suite_ports(self) -> set[int]:
        logged = self.port_log.read_text().split() if self.port_log.exists() else []
        return self.ports | {int(p) for p in logged}

    def leaks(self) -> list[str]:
        """What the suite left behind (empty: nothing), after letting closes settle."""
        deadline = time.monotonic() + SETTLE_S
        while True:
            ports = self.suite_ports() - {0}
            sockets = [t for t, state in lingering_on_loopback().items()
                       if t not in self.before and {t.local.port, t.remote.port} & ports]
            if not sockets or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        now = lingering_on_loopback()
        found = [f"socket {t.local.host}:{t.local.port} -> {t.remote.host}:{t.remote.port} "
                 f"still in {now.get(t, '?')} on loopback" for t in sockets]
        found += [f"temporary {p} left" for p in sorted(self.tmpdir.glob("tcplab-*"))]
        return found


def _loopback(host: str) -> bool:
    address = ipaddress.ip_address(host)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def lingering_on_loopback() -> dict[FourTuple, TcpState]:
    """Loopback TCP sockets in FIN_WAIT1, LAST_ACK or CLOSING (this network namespace)."""
    with SockDiag() as diag:
        records = diag.dump(states=LINGERING)
    return {r.four_tuple: r.state for r in records
            if _loopback(r.four_tuple.local.host) and _loopback(r.four_tuple.remote.host)}


_watch: Watch | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _watch
    if _watch is not None or os.environ.get(PORT_LOG):  # an inner (pytester) session
        return
    # pytest's own tmp_path stays where it was; tempfile users (tcplab, its children) use ours.
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
    _watch = Watch()
    os.environ["TMPDIR"] = str(_watch.tmpdir)
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    os.environ[PORT_LOG] = str(_watch.port_log)
    site = str(_watch.tmpdir / "site")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (site, os.environ.get("PYTHONPATH")) if p)
    watched = _watch

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in ("socket.bind", "socket.connect", "socket.connect_ex"):
            address = args[1]
            if isinstance(address, tuple) and len(address) >= 2 and isinstance(address[1], int):
                watched.ports.add(address[1])

    sys.addaudithook(hook)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _watch
    if _watch is None:
        return
    watch, _watch = _watch, None
    try:
        leaks = watch.leaks()
    finally:
        shutil.rmtree(watch.tmpdir, ignore_errors=True)
    if leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = ["the test suite left something behind on this host:", *leaks]
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_sep("=", "leaks", red=True)
            for line in lines:
                reporter.write_line(line)
        else:
            print("\n".join(lines), file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
