"""Lowering the keepalive sysctls shortens a dead connection's life (claim C35; seed 000).

Seed 000 advises lowering tcp_keepalive_time, tcp_keepalive_intvl and tcp_keepalive_probes
(its example: 30, 2 and 2) so that dead connections go sooner. The sysctls are per network
namespace and are read each time the keepalive timer runs, so in a namespace with
time=2, intvl=1, probes=2 a socket that only turns SO_KEEPALIVE on (no per-socket values)
should give up on a silent peer 2 + 1 x 2 = 4 s after its last data, instead of the
defaults' 7200 + 75 x 9 s. The verdict is computed from the measured time, the kernel's
defaults (read in a fresh namespace) and the seed's example values.
"""

from __future__ import annotations

from _defaults import fresh_netns_ints
from _keepalive import detect_dead_peer, matches, set_keepalive
from tcplab import Lab, Scenario, TcpState, TimerKind, Verdict, Verdicts
from tcplab.kernel import sysctl

TIME, INTVL, PROBES = 2, 1, 2
NAMES = ("net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_keepalive_intvl",
         "net.ipv4.tcp_keepalive_probes")
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
    plain = await lab.connect()  # no SO_KEEPALIVE: the sysctls should not touch it
    own = await lab.connect()  # SO_KEEPALIVE with its own TCP_KEEPIDLE: overrides the sysctl
    set_keepalive(own.client.sock, 600, None, None)
    conn = await lab.connect()
    set_keepalive(conn.client.sock, None, None, None)  # SO_KEEPALIVE only: the sysctls rule
    found = await detect_dead_peer(lab, conn, TIME + INTVL * PROBES)
    plain_rec, own_rec = plain.client.observe(), own.client.observe()
    untouched = (
        plain_rec is not None and plain_rec.state is TcpState.ESTABLISHED
        and plain_rec.timer.kind is TimerKind.OFF
        and own_rec is not None and own_rec.state is TcpState.ESTABLISHED
        and own_rec.timer.kind is TimerKind.KEEPALIVE and own_rec.timer.remaining > 590
    )
    verdicts.note("other_sockets", {"no_keepalive": plain_rec and plain_rec.to_json(),
                                    "own_keepidle_600": own_rec and own_rec.to_json()})
    verdicts.note("detection", found.to_json())
    fresh = await fresh_netns_ints(*NAMES)
    verdicts.note("fresh_netns_defaults", fresh)
    default_s = fresh[NAMES[0]] + fresh[NAMES[1]] * fresh[NAMES[2]]
    seed_example_s = 30 + 2 * 2
    shorter = matches(found) and found.probes_seen == PROBES and found.detected_s < default_s
    shorter = shorter and untouched
    verdicts.record(
        "C35", Verdict.of(shorter),
        f"with the sysctls at {in_force[0]}/{in_force[1]}/{in_force[2]} a silent peer was "
        f"dropped {found.detected_s:.2f} s after the last data ({found.probes_seen} probes, "
        f"recv() {found.errno_name}), as time + intvl x probes = {found.expected_s} s predicts; "
        f"the fresh-namespace defaults give {default_s} s, the seed's example "
        f"(30/2/2) {seed_example_s} s. Only sockets with SO_KEEPALIVE on and no TCP_KEEPIDLE "
        "of their own follow them: an idle socket without SO_KEEPALIVE had no timer, one with "
        "TCP_KEEPIDLE=600 still had ~600 s to go",
        detected_s=round(found.detected_s, 3), expected_s=found.expected_s,
        default_s=default_s, seed_example_s=seed_example_s, sysctls=in_force,
    )


if __name__ == "__main__":
    scenario.main()
