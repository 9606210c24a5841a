"""A small SYN flood with tcp_syncookies=2 (claim C32; articles 000, 002).

The articles describe setting 1 (cookies once the SYN queue overflows); the kernel also has
2, a cookie for every SYN and no request socket at all. Here 200 half-open connections (final
ACKs dropped by the listener's filter) go to listen(128), then 8 clients from another address
connect. This run speaks to C32's resistance and default; its queue and cookie counts show
what setting 2 does instead of setting 1 (synflood-cookies-1).
"""

from __future__ import annotations

from _defaults import fresh_netns_ints
from _synflood import SYNCOOKIES, cookies_of, flood
from tcplab import Lab, Scenario, Verdicts

ATTEMPTS, LEGIT = 200, 8
scenario = Scenario(
    id="synflood-cookies-2",
    title="A SYN flood with syncookies=2: a cookie for every SYN, clients that still connect",
    claims=("C32",),
    sysctls={SYNCOOKIES: 2},
    timeout=15,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    wide = await flood(lab, count=ATTEMPTS, backlog=128, legit=LEGIT)
    defaults = await fresh_netns_ints(SYNCOOKIES)

    verdicts.note("flood_listen_128", wide.to_json())
    verdicts.judge("C32", cookies_of(wide, 2, defaults))


if __name__ == "__main__":
    scenario.main()
