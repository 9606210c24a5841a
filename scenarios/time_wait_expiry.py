"""TIME_WAIT waited out (claim C11; seeds 000, 001, 002, 004). Slow: about a minute.

``time-wait-length`` reads the timer the kernel arms; this scenario checks that the timer
means what it says, by watching one TIME_WAIT from the moment it appears until the kernel
drops the four-tuple (polled every 2 ms). The kernel's timer wheel may fire a long timer a
slot late (2 s at HZ=250), so the watch gives up only after 300 s: a kernel whose TIME_WAIT
were the Windows-like 240 s would still be measured, not failed.
"""

from __future__ import annotations

from _leaves import leaves
from tcplab import Lab, Scenario, TcpState, TimerKind, Verdicts
from tcplab.expect import reaches
from tcplab.judges.timewait import TimeWaitLength

S = TcpState
scenario = Scenario(
    id="time-wait-expiry",
    title="TIME_WAIT watched until the kernel drops it: its real lifetime",
    claims=("C11",),
    timeout=320.0,
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
    armed = tw.timer.remaining if tw.timer.kind is TimerKind.TIMEWAIT else None
    after = await leaves(conn.client, S.TIME_WAIT, timeout=300.0)  # None: the kernel dropped it
    lifetime = lab.clock() - entered if after is None else None
    verdicts.judge("C11", TimeWaitLength(lifetime, how="watched until the kernel dropped it",
                                         armed_s=armed))


if __name__ == "__main__":
    scenario.main()
