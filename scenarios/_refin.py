"""Losing the last ACK of a close for real, and reading the answer to the re-sent FIN
(timewait-refin scenario, C12).

The server's socket gets a filter that drops everything it receives (``packets.deafen``)
just before it sends its FIN, so the client side's last answer never reaches it and the
server's own retransmission timer re-sends the FIN. (Replaying a FIN by hand instead would
meet a server that already got the ACK and is gone; its kernel's RST would then kill the
TIME_WAIT socket.) A ``packets.Tap`` sees every segment. After the answer to the
re-sent FIN the filter comes off, so the next retransmission's answer reaches the server,
whose application (it kept its fd: shutdown, not close) then reads SO_ERROR.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import trio

from tcplab import Connection, SocketRecord, TcpState
from tcplab.expect import ExpectationFailed, within
from tcplab.kernel.packets import Segment, Tap, TcpFlags, deafen, detach
from tcplab.lab import errno_name

FIN = TcpFlags.FIN


@dataclass(frozen=True)
class Answer:
    """The re-sent FIN, the client side's answer (None: none within a second), the client's
    record just after the first FIN and when the answer came, seconds between those two
    readings, and the server application's SO_ERROR at the end."""

    fin: Segment
    answer: Segment | None
    before: SocketRecord | None
    after: SocketRecord | None
    gap: float
    error: str

    @property
    def flags(self) -> str:
        return "" if self.answer is None else self.answer.flags.text("|")

    @property
    def acks_fin(self) -> bool:
        return self.answer is not None and self.answer.ack == (self.fin.seq + 1) & 0xFFFFFFFF


async def resent_fin_answer(tap: Tap, conn: Connection) -> Answer:
    """The server (deaf) sends its FIN; wait for it to be re-sent and for the client side's
    answer; then let the server hear the next answer and read its SO_ERROR."""
    server, client = conn.server.four_tuple.local, conn.client.four_tuple.local

    def sent(seg: Segment, by: int, to: int) -> bool:
        return (seg.src.port, seg.dst.port) == (by, to)

    deafen(conn.server.sock)
    mark = len(tap.segments())
    await conn.server.send_eof()  # FIN; the fd stays open to read SO_ERROR later
    first = await tap.first(lambda s: sent(s, server.port, client.port) and FIN in s.flags,
                            after=mark, timeout=1)
    if first is None:
        raise ExpectationFailed("the server's FIN was not captured")
    mark = tap.seen.index(first) + 1
    before, seen_at = conn.client.observe(), trio.current_time()
    again = await tap.first(lambda s: s.src.port == server.port and FIN in s.flags
                            and s.seq == first.seq, after=mark, timeout=3)
    if again is None:
        raise ExpectationFailed("the server never re-sent its FIN: the loss did not happen")
    mark = tap.seen.index(again) + 1
    answer = await tap.first(lambda s: sent(s, client.port, server.port), after=mark, timeout=1)
    after, gap = conn.client.observe(), trio.current_time() - seen_at
    detach(conn.server.sock)
    # the next re-sent FIN's answer lands (or nothing does): measured, not asserted
    await within(lambda: (r := conn.server.observe()) is None or r.state is TcpState.CLOSED,
                 timeout=5)
    error = conn.server.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return Answer(again, answer, before, after, gap, errno_name(error) if error else "none")
