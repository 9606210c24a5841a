"""Keepalive finds a dead peer after idle + interval x probes (claim C34; seeds 001, 002, 003).

The seeds give the keepalive tunables and their defaults: 7200 s of idleness before the
first probe, 75 s between probes, 9 unanswered probes before the connection is declared
dead, so a dead peer goes about 11 minutes after probing starts. Waiting two hours is not a
test, so this scenario measures the rule with per-socket values (TCP_KEEPIDLE=1,
TCP_KEEPINTVL=1, TCP_KEEPCNT=3: the same timer, per socket), reads the defaults in a fresh
network namespace, and computes the verdict for the defaults from the measured rule.
"""

from __future__ import annotations

from _defaults import fresh_netns_ints
from _keepalive import detect_dead_peer, matches, set_keepalive
from tcplab import Lab, Scenario, Verdict, Verdicts

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
    conn = await lab.connect()
    set_keepalive(conn.client.sock, IDLE, INTERVAL, PROBES)
    found = await detect_dead_peer(lab, conn, IDLE + INTERVAL * PROBES)
    verdicts.note("detection", found.to_json())

    names = ("net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_keepalive_intvl",
             "net.ipv4.tcp_keepalive_probes")
    fresh = await fresh_netns_ints(*names)
    time_, intvl, probes = (fresh[n] for n in names)
    verdicts.note("fresh_netns_defaults", fresh)
    rule = matches(found) and found.probes_seen == PROBES
    probing_min = intvl * probes / 60
    defaults_as_claimed = (time_, intvl, probes) == (7200, 75, 9)
    total_s = time_ + intvl * probes
    verdict = Verdict.of(rule and defaults_as_claimed,
                         otherwise=Verdict.OUTDATED if rule else Verdict.REFUTED)
    verdicts.record(
        "C34", verdict,
        f"with idle {IDLE} s, interval {INTERVAL} s, {PROBES} probes the silent peer was declared "
        f"dead {found.detected_s:.2f} s after the last data (rule: {found.expected_s} s), "
        f"{found.probes_seen} probes on the timer (TCPKeepAlive "
        f"{found.counters.get('TcpExt.TCPKeepAlive', 0)}), recv() failed with "
        f"{found.errno_name}, the socket {found.after}. Fresh-namespace defaults "
        f"{time_}/{intvl}/{probes}: dead {total_s} s after the last data, "
        f"{probing_min:.2f} min after probing starts",
        detected_s=round(found.detected_s, 3), expected_s=found.expected_s,
        probes=found.probes_seen, errno=found.errno_name, defaults=[time_, intvl, probes],
        default_total_s=total_s, default_probing_min=round(probing_min, 2),
    )


if __name__ == "__main__":
    scenario.main()
