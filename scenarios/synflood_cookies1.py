"""A small SYN flood with tcp_syncookies=1 (claims C32, C33; articles 000, 002).

Articles 000 and 002 say that with tcp_syncookies=1 the kernel answers with SYN cookies once
the SYN queue overflows, so a small flood does no harm (default 0); article 002 adds that
tcp_max_syn_backlog sets how many half-open connections may wait. Here (syncookies=1,
tcp_max_syn_backlog=64):

1. 200 half-open connections at listen(128), their final ACKs dropped by the listener's
   filter (request sockets held in SYN_RECV on purpose), then 8 clients from another address
   connect: does the queue take 128, do the other 72 SYNs get cookies, do the 8 complete?
2. the same flood at listen(16), no other clients: what bounds the queue there?

Defaults are read in a fresh namespace.
"""

from __future__ import annotations

from _defaults import fresh_netns_ints
from _synflood import MAX_SYN_BACKLOG, SYNCOOKIES, backlog_of, cookies_of, flood
from tcplab import Lab, Scenario, Verdicts

SYN_BACKLOG, ATTEMPTS, LEGIT = 64, 200, 8
scenario = Scenario(
    id="synflood-cookies-1",
    title="A SYN flood with syncookies=1: the queue, the cookies, and clients that still connect",
    claims=("C32", "C33"),
    sysctls={SYNCOOKIES: 1, MAX_SYN_BACKLOG: SYN_BACKLOG},
    timeout=15,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    wide = await flood(lab, count=ATTEMPTS, backlog=128, legit=LEGIT)
    narrow = await flood(lab, count=ATTEMPTS, backlog=16)
    defaults = await fresh_netns_ints(SYNCOOKIES, MAX_SYN_BACKLOG)

    verdicts.note("flood_listen_128", wide.to_json())
    verdicts.note("flood_listen_16", narrow.to_json())
    verdicts.judge("C32", cookies_of(wide, 1, defaults))
    verdicts.judge("C33", backlog_of(wide, narrow, 1, SYN_BACKLOG, defaults))


if __name__ == "__main__":
    scenario.main()
