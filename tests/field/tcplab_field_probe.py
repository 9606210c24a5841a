"""A pytest plugin the field harness injects (``-p tcplab_field_probe``) into a foreign suite.

It records each test's outcome and, for every test that tcplab's leak check flagged, follows
each flagged socket after the flag, to tell a real leak from a false alarm by measurement:

* the flag is the leak check's own record of each socket, in the teardown report's
  ``user_properties`` (name ``tcplab_leaks``, a JSON object: inode, fd, four-tuple, state,
  where it was opened, the test); its inode is what is followed (inodes of sockfs are not
  reused while the process runs, fds are), from the moment the report comes;
* the inode is looked for among ``/proc/self/fd``'s links before and after each finalizer
  pytest runs while tearing a node down (each pending finalizer is wrapped: a fixture's
  finish is named by the fixture, anything else by the callable, e.g. ``socket.close`` that
  a test registered with ``request.addfinalizer``), after every fixture's teardown
  (``pytest_fixture_post_finalizer``: fixtures finished outside that list), at the start
  and end of every test's teardown, at every later test's setup and call, and at the
  session's end before and after a ``gc.collect()``;
* the first point where it is gone is recorded, with the test running then, the seconds
  since the flag, and the threads alive at the flag that had ended by then (a server thread
  of the test that closed it on its way out shows there); a socket still held when the
  session ends (after collection) never was closed by the suite.

Only the standard library and pytest are imported: the module runs inside suites whose ``tests`` package is not ours. The results go,
as JSON, to the file named by ``TCPLAB_FIELD_OUT`` when the session ends.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import re
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

OUT_ENV = "TCPLAB_FIELD_OUT"

#: The name of the leak check's record of a flagged socket in ``report.user_properties``
#: (tcplab.pytest_leaks.PROPERTY).
PROPERTY = "tcplab_leaks"
#: Lines of "where opened" kept per socket.
WHERE_LINES = 12


def flagged_records(report: pytest.TestReport) -> list[dict[str, Any]]:
    """The leak check's records of the sockets a report flags (none: no flag)."""
    return [json.loads(str(value)) for name, value in report.user_properties if name == PROPERTY]


def socket_inode(fd: int) -> int | None:
    """The inode of the socket behind ``fd`` of this process, or None (closed, not a socket)."""
    try:
        link = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    match = re.fullmatch(r"socket:\[(\d+)\]", link)
    return int(match[1]) if match else None


def held_inodes() -> set[int]:
    """Every socket inode this process holds through any fd."""
    inodes: set[int] = set()
    for name in os.listdir("/proc/self/fd"):
        inode = socket_inode(int(name))
        if inode is not None:
            inodes.add(inode)
    return inodes


def _threads() -> list[tuple[int, str]]:
    """The threads alive now but the main one: (ident, name), e.g. ``Thread-5 (serve)``."""
    return [(t.ident or 0, t.name) for t in threading.enumerate()
            if t is not threading.main_thread()]


def _finalizer_label(fin: Any) -> tuple[str, dict[str, str]]:
    """``("fixture", name and scope)`` for a fixture's finish, else ``("finalizer", name)``."""
    if isinstance(fin, functools.partial):
        owner = getattr(fin.func, "__self__", None)
        if owner is not None and hasattr(owner, "argname") and hasattr(owner, "scope"):
            return "fixture", {"fixture": str(owner.argname), "scope": str(owner.scope)}
    owner = getattr(fin, "__self__", None)
    name = getattr(fin, "__qualname__", None) or type(fin).__qualname__
    if owner is not None and not isinstance(owner, type):
        name = f"{type(owner).__qualname__}.{getattr(fin, '__name__', name)}"
    return "finalizer", {"finalizer": str(name)}


