"""A small SYN flood with tcp_syncookies=0 (claim C33; article 002).

Article 002 says tcp_max_syn_backlog (1024 by default, to be raised to 8192) sets how many
half-open connections may wait. Here, with syncookies off and tcp_max_syn_backlog=64, 200
half-open connections (final ACKs dropped by the listener's filter: request sockets held in
SYN_RECV on purpose) go to listen(128), above the sysctl, then to listen(16), below it. At
listen(128) 8 clients from another address try too (with no cookies they should fail).
What bounds the requests that wait: the sysctl, the listen backlog, or both? Defaults are
read in a fresh namespace.
"""

from __future__ import annotations

from _defaults import fresh_netns_ints
from _synflood import MAX_SYN_BACKLOG, SYNCOOKIES, backlog_of, flood
from tcplab import Lab, Scenario, Verdicts

SYN_BACKLOG, ATTEMPTS, LEGIT = 64, 200, 8
scenario = Scenario(
    id="synflood-cookies-0",
    title="A SYN flood with syncookies=0: tcp_max_syn_backlog against the listen backlog",
    claims=("C33",),
    sysctls={SYNCOOKIES: 0, MAX_SYN_BACKLOG: SYN_BACKLOG},
    timeout=15,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    wide = await flood(lab, count=ATTEMPTS, backlog=128, legit=LEGIT)
    narrow = await flood(lab, count=ATTEMPTS, backlog=16)
    defaults = await fresh_netns_ints(SYNCOOKIES, MAX_SYN_BACKLOG)

    verdicts.note("flood_listen_128", wide.to_json())
    verdicts.note("flood_listen_16", narrow.to_json())
    verdicts.judge("C33", backlog_of(wide, narrow, 0, SYN_BACKLOG, defaults))


if __name__ == "__main__":
    scenario.main()
