"""FIN_WAIT2's timeout, and what tcp_fin_timeout does not touch (claims C25, C26, C27;
seeds 000, 002, 003).

Three closers face peers that never close (each peer keeps its CLOSE_WAIT socket open):
an orphan (close() called: no fd holds it), an orphan with TCP_LINGER2 = 1 s (the per-socket
form of the limit), and a socket only shut down (shutdown(SHUT_WR), fd still open). Here
tcp_fin_timeout is 3 s. Their timers and lifetimes are measured, not asserted. Then
TIME_WAIT's timer is read after a plain active close and after an orphan that got the FIN
late, beside the timer in a fresh namespace (default fin timeout).
"""

from __future__ import annotations

from pathlib import Path

from _finwait2 import FIN, lifetime, state_at, time_wait_timer
from _keepalive import timer_of
from _leaves import state_of
from tcplab import Lab, Scenario, TcpState, Verdicts
from tcplab.expect import ExpectationFailed, reaches
from tcplab.isolated import run_isolated
from tcplab.judges.timers import SLACK_S, FinWait2Lifetimes, TimeWaitAndFinTimeout
from tcplab.kernel import sysctl
from tcplab.ports import active_close

S = TcpState
HELPERS = Path(__file__).with_name("_finwait2.py")  # probe_time_wait_timer, run isolated
FIN_TIMEOUT, LINGER2 = 3, 1
scenario = Scenario(
    id="fin-wait2-timeout",
    title="tcp_fin_timeout, TCP_LINGER2: orphaned FIN_WAIT2 times out, a half-closed one doesn't",
    claims=("C25", "C26", "C27"),
    sysctls={FIN: FIN_TIMEOUT},
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    if sysctl.read_int(FIN) != FIN_TIMEOUT:  # precondition
        raise ExpectationFailed(f"{FIN} is {sysctl.read(FIN)} in this namespace")
    orphan, lingering, half = await lab.connect(), await lab.connect(), await lab.connect()
    lingering.client.set_linger2(LINGER2)
    start = lab.clock()
    await orphan.client.close()
    await lingering.client.close()
    await half.client.send_eof()
    entered = [await reaches(c.client, S.FIN_WAIT2) for c in (orphan, lingering, half)]
    for conn in (orphan, lingering, half):  # the peers never close: CLOSE_WAIT stays
        await reaches(conn.server, S.CLOSE_WAIT)
    linger_life = await lifetime(lab, lingering.client, start, LINGER2 + SLACK_S + 1)
    orphan_life = await lifetime(lab, orphan.client, start, FIN_TIMEOUT + SLACK_S + 1)
    half_after = await state_at(lab, half.client, start + FIN_TIMEOUT + SLACK_S + 0.5)
    lifetimes = FinWait2Lifetimes(
        FIN_TIMEOUT, timer_of(entered[0])[0], orphan_life, LINGER2, linger_life,
        timer_of(entered[2])[0], state_of(half_after), lab.clock() - start)
    verdicts.judge("C25", lifetimes)
    verdicts.judge("C26", lifetimes)

    plain = await active_close(await lab.connect())
    late = await lab.connect()
    await late.client.close()
    await reaches(late.client, S.FIN_WAIT2)
    await late.server.close()  # the peer's FIN, within the orphan's 3 s
    late_tw = await reaches(late.client, {S.TIME_WAIT, S.CLOSED})
    fresh = await run_isolated(HELPERS, "probe_time_wait_timer", seconds=5.0)
    timers = tuple(t for t in (time_wait_timer(plain), time_wait_timer(late_tw)) if t is not None)
    verdicts.judge("C27", TimeWaitAndFinTimeout(
        FIN_TIMEOUT, timers, fresh["fin_timeout"], fresh["time_wait_timer_s"]))


if __name__ == "__main__":
    scenario.main()
