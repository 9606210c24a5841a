"""The leak check of tcplab's pytest plugin (``tcplab.pytest_plugin`` registers it).

When: "before" is read as the test's setup starts; the test is judged after its teardown,
when its function-scoped fixtures and finalizers have run (and with them the event loop
of pytest-asyncio or pytest-trio has closed what the test's fixtures opened). A socket
still open then is the test's leak, reported the way pytest reports a failing teardown
("ERROR at teardown of ..."): the test's own outcome stays what it was, so an ``xfail``
test that passes stays XPASS and its leak shows as well. A test that failed (or was
skipped, or failed as expected) in setup or call is not judged: its sockets may be open
because it failed.

Whose: a socket made while a wider-scoped fixture (class, module, package, session) was
set up belongs to that fixture, as does a connection accepted on a listener the test did
not open (one held before its setup, a wider fixture's server) unless the test left it
in CLOSE_WAIT. They are checked when the fixture's scope ends, and a socket still open
after the fixture's teardown is reported on the test whose teardown ended the scope.

Threads: a thread the test started (alive after its teardown, not alive when its setup
started) may still close its sockets on its way out, as a server thread that accepts,
sleeps, then closes does. After the grace, such threads are joined, a few ms at a time,
until the test's sockets are closed, the threads ended, or ``tcplab_leaks_thread_wait``
seconds passed (the bound: a daemon thread that never ends cannot hang the suite). What
each did (ended without closing, still running) is said under every socket reported.

Cost: two scans of ``/proc/self/fd`` per test (readlinks), the list of live threads at
setup, and the ``socket.__new__`` audit events of the test (``tcplab.origins``). Garbage
collection, the kernel reads that describe a socket, the grace and the thread wait happen
only when the second scan finds a TCP socket that was not there before; the collection only
when it could close one (a live socket object still owns it: ``Tracker.collectable``).

Records: each socket reported is also a JSON object in the teardown report's
``user_properties`` (name ``tcplab_leaks``, one per socket; JUnit XML writes each as a
``<property>``), so tools need not read the text: see :func:`leak_record`.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tcplab import origins
from tcplab.kernel.observer import DiagObserver
from tcplab.leaks import (
    HeldSocket,
    ThreadFate,
    held_socket_inodes,
    held_tcp_sockets,
    tcp_inodes,
    wait_closed,
    wait_threads,
)
from tcplab.origins import Frame, Origin, Tracker
from tcplab.states import TcpState

MARKER = "tcplab_leaks"
OPTION = "--tcplab-leaks"
INI_ENABLE = "tcplab_leaks"
INI_GRACE = "tcplab_leaks_grace"
INI_PORTS = "tcplab_leaks_ignore_ports"
INI_THREAD_WAIT = "tcplab_leaks_thread_wait"
#: The name of each socket's record in a flagged test's teardown ``user_properties``.
PROPERTY = "tcplab_leaks"
#: Seconds a leaked socket may take to go away before the test is flagged: a peer in
#: another thread of this process may close its end a moment after the teardown.
DEFAULT_GRACE = 0.1
#: Seconds, at most, that the threads a test started are waited for after the grace, when
#: a socket of the test is still open: long enough for a server thread that sleeps a
#: second before closing, short enough that a thread that never ends costs little.
DEFAULT_THREAD_WAIT = 2.0


def add_options(parser: pytest.Parser) -> None:
    """The command-line option and the ini options (``pytest_addoption``)."""
    group = parser.getgroup("tcplab", "tcplab: TCP socket lifecycles")
    group.addoption(
        OPTION, action="store_true", default=False,
        help="report every test that leaves TCP sockets of this process open after its "
             "teardown (or ini: tcplab_leaks = true)",
    )
    parser.addini(INI_ENABLE, type="bool", default=False,
                  help="tcplab: check every test for TCP sockets left open (as --tcplab-leaks)")
    parser.addini(INI_GRACE, type="string", default=str(DEFAULT_GRACE),
                  help="tcplab: seconds a socket may take to close after the teardown")
    parser.addini(INI_PORTS, type="args", default=[],
                  help="tcplab: ports (local or remote) whose sockets are never reported")
    parser.addini(INI_THREAD_WAIT, type="string", default=str(DEFAULT_THREAD_WAIT),
                  help="tcplab: seconds, at most, to wait for threads a test started to end "
                       "when its sockets are still open after the grace (0: never)")


MARKER_HELP = (
    f"{MARKER}(grace=0.1, thread_wait=2.0, allow_ports=(), check=True): report the test if "
    "TCP sockets of this process it opened are still open after its teardown (tcplab); "
    "thread_wait: seconds to wait for threads the test started; allow_ports: ports of "
    "known long-lived sockets; check=False: not this test"
)


class _Settings(NamedTuple):
    grace: float
    thread_wait: float
    allow_ports: frozenset[int]


def _seconds(name: str, raw: object) -> float:
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise pytest.UsageError(f"{name} = {raw!r}: seconds expected") from None
    if value < 0:
        raise pytest.UsageError(f"{name} = {raw!r}: seconds expected, not negative")
    return value


@dataclass
class _Check:
    """One test's check, from the start of its setup to the end of its teardown."""

    test: str  # its node id
    before: frozenset[int]
    settings: _Settings
    tracker: Tracker
    #: The threads alive when its setup started: any other one alive at the verdict is
    #: a thread the test started.
    threads: frozenset[threading.Thread]
    failed: bool = False

    def new_threads(self) -> list[threading.Thread]:
        """The threads the test started that are still alive (joinable ones only)."""
        me = threading.current_thread()
        return [t for t in threading.enumerate() if t not in self.threads and t is not me
                and not isinstance(t, threading._DummyThread)]  # a foreign thread: no join


