"""TIME_WAIT waited out (claim C11; seeds 000, 001, 002, 004). Slow: about a minute.

``time-wait-length`` reads the timer the kernel arms; this scenario checks that the timer
means what it says, by watching one TIME_WAIT from the moment it appears until the kernel
drops the four-tuple, and judges C11 on that measured lifetime. The kernel's timer wheel
may fire a long timer a few seconds late, so the wait has a 75 s deadline.
"""

from __future__ import annotations

from tcplab import Lab, Scenario, TcpState, TimerKind, Verdicts
from tcplab.expect import gone, reaches, timer_between
from tcplab.timewait import ARTICLE_FIGURES, judge_length

S = TcpState
scenario = Scenario(
    id="time-wait-expiry",
    title="TIME_WAIT watched until the kernel drops it: its real lifetime",
    claims=("C11",),
    timeout=90.0,
    slow=True,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    conn = await lab.connect()
    await conn.client.close()
    await conn.server.read_eof()
    await conn.server.close()
    tw = await reaches(conn.client, S.TIME_WAIT)
    entered = lab.clock()
    armed = timer_between(conn.client, tw, TimerKind.TIMEWAIT, 1.0, 75.0)
    await gone(conn.client, timeout=75.0)  # polled: the first lookup that finds nothing
    lifetime = lab.clock() - entered
    verdict, summary, matches = judge_length(lifetime, how="watched until the kernel dropped it")
    verdicts.record("C11", verdict, summary, measured_s=round(lifetime, 3),
                    armed_timer_s=round(armed, 3), late_by_s=round(lifetime - armed, 3),
                    matches=matches, figures={k: list(v) for k, v in ARTICLE_FIGURES.items()})


if __name__ == "__main__":
    scenario.main()
