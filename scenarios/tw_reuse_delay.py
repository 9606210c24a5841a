"""tcp_tw_reuse_delay: how old a TIME_WAIT must be before connect() may take it over (claim K08).

The kernel's documentation (Linux 6.14+) says the sysctl is the delay in milliseconds
before tcp_tw_reuse lets a new connection reuse a TIME_WAIT socket, never shorter than
set, 1000 ms by default. Each setting runs in a namespace of its own with the tw-reuse probe
(``_twreuse.probe_reuse``: every usable port held by a TIME_WAIT on purpose, then connect()
retried every 20 ms for two seconds): reuse on with the default delay, with 100 ms and with
500 ms, and reuse off with 100 ms as the control. The default is read in a fresh namespace.
Reuse also needs timestamps on the connection (tcp_twsk_unique, net/ipv4/tcp_ipv4.c): they
are on here, as by default.
"""

from __future__ import annotations

from _defaults import fresh_netns_ints
from _twreuse import DELAY, PROBE, RANGE, REUSE, WINDOW
from tcplab import Lab, Scenario, Verdicts
from tcplab.isolated import run_isolated_each
from tcplab.judges.queues import ReuseDelayTry, TwReuseDelay

#: (tcp_tw_reuse, tcp_tw_reuse_delay in ms; None: the namespace's default)
TRIES: tuple[tuple[int, int | None], ...] = ((1, None), (1, 100), (1, 500), (0, 100))
scenario = Scenario(
    id="tw-reuse-delay",
    title="tcp_tw_reuse_delay default, 100 and 500 ms (and reuse off): when a TIME_WAIT is taken over",
    claims=("K08",),
    requires=("root",),
    timeout=60,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    default = (await fresh_netns_ints(DELAY))[DELAY]
    results = await run_isolated_each(
        PROBE, "probe_reuse",
        {(reuse, delay): ({**RANGE, REUSE: reuse, **({DELAY: delay} if delay is not None else {})},
                          {"address": None}) for reuse, delay in TRIES},
        seconds=WINDOW + 20)

    verdicts.note("probes", {f"reuse={r}, delay={d or 'default'}": a for (r, d), a in results.items()})
    verdicts.judge("K08", TwReuseDelay(tuple(
        ReuseDelayTry(reuse, delay if delay is not None else default, a["after_s"], a["first_try"])
        for (reuse, delay), a in sorted(results.items(), key=lambda kv: str(kv[0]))),
        WINDOW, default))


if __name__ == "__main__":
    scenario.main()
