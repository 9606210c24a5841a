"""Exact lookups find every socket that a dump finds, and a view filtered by state is a
subset of the unfiltered one (issue 10, fault 2), on real loopback sockets.

Two kinds of live ESTABLISHED sockets used to be reported "in no kernel table" by
``End.observe``, ``tcplab_adopt`` and the leak check, while ``ss`` and a dump listed them:

* a v4-mapped end (the server side of a dual-stack listener): ``Address`` text came from
  ``ipaddress`` (``::ffff:7f00:1`` on Python 3.11/3.12), the kernel's records read
  ``::ffff:127.0.0.1``;
* a socket bound to a device (SO_BINDTODEVICE): the lookup sent interface 0, and the
  kernel's exact lookup skips device-bound sockets then.

Each is reproduced here through the three ways a user meets it.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from tcplab import Lab, watch
from tcplab.expect import eventually, reaches
from tcplab.kernel import trace
from tcplab.kernel.model import Address, FourTuple
from tcplab.kernel.observer import DiagObserver
from tcplab.kernel.procfs import bound_interface
from tcplab.lab import End
from tcplab.leaks import LeakCheck, held_tcp_sockets
from tcplab.recording import Recording
from tcplab.states import TcpState

Pair = tuple[socket.socket, socket.socket, socket.socket]  # listener, client, server
MakePair = Callable[[], AbstractContextManager[Pair]]


@contextmanager
def _pair(listener: socket.socket, client: socket.socket, host: str) -> Iterator[Pair]:
    with listener, client:
        listener.bind((host, 0))
        listener.listen()
        client.connect(("127.0.0.1", listener.getsockname()[1]))
        server, _ = listener.accept()
        with server:
            yield listener, client, server


@contextmanager
def v4_mapped() -> Iterator[Pair]:
    """An IPv4 client of an IPv6 listener that takes IPv4 too (IPV6_V6ONLY off): the server
    end's addresses are v4-mapped, as behind ``[::]``. Bound to ``::ffff:127.0.0.1`` rather
    than ``::`` so that the listener is on loopback only."""
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    with _pair(listener, socket.socket(), "::ffff:127.0.0.1") as pair:
        assert pair[2].getsockname()[0] == "::ffff:127.0.0.1"
        yield pair


@contextmanager
def device_bound() -> Iterator[Pair]:
    """Listener and client bound to ``lo`` (SO_BINDTODEVICE; the accepted end inherits it)."""
    listener, client = socket.socket(), socket.socket()
    try:
        for sock in (listener, client):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
    except OSError as exc:
        listener.close()
        client.close()
        if exc.errno == errno.EPERM:
            pytest.skip("SO_BINDTODEVICE needs CAP_NET_RAW")
        raise
    with _pair(listener, client, "127.0.0.1") as pair:
        assert all(bound_interface(sock) == socket.if_nametoindex("lo") for sock in pair)
        yield pair


PAIRS = [pytest.param(v4_mapped, id="v4-mapped"), pytest.param(device_bound, id="bound-to-device")]


def _inode(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


def test_address_text_is_the_kernels() -> None:
    """``Address.of`` writes hosts as ``inet_ntop`` does (the records' text), whatever
    ``ipaddress`` would write."""
    assert Address.of(("::ffff:127.0.0.1", 80, 0, 0)).host == "::ffff:127.0.0.1"
    assert Address.of(("::FFFF:7f00:1", 80)).host == "::ffff:127.0.0.1"
    assert Address.of(("fe80::1%lo", 80, 0, 1)).host == "fe80::1"
    assert Address.of(("127.0.0.1", 80)) == Address("127.0.0.1", 80)
    with pytest.raises(ValueError, match="not an IP address"):
        Address.of(("localhost", 80))


@pytest.mark.parametrize("make", PAIRS)
def test_the_exact_lookup_finds_what_the_dump_lists(make: MakePair) -> None:
    with make() as (listener, client, server), DiagObserver() as observer:
        port = listener.getsockname()[1]
        listed = {r.four_tuple: r for r in observer.snapshot(port=port)}
        ends = [FourTuple.of(client), FourTuple.of(server),
                FourTuple(Address.of(listener.getsockname()), Address.wildcard(listener.family))]
        assert set(ends) == set(listed)  # Address text and the kernel's agree
        for sock, end in zip((client, server, listener), ends, strict=True):
            found = observer.lookup(end, interface=bound_interface(sock))
            assert found == listed[end], end
        assert found is not None and found.state is TcpState.LISTEN
        assert {listed[end].state for end in ends[:2]} == {TcpState.ESTABLISHED}


@pytest.mark.parametrize("make", PAIRS)
def test_the_leak_check_sees_live_sockets_in_the_kernels_table(make: MakePair) -> None:
    check = LeakCheck()
    with make() as (listener, client, server):
        held = held_tcp_sockets()
        for sock in (client, server):
            record = held[_inode(sock)].record
            assert not record.fd_only and record.state is TcpState.ESTABLISHED
            assert record.four_tuple == FourTuple.of(sock)
        leaks = {leak.socket.inode: leak for leak in check.leaks()}
        assert set(leaks) == {_inode(s) for s in (listener, client, server)}
        assert not any("no kernel table" in leak.describe() for leak in leaks.values())


@pytest.mark.parametrize("make", PAIRS)
async def test_adopted_ends_observe_their_records(
    make: MakePair, tcplab_adopt: Callable[..., End]
) -> None:
    with make() as (_listener, client, server):
        for sock in (client, server):
            record = tcplab_adopt(sock).observe()
            assert record is not None and not record.fd_only, record
            assert record.state is TcpState.ESTABLISHED


def test_a_view_filtered_by_state_is_a_subset_of_the_unfiltered_one() -> None:
    """A socket only bound (kernel TCP_BOUND_INACTIVE, reported CLOSED) is in neither view,
    unless asked for with ``bound=True``; ``tcplab watch --state closed`` does not count it."""
    with socket.socket() as bound, socket.create_server(("127.0.0.1", 0)) as listener:
        bound.bind(("127.0.0.1", 0))
        with socket.create_connection(listener.getsockname()):  # so that no view is empty
            port = bound.getsockname()[1]
            mine = FourTuple(Address.of(bound.getsockname()), Address.wildcard(socket.AF_INET))
            # Only this test's ports: the host's other sockets come and go between two reads.
            ports = (port, listener.getsockname()[1])
            with DiagObserver() as observer:
                for with_bound in (False, True):
                    everything = {r.four_tuple for p in ports
                                  for r in observer.snapshot(port=p, bound=with_bound)}
                    for state in TcpState:
                        some = {r.four_tuple for p in ports
                                for r in observer.snapshot(port=p, states=[state], bound=with_bound)}
                        assert some <= everything, state
                    assert len(everything) == 3 + with_bound  # listener, both ends (+ bound)
                    closed = observer.snapshot(port=port, states=[TcpState.CLOSED],
                                               bound=with_bound)
                    assert (mine in {r.four_tuple for r in closed}) is with_bound
                    assert (mine in everything) is with_bound
                everything_here = watch.take(observer, watch.WatchFilter(port=port))
                closed_here = watch.take(observer, watch.WatchFilter.parse(
                    port=port, pid=None, states=["closed"]))
    assert closed_here.total == everything_here.states[TcpState.CLOSED] == 0


def test_watch_command_does_not_count_bound_sockets_as_closed() -> None:
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        port = str(bound.getsockname()[1])
        runs = [subprocess.run([sys.executable, "-m", "tcplab", "watch", "--once", "--json",
                                "--port", port, *extra], capture_output=True, text=True,
                               timeout=60, check=True) for extra in ([], ["--state", "closed"])]
    unfiltered, closed = (json.loads(run.stdout) for run in runs)
    assert closed["total"] == unfiltered["total"] == 0


@pytest.mark.root
@pytest.mark.skipif(trace.available() is not None, reason=f"needs tracefs ({trace.available()})")
async def test_the_recording_finds_a_device_bound_timewait_socket() -> None:
    """The recording asks sock_diag whether a traced move to CLOSE left a timewait socket
    behind (``Recording._timewait_substate``); it must send the end's device, as
    ``End.observe`` does, or it misses a device-bound one and files the move as CLOSE.
    Without capture the lookup alone decides, and the client is not observed after its move,
    so no snapshot answers in its place."""
    with device_bound() as (_listener, client, server):
        async with Lab() as lab:
            with Recording(lab, capture=False) as recording:
                conn = lab.adopt_connection(client, server)
                client.shutdown(socket.SHUT_WR)
                await reaches(conn.server, TcpState.CLOSE_WAIT)
                await reaches(conn.client, TcpState.FIN_WAIT2)
                server.close()  # its FIN: the client's socket becomes a timewait socket

                def moved() -> bool:
                    recording.sync()
                    return any(e.end == "client" and e.kind == "state"
                               and e.old is TcpState.FIN_WAIT2 for e in conn.timeline.events)

                await eventually(moved, what="the client's traced move out of FIN_WAIT2")
                filed = next(e for e in conn.timeline.events if e.end == "client"
                             and e.kind == "state" and e.old is TcpState.FIN_WAIT2)
    assert filed.new is TcpState.TIME_WAIT, filed.describe()
    assert filed.data["traced_new"] == TcpState.CLOSED.value
