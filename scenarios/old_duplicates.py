"""An old incarnation's segment, replayed late (claim C13; seeds 000, 002).

Two seeds give TIME_WAIT a second job: while it lasts, a delayed duplicate from the
connection that just ended cannot be mistaken for data of a new connection on the same
four-tuple, because no such connection can exist yet. Here that is put to the kernel with a
real old duplicate: a data segment of one connection is captured on loopback and, once
that connection is over, the very same bytes are injected again (raw IP, in a private
network namespace, tcp_tw_reuse=0 so loopback gets no shortcut).

The verdict turns on one question: does a new connection on the same four-tuple ever take
the stale bytes into its stream, and is TIME_WAIT what stops it?

A. An old connection closes client first, so its client holds TIME_WAIT; then a socket
   bound to the same port (SO_REUSEADDR) connects to the same server. RFC 793 would refuse
   it. Linux lets it take the TIME_WAIT over when timestamps were on, starting the new
   sequence space past the old one; the old segment is replayed at that successor.
B. The old segment is replayed at a TIME_WAIT socket itself: what becomes of it?
C. An old connection ends with a reset, so nothing at all is left of it; a new connection
   on the same four-tuple opens and the old segment is replayed at it. Linux draws each
   incarnation's initial sequence number from a clock (RFC 6528), and timestamps (PAWS)
   date each segment, so the stale segment may be turned away with no TIME_WAIT at all.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Mapping

import trio

from tcplab import (
    Connection,
    End,
    Lab,
    Listener,
    Scenario,
    SocketRecord,
    TcpState,
    Verdict,
    Verdicts,
)
from tcplab.expect import ExpectationFailed, eventually, gone, reaches
from tcplab.kernel.procfs import counter_delta, netstat_counters
from tcplab.kernel.segments import Capture, Segment, inject

S = TcpState
scenario = Scenario(
    id="old-duplicates",
    title="A replayed segment of an old incarnation against TIME_WAIT, its successor, and a "
    "new connection on the same four-tuple",
    claims=("C13",),
    sysctls={"net.ipv4.tcp_tw_reuse": 0},
)

#: Counters that move when the kernel answers or discards a stray segment.
REACTIONS = ("Tcp.OutSegs", "Tcp.OutRsts", "TcpExt.TCPACKSkippedTimeWait",
             "TcpExt.TCPACKSkippedPAWS", "TcpExt.TCPACKSkippedSeq", "TcpExt.PAWSEstab",
             "TcpExt.TCPOFOQueue")


async def connect_from(lab: Lab, listener: Listener, port: int, *,
                       reuse: bool = True) -> Connection:
    """A connection whose client is bound to ``port`` (0: any), accepted."""
    sock = open_bound(lab, port, reuse=reuse)
    address = (listener.address.host, listener.address.port)
    await trio.socket.from_stdlib_socket(sock).connect(address)
    server = await listener.accept()
    conn = Connection(End(lab, "client", sock), End(lab, "server", server))
    lab.connections.append(conn)
    conn.server.observe_all()
    return conn


def open_bound(lab: Lab, port: int, *, reuse: bool) -> socket.socket:
    # SO_REUSEADDR on both incarnations lets bind() share the port with a TIME_WAIT socket:
    # only the four-tuple check in connect() is left to decide. Without it, bind(0) never
    # hands out a port that another socket of the scenario still holds.
    sock = lab._socket()
    if reuse:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((lab.host, port))
    return sock


async def old_segment(capture: Capture, conn: Connection, payload: bytes) -> Segment:
    """Send ``payload`` server -> client, let the client read it, return the captured segment."""
    await conn.server.send(payload)
    got = b""
    while len(got) < len(payload):
        got += await conn.client.recv()
    server, client = conn.server.four_tuple.local, conn.client.four_tuple.local
    return await capture.wait_for(
        lambda s: s.src == server and s.dst == client and s.payload == payload)


async def replay(segment: Segment) -> dict[str, int]:
    """Inject ``segment`` again and wait until the kernel has reacted; the counters that moved."""
    before = netstat_counters()
    inject(segment)
    def reaction() -> dict[str, int]:
        delta = counter_delta(before, netstat_counters())
        return delta if any(delta.get(name) for name in REACTIONS) else {}

    return await eventually(reaction, what="the kernel's reaction to the replayed segment")


def readable(end: End) -> bytes:
    try:
        return end.sock.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return b""


def picked(delta: Mapping[str, int]) -> dict[str, int]:
    return {k: v for k, v in delta.items() if k in REACTIONS or k.startswith("TcpExt.PAWS")}


async def new_incarnation(lab: Lab, capture: Capture, listener: Listener,
                          port: int) -> tuple[Connection | None, int, Segment | None]:
    """connect() again from ``port`` to the same server: the connection (None if refused),
    the errno (0 if it opened) and the new client's SYN."""
    capture.drain()  # segments seen from now on are the new incarnation's
    started = time.monotonic()
    try:
        conn = await connect_from(lab, listener, port)
    except OSError as exc:
        return None, exc.errno or 0, None
    local = conn.client.four_tuple.local
    syn = await capture.wait_for(
        lambda s: s.flag_names == "SYN" and s.src == local and s.seen >= started)
    return conn, 0, syn


