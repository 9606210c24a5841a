"""Lowered keepalive sysctls shorten a dead connection's life (claim C35; seed 000).

Seed 000 advises lowering tcp_keepalive_time, _intvl and _probes (its example: 30, 2, 2).
They are per network namespace and read each time the keepalive timer runs, so here, with
2/1/2, a socket that only turns SO_KEEPALIVE on (no per-socket values) should drop a peer
whose socket drops every segment 2 + 1 x 2 = 4 s after the last data, where the defaults
(read in a fresh namespace) give 7200 + 75 x 9 s. Beside it: a connection without
SO_KEEPALIVE whose peer fell silent first, and one whose own TCP_KEEPIDLE=600 overrides the
sysctl.
"""

from __future__ import annotations

from _defaults import fresh_netns_ints
from _keepalive import (
    NAMES,
    detect_dead_peer,
    error_of,
    set_keepalive,
    silent_after_exchange,
    timer_of,
)
from _leaves import state_of
from tcplab import Lab, Scenario, Verdicts
from tcplab.expect import ExpectationFailed
from tcplab.judges.timers import LoweredKeepalive
from tcplab.kernel import sysctl

TIME, INTVL, PROBES, OWN_IDLE = 2, 1, 2, 600
scenario = Scenario(
    id="keepalive-sysctls",
    title="Keepalive sysctls lowered in a namespace: a dead peer goes after time + intvl x probes",
    claims=("C35",),
    sysctls=dict(zip(NAMES, (TIME, INTVL, PROBES), strict=True)),
    timeout=20,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    in_force = [sysctl.read_int(n) for n in NAMES]
    if in_force != [TIME, INTVL, PROBES]:  # a precondition: the namespace has the lowered values
        raise ExpectationFailed(f"keepalive sysctls in this namespace: {in_force}")
    bare, own, conn = await lab.connect(), await lab.connect(), await lab.connect()
    set_keepalive(own.client.sock, OWN_IDLE, None, None)
    set_keepalive(conn.client.sock, None, None, None)  # SO_KEEPALIVE only: the sysctls rule
    await silent_after_exchange(lab, bare)  # no SO_KEEPALIVE: silent at least as long
    found = await detect_dead_peer(lab, conn, TIME + INTVL * PROBES)
    bare_rec, own_rec = bare.client.observe(), own.client.observe()
    verdicts.note("detection", found.to_json())
    fresh = await fresh_netns_ints(*NAMES)
    detected_s, errno = error_of(found)
    verdicts.judge("C35", LoweredKeepalive(
        time_s=TIME, interval_s=INTVL, probes=PROBES, detected_s=detected_s,
        errno=errno, probes_seen=found.probes_seen, default_time_s=fresh[NAMES[0]],
        default_interval_s=fresh[NAMES[1]], default_probes=fresh[NAMES[2]],
        bare_timer=timer_of(bare_rec)[0], bare_after=state_of(bare_rec),
        own_idle_s=OWN_IDLE, own_idle_timer_s=timer_of(own_rec)[1]))

if __name__ == "__main__":
    scenario.main()
