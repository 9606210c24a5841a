"""How long TIME_WAIT lasts on this kernel (claim C11; seeds 000, 001, 002, 004).

The articles tie TIME_WAIT to twice the maximum segment lifetime and then disagree on the
figure: 240 s (seed 000), 60 s on RHEL (seed 001), one to four minutes (seed 002). Linux
does not derive it from any MSL: the timewait timer is armed with the constant
TCP_TIMEWAIT_LEN (60 s), and no sysctl changes it. Here the client closes first and the
timer the kernel reports for its TIME_WAIT is read at once (sock_diag, timer kind
``timewait``); the verdict compares that figure with each article's.
The timer running out is measured by the slow scenario ``time-wait-expiry``.
"""

from __future__ import annotations

from tcplab import Lab, Scenario, TcpState, TimerKind, Verdicts
from tcplab.expect import reaches, timer_between
from tcplab.timewait import ARTICLE_FIGURES, judge_length

S = TcpState
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
    tw = await reaches(conn.client, S.TIME_WAIT)  # ... keeps the four-tuple
    # Read within milliseconds of entering TIME_WAIT: what is left is the whole length.
    # The bounds only reject nonsense; the verdict judges the figure.
    remaining = timer_between(conn.client, tw, TimerKind.TIMEWAIT, 1.0, 600.0)
    verdict, summary, matches = judge_length(remaining, how="timer read on entry")
    verdicts.record("C11", verdict, summary, measured_s=round(remaining, 3), matches=matches,
                    figures={k: list(v) for k, v in ARTICLE_FIGURES.items()})


if __name__ == "__main__":
    scenario.main()
