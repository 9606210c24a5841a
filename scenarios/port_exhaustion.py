"""Running out of local ports, and whether a wider range helps (claims C16, C31; seeds 002, 004).

Seeds 004 and 002 warn that piles of TIME_WAIT (or CLOSE_WAIT) sockets can leave a host
unable to open new connections; seed 002 calls the default ``ip_local_port_range``
(32768-61000, it says) small and advises widening it. In a namespace whose range is eight
ports (``tcp_tw_reuse`` 0, so TIME_WAITs are never taken over), the client connects to
listener A until connect() refuses, turns half of those connections into client-side
TIME_WAITs and the other half into client-side CLOSE_WAITs (the server closed, the client
never does), and asks again. After each refusal it connects to listener B from the same
range. A probe in another namespace with a range twice as wide counts again, and a fresh
namespace tells this kernel's default range.
"""

from __future__ import annotations

import errno
from typing import Any

from tcplab import Lab, Scenario, TcpState, Verdict, Verdicts
from tcplab.expect import ExpectationFailed
from tcplab.isolated import fresh_sysctls, run_isolated
from tcplab.ports import (
    active_close,
    connect_until_refused,
    errno_name,
    passive_close_unanswered,
    port_range,
    try_connect,
    usable,
)

S = TcpState
RANGE = "net.ipv4.ip_local_port_range"
NARROW = "40000 40007"
WIDE = "40000 40015"
ARTICLE_DEFAULT = (32768, 61000)

scenario = Scenario(
    id="port-exhaustion",
    title="A narrowed ephemeral range used up by ESTABLISHED, TIME_WAIT and CLOSE_WAIT holders",
    claims=("C16", "C31"),
    sysctls={RANGE: NARROW, "net.ipv4.tcp_tw_reuse": 0},
)


async def probe_count(lab: Lab) -> dict[str, Any]:
    """Probe (own namespace): connections to one listener until connect() refuses."""
    listener = await lab.listen(backlog=64)
    low, high = port_range()
    held, err = await connect_until_refused(lab, listener, high - low + 1)
    return {"range": f"{low} {high}", "connections": len(held), "refused": errno_name(err),
            "usable": usable([listener])}


def _refused(held: list[Any], err: int, expected: int, what: str) -> None:
    if len(held) != expected or err != errno.EADDRNOTAVAIL:
        raise ExpectationFailed(
            f"{what}: expected {expected} connections then EADDRNOTAVAIL, "
            f"got {len(held)} then {errno_name(err)}"
        )


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    a = await lab.listen(backlog=64)
    b = await lab.listen(backlog=64)
    ports = usable([a, b])
    held, err_established = await connect_until_refused(lab, a, ports)
    _refused(held, err_established, ports, "ESTABLISHED holders")
    held_ports = {c.client.four_tuple.local.port for c in held}
    other, err_b1 = await try_connect(lab, b)
    b_port_1 = other.client.four_tuple.local.port if other else None

    half = len(held) // 2
    states = [(await active_close(c)).state for c in held[:half]]
    states += [(await passive_close_unanswered(c)).state for c in held[half:]]
    if states.count(S.TIME_WAIT) != half or states.count(S.CLOSE_WAIT) != len(held) - half:
        raise ExpectationFailed(f"expected {half} TIME_WAIT and the rest CLOSE_WAIT: {states}")
    # Measured, not asserted: whether TIME_WAIT/CLOSE_WAIT holders block connect() is C16.
    again, err_mixed = await try_connect(lab, a)
    other2, err_b2 = await try_connect(lab, b)
    b_port_2 = other2.client.four_tuple.local.port if other2 else None

    wide = await run_isolated(__file__, "probe_count", sysctls={RANGE: WIDE}, seconds=5.0)
    fresh = await fresh_sysctls([RANGE])
    low, high = (int(v) for v in (fresh[RANGE] or "0 0").split())

    per_destination = other is not None and other2 is not None and b_port_1 in held_ports
    exhausted = err_established == err_mixed == errno.EADDRNOTAVAIL
    figures = {
        "range": NARROW, "usable_ports": ports, "listeners": [a.address.port, b.address.port],
        "errno_established_holders": errno_name(err_established),
        "errno_time_wait_close_wait_holders": errno_name(err_mixed),
        "other_destination": [errno_name(err_b1), errno_name(err_b2)],
        "other_destination_local_ports": [b_port_1, b_port_2],
    }
    verdicts.note("port_exhaustion", figures)
    # Exhausted for A yet open to B: true only per destination, a condition the seeds omit.
    c16 = Verdict.PARTLY if exhausted and per_destination else Verdict.of(exhausted)
    verdicts.record(
        "C16", c16,
        f"{ports} usable ports: connect() to A failed with {errno_name(err_established)} once "
        f"they were ESTABLISHED, and "
        + (f"with {errno_name(err_mixed)}" if again is None else "did NOT fail (it connected)")
        + f" once held by {half} TIME_WAIT and {len(held) - half} CLOSE_WAIT; meanwhile "
        f"listener B accepted from the same range ({errno_name(err_b1)}, {errno_name(err_b2)}; "
        f"port {b_port_1} also serves A): "
        + ("TIME_WAIT and CLOSE_WAIT did not exhaust the ports" if not exhausted
           else "the limit is per destination four-tuple, not the host's" if per_destination
           else "the host as a whole was out of ports"),
        **figures,
    )

    widening_helps = wide["connections"] > len(held)
    default_matches = (low, high) == ARTICLE_DEFAULT
    if widening_helps:
        c31 = Verdict.CONFIRMED if default_matches else Verdict.PARTLY
    else:
        c31 = Verdict.REFUTED
    verdicts.record(
        "C31", c31,
        f"default range in a fresh namespace {low}-{high} ({high - low + 1} ports)"
        + ("" if default_matches else f", not {ARTICLE_DEFAULT[0]}-{ARTICLE_DEFAULT[1]}")
        + f"; connections to one listener before EADDRNOTAVAIL: {len(held)} with {NARROW}, "
        f"{wide['connections']} with {WIDE} ({wide['refused']}): "
        + ("widening gives more, per destination" if widening_helps else "widening gave none"),
        default_range=fresh[RANGE], narrow={"range": NARROW, "connections": len(held)}, wide=wide,
    )


if __name__ == "__main__":
    scenario.main()
