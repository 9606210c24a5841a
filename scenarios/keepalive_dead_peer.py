"""Keepalive drops a silent peer after idle + interval x probes (claim C34; seeds 001-003).

The seeds give the tunables and their defaults: 7200 s idle, 75 s between probes, 9 probes,
so a dead peer goes about 11 minutes after probing starts. The rule is timed with per-socket
values (TCP_KEEPIDLE=1, TCP_KEEPINTVL=1, TCP_KEEPCNT=3: the same timer, tcp_timer.c) against
a peer whose socket drops every segment; the defaults are read in a fresh namespace instead
of waited for. Beside it, a connection without SO_KEEPALIVE whose peer fell silent first
shows whether the rule reaches sockets that did not ask for keepalive.
"""

from __future__ import annotations

from _keepalive import measure_rule
from tcplab import Lab, Scenario, Verdicts

SETTING = (1, 1, 3)  # idle, interval, probes
scenario = Scenario(
    id="keepalive-dead-peer",
    title="Keepalive declares a silent peer dead after idle + interval x probes (ETIMEDOUT)",
    claims=("C34",),
    private_netns=True,
    timeout=20,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    verdicts.judge("C34", await measure_rule(lab, verdicts, SETTING, per_socket=True))


if __name__ == "__main__":
    scenario.main()