async def offer(conn: Connection, stale: Segment) -> tuple[bool, dict[str, int]]:
    """Replay ``stale`` at ``conn``'s client; True if the stale bytes entered its stream."""
    delta = await replay(stale)
    early = readable(conn.client)
    fresh = b"NEW INCARNATION"
    await conn.server.send(fresh)
    got = b""
    while len(got) < len(fresh) + len(early):
        got += await conn.client.recv()
    taken = stale.payload in got or bool(delta.get("TcpExt.TCPOFOQueue"))
    return taken, picked(delta)


async def old_connection(lab: Lab, capture: Capture, listener: Listener, payload: bytes, *,
                         reuse: bool) -> tuple[Connection, Segment]:
    """A connection that carried ``payload`` server -> client, and that segment, captured."""
    conn = await connect_from(lab, listener, 0, reuse=reuse)
    return conn, await old_segment(capture, conn, payload)


async def close_client_first(conn: Connection) -> SocketRecord:
    """The textbook close, client first; the client's TIME_WAIT record."""
    await conn.client.close()
    await conn.server.read_eof()
    await conn.server.close()
    await gone(conn.server)
    return await reaches(conn.client, S.TIME_WAIT)


async def meets_time_wait(conn: Connection, stale: Segment) -> tuple[str, dict[str, int]]:
    """Replay ``stale`` at ``conn``'s TIME_WAIT and say what became of it.

    The TIME_WAIT answers a stray segment with an ACK. The server has no socket left for
    the connection, so its kernel answers that ACK with a reset, and a reset whose sequence
    number fits kills a TIME_WAIT on Linux unless tcp_rfc1337=1 (RFC 1337's "assassination").
    """
    delta = await replay(stale)
    if delta.get("Tcp.OutRsts"):
        await gone(conn.client)
        return ("answered it with an ACK, the server side (no socket left) replied RST, and that "
                "RST killed the TIME_WAIT (tcp_rfc1337=0)"), picked(delta)
    record = await reaches(conn.client, S.TIME_WAIT)
    return f"absorbed it and stayed (timer {record.timer.remaining:.1f} s)", picked(delta)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    listener = await lab.listen()
    stale = b"OLD INCARNATION " + os.urandom(8).hex().encode()
    with Capture("lo") as capture:
        # A. While TIME_WAIT holds the four-tuple, a new connection from the same port.
        first, dup1 = await old_connection(lab, capture, listener, stale, reuse=True)
        port1 = first.client.four_tuple.local.port
        await close_client_first(first)
        fin = await capture.wait_for(lambda s: bool(s.flags & 0x01) and s.src.port == port1)
        successor, takeover_errno, syn1 = await new_incarnation(lab, capture, listener, port1)
        taken_after_takeover = False
        takeover_delta: dict[str, int] = {}
        if successor is not None:
            taken_after_takeover, takeover_delta = await offer(successor, dup1)

        # B. The old duplicate arrives while TIME_WAIT is still there.
        second, dup2 = await old_connection(lab, capture, listener, stale, reuse=False)
        await close_client_first(second)
        tw_outcome, tw_delta = await meets_time_wait(second, dup2)

        # C. No TIME_WAIT at all (the old connection was reset), then a new incarnation.
        third, dup3 = await old_connection(lab, capture, listener, stale, reuse=False)
        port3 = third.client.four_tuple.local.port
        syn_ack_old = await capture.wait_for(
            lambda s: s.flag_names == "SYN|ACK" and s.dst.port == port3)
        await third.client.abort()  # RST: the server's socket is dropped, its fd remains
        await reaches(third.server, S.CLOSED)
        await third.server.close()
        await gone(third.server)
        await gone(third.client)
        fresh, fresh_errno, _ = await new_incarnation(lab, capture, listener, port3)
        if fresh is None:
            raise ExpectationFailed(f"a four-tuple with no socket left refused connect(): "
                                    f"{errno.errorcode.get(fresh_errno, fresh_errno)}")
        syn_ack_new = await capture.wait_for(lambda s: s.flag_names == "SYN|ACK"
                                             and s.dst.port == port3 and s.seen > syn_ack_old.seen)
        taken_without_tw, fresh_delta = await offer(fresh, dup3)

    behind = ((syn_ack_new.seq + 1) - dup3.seq) % 2**32
    isn_advance = (syn_ack_new.seq - syn_ack_old.seq) % 2**32
    elapsed = syn_ack_new.seen - syn_ack_old.seen
    inherited = syn1 is not None and syn1.seq == (fin.seq + 1 + 65535 + 2) % 2**32
    blocked = successor is None
    if taken_after_takeover:
        verdict = Verdict.REFUTED
    elif taken_without_tw and blocked:
        verdict = Verdict.CONFIRMED
    else:
        verdict = Verdict.PARTLY
    if blocked:
        part_a = (f"while TIME_WAIT lasted, connect() from the same port failed "
                  f"({errno.errorcode.get(takeover_errno, takeover_errno)})")
    else:
        part_a = (
            "TIME_WAIT did not hold the four-tuple: a socket bound to the same port (SO_REUSEADDR, "
            "tcp_tw_reuse=0) connected at once, taking the TIME_WAIT over"
            + (" with its ISN set 65537 past the old sequence numbers" if inherited else "")
            + ("; it then took the replayed old segment in" if taken_after_takeover
               else "; it rejected the replayed old segment")
        )
    part_b = f"a TIME_WAIT that met the old segment {tw_outcome}"
    part_c = ("with no TIME_WAIT at all (old connection reset) the old segment "
              + ("entered the new connection's stream" if taken_without_tw else
                 f"was rejected too: the new ISN was {isn_advance} ahead after "
                 f"{elapsed * 1000:.1f} ms (clock-driven ISNs), leaving the old segment "
                 f"{behind} bytes behind the new window"))
    verdicts.record(
        "C13", verdict, f"{part_a}; {part_b}; {part_c}",
        takeover=not blocked, takeover_errno=errno.errorcode.get(takeover_errno, "0"),
        takeover_syn=syn1.describe() if syn1 else None, old_fin=fin.describe(),
        takeover_isn_inherited=inherited, takeover_counters=takeover_delta,
        stale_taken_after_takeover=taken_after_takeover,
        time_wait_outcome=tw_outcome, time_wait_counters=tw_delta,
        old_duplicate=dup3.describe(), old_syn_ack=syn_ack_old.describe(),
        new_syn_ack=syn_ack_new.describe(), isn_advance=isn_advance,
        elapsed_between_syn_acks_s=round(elapsed, 6), bytes_behind_new_window=behind,
        fresh_counters=fresh_delta, stale_taken_without_time_wait=taken_without_tw,
    )


if __name__ == "__main__":
    scenario.main()
