"""tcp_rfc1337: a reset aimed at a TIME_WAIT (claim K09).

The kernel's documentation says that with the sysctl set TCP follows RFC 1337 (a TIME_WAIT
ignores resets, so it cannot be "assassinated"), and, of the default 0, that it does not
follow the RFC but still prevents TIME_WAIT assassination. Each setting runs in a namespace
of its own (probe ``assassinate`` in ``_rfc1337.py``): a forged in-window reset, built from
the captured FIN of the peer, is injected at the closer's TIME_WAIT, and the same forging at
an ESTABLISHED connection as a control. The default is read in a fresh namespace.
"""

from __future__ import annotations

from _defaults import fresh_netns_ints
from _rfc1337 import HOLD, PROBE, RFC1337
from tcplab import Lab, Scenario, Verdicts
from tcplab.isolated import run_isolated_each
from tcplab.judges.queues import ResetInTimeWait, Rfc1337

scenario = Scenario(
    id="rfc1337",
    title="tcp_rfc1337 0 and 1: a forged in-window reset against a TIME_WAIT",
    claims=("K09",),
    requires=("root", "capture"),
    timeout=60,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    results = await run_isolated_each(PROBE, "assassinate",
                                      {s: ({RFC1337: s}, {}) for s in (0, 1)},
                                      seconds=4 * HOLD + 15)
    default = (await fresh_netns_ints(RFC1337))[RFC1337]

    verdicts.note("probes", results)  # the forged resets, and the counters they moved
    verdicts.judge("K09", Rfc1337(tuple(ResetInTimeWait(
        r["setting"], HOLD, r["time_wait_then"], r["ended_after_s"], r["control_after_s"])
        for r in results.values()), default))


if __name__ == "__main__":
    scenario.main()
