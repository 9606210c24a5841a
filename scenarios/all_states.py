"""All eleven states produced and observed in one run (C01; seeds 000, 001, 002, 003).

The articles list eleven states and imply each can be seen. This scenario runs, in one lab,
the bodies of the scenarios that hold each state (``tcplab.holding.HOLDERS``: listen,
syn-sent, syn-recv, fin-wait1, closing, graceful-close, closed), one after the other in
this run's private namespace, closing first (its valve holds every packet on lo). A holder
that fails is recorded, not fatal: what is
measured is which states the kernel reported in any timeline (snapshots, with the longest
stretch), and which only its traced transitions went through. Their own claims are judged
by their own scenarios; here only C01 is.
"""

from __future__ import annotations

from pathlib import Path

from tcplab import Lab, Scenario, Verdicts
from tcplab.catalog import discover
from tcplab.holding import HOLDERS, episodes
from tcplab.judges.closing import StatesObserved

scenario = Scenario(
    id="all-states",
    title="Every state of the diagram held and observed in one run (the holders)",
    claims=("C01",), private_netns=True, requires=("capture",), timeout=60.0,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    catalog = discover(str(Path(__file__).parent))
    parts = [catalog[i] for i in dict.fromkeys(h[0].scenario for h in HOLDERS.values())]
    failed: list[str] = []

    async def attempt(part: Scenario) -> None:
        try:
            await part.run_body(lab, Verdicts(part.claims))
        except Exception as exc:  # a failed or broken holder: measured by what it misses
            failed.append(f"{part.id}: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}")

    # One after the other: syn-sent counts the namespace's listen drops exactly; closing's
    # valve holds every packet on lo, so it goes first, before others leave retransmissions.
    for part in sorted(parts, key=lambda p: not p.needs_netns):
        await attempt(part)

    seen: dict[str, float] = {}  # the longest stretch of each state, over every timeline
    for conn in lab.connections:
        for ep in episodes(conn.timeline.to_json()):
            seen[ep.state.value] = max(seen.get(ep.state.value, 0.0), ep.held)
    if lab.recording is not None:
        lab.recording.sync()
    traced = {s.value for conn in lab.connections for e in conn.timeline.events
              if e.kind == "state" for s in (e.old, e.new) if s is not None}
    verdicts.judge("C01", StatesObserved(
        tuple(sorted(seen.items())), tuple(sorted(traced)),
        tuple(p.id for p in parts), tuple(failed)))


if __name__ == "__main__":
    scenario.main()
