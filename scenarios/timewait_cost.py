"""What thousands of TIME_WAIT sockets cost a server (claim C15; seed 000).

Seed 000 says thousands of TIME_WAIT sockets (3000, say) can cost noticeable CPU. A
TIME_WAIT socket is a small entry in the kernel's connection hash table with a timer, so
the cost to measure is what a server pays per new connection while they sit there, next to
0, 3000 and 20,000 of them (probe ``cost`` in ``_twcost.py``: a namespace with a hash table
of its own, so the baseline holds no TIME_WAIT at all; medians of 12 rounds of 100
connections). The judge states what "noticeable" means (x1.5 over the baseline).
"""

from __future__ import annotations

from _shortconn import drawn_example
from _twcost import PER_ROUND, PROBE, ROUNDS, SYSCTLS
from tcplab import Lab, Scenario, Verdicts
from tcplab.isolated import run_isolated
from tcplab.judges.timewait import CostLevel, TimeWaitCost

scenario = Scenario(
    id="timewait-cost",
    title="Per-connection cost with 0, 3000 and 20,000 TIME_WAIT sockets on the server",
    claims=("C15",),
    # A namespace made from this one gets its own hash table of this many buckets.
    sysctls={"net.ipv4.tcp_child_ehash_entries": 65536},
    timeout=120,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    got = await run_isolated(PROBE, "cost", sysctls=SYSCTLS, seconds=100)
    verdicts.note("probe", got)
    verdicts.judge("C15", TimeWaitCost(
        tuple(CostLevel(lv["present"], lv["wall_us"], lv["cpu_us"]) for lv in got["levels"]),
        ROUNDS, PER_ROUND, got["tw_bytes"]))
    await drawn_example(lab, requests=1, closer="server")  # one connection, drawn in the report


if __name__ == "__main__":
    scenario.main()
