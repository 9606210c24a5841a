"""TIME_WAIT waited out (claim C11; seeds 000, 001, 002, 004). Slow: about a minute.

``time-wait-length`` reads the timer the kernel arms; this scenario checks that the timer
means what it says, by watching one TIME_WAIT from the moment it appears until the kernel
drops the four-tuple (polled every 2 ms). The kernel's timer wheel may fire a long timer a
slot late (2 s at HZ=250), so the watch gives up only after 300 s: a kernel whose TIME_WAIT
were the Windows-like 240 s would still be measured, not failed. Neither the entry into
TIME_WAIT nor its end is asserted: both are measured, and the judge reads them.
"""

from __future__ import annotations

from tcplab import Lab, Scenario, TcpState, TimerKind, Verdicts
from tcplab.judges.timewait import TimeWaitLength
from tcplab.measure import leaves, state_of, stays, timer_left

S = TcpState
CLOSING = (S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2, S.CLOSING)  # before TIME_WAIT
LIMIT_S = 300.0
scenario = Scenario(
    id="time-wait-expiry",
    title="TIME_WAIT watched until the kernel drops it: its real lifetime",
    claims=("C11",),
    timeout=LIMIT_S + 20,
    slow=True,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    conn = await lab.connect()
    await conn.client.close()
    await conn.server.read_eof()
    await conn.server.close()
    after = await leaves(conn.client, *CLOSING)
    lifetime = await stays(conn.client, S.TIME_WAIT, up_to=LIMIT_S)  # 0: never in TIME_WAIT
    verdicts.judge("C11", TimeWaitLength(
        lifetime or None, how=f"watched until the kernel dropped it (up to {LIMIT_S:.0f} s)",
        armed_s=timer_left(after, TimerKind.TIMEWAIT), entered=state_of(after)))


if __name__ == "__main__":
    scenario.main()
