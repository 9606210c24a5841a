"""An old incarnation's segment, replayed late (claim C13; seeds 000, 002).

Two seeds give TIME_WAIT a second job: while it lasts, no new connection can use the same
four-tuple, so a delayed duplicate of the connection that just ended cannot be taken for
new data. Each path below runs in a namespace of its own (probe ``same_tuple`` in
``_olddup.py``): a connection carries a marked segment (captured on ``lo``), closes client
first, and a new connection asks for the TIME_WAIT's four-tuple for 2 s; the captured
segment is then injected at whatever holds the four-tuple. What decides whether the
TIME_WAIT is taken over: the path (a plain connect() or an explicit bind() with
SO_REUSEADDR), timestamps, and tcp_tw_reuse, left at this kernel's default (2: loopback
only) so that 192.0.2.1 on ``lo`` stands for a real network and 127.0.0.1 for loopback.
"""

from __future__ import annotations

from _olddup import NETWORK, PROBE, RANGE, WINDOW, as_try
from tcplab import Lab, Scenario, Verdicts
from tcplab.isolated import run_isolated
from tcplab.judges.timewait import OldDuplicates

#: name -> (how the new connection asks, extra sysctls, address on lo; None: 127.0.0.1)
PATHS: dict[str, tuple[str, dict[str, str | int], str | None]] = {
    f"connect() on {NETWORK}": ("connect", {}, NETWORK),
    "connect() on 127.0.0.1": ("connect", {}, None),
    f"bind()+SO_REUSEADDR on {NETWORK}": ("bind", {}, NETWORK),
    f"bind()+SO_REUSEADDR on {NETWORK}, timestamps off": (
        "bind", {"net.ipv4.tcp_timestamps": 0}, NETWORK),
}

scenario = Scenario(
    id="old-duplicates",
    title="An old incarnation's segment against TIME_WAIT and against a new connection that "
    "took its four-tuple over, path by path",
    claims=("C13",),
    requires=("root", "capture"),
    timeout=90,  # four probes one after the other: ~6 s alone, ~25 s under load
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    answers = {}
    for name, (path, settings, address) in PATHS.items():
        answers[name] = await run_isolated(
            PROBE, "same_tuple", sysctls={**RANGE, **settings}, seconds=WINDOW + 8,
            path=path, address=address)
    verdicts.note("probes", answers)  # counters, and what became of the TIME_WAITs
    verdicts.judge("C13", OldDuplicates(
        tuple(as_try(name, a) for name, a in answers.items()), WINDOW))


if __name__ == "__main__":
    scenario.main()
