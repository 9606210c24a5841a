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

Leak check: ``@pytest.mark.tcplab_leaks`` on a test, ``--tcplab-leaks`` or the ini option
``tcplab_leaks = true`` for every test. A test is reported (as an error at its teardown)
when TCP sockets of this process that were opened since its setup started are still open
after its teardown, once its fixtures and finalizers ran; each socket is listed with its
fd, four-tuple, state, and the file and line where it was opened (an accepted one: where
its listener was). ini: ``tcplab_leaks_grace`` (seconds a socket may take to close after
the teardown, 0.1), ``tcplab_leaks_thread_wait`` (seconds, at most, to let the threads the
test started end when one of its sockets is still open after the grace, 2; 0: never),
``tcplab_leaks_ignore_ports``; marker arguments ``grace=``, ``thread_wait=``,
``allow_ports=``, ``check=False``. Each socket reported is also a JSON record in the
teardown report's ``user_properties`` (name ``tcplab_leaks``; JUnit XML carries it).
Details: ``tcplab.pytest_leaks``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from tcplab.kernel.observer import DiagObserver
from tcplab.leaks import HeldSocket, held_tcp_sockets
from tcplab.pytest_leaks import MARKER, MARKER_HELP, OPTION, LeakPlugin, add_options

if TYPE_CHECKING:  # the lab (trio, anyio) is imported by its fixture: every pytest run of
    # every project with tcplab installed loads this plugin, most never use the lab
    from tcplab.lab import AdoptableSocket, End, Lab

__all__ = ["MARKER", "OPTION", "tcplab_adopt", "tcplab_held", "tcplab_lab", "tcplab_observer"]



def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    config.pluginmanager.register(LeakPlugin(config), "tcplab-leaks")


@pytest.fixture
def tcplab_lab() -> Iterator[Lab]:
    """A ``Lab`` for this test; everything it opened is closed when the test ends.

    Sync on purpose: an async fixture belongs to one framework's plugin (and to its mode:
    pytest-asyncio's strict mode ignores plain async fixtures), while making a ``Lab``
    needs no event loop and closing it needs none either (``Lab.close``)."""
    from tcplab.lab import Lab

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
