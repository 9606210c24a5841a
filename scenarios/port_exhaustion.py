"""Running out of local ports, and whether a wider range helps (claims C16, C31; seeds 002, 004).

Seeds 004 and 002 warn that piles of TIME_WAIT (or CLOSE_WAIT) sockets can leave a host
unable to open or accept new connections. Each kind of holder gets a namespace of its own
whose range is eight ports (probe ``holders`` in ``_exhaust.py``): every port is held, then
new connections are asked for during 2 s, to the same listener and to another one. Client
TIME_WAITs are tried under tcp_tw_reuse 0 and under this kernel's default (2: loopback
traffic may take a TIME_WAIT over after tcp_tw_reuse_delay, 1 s), the default both on
127.0.0.1 and on 192.0.2.1 put on ``lo`` (outside 127/8: what the default does off loopback).

Seed 002 calls the default ``ip_local_port_range`` (32768-61000, it says) small and advises
1024-65000. A fresh namespace tells this kernel's default; both ranges are then counted
scaled down 1:100 (sizes in proportion; a namespace each): connections to one listener
until connect() refuses, against the ports usable.
"""

from __future__ import annotations

from _exhaust import NARROW, NETWORK, PROBE, WINDOW, as_try, range_count
from tcplab import Lab, Scenario, Verdicts
from tcplab.isolated import fresh_sysctls, run_isolated
from tcplab.judges.timewait import PortExhaustion, PortRangeWidening

RANGE = "net.ipv4.ip_local_port_range"
REUSE = "net.ipv4.tcp_tw_reuse"
HOLDERS = [("client TIME_WAIT", {REUSE: 0}, None), ("client TIME_WAIT", {}, None),
           ("client TIME_WAIT", {}, NETWORK), ("client CLOSE_WAIT", {}, None),
           ("server TIME_WAIT", {}, None)]  # (kind, sysctls, address; None: 127.0.0.1)
SCALE = 0.01
SCALED = {"narrow": "40000 40281", "wide": "40000 40639"}  # 28233 and 63977 ports / 100

scenario = Scenario(
    id="port-exhaustion",
    title="A narrowed ephemeral range held by TIME_WAIT and CLOSE_WAIT; ranges counted",
    claims=("C16", "C31"),
    requires=("root",),
    timeout=150,  # eight probes one after the other: ~10 s alone, several times that under load
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    tries = [await run_isolated(PROBE, "holders", sysctls={**NARROW, **extra},
                                seconds=WINDOW + 8, kind=kind, address=address)
             for kind, extra, address in HOLDERS]
    counts = {name: await run_isolated(PROBE, "count", sysctls={RANGE: value}, seconds=20)
              for name, value in SCALED.items()}
    default = (await fresh_sysctls([RANGE]))[RANGE]

    verdicts.note("probes", {"holders": tries, "counts": counts})
    verdicts.judge("C16", PortExhaustion(tuple(as_try(t) for t in tries), WINDOW))
    low, high = (int(v) for v in (default or "0 0").split())
    verdicts.judge("C31", PortRangeWidening(
        None if default is None else (low, high), range_count(counts["narrow"]),
        range_count(counts["wide"]), scale=SCALE))


if __name__ == "__main__":
    scenario.main()
