"""How long TIME_WAIT lasts on this kernel (claim C11; seeds 000, 001, 002, 004).

The articles tie TIME_WAIT to twice the maximum segment lifetime and attach figures to
systems: 60 s on RHEL (seed 001), 1 to 4 minutes for an MSL between BSD's 30 s and RFC
1122's 2 minutes (seed 002), 240 s as the Windows default (seeds 000, 002). Linux keeps no
MSL: the timewait timer is armed with the constant TCP_TIMEWAIT_LEN. Here the client closes
first and the timer the kernel reports for its TIME_WAIT is read at once (sock_diag, timer
kind ``timewait``): read within milliseconds of entry, what is left is the whole length.
Where the active closer goes after the peer's FIN is measured, not asserted: a kernel that
kept no TIME_WAIT is a measurement the judge reads. The slow scenario ``time-wait-expiry``
watches the timer run out.
"""

from __future__ import annotations

from tcplab import Lab, Scenario, TcpState, TimerKind, Verdicts
from tcplab.judges.timewait import TimeWaitLength
from tcplab.measure import leaves, state_of, timer_left

S = TcpState
CLOSING = (S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2, S.CLOSING)  # before TIME_WAIT
scenario = Scenario(
    id="time-wait-length",
    title="TIME_WAIT's timer, read the moment it starts, against the articles' figures",
    claims=("C11",),
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    conn = await lab.connect()
    await conn.client.close()  # the active closer ...
    await conn.server.read_eof()
    await conn.server.close()
    after = await leaves(conn.client, *CLOSING)  # ... keeps the four-tuple, or not
    verdicts.judge("C11", TimeWaitLength(timer_left(after, TimerKind.TIMEWAIT),
                                         how="timer read on entry", entered=state_of(after)))


if __name__ == "__main__":
    scenario.main()
