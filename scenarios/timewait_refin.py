"""A FIN re-sent because the last ACK was lost: TIME_WAIT acknowledges it, CLOSED resets it
(claim C12; seeds 000, 002, 003).

The seeds explain TIME_WAIT by the last ACK: if it is lost, the peer re-sends its FIN and
the side in TIME_WAIT acknowledges it again; a side that had gone straight to CLOSED would
answer with RST and the peer would see an error. Here the loss is real: the server's socket
gets a filter that drops everything it receives (``_filters.deafen``) just before it sends
its FIN, so the client's last ACK never reaches it and the server's own retransmission
timer re-sends the FIN. (Replaying a FIN by hand instead would meet a server that already
got the ACK and is gone; its kernel's RST would then kill the TIME_WAIT socket.) A raw
socket captures every segment and the flags of the client side's answer decide:

1. the client closed normally and sits in TIME_WAIT;
2. the client skipped TIME_WAIT: SO_LINGER zero, its RST lost like the ACK of case 1.

After the first answer the filter comes off, so the next retransmission's answer reaches
the server, whose application (it kept its fd: shutdown, not close) reads SO_ERROR.
"""

from __future__ import annotations

import socket

import trio

from _filters import SO_DETACH_FILTER, deafen
from _rawtcp import ACK, FIN, RST, RawTcp, Segment, flag_names
from tcplab import Connection, Lab, Scenario, TcpState, TimerKind, Verdict, Verdicts
from tcplab.expect import ExpectationFailed, gone, reaches, within
from tcplab.kernel.model import SocketRecord
from tcplab.lab import errno_name

S = TcpState
scenario = Scenario(
    id="timewait-refin",
    title="A re-sent FIN after a lost last ACK: TIME_WAIT answers ACK, a CLOSED side answers RST",
    claims=("C12",),
    private_netns=True,
    timeout=15,
)


async def resent_fin_answer(
    raw: RawTcp, conn: Connection
) -> tuple[Segment, Segment, str, SocketRecord | None, SocketRecord | None, float]:
    """The server (deaf) sends its FIN; wait for it to be re-sent and for the client side's
    answer to that re-sent FIN; then let the server hear the next answer. Returns the re-sent
    FIN, the answer, the server's SO_ERROR afterwards, the client's record after the first FIN
    and after the re-sent one, and the seconds between those two readings."""
    server, client = conn.server.four_tuple.local, conn.client.four_tuple.local
    deafen(conn.server.sock)
    mark = len(raw.segments())
    await conn.server.send_eof()  # FIN; the fd stays open to read SO_ERROR later
    first = await raw.wait_for(server.port, client.port, after=mark, within=1, flags=FIN)
    if first is None or not first.flags & FIN:
        raise ExpectationFailed(f"the server's FIN was not captured: {first}")
    mark = raw.seen.index(first) + 1
    before = conn.client.observe()  # just after the first FIN: its timer has just started
    seen_at = trio.current_time()
    again = await within(lambda: next((s for s in raw.segments()[mark:] if s.sport == server.port
                                       and s.flags & FIN and s.seq == first.seq), None), timeout=3)
    if again is None:
        raise ExpectationFailed("the server never re-sent its FIN")
    mark = raw.seen.index(again) + 1
    answer = await raw.wait_for(client.port, server.port, after=mark, within=1)
    if answer is None:
        raise ExpectationFailed("no answer to the re-sent FIN")
    after = conn.client.observe()
    elapsed = trio.current_time() - seen_at  # a timer not restarted would have lost this much
    conn.server.sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
    await reaches(conn.server, S.CLOSED, timeout=5)  # the next re-sent FIN's answer lands
    error = conn.server.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return again, answer, errno_name(error) if error else "none", before, after, elapsed


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    with RawTcp() as raw:
        normal = await lab.connect()
        await normal.client.close()  # FIN
        await reaches(normal.server, S.CLOSE_WAIT)
        fin_tw, answer_tw, error_tw, tw_before, tw_after, gap = await resent_fin_answer(raw, normal)

        skipped = await lab.connect()
        await skipped.client.send_eof()  # FIN, as in case 1 ...
        await reaches(skipped.server, S.CLOSE_WAIT)
        deafen(skipped.server.sock)  # ... but the RST below is lost like case 1's last ACK
        await skipped.client.abort()
        await gone(skipped.client)  # nothing left in the tables: no TIME_WAIT
        fin_cl, answer_cl, error_cl, _, _, _ = await resent_fin_answer(raw, skipped)

    if tw_before is None or tw_before.state is not S.TIME_WAIT or tw_after is None:
        raise ExpectationFailed(f"the client was not in TIME_WAIT: {tw_before} / {tw_after}")
    tw_acks = answer_tw.flags & (ACK | RST) == ACK and answer_tw.ack == fin_tw.seq + 1
    closed_resets = bool(answer_cl.flags & RST)
    unrestarted = tw_before.timer.remaining - gap  # where the timer would be without a restart
    restarted = (tw_after.timer.kind is TimerKind.TIMEWAIT
                 and tw_after.timer.remaining > unrestarted + 0.05)
    verdicts.note("segments", {
        "time_wait": [fin_tw.describe(), answer_tw.describe()],
        "skipped": [fin_cl.describe(), answer_cl.describe()],
        "all": [s.describe() for s in raw.seen],
    })
    verdicts.record(
        "C12", Verdict.of(tw_acks and closed_resets and error_tw == "none" and error_cl != "none"),
        f"the server's FIN, re-sent because the last ACK was lost, got "
        f"[{flag_names(answer_tw.flags)}] (ack = FIN seq + 1) from the TIME_WAIT socket, whose "
        f"timer read {tw_after.timer.remaining:.2f} s left {gap:.2f} s after the first FIN "
        f"({'restarted' if restarted else 'not restarted'}: "
        f"{unrestarted:.2f} s without a restart); the "
        f"server closed cleanly (SO_ERROR {error_tw}). The same FIN to a client that skipped "
        f"TIME_WAIT got [{flag_names(answer_cl.flags)}] and the server's application saw "
        f"{error_cl}",
        answer_time_wait=flag_names(answer_tw.flags), answer_closed=flag_names(answer_cl.flags),
        server_error_time_wait=error_tw, server_error_closed=error_cl,
        timer_restarted=restarted,
    )


if __name__ == "__main__":
    scenario.main()
