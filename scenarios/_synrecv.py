"""Four handshakes against four listeners, each measuring how long the server's side of the
connection (the kernel's request socket) stays in SYN_RECV. Shared setup of syn_recv.py.

* ``ordinary``: nothing in the way; the trace times SYN_RECV (snapshots cannot catch it).
* ``withheld``: the listener drops every segment but SYNs (``packets.accept_only_syns``):
  the client's final ACK never reaches the server, as when a client withholds it.
* ``full_queue``: the client's final ACK does reach the server, but the accept queue is full
  (backlog 1: two queued; one connection already waits there, unaccepted). Two handshakes
  are started with their ACKs dropped, then the filter is removed: the SYN-ACK retransmission
  (after 1 s) makes both clients ACK again; the first fills the queue, and the listener
  drops the second one's ACK (tcp_check_req -> listen_overflow, net/ipv4/tcp_minisocks.c),
  keeping its request socket in SYN_RECV.
* ``deferred``: TCP_DEFER_ACCEPT: the listener ignores a bare final ACK and waits for data
  (tcp_check_req counts it as TCPDeferAcceptDrop and keeps the request socket).
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from tcplab import End, Lab, Listener, TcpState
from tcplab.expect import eventually, reaches, segments, within
from tcplab.kernel.packets import accept_only_syns, detach
from tcplab.measure import stays

S = TcpState
HOLD = 1.0


async def _handshake(lab: Lab, listener: Listener) -> End:
    """Start a handshake; return the server's side (pending), once the client is connected."""
    client = await lab.start_connect(listener)
    conn = lab.track(client, listener.pending_end(client))
    await client.connected()  # it got the SYN-ACK and sent its final ACK: ESTABLISHED
    return conn.server


async def ordinary(lab: Lab) -> tuple[float | None, bool]:
    """(µs in SYN_RECV by the trace, None if untraced; whether a snapshot saw SYN_RECV)."""
    listener = await lab.listen()
    server = await _handshake(lab, listener)
    await reaches(server, S.ESTABLISHED)

    def traced() -> list[float]:
        if lab.recording is None or lab.recording.recorder is None:
            return []
        lab.recording.sync()
        got = {e.new: e.t for e in server.timeline.events if e.end == "server" and e.kind == "state"}
        return [got[S.ESTABLISHED] - got[S.SYN_RECV]] if {S.SYN_RECV, S.ESTABLISHED} <= got.keys() else []

    took = await within(traced, timeout=1.0)
    return (took[0] * 1e6 if took else None), server.timeline.saw("server", S.SYN_RECV)


async def withheld(lab: Lab) -> float:
    listener = await lab.listen()
    accept_only_syns(listener.sock)  # the final ACK never arrives
    held = await stays(await _handshake(lab, listener), S.SYN_RECV, up_to=HOLD)
    await listener.close()  # and its request socket: no SYN-ACK retransmissions later
    return held


async def full_queue(lab: Lab) -> tuple[float, int | None]:
    """(seconds held; the waiting client's ACKs captured after the filter was removed, None
    without a capture)."""
    listener = await lab.listen(backlog=1)  # room for two in the accept queue
    await lab.open_client(listener)  # one, never accepted
    accept_only_syns(listener.sock)
    pending = [await _handshake(lab, listener) for _ in range(2)]
    for server in pending:
        await reaches(server, S.SYN_RECV)
    detach(listener.sock)  # ACKs get through again
    lifted = lab.clock()

    def full() -> bool:
        record = listener.observe()
        return record is not None and record.recv_q == 2

    await eventually(full, timeout=5.0, what="the accept queue full after the SYN-ACK retransmission")
    waiting = [s for s in pending if (r := s.observe_all()) is not None and r.state is S.SYN_RECV]
    held = await stays(waiting[0], S.SYN_RECV, up_to=HOLD) if waiting else 0.0
    await listener.close()
    if not waiting or lab.recording is None or lab.recording.capture is None:
        return held, None
    acks = [seg for seg in segments(waiting[0]) if seg.t > lifted
            and seg.data["direction"] == "client->server" and seg.data["flags"] == "ACK"]
    return held, len(acks)


async def deferred(lab: Lab) -> float:
    listener = await lab.listen(defer_accept=30)  # seconds to wait for data after the ACK
    server = await _handshake(lab, listener)
    held = await stays(server, S.SYN_RECV, up_to=HOLD)
    await server.peers[0].send(b"hello")  # data completes the deferred handshake
    await reaches(server, S.ESTABLISHED)
    await listener.close()
    return held


@dataclass
class Held:
    """Seconds each of the three held handshakes kept SYN_RECV (up to ``HOLD``)."""

    withheld: float = 0.0
    full_queue: float = 0.0
    full_queue_acks: int | None = None
    deferred: float = 0.0


async def three_held(lab: Lab) -> Held:
    """``withheld``, ``full_queue`` and ``deferred`` side by side (each takes up to 2 s)."""
    held = Held()

    async def lost() -> None:
        held.withheld = await withheld(lab)

    async def full() -> None:
        held.full_queue, held.full_queue_acks = await full_queue(lab)

    async def defer() -> None:
        held.deferred = await deferred(lab)

    async with trio.open_nursery() as nursery:
        for part in (lost, full, defer):
            nursery.start_soon(part)
    return held
