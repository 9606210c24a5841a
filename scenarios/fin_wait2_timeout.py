"""FIN_WAIT2's timeout, and what tcp_fin_timeout does not touch (claims C25, C26, C27;
seeds 000, 002, 003).

With tcp_fin_timeout 3 s (the value in force is read: ``tcplab try`` runs this with an
operator's, waits capped by ``--max-wait``), three closers face peers that keep CLOSE_WAIT: an orphan (close()
called), an orphan with TCP_LINGER2 = 1 s, and a socket only shut down (fd still open). Their
states, timers and lifetimes are measured, not asserted. Then TIME_WAIT's timer after a plain
active close and after an orphan that got the FIN late, beside a fresh namespace's.
"""

from __future__ import annotations

from pathlib import Path

from _finwait2 import FIN, lifetime, state_at, time_wait_timers
from _keepalive import timer_of
from tcplab import Lab, Scenario, Verdicts
from tcplab import TcpState as S
from tcplab.expect import reaches
from tcplab.isolated import run_isolated
from tcplab.judges.timers import SLACK_S, FinWait2Lifetimes, TimeWaitAndFinTimeout
from tcplab.kernel import sysctl
from tcplab.measure import leaves, state_of
from tcplab.scenario import capped

HELPERS = Path(__file__).with_name("_finwait2.py")  # probe_time_wait_timer, run isolated
FIN_TIMEOUT, LINGER2 = 3, 1
scenario = Scenario(
    id="fin-wait2-timeout",
    title="tcp_fin_timeout, TCP_LINGER2: orphaned FIN_WAIT2 times out, a half-closed one doesn't",
    claims=("C25", "C26", "C27"),
    sysctls={FIN: FIN_TIMEOUT},
    measures=(FIN,),
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    fin_timeout = sysctl.read_int(FIN) or 0  # 3 as declared, unless tcplab try overrides it
    closers = orphan, lingering, half = [await lab.connect() for _ in range(3)]
    lingering.client.set_linger2(LINGER2)
    start = lab.clock()
    await orphan.client.close()
    await lingering.client.close()
    await half.client.send_eof()  # each peer's ACK moves its closer on: measured, not asserted
    entered = [await leaves(c.client, S.ESTABLISHED, S.FIN_WAIT1) for c in closers]
    for conn in closers:  # the peers never close: CLOSE_WAIT stays
        await reaches(conn.server, S.CLOSE_WAIT)
    linger_life = await lifetime(lab, lingering.client, start, LINGER2 + SLACK_S + 1)
    orphan_life = await lifetime(lab, orphan.client, start, capped(fin_timeout + SLACK_S + 1))
    half_after = await state_at(lab, half.client, start + capped(fin_timeout + SLACK_S + 0.5))
    lifetimes = FinWait2Lifetimes(
        fin_timeout, timer_of(entered[0])[0], orphan_life, LINGER2, linger_life,
        timer_of(entered[2])[0], state_of(half_after), lab.clock() - start)
    verdicts.note("orphan_fin_wait2_timer_s", timer_of(entered[0])[1])  # the fin timeout's
    verdicts.judge("C25", lifetimes)
    verdicts.judge("C26", lifetimes)
    timers = await time_wait_timers(lab)
    fresh = await run_isolated(HELPERS, "probe_time_wait_timer", seconds=5.0)
    verdicts.judge("C27", TimeWaitAndFinTimeout(
        fin_timeout, timers, fresh["fin_timeout"], fresh["time_wait_timer_s"]))


if __name__ == "__main__":
    scenario.main()