class Probe:
    """Outcomes of every test; flagged sockets followed until they close or the session ends."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.outcomes: dict[str, str] = {}
        self.flagged: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []
        self.current: str | None = None
        self.started = time.monotonic()

    # -- outcomes ---------------------------------------------------------------------------
    def outcome(self, report: pytest.TestReport) -> None:
        nodeid, when = report.nodeid, report.when
        previous = self.outcomes.get(nodeid)
        if report.failed:
            self.outcomes[nodeid] = "failed" if when == "call" else "error"
        elif report.skipped:
            if previous is None or when == "call":
                xfail = hasattr(report, "wasxfail")
                self.outcomes[nodeid] = "xfailed" if xfail else "skipped"
        elif when == "call":
            self.outcomes[nodeid] = "xpassed" if hasattr(report, "wasxfail") else "passed"
        elif previous is None:
            self.outcomes[nodeid] = "passed"  # setup passed; the call decides

    # -- flags ------------------------------------------------------------------------------
    def flag(self, report: pytest.TestReport) -> None:
        records = flagged_records(report)
        if not records:
            return
        now = time.monotonic() - self.started
        threads = _threads()
        held = held_inodes()
        sockets = []
        for record in records:
            entry = {"inode": record["inode"], "fd": record["fd"], "local": record["local"],
                     "remote": record["remote"], "state": record["state"],
                     "detail": record.get("reason", ""),
                     "where": list(record.get("where", ()))[:WHERE_LINES],
                     "held_at_flag": record["inode"] in held, "flagged_at": now,
                     "closing": None, "open_at_end": None, "threads": threads,
                     "record": record}
            sockets.append(entry)
            if entry["held_at_flag"]:
                self.pending.append(entry)
        self.flagged.append({"nodeid": report.nodeid, "phase": report.when,
                             "message": str(report.longrepr)[:4000], "sockets": sockets})

    def check(self, point: str, **where: Any) -> None:
        """Record, for every followed socket that is gone now, where it went."""
        if not self.pending:
            return
        held = held_inodes()
        now = time.monotonic() - self.started
        alive = {ident for ident, _name in _threads()}
        still = []
        for entry in self.pending:
            if entry["inode"] in held:
                still.append(entry)
                continue
            ended = [name for ident, name in entry.get("threads", ()) if ident not in alive]
            entry["closing"] = {"point": point, "during": self.current,
                                "after_s": round(now - entry["flagged_at"], 4),
                                "threads_ended": ended, **where}
        self.pending = still

    def wrap_finalizers(self, session: pytest.Session) -> None:
        """Check before and after each pending finalizer of every node being set up.

        pytest runs a node's finalizers one by one when it tears the node down: the finish of
        each fixture set up on it, and each callable the test registered with
        ``request.addfinalizer``. Wrapped, each one that closes a followed socket is named.
        """
        stack = getattr(getattr(session, "_setupstate", None), "stack", None)
        if not isinstance(stack, dict):
            return
        for node, (finalizers, _exc) in stack.items():
            for index, fin in enumerate(finalizers):
                if not getattr(fin, "_tcplab_field", False):
                    finalizers[index] = self._wrapped(fin, str(node.nodeid))

    def _wrapped(self, fin: Any, node: str) -> Any:
        point, labels = _finalizer_label(fin)

        def wrapped() -> object:
            self.check("teardown")
            try:
                return fin()
            finally:
                self.check(point, node=node, **labels)

        wrapped._tcplab_field = True  # type: ignore[attr-defined]
        return wrapped

    def finish(self, exitstatus: int) -> None:
        self.check("session-end")
        gc.collect()
        self.check("gc-at-end")
        held = held_inodes()
        for flag in self.flagged:
            for entry in flag["sockets"]:
                if entry["held_at_flag"]:
                    entry["open_at_end"] = entry["inode"] in held
        data = {"exitstatus": exitstatus, "outcomes": self.outcomes, "flagged": self.flagged,
                "seconds": round(time.monotonic() - self.started, 3)}
        partial = self.out.with_suffix(".part")
        partial.write_text(json.dumps(data, indent=1))
        partial.replace(self.out)


_probe: Probe | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _probe
    out = os.environ.get(OUT_ENV)
    if out and not hasattr(config, "workerinput"):  # one probe per process, xdist aside
        _probe = Probe(Path(out))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _probe is None:
        return
    _probe.outcome(report)
    _probe.flag(report)
    _probe.check("report", phase=report.when)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    if _probe is not None:
        _probe.current = item.nodeid
        _probe.check("setup")
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    try:
        return (yield)
    finally:
        if _probe is not None:
            _probe.check("call")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    if _probe is not None:
        _probe.check("before-teardown")
        if _probe.pending:
            _probe.wrap_finalizers(item.session)
    try:
        return (yield)
    finally:
        if _probe is not None:
            _probe.check("teardown")


def pytest_fixture_post_finalizer(fixturedef: pytest.FixtureDef[Any],
                                  request: pytest.FixtureRequest) -> None:
    if _probe is not None:
        _probe.check("fixture", fixture=fixturedef.argname, scope=fixturedef.scope)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _probe is not None:
        _probe.finish(int(exitstatus))
