"""Lowered keepalive sysctls shorten a dead connection's life (claim C35; seed 000).

Seed 000 advises lowering tcp_keepalive_time, _intvl and _probes (its example: 30, 2, 2).
They are per network namespace and read each time the keepalive timer runs, so here, with
2/1/2, a socket that only turns SO_KEEPALIVE on (no per-socket values) should drop a peer
whose socket drops every segment 2 + 1 x 2 = 4 s after the last data, where the defaults
(read in a fresh namespace) give 7200 + 75 x 9 s. Beside it: a connection without
SO_KEEPALIVE whose peer fell silent first, and one whose own TCP_KEEPIDLE=600 overrides the
sysctl. The values in force are read, not assumed: ``tcplab try`` runs this with an
operator's (waits capped by ``--max-wait``).
"""

from __future__ import annotations

from _keepalive import NAMES, measure_rule, set_keepalive, timer_of
from tcplab import Lab, Scenario, Verdicts
from tcplab.judges.timers import LoweredKeepalive
from tcplab.kernel import sysctl

SETTING, OWN_IDLE = (2, 1, 2), 600  # time, intvl, probes
scenario = Scenario(
    id="keepalive-sysctls",
    title="Keepalive sysctls lowered in a namespace: a dead peer goes after time + intvl x probes",
    claims=("C35",),
    sysctls=dict(zip(NAMES, SETTING, strict=True)),
    timeout=20,
    measures=NAMES,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    time, intvl, probes = (sysctl.read_int(n) or 0 for n in NAMES)  # SETTING, unless tried
    own, plain = await lab.connect(), await lab.connect()
    set_keepalive(own.client.sock, OWN_IDLE, None, None)
    set_keepalive(plain.client.sock, None, None, None)  # the sysctl's idle time, on the timer
    verdicts.note("keepalive_only_timer_s", timer_of(plain.client.observe())[1])
    rule = await measure_rule(lab, verdicts, (time, intvl, probes), per_socket=False)
    verdicts.judge("C35", LoweredKeepalive(rule, OWN_IDLE, timer_of(own.client.observe())[1]))


if __name__ == "__main__":
    scenario.main()
