"""All eleven states produced and observed in one run (C01; seeds 000, 001, 002, 003).

The articles list eleven states and imply each can be seen. This scenario runs, at once in
one lab, the bodies of the scenarios that hold each state (``tcplab.holding.HOLDERS``:
listen, closed, syn-sent, syn-recv, fin-wait1, closing, graceful-close), each asserting its
own holds, and then counts which states the kernel reported in any of their timelines.
Their own claims are judged by their own scenarios; here only C01 is.
"""

from __future__ import annotations

from pathlib import Path

import trio

from tcplab import Lab, Scenario, TcpState, Verdict, Verdicts
from tcplab.catalog import discover
from tcplab.holding import HOLDERS, episodes

scenario = Scenario(
    id="all-states",
    title="Every state of the diagram held and observed in one run (the holders, concurrently)",
    claims=("C01",),
    timeout=60.0,
)
#: Each holder asserts its state for 1 s; the kernel's first report of it can come a little
#: after the hold began when the process is descheduled between two lookups, so the stretch
#: seen in the timeline is judged against a slightly lower bound.
HOLD = 0.9


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    catalog = discover(str(Path(__file__).parent))
    ids = list(dict.fromkeys(holders[0].scenario for holders in HOLDERS.values()))
    parts = [catalog[i] for i in ids]
    async with trio.open_nursery() as nursery:
        for part in parts:
            nursery.start_soon(part.run_body, lab, Verdicts(part.claims))

    # The longest stretch the kernel reported each state for, over every timeline.
    held: dict[str, float] = {}
    for conn in lab.connections:
        for episode in episodes(conn.timeline.to_json()):
            name = episode.state.value
            held[name] = max(held.get(name, 0.0), episode.held)
    missing = [s.value for s in TcpState if s.value not in held]
    brief = [s for s, t in held.items() if t < HOLD]
    verdict = Verdict.CONFIRMED if not missing and not brief else Verdict.PARTLY
    verdicts.record(
        "C01", verdict,
        f"{len(held)} of 11 states reported by the kernel in one run of {', '.join(ids)}; "
        + (f"never seen: {', '.join(missing)}; " if missing else "")
        + (f"held under {HOLD} s: {', '.join(brief)}" if brief else
           f"each held for at least {HOLD} s (shortest {min(held.values()):.2f} s)"),
        longest_held_s={s: round(t, 3) for s, t in sorted(held.items())}, missing=missing,
        scenarios=ids,
    )

if __name__ == "__main__":
    scenario.main()
