"""What thousands of TIME_WAIT sockets cost (claim C15; seed 000).

Seed 000 says thousands of TIME_WAIT sockets (3000, say) can cost noticeable CPU, and does
not say on which side. A TIME_WAIT is a small entry in the kernel's connection hash table
with a timer, so the cost to measure is what a new connection pays while they sit there,
against the same with none (probes in ``_twcost.py``, each in a namespace with a hash table
of its own; medians of 12 rounds of 100 connections):

* on the server side: 0, 3000 and 20,000 TIME_WAITs of other listeners;
* on the client side, towards the destination it connects to again: 0 and 3000 TIME_WAITs
  in the default ephemeral range, and in a narrowed one (3200 ports) that they fill to 94%,
  where connect() must search past the ports they hold for one still free.

The judge states what "noticeable" means (x1.5 over the baseline, by CPU and wall time).
"""

from __future__ import annotations

from _shortconn import drawn_example
from _twcost import CLIENT_SYSCTLS, PER_ROUND, PROBE, ROUNDS, SERVER_SYSCTLS, as_series
from tcplab import Lab, Scenario, Verdicts
from tcplab.isolated import run_isolated
from tcplab.judges.timewait import TimeWaitCost

scenario = Scenario(
    id="timewait-cost",
    title="Per-connection cost next to 0 and thousands of TIME_WAITs, server and client side",
    claims=("C15",),
    requires=("root",),
    # A namespace made from this one gets its own hash table of this many buckets.
    sysctls={"net.ipv4.tcp_child_ehash_entries": 65536},
    timeout=180,  # three probes: ~5 s alone, several times that under load
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    got = {"server": await run_isolated(PROBE, "cost", sysctls=SERVER_SYSCTLS, seconds=100)}
    for name, settings in CLIENT_SYSCTLS.items():
        got[name] = await run_isolated(PROBE, "client_cost", sysctls=settings, seconds=50)
    verdicts.note("probes", got)
    verdicts.judge("C15", TimeWaitCost(tuple(as_series(a) for a in got.values()),
                                       ROUNDS, PER_ROUND, got["server"]["tw_bytes"]))
    await drawn_example(lab, requests=1, closer="server")  # one connection, drawn in the report


if __name__ == "__main__":
    scenario.main()
