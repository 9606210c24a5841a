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

Cost: two scans of ``/proc/self/fd`` per test (readlinks), and the ``socket.__new__``
audit events of the test (``tcplab.origins``). Garbage collection, the kernel reads that
describe a socket and the grace wait happen only when the second scan finds a TCP socket
that was not there before.
"""

from __future__ import annotations

import gc
import os
import socket
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tcplab import origins
from tcplab.kernel.observer import DiagObserver
from tcplab.leaks import HeldSocket, held_socket_inodes, held_tcp_sockets, tcp_inodes, wait_closed
from tcplab.origins import Origin, Tracker
from tcplab.states import TcpState

MARKER = "tcplab_leaks"
OPTION = "--tcplab-leaks"
INI_ENABLE = "tcplab_leaks"
INI_GRACE = "tcplab_leaks_grace"
INI_PORTS = "tcplab_leaks_ignore_ports"
#: Seconds a leaked socket may take to go away before the test is flagged: a peer in
#: another thread of this process may close its end a moment after the teardown.
DEFAULT_GRACE = 0.1


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


MARKER_HELP = (
    f"{MARKER}(grace=0.1, allow_ports=(), check=True): report the test if TCP sockets of "
    "this process it opened are still open after its teardown (tcplab); allow_ports: "
    "ports of known long-lived sockets; check=False: not this test"
)


@dataclass
class _Check:
    """One test's check, from the start of its setup to the end of its teardown."""

    test: str  # its node id
    before: frozenset[int]
    grace: float
    allow_ports: frozenset[int]
    tracker: Tracker
    failed: bool = False


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


_CHECK = pytest.StashKey[_Check]()
_REPORT = pytest.StashKey[tuple[str, int]]()


class LeakPlugin:
    """The hooks of the leak check, registered by ``tcplab.pytest_plugin`` at configure."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.enabled = bool(config.getoption(OPTION)) or bool(config.getini(INI_ENABLE))
        raw = config.getini(INI_GRACE)
        try:
            self.grace = float(raw)
        except ValueError:
            raise pytest.UsageError(f"{INI_GRACE} = {raw!r}: seconds expected") from None
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

    def _settings(self, item: pytest.Item) -> tuple[float, frozenset[int]] | None:
        marker = item.get_closest_marker(MARKER)
        if marker is None and not self.enabled:
            return None
        kwargs = marker.kwargs if marker is not None else {}
        if kwargs.get("check", True) is False:
            return None
        ports = kwargs.get("allow_ports", ())
        ports = (ports,) if isinstance(ports, int) else ports
        return float(kwargs.get("grace", self.grace)), self.ignore_ports | {int(p) for p in ports}

    def pytest_report_header(self) -> str | None:
        if not self.enabled:
            return None
        return f"tcplab: leak check on every test (grace {self.grace:g} s)"

    # --- the test's window: setup start ... teardown end --------------------------------

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        settings = self._settings(item)
        if settings is not None:
            before = frozenset(held_socket_inodes())
            check = _Check(item.nodeid, before, settings[0], settings[1], origins.start())
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
        try:
            flagged = self._flags(item, check)
        finally:
            self._done()
            self.ended.clear()
        if flagged is not None:
            item.stash[_REPORT] = flagged
        return result

    def _flags(self, item: pytest.Item, check: _Check | None) -> tuple[str, int] | None:
        """The report of what the test and the scopes that just ended left open."""
        flags: list[str] = []
        count = 0
        if check is not None and not check.failed:
            found = self._judge(check)
            if found:
                count += len(found)
                flags.append(_render(found, f"{item.name}: {_sockets(len(found))} of process "
                                            f"{os.getpid()} still open after the test's teardown",
                                     item.config.rootpath))
        self._done()
        for owner in self.ended:
            found = self._scope_left(owner)
            if found:
                count += len(found)
                flags.append(_render(found, (
                    f"{owner.scope}-scoped fixture {owner.name!r} (set up for {owner.test}): "
                    f"{_sockets(len(found))} of process {os.getpid()} still open after the "
                    "fixture's teardown"), item.config.rootpath))
        return ("\n\n".join(flags), count) if flags else None

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
            report.longrepr = flagged[0]
            report.tcplab_leaked = flagged[1]  # type: ignore[attr-defined]
        return report

    # --- the judgement --------------------------------------------------------------------

    def _judge(self, check: _Check) -> list[_Flag]:
        """The test's sockets still held now; cheap unless the first read finds one."""
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
            if keep:
                gc.collect()  # a socket only a dead cycle holds: CPython would close it too
                keep &= held_socket_inodes().keys()
            if keep and check.grace > 0:
                keep = wait_closed(keep, check.grace, tracker.loops())
            if not keep:
                return []
            held = held_tcp_sockets(observer, keep)
            keep = self._the_tests(check, held)
        return [_Flag(held[inode], tracker.by_inode.get(inode), self._listener_origin(
            check, tracker.by_inode.get(inode))) for inode in sorted(keep, key=lambda i: held[i].fd)]

    def _the_tests(self, check: _Check, held: dict[int, HeldSocket]) -> set[int]:
        """Those of ``held`` that are the test's: not on an allowed port, and not accepted
        on a listener the test did not open (unless in CLOSE_WAIT: the peer closed, the
        server never did). A wider fixture's accepted sockets go to that fixture."""
        keep = set()
        made = check.tracker.by_inode
        owned = set().union(*(owner.inodes for owner in self.owners.values()))
        for inode, sock in held.items():
            ends = sock.record.four_tuple
            if {ends.local.port, ends.remote.port} & check.allow_ports:
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
    """The report: per socket its line (fd, four-tuple, state, why) and where it was made."""
    lines = [title]
    for flag in found:
        lines.append(f"  {flag.held.describe()}  <- {_reason(flag.held)}")
        lines += [f"    {line}" for line in _where(flag, root)]
    return "\n".join(lines)


_is_test_file = origins.looks_like_test_file


def _where(flag: _Flag, root: Path) -> list[str]:
    origin = flag.origin
    if origin is None:
        return ["opened where tcplab could not see it: outside Python's socket module (C "
                "code such as uvloop), or before the test's setup"]
    start = origins.test_side(origin, _is_test_file)
    thread = f" (thread {origin.thread})" if origin.thread else ""
    if origin.listener:
        by = start or next((f for f in reversed(origin.frames) if f[0] != socket.__file__), None)
        listener = flag.listener
        if listener is not None:
            made = origins.test_side(listener, _is_test_file) or (
                listener.frames[-1] if listener.frames else None)
            opened = f"opened at {origins.where(made, root)}" if made is not None else "opened"
        else:
            opened = "opened before the test's setup"
        head = (f"accepted {'at' if start else 'by'} {origins.where(by, root) if by else '?'}"
                f"{thread}, on the listener {origin.listener_address} {opened}")
    elif start is not None:
        head = f"opened at {origins.where(start, root)}{thread}"
    elif (waiting := origins.test_side(origins.Origin(origin.awaited_in), _is_test_file)):
        head = f"opened at {origins.where(waiting, root)}, in a task it started{thread}"
    else:
        head = f"opened{thread} (no frame of the test's code on the stack)"
    return [head, *[f"  {line}" for line in origins.short_stack(origin, _is_test_file, root=root)]]
