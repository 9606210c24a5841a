"""tcp_abort_on_overflow: a handshake completing into a full accept queue (claim K05).

The kernel's documentation says that with the sysctl set, connections the listening
application is too slow to accept are reset, and that by default (0) a connection that
overflowed in a burst recovers. Each setting runs in a namespace of its own (probe
``overflow`` in ``_overflow.py``): a listen(1) queue held full on purpose (nobody accepts for
1.5 s), one client whose final ACK and data arrive then, and one whose SYN arrives then;
then the application accepts and the probe watches who completes. The default is read in a
fresh namespace.
"""

from __future__ import annotations

from _defaults import fresh_netns_ints
from _overflow import ABORT, HOLD, PROBE, RECOVER
from tcplab import Lab, Scenario, Verdicts
from tcplab.isolated import run_isolated_each
from tcplab.judges.queues import AbortOnOverflow, OverflowRun

scenario = Scenario(
    id="abort-on-overflow",
    title="tcp_abort_on_overflow 0 and 1: a handshake and a SYN meeting a full accept queue",
    claims=("K05",),
    requires=("root",),
    timeout=60,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    results = await run_isolated_each(PROBE, "overflow",
                                      {s: ({ABORT: s}, {}) for s in (0, 1)},
                                      seconds=HOLD + 2 * RECOVER + 10)
    default = (await fresh_netns_ints(ABORT))[ABORT]

    verdicts.note("probes", results)
    verdicts.judge("K05", AbortOnOverflow(tuple(OverflowRun(
        r["setting"], r["hold_s"], r["reset_after_s"], r["client"], r["request"],
        r["recovered_after_s"], r["data"], r["late"], r["late_then"],
        r["counters"]["TcpExt.ListenOverflows"], r["counters"]["TcpExt.EmbryonicRsts"])
        for r in results.values()), default))


if __name__ == "__main__":
    scenario.main()
