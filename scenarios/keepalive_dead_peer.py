"""Keepalive drops a silent peer after idle + interval x probes (claim C34; seeds 001-003).

The seeds give the tunables and their defaults: 7200 s idle, 75 s between probes, 9 probes,
so a dead peer goes about 11 minutes after probing starts. The rule is timed with per-socket
values (TCP_KEEPIDLE=1, TCP_KEEPINTVL=1, TCP_KEEPCNT=3: the same timer, tcp_timer.c) against
a peer whose socket drops every segment; the defaults are read in a fresh namespace instead
of waited for. Beside it, a connection without SO_KEEPALIVE whose peer fell silent first
shows whether the rule reaches sockets that did not ask for keepalive.
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
from tcplab.judges.timers import KeepaliveDefaults

IDLE, INTERVAL, PROBES = 1, 1, 3
scenario = Scenario(
    id="keepalive-dead-peer",
    title="Keepalive declares a silent peer dead after idle + interval x probes (ETIMEDOUT)",
    claims=("C34",),
    private_netns=True,
    timeout=20,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    bare, conn = await lab.connect(), await lab.connect()
    set_keepalive(conn.client.sock, IDLE, INTERVAL, PROBES)
    await silent_after_exchange(lab, bare)  # no SO_KEEPALIVE: silent at least as long
    found = await detect_dead_peer(lab, conn, IDLE + INTERVAL * PROBES)
    bare_rec = bare.client.observe()
    verdicts.note("detection", found.to_json())
    fresh = await fresh_netns_ints(*NAMES)
    detected_s, errno = error_of(found)
    verdicts.judge("C34", KeepaliveDefaults(
        idle_s=IDLE, interval_s=INTERVAL, probes=PROBES, detected_s=detected_s, errno=errno,
        probes_seen=found.probes_seen, default_time_s=fresh[NAMES[0]],
        default_interval_s=fresh[NAMES[1]], default_probes=fresh[NAMES[2]],
        bare_timer=timer_of(bare_rec)[0], bare_after=state_of(bare_rec)))

if __name__ == "__main__":
    scenario.main()
