"""A FIN re-sent because the last ACK was lost: TIME_WAIT acknowledges it, CLOSED resets it
(claim C12; seeds 000, 002, 003).

The seeds explain TIME_WAIT by the last ACK: if it is lost, the peer re-sends its FIN and
the side in TIME_WAIT acknowledges it again; a side that had gone straight to CLOSED would
answer with RST and the peer would see an error. The loss is real (``_refin``: the server's
socket drops what it receives until its FIN has been re-sent and answered). Two cases:

1. the client closed normally and is in TIME_WAIT when the re-sent FIN comes;
2. the client skipped TIME_WAIT: SO_LINGER zero, its RST lost like the ACK of case 1.

Measured: the flags of the answer to the re-sent FIN, whether it acknowledges the FIN, and
the error the server's application reads once the next answer reaches it.
"""

from __future__ import annotations

from _refin import resent_fin_answer
from tcplab import Lab, Scenario, TcpState, TimerKind, Verdicts
from tcplab.expect import gone, reaches
from tcplab.judges.segments import ResentFin
from tcplab.kernel.packets import Tap, deafen
from tcplab.measure import state_of

S = TcpState
scenario = Scenario(
    id="timewait-refin",
    title="A re-sent FIN after a lost last ACK: TIME_WAIT answers ACK, a CLOSED side answers RST",
    claims=("C12",),
    private_netns=True,
    timeout=15,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    with Tap() as tap:
        normal = await lab.connect()
        await normal.client.close()  # FIN
        await reaches(normal.server, S.CLOSE_WAIT)
        tw = await resent_fin_answer(tap, normal)

        skipped = await lab.connect()
        await skipped.client.send_eof()  # FIN, as in case 1 ...
        await reaches(skipped.server, S.CLOSE_WAIT)
        deafen(skipped.server.sock)  # ... but the RST below is lost like case 1's last ACK
        await skipped.client.abort()
        await gone(skipped.client)  # nothing left in the tables: the precondition of case 2
        closed = await resent_fin_answer(tap, skipped)
        verdicts.note("segments", [s.describe() for s in tap.seen])

    # the timer read after the answer is later than it would be without a restart (a note)
    b, a = tw.before, tw.after
    restarted = (None if b is None or a is None or a.timer.kind is not TimerKind.TIMEWAIT
                 else a.timer.remaining > b.timer.remaining - tw.gap + 0.05)
    verdicts.judge("C12", ResentFin(
        time_wait_state=state_of(a), time_wait_answer=tw.flags,
        time_wait_acks_fin=tw.acks_fin, time_wait_peer_error=tw.error,
        closed_answer=closed.flags, closed_peer_error=closed.error, timer_restarted=restarted))


if __name__ == "__main__":
    scenario.main()
