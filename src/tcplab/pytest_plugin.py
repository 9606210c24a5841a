"""tcplab inside your own tests: the lab, the observer, and a leak check for TCP sockets.

Installing tcplab registers this plugin (the ``pytest11`` entry point ``tcplab``); it does
nothing until a test asks for it.

Fixtures (plain sync fixtures, so they serve a test of any framework: pytest-trio,
pytest-asyncio in strict or auto mode, anyio's plugin, or no async at all):

``tcplab_lab``
    A ``tcplab.Lab`` for the test, closed (every socket and child) when the test ends.
    Its actions and ``tcplab.expect`` run under trio and asyncio alike (``spawn``: trio).
``tcplab_adopt``
    ``adopt(sock, label="...") -> End``: wrap one of *your* connected sockets (stdlib
    socket, trio socket or ``trio.SocketStream``, asyncio ``StreamWriter`` or transport,
    anyio ``SocketStream``) so that ``tcplab.expect`` works on its four-tuple: ``await
    reaches(end, TcpState.CLOSE_WAIT)``, ``holds``, ``gone``... The lab never closes an
    adopted socket and leaves a blocking socket blocking.
``tcplab_observer``
    A sock_diag ``DiagObserver`` (``lookup(four_tuple, interface=)``, ``snapshot(port=,
    states=, bound=)``); plain sync tests can use it. A socket bound to a device
    (SO_BINDTODEVICE) is found only with its device: ``interface=bound_interface(sock)``
    (``tcplab.kernel.procfs``); ``tcplab_adopt`` and the leak check pass it themselves.
``tcplab_held``
    ``held() -> dict[inode, HeldSocket]``: the TCP sockets this process holds right now.

Leak check: ``@pytest.mark.tcplab_leaks`` on a test (or ``--tcplab-leaks`` for every
test) fails it if it leaves TCP sockets of this process open that it did not hold before,
or leaves one in CLOSE_WAIT; the failure lists each one (fd, four-tuple, state). A leak
must outlast a short grace (``@pytest.mark.tcplab_leaks(grace=0.5)``; 0.1 s by default),
for servers in another thread of the process that close their end a moment later. Sockets
the test closed but that still sit in TIME_WAIT (or another state without an owner) are
not leaks and are never reported. The check wraps the test's call, so with pytest-trio
the test's async fixtures are already torn down when it runs; sync fixtures are still
alive, but their sockets were already held before the test, so only a change of one of
them into CLOSE_WAIT is reported. Garbage is collected first: a socket only an unreachable
cycle holds is closed by that, as CPython would eventually close it too.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Generator, Iterator

import pytest

from tcplab.kernel.observer import DiagObserver
from tcplab.lab import AdoptableSocket, End, Lab
from tcplab.leaks import HeldSocket, LeakCheck, held_tcp_sockets, render_leaks

MARKER = "tcplab_leaks"
OPTION = "--tcplab-leaks"
#: Seconds a leaked socket may take to go away before the test fails: a peer in another
#: thread of this process may close its end a moment after the test's own code did.
DEFAULT_GRACE = 0.1


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tcplab", "tcplab: TCP socket lifecycles")
    group.addoption(
        OPTION, action="store_true", default=False,
        help="fail every test that leaves TCP sockets of this process open or in CLOSE_WAIT",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(grace=0.1): fail the test if it leaves TCP sockets of this process open "
        "(ones it did not hold before) or in CLOSE_WAIT, still there after `grace` seconds "
        "(tcplab)",
    )


def _wants_leak_check(item: pytest.Item) -> bool:
    return bool(item.config.getoption(OPTION)) or item.get_closest_marker(MARKER) is not None


def _grace(item: pytest.Item) -> float:
    marker = item.get_closest_marker(MARKER)
    value = marker.kwargs.get("grace", DEFAULT_GRACE) if marker is not None else DEFAULT_GRACE
    return float(value)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Around the test's call: what it holds before, what it leaves after.

    A test that failed on its own is left alone (its sockets may be open because it
    failed); only a passing test can fail for its leaks.
    """
    if not _wants_leak_check(item):
        return (yield)
    check = LeakCheck()
    result = yield
    gc.collect()
    leaks = check.leaks(grace=_grace(item))
    if leaks:
        pytest.fail(render_leaks(leaks, what=item.name), pytrace=False)
    return result


@pytest.fixture
def tcplab_lab() -> Iterator[Lab]:
    """A ``Lab`` for this test; everything it opened is closed when the test ends.

    Sync on purpose: an async fixture belongs to one framework's plugin (and to its mode:
    pytest-asyncio's strict mode ignores plain async fixtures), while making a ``Lab``
    needs no event loop and closing it needs none either (``Lab.close``)."""
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def tcplab_adopt(tcplab_lab: Lab) -> Callable[..., End]:
    """``adopt(sock, label="adopted") -> End``: your socket, observable by ``tcplab.expect``."""

    def adopt(sock: AdoptableSocket, label: str = "adopted") -> End:
        return tcplab_lab.adopt(sock, label=label)

    return adopt


@pytest.fixture
def tcplab_observer() -> Iterator[DiagObserver]:
    """A sock_diag observer of this network namespace, closed after the test."""
    observer = DiagObserver()
    try:
        yield observer
    finally:
        observer.close()


@pytest.fixture
def tcplab_held() -> Callable[[], dict[int, HeldSocket]]:
    """``held()``: the TCP sockets this process holds now, by inode (fd, four-tuple, state)."""
    return held_tcp_sockets
