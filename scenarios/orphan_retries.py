"""Orphans in FIN_WAIT1 against a peer that vanished: when the kernel drops them, with
tcp_orphan_retries set to 8 and left at 0 (claim K04). Slow: about 110 s.

The kernel's documentation (ip-sysctl.rst) says tcp_orphan_retries bounds the
retransmissions of a connection closed locally, like tcp_retries2, and gives 8 as its
default, while the sysctl reads 0. One connection joins this namespace (tcp_orphan_retries
8) to a far one (a fresh namespace: 0); the link is then cut both ways (``_vanish``) and
both applications close: two orphans, each retransmitting its FIN into nothing. Their FINs
are captured on each side and both are polled (sock_diag in each namespace) until the
kernel drops them; 0 means 8 if they go together. A FIN_WAIT1 is held here on purpose, by
the partition.
"""

from __future__ import annotations

import trio

from _defaults import fresh_netns_ints
from _vanish import Wire, after, far_listener, fin, four_tuple, gone, pair, vanishing
from tcplab import Lab, Scenario, Verdicts
from tcplab.expect import ExpectationFailed
from tcplab.judges.retries import Abandoned, OrphanRetries

NAME, SET = "net.ipv4.tcp_orphan_retries", 8
scenario = Scenario(
    id="orphan-retries",
    title="Orphaned FIN_WAIT1 against a vanished peer: tcp_orphan_retries 8 and 0",
    claims=("K04",),
    sysctls={NAME: SET},
    timeout=200,
    slow=True,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    async with vanishing() as part:
        client, server = await pair(part, await far_listener(part))
        zero_sysctl = part.sysctl(NAME, far=True)
        part.vanish("far")
        part.vanish("near")
        sides = {far: (Wire(part.capture(far=far)), part.diag(far=far), four_tuple(sock))
                 for far, sock in ((False, client), (True, server))}
        client.close()
        server.close()
        orphans: dict[bool, Abandoned] = {}

        async def watch(far: bool) -> None:
            wire, diag, end = sides[far]
            first = await wire.first(end.local.port, fin, timeout=2)
            if diag.lookup(end) is None:
                raise ExpectationFailed(f"the orphan {end} is not in the kernel's tables")
            dropped_at = await gone(lambda: diag.lookup(end), up_to=170)
            fins = wire.sent(end.local.port, fin)
            orphans[far] = Abandoned(after(fins[1:], first.t),
                                     None if dropped_at is None else dropped_at - first.t)

        async with trio.open_nursery() as nursery:
            for far in sides:
                nursery.start_soon(watch, far)
    default = (await fresh_netns_ints(NAME))[NAME]
    verdicts.judge("K04", OrphanRetries(SET, orphans[False], orphans[True], zero_sysctl, default))



if __name__ == "__main__":
    scenario.main()
