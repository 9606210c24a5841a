"""What ends a leaked CLOSE_WAIT: nothing, or keepalive (C22 seed 003; C23 seeds 000, 003).

Servers read end-of-file and never close (CLOSE_WAIT held on purpose). Without SO_KEEPALIVE
the socket has no timer; with it, the only timer is keepalive (tcp_timer.c), its first probe
tcp_keepalive_time away (a fresh namespace: the default), read from sock_diag. Per-socket
values (the same timer) time the clearing against a silent peer (its socket drops every
segment), lower next to higher, beside a socket without SO_KEEPALIVE; against a peer that
close()d (TCP_LINGER2 = 1 s ends its orphaned FIN_WAIT2 before the first probe) and one that
only shut down (it answers). Ten more peers half-close against a leaking and a closing server.
"""

from __future__ import annotations

import _keepalive as ka
from tcplab import Lab, Scenario, Verdicts
from tcplab import TcpState as S
from tcplab.judges.timers import LATE_S, CloseWaitBound, KeepaliveClearsCloseWait
from tcplab.kernel import sysctl
from tcplab.measure import state_of

# idle, interval, probes: 2 s, 4 s, 3 s, 4 s (first probe at 2 s, after the peer's 1 s)
LOW, HIGH, LIVE, CLOSING, LINGER2 = (1, 1, 1), (2, 1, 2), (1, 1, 2), (2, 1, 2), 1
scenario = Scenario(id="closewait-keepalive", claims=("C22", "C23"), private_netns=True,
                    title="CLOSE_WAIT has no timer; keepalive clears it only for SO_KEEPALIVE "
                          "sockets, once the peer is silent or gone", timeout=30)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    bare, live, low, high, closing, default = [await lab.connect() for _ in range(6)]
    for conn, setting in ((live, LIVE), (low, LOW), (high, HIGH), (closing, CLOSING),
                          (default, (None,) * 3)):
        ka.set_keepalive(conn.server.sock, *setting)  # default: the fresh namespace's sysctls
    closing.client.set_linger2(LINGER2)
    fin = {name: await ka.leak_close_wait(conn, peer_closes=conn is closing) for name, conn in
           (("bare", bare), ("live", live), ("low", low), ("high", high), ("closing", closing),
            ("default", default))}
    for conn in (bare, low, high):  # these peers fall silent
        ka.silence(conn.client)
    bare_timer, bare_timer_s = ka.timer_of(bare.server.observe())
    default_timer, default_timer_s = ka.timer_of(default.server.observe())
    leaking, closed = await ka.pile_up(lab, 10)

    until = max(fin.values()) + max(ka.total(HIGH), ka.total(CLOSING)) + LATE_S + 0.5
    drops = await ka.watch_drops(lab, {name: (conn.server, fin[name]) for name, conn in
                                       (("low", low), ("high", high), ("closing", closing))}, until)
    bare_rec, live_rec = bare.server.observe(), live.server.observe()
    verdicts.judge("C22", CloseWaitBound(
        bare_timer, bare_timer_s, state_of(bare_rec), lab.clock() - fin["bare"],
        default_timer, default_timer_s, sysctl.read_int("net.ipv4.tcp_keepalive_time"),
        len(leaking), ka.in_state(leaking, S.CLOSE_WAIT), ka.in_state(closed, S.CLOSE_WAIT)))
    verdicts.judge("C23", KeepaliveClearsCloseWait(
        ka.total(LOW), drops["low"], ka.total(HIGH), drops["high"], ka.pending_error(low.server),
        ka.timer_of(bare_rec)[0], state_of(bare_rec), CLOSING[0], ka.total(CLOSING), LINGER2,
        drops["closing"], ka.pending_error(closing.server), ka.total(LIVE), state_of(live_rec),
        lab.clock() - fin["live"]))


if __name__ == "__main__":
    scenario.main()
