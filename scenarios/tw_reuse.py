"""tcp_tw_reuse: when connect() may take over a TIME_WAIT four-tuple (claim C28; articles 000, 002).

The articles say tcp_tw_reuse=1 lets new connections reuse TIME_WAIT sockets and that the
default is 0. Each setting (0, 1, 2 towards 127.0.0.1 and towards an address outside 127/8,
1 without timestamps, 1 with a 200 ms reuse delay) is tried in a namespace of its own by the
probe in ``_twreuse``: every usable port held by a TIME_WAIT on purpose, then connect()
retried for two seconds. The defaults are read in this scenario's own fresh namespace.

What the kernel needs for reuse (tcp_twsk_unique, net/ipv4/tcp_ipv4.c): reuse enabled (2:
loopback addresses only), TCP timestamps on that connection, and tcp_tw_reuse_delay ms
since the TIME_WAIT began.
"""

from __future__ import annotations

from _shortconn import drawn_example
from _twreuse import DELAY, PROBE, RANGE, REUSE, SETTINGS, STAMPS, WINDOW, reuse_of
from tcplab import Lab, Scenario, Verdicts
from tcplab.isolated import run_isolated_each
from tcplab.kernel import sysctl

scenario = Scenario(
    id="tw-reuse",
    title="tcp_tw_reuse 0/1/2, timestamps and the reuse delay, with every port in TIME_WAIT",
    claims=("C28",),
    private_netns=True,  # a fresh namespace: its tcp_tw_reuse is this kernel's default
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    default = {k: int(sysctl.read(k) or -1) for k in (REUSE, DELAY, STAMPS)}
    results = await run_isolated_each(
        PROBE, "probe_reuse", {name: ({**RANGE, **settings}, {"address": address})
                               for name, (settings, address) in SETTINGS.items()},
        seconds=WINDOW + 20)
    # Drawn in the report: how each port the probes fill gets its TIME_WAIT.
    await drawn_example(lab, requests=0, closer="client")

    verdicts.note("tw_reuse", results)
    verdicts.judge("C28", reuse_of(results, default))


if __name__ == "__main__":
    scenario.main()
