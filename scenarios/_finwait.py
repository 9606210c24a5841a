"""Many connections closed by one side while a sampler dumps the sockets every few ms, as an
operator's ``ss`` would see them (fin-wait1 scenario, C08).

The closer is always the client and calls close() (an orphan, as a server that is done with
a connection would); the peer's application is busy for ``delay`` seconds after the close.
Two workloads differ only in whether the closer still had data in flight:

* ``idle``: after one request and its reply, nothing left to send; the peer closes
  ``delay`` s after the FIN. Its kernel ACKs the FIN alone when its delayed-ACK timer
  fires: 40 ms (TCP_ATO_MIN) on a connection that received data, a few ms on one that
  never did (``ato`` still 0; net/ipv4/tcp_input.c ``tcp_event_data_recv``);
* ``slow reader``: the closer filled the peer's small window (SO_RCVBUF 4096) before closing;
  the peer reads nothing for ``delay`` s, then reads everything and closes at once. The
  FIN waits behind the unread data: FIN_WAIT1 is held on purpose, by a slow reader.

The sampler's dumps are filtered by the listener's port; an orphan in FIN_WAIT2 is a
timewait socket whose sub-state sock_diag reports and filters as FIN_WAIT2
(net/ipv4/inet_diag.c), so it is counted like an open one.
"""

from __future__ import annotations

import socket
import time

import trio

from _segments import drain, pair
from _shortconn import exchange, open_listener
from tcplab import TcpState
from tcplab.expect import eventually
from tcplab.judges.segments import FinWaitSampling
from tcplab.kernel.observer import DiagObserver

S = TcpState
SMALL = 4096
SAMPLE_S = 0.005  # an operator's ss is slower; a finer grid only sharpens the shares


def fill(sock: socket.socket) -> int:
    """Send until the peer's window and our buffer are full; the bytes queued."""
    sock.setblocking(False)
    sent = 0
    try:
        while True:
            sent += sock.send(b"x" * 65536)
    except BlockingIOError:
        return sent


async def workload(name: str, n: int, stagger: float, delay: float, *,
                   data_in_flight: bool) -> FinWaitSampling:
    """Close ``n`` connections ``stagger`` s apart, each peer busy ``delay`` s; sample."""
    listener = open_listener()
    if data_in_flight:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL)  # accepted ones inherit
    port = listener.getsockname()[1]
    seen = {S.FIN_WAIT1: 0, S.FIN_WAIT2: 0}
    conns: dict[TcpState, set[int]] = {S.FIN_WAIT1: set(), S.FIN_WAIT2: set()}
    samples, done = 0, trio.Event()

    async def peer(client: socket.socket, server: socket.socket) -> None:
        if data_in_flight:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL)
            fill(client)
        else:
            exchange(client, server)  # one request and reply: a connection that was used
        client.close()
        await trio.sleep(delay)  # the peer application's work: the workload
        server.setblocking(True)
        drain(server)
        server.close()

    async def sample() -> None:
        nonlocal samples
        with DiagObserver() as observer:
            while not done.is_set():
                for r in observer.snapshot(states=list(seen), port=port):
                    seen[r.state] += 1
                    conns[r.state].add(r.four_tuple.local.port)
                samples += 1
                await trio.sleep(SAMPLE_S)

    started = time.monotonic()
    async with trio.open_nursery() as outer:
        outer.start_soon(sample)
        async with trio.open_nursery() as closers:
            for _ in range(n):
                closers.start_soon(peer, *pair(listener))
                await trio.sleep(stagger)
        with DiagObserver() as observer:  # every close finished: nothing but TIME_WAIT left
            await eventually(lambda: all(r.state in (S.TIME_WAIT, S.LISTEN)
                                         for r in observer.snapshot(port=port)),
                             timeout=10, what="every close to finish")
        done.set()
    listener.close()
    return FinWaitSampling(name, n, samples, time.monotonic() - started, seen[S.FIN_WAIT1],
                           seen[S.FIN_WAIT2], len(conns[S.FIN_WAIT1]), len(conns[S.FIN_WAIT2]))