@dataclass
class _Owner:
    """A wider-scoped fixture and the sockets it holds (checked when its scope ends)."""

    name: str
    scope: str
    test: str  # the test whose setup made it
    inodes: set[int] = field(default_factory=set)
    origins: dict[int, Origin] = field(default_factory=dict)


@dataclass(frozen=True)
class _Flag:
    """A socket reported: what the kernel says of it, and where it was made."""

    held: HeldSocket
    origin: Origin | None
    listener: Origin | None  # for an accepted socket, where its listener was made
    #: The threads the test started that were alive after its teardown, and what each
    #: did while the check waited up to ``waited`` seconds.
    threads: tuple[ThreadFate, ...] = ()
    waited: float = 0.0


@dataclass(frozen=True)
class _Found:
    """What a teardown leaves to report: the text, the count, a record per socket."""

    text: str
    count: int
    records: list[dict[str, Any]]


_CHECK = pytest.StashKey[_Check]()
_REPORT = pytest.StashKey[_Found]()


class LeakPlugin:
    """The hooks of the leak check, registered by ``tcplab.pytest_plugin`` at configure."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.enabled = bool(config.getoption(OPTION)) or bool(config.getini(INI_ENABLE))
        self.grace = _seconds(INI_GRACE, config.getini(INI_GRACE))
        self.thread_wait = _seconds(INI_THREAD_WAIT, config.getini(INI_THREAD_WAIT))
        try:
            self.ignore_ports = frozenset(int(p) for p in config.getini(INI_PORTS))
        except ValueError:
            raise pytest.UsageError(f"{INI_PORTS}: port numbers expected") from None
        self.checking: _Check | None = None
        self.owners: dict[int, _Owner] = {}  # id(fixturedef) -> its sockets
        self.ended: list[_Owner] = []  # finalized during the current teardown
        self.checked = 0
        self.flagged: list[tuple[str, int]] = []

    # --- which tests, with what settings -----------------------------------------------

    def _settings(self, item: pytest.Item) -> _Settings | None:
        marker = item.get_closest_marker(MARKER)
        if marker is None and not self.enabled:
            return None
        kwargs = marker.kwargs if marker is not None else {}
        if kwargs.get("check", True) is False:
            return None
        ports = kwargs.get("allow_ports", ())
        ports = (ports,) if isinstance(ports, int) else ports
        return _Settings(_seconds("grace", kwargs.get("grace", self.grace)),
                         _seconds("thread_wait", kwargs.get("thread_wait", self.thread_wait)),
                         self.ignore_ports | {int(p) for p in ports})

    def pytest_report_header(self) -> str | None:
        if not self.enabled:
            return None
        return (f"tcplab: leak check on every test (grace {self.grace:g} s, threads the test "
                f"started waited for up to {self.thread_wait:g} s)")

    # --- the test's window: setup start ... teardown end --------------------------------

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        settings = self._settings(item)
        if settings is not None:
            before = frozenset(held_socket_inodes())
            check = _Check(item.nodeid, before, settings, origins.start(),
                           frozenset(threading.enumerate()))
            item.stash[_CHECK] = check
            self.checking = check
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
    ) -> Generator[None, object, object]:
        """A wider-scoped fixture's sockets are its own, not the test's."""
        check = self.checking
        if check is None or fixturedef.scope == "function":
            return (yield)
        before = held_socket_inodes().keys()
        try:
            return (yield)
        finally:
            made = held_socket_inodes().keys() - before
            if made:
                check.tracker.resolve()
                owner = self.owners.setdefault(id(fixturedef), _Owner(
                    fixturedef.argname, fixturedef.scope, check.test))
                owner.inodes |= made
                owner.origins.update({i: o for i in made
                                      if (o := check.tracker.by_inode.get(i)) is not None})

    def pytest_fixture_post_finalizer(self, fixturedef: pytest.FixtureDef[object]) -> None:
        owner = self.owners.pop(id(fixturedef), None)
        if owner is not None:
            self.ended.append(owner)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        check = item.stash.get(_CHECK, None)
        try:
            result = yield
        except BaseException:  # the teardown failed on its own: that is its report
            self._done()
            self.ended.clear()
            raise
        ended = time.monotonic()  # the grace runs from here
        try:
            flagged = self._flags(item, check, ended)
        finally:
            self._done()
            self.ended.clear()
        if flagged is not None:
            item.stash[_REPORT] = flagged
        return result

    def _flags(self, item: pytest.Item, check: _Check | None, ended: float) -> _Found | None:
        """The report of what the test and the scopes that just ended left open."""
        flags: list[str] = []
        records: list[dict[str, Any]] = []
        root = item.config.rootpath
        if check is not None and not check.failed:
            found = self._judge(check, ended)
            if found:
                flags.append(_render(found, f"{item.name}: {_sockets(len(found))} of process "
                                            f"{os.getpid()} still open after the test's teardown",
                                     root))
                records += [leak_record(flag, item.nodeid, root) for flag in found]
        self._done()
        for owner in self.ended:
            found = self._scope_left(owner)
            if found:
                flags.append(_render(found, (
                    f"{owner.scope}-scoped fixture {owner.name!r} (set up for {owner.test}): "
                    f"{_sockets(len(found))} of process {os.getpid()} still open after the "
                    "fixture's teardown"), root))
                records += [leak_record(flag, item.nodeid, root, fixture=owner)
                            for flag in found]
        return _Found("\n\n".join(flags), len(records), records) if flags else None

    def _done(self) -> None:
        origins.stop()
        self.checking = None

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """A leak makes the teardown report an error (set here, not raised in the teardown:
        pytest's xfail handling would turn a raised one into XFAIL)."""
        report = yield
        check = item.stash.get(_CHECK, None)
        if call.when != "teardown":
            if check is not None and call.excinfo is not None:
                check.failed = True
            return report
        if check is not None and not check.failed:
            report.tcplab_checked = True  # type: ignore[attr-defined]  # travels with xdist
        flagged = item.stash.get(_REPORT, None)
        if flagged is not None and report.passed:
            report.outcome = "failed"
            report.longrepr = flagged.text
            report.tcplab_leaked = flagged.count  # type: ignore[attr-defined]
            report.user_properties.extend(
                (PROPERTY, json.dumps(record)) for record in flagged.records)
        return report

    # --- the judgement --------------------------------------------------------------------

    def _judge(self, check: _Check, ended: float) -> list[_Flag]:
        """The test's sockets still held now; cheap unless the first read finds one.

        A garbage collection (~0.1 s in a big suite) runs only for candidates it might
        close (``Tracker.collectable``): not for an fd detached from its socket object, or
        whose object is already freed. A young-generation collection goes first; the full
        one only if a collectable candidate is left. The grace counts from the end of the
        teardown (``ended``), so the reads and the collection are part of it.
        """
        owned = set().union(*(owner.inodes for owner in self.owners.values()))
        fresh = {inode: fds for inode, fds in held_socket_inodes().items()
                 if inode not in check.before and inode not in owned}
        candidates = tcp_inodes(fresh) if fresh else set()
        if not candidates:
            return []
        tracker = check.tracker
        tracker.resolve()
        origins.stop()  # the check's own sockets (dups, netlink) are nobody's
        with DiagObserver() as observer:
            keep = self._the_tests(check, held_tcp_sockets(observer, candidates))
            # A socket only a dead cycle holds: CPython would close it too, later.
            for generation in (1, 2):
                if not (keep and tracker.collectable(keep)):
                    break
                gc.collect(generation)
                keep &= held_socket_inodes().keys()
            if keep and check.settings.grace > 0:
                keep = wait_closed(keep, check.settings.grace, tracker.loops(), since=ended)
            fates: list[ThreadFate] = []
            if keep and (threads := check.new_threads()):
                # Threads the test started may close its sockets on their way out.
                keep, fates = wait_threads(keep, threads, check.settings.thread_wait,
                                           tracker.loops())
            if not keep:
                return []
            held = held_tcp_sockets(observer, keep)
            keep = self._the_tests(check, held)
        return [_Flag(held[inode], tracker.by_inode.get(inode), self._listener_origin(
            check, tracker.by_inode.get(inode)), tuple(fates), check.settings.thread_wait)
                for inode in sorted(keep, key=lambda i: held[i].fd)]

    def _the_tests(self, check: _Check, held: dict[int, HeldSocket]) -> set[int]:
        """Those of ``held`` that are the test's: not on an allowed port, and not accepted
        on a listener the test did not open (unless in CLOSE_WAIT: the peer closed, the
        server never did). A wider fixture's accepted sockets go to that fixture."""
        keep = set()
        made = check.tracker.by_inode
        owned = set().union(*(owner.inodes for owner in self.owners.values()))
        for inode, sock in held.items():
            ends = sock.record.four_tuple
            if {ends.local.port, ends.remote.port} & check.settings.allow_ports:
                continue
            origin = made.get(inode)
            if (origin is not None and origin.listener and sock.state is not TcpState.CLOSE_WAIT
                    and (origin.listener not in made or origin.listener in owned)):
                self._give_to_listeners_owner(origin.listener, inode, origin)
                continue
            keep.add(inode)
        return keep

    def _give_to_listeners_owner(self, listener: int, inode: int, origin: Origin) -> None:
        for owner in self.owners.values():
            if listener in owner.inodes:
                owner.inodes.add(inode)
                owner.origins[inode] = origin
                return

    def _listener_origin(self, check: _Check, origin: Origin | None) -> Origin | None:
        if origin is None or not origin.listener:
            return None
        found = check.tracker.by_inode.get(origin.listener)
        if found is None:
            found = next((o.origins.get(origin.listener) for o in self.owners.values()
                          if origin.listener in o.origins), None)
        return found

    def _scope_left(self, owner: _Owner) -> list[_Flag]:
        """The sockets of a fixture whose scope just ended that are still held."""
        left = tcp_inodes({i: fds for i, fds in held_socket_inodes().items() if i in owner.inodes})
        if not left:
            return []
        gc.collect()
        left = wait_closed(left, self.grace)
        if not left:
            return []
        held = held_tcp_sockets(inodes=left)
        return [_Flag(held[i], owner.origins.get(i), None) for i in sorted(held, key=lambda i: held[i].fd)]

    # --- counting and the session's summary -----------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown":
            return
        if getattr(report, "tcplab_checked", False):
            self.checked += 1
        leaked = getattr(report, "tcplab_leaked", 0)
        if leaked:
            self.flagged.append((report.nodeid, leaked))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.checked and not self.flagged:
            return
        tests = "test" if len(self.flagged) == 1 else "tests"
        if not self.flagged:
            terminalreporter.write_sep(
                "=", f"tcplab: no TCP socket left open by {self.checked} checked tests", green=True)
            return
        terminalreporter.write_sep("=", (
            f"tcplab: {len(self.flagged)} {tests} (of {self.checked} checked) left TCP "
            "sockets open after their teardown"), red=True)
        for nodeid, leaked in self.flagged:
            terminalreporter.write_line(f"{nodeid}: {_sockets(leaked)}")


def _sockets(count: int) -> str:
    return f"{count} TCP socket" + ("" if count == 1 else "s")


def _reason(held: HeldSocket) -> str:
    if held.state is TcpState.CLOSE_WAIT:
        return "the peer closed it; this process never called close()"
    if held.state is TcpState.LISTEN:
        return "a listener nobody closed"
    return "nobody closed it"


def _render(found: list[_Flag], title: str, root: Path) -> str:
    """The report: per socket its line (fd, four-tuple, state, why), where it was made,
    and what the threads the test started did."""
    lines = [title]
    for flag in found:
        lines.append(f"  {flag.held.describe()}  <- {_reason(flag.held)}")
        lines += [f"    {line}" for line in _place(flag, root).lines]
        lines += [f"    {line}" for line in _thread_lines(flag)]
    return "\n".join(lines)


def _thread_lines(flag: _Flag) -> list[str]:
    lines = []
    for fate in flag.threads:
        who = f"a thread the test started, {fate.name},"
        if fate.ended_after is not None:
            lines.append(f"{who} ended {fate.ended_after:.2f} s into the wait; the socket "
                         "stayed open")
        elif flag.waited > 0:
            lines.append(f"{who} was still running after {flag.waited:g} s "
                         f"({INI_THREAD_WAIT})")
        else:
            lines.append(f"{who} was still running (not waited for: {INI_THREAD_WAIT} = 0)")
    return lines


_is_test_file = origins.looks_like_test_file


@dataclass(frozen=True)
class _Place:
    """Where a socket was made: the lines of its report, and the frames they name."""

    lines: list[str]
    #: The frame of the test's code that made it (for an accepted socket: that accepted it).
    made: Frame | None = None
    #: For an accepted socket, where its listener was opened.
    listener: Frame | None = None


def _place(flag: _Flag, root: Path) -> _Place:
    origin = flag.origin
    if origin is None:
        return _Place(["opened where tcplab could not see it: outside Python's socket module "
                       "(C code such as uvloop), or before the test's setup"])
    start = origins.test_side(origin, _is_test_file)
    made = start
    listener_made: Frame | None = None
    thread = f" (thread {origin.thread})" if origin.thread else ""
    if origin.listener:
        by = start or next((f for f in reversed(origin.frames) if f[0] != socket.__file__), None)
        made = by
        listener = flag.listener
        if listener is not None:
            listener_made = origins.test_side(listener, _is_test_file) or (
                listener.frames[-1] if listener.frames else None)
            opened = (f"opened at {origins.where(listener_made, root)}"
                      if listener_made is not None else "opened")
        else:
            opened = "opened before the test's setup"
        head = (f"accepted {'at' if start else 'by'} {origins.where(by, root) if by else '?'}"
                f"{thread}, on the listener {origin.listener_address} {opened}")
    elif start is not None:
        head = f"opened at {origins.where(start, root)}{thread}"
    elif (waiting := origins.test_side(origins.Origin(origin.awaited_in), _is_test_file)):
        made = waiting
        head = f"opened at {origins.where(waiting, root)}, in a task it started{thread}"
    else:
        head = f"opened{thread} (no frame of the test's code on the stack)"
    stack = origins.short_stack(origin, _is_test_file, root=root)
    return _Place([head, *[f"  {line}" for line in stack]], made, listener_made)


def _frame(frame: Frame | None, root: Path) -> dict[str, Any] | None:
    if frame is None:
        return None
    return {"file": origins.short_path(frame[0], root), "line": frame[1], "function": frame[2]}


def leak_record(flag: _Flag, test: str, root: Path, *, fixture: _Owner | None = None
                ) -> dict[str, Any]:
    """One flagged socket as plain data (JSON-ready): what a tool needs without the text.

    ``test``: the node id of the test whose teardown reported it; ``owner``: ``"test"``, or
    the wider-scoped fixture whose scope just ended (``fixture``, ``scope``); ``pid``,
    ``inode`` (sockfs inodes are not reused while the process runs: the socket's identity),
    ``fd``; ``local``, ``remote`` (``host:port``, ``[v6]:port``), ``state`` (kernel name),
    ``recv_q``, ``send_q``, ``in_kernel_table`` (False: known only through its fd);
    ``reason``; ``opened`` (``file``, ``line``, ``function``: the frame the report names as
    where it was opened, or accepted; None if unseen), ``accepted``, ``listener``
    (``address`` and ``opened`` for an accepted socket), ``thread`` (the thread that made
    it, when not the main one), ``where`` (the report's lines on where it was opened),
    ``threads`` (each thread the test started that was alive after its teardown: ``name``,
    ``ended_after_s`` into the wait, or None if still running when it stopped) and
    ``thread_wait_s`` (the bound of that wait).
    """
    held, origin = flag.held, flag.origin
    record = held.record
    place = _place(flag, root)
    listener = None
    if origin is not None and origin.listener:
        listener = {"address": origin.listener_address, "opened": _frame(place.listener, root)}
    return {
        "test": test,
        "owner": "test" if fixture is None else "fixture",
        "fixture": None if fixture is None else fixture.name,
        "scope": "function" if fixture is None else fixture.scope,
        "pid": os.getpid(), "inode": held.inode, "fd": held.fd,
        "local": str(record.four_tuple.local), "remote": str(record.four_tuple.remote),
        "state": held.state.value, "recv_q": record.recv_q, "send_q": record.send_q,
        "in_kernel_table": not record.fd_only,
        "reason": _reason(held),
        "opened": _frame(place.made, root),
        "accepted": listener is not None,
        "listener": listener,
        "thread": (origin.thread or None) if origin is not None else None,
        "where": place.lines,
        "threads": [{"name": f.name, "ended_after_s": None if f.ended_after is None
                     else round(f.ended_after, 3)} for f in flag.threads],
        "thread_wait_s": flag.waited,
    }
