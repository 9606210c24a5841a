"""What ends a leaked CLOSE_WAIT: nothing, or keepalive (C22 seed 003; C23 seeds 000, 003).

Servers read end-of-file and never close (CLOSE_WAIT held on purpose). Without SO_KEEPALIVE
the socket has no timer; with it, the only timer is keepalive (tcp_timer.c), whose first
probe is tcp_keepalive_time away: the namespace is fresh, so that is the kernel's default,
read from sock_diag instead of waited for. Per-socket values (TCP_KEEPIDLE/INTVL/CNT: the
same timer) time the clearing against a silent peer (its socket drops every segment), a
lower setting next to a higher one, beside a socket without SO_KEEPALIVE and one whose peer
still answers. Ten more peers half-close against a leaking server and a closing one.
"""

from __future__ import annotations

import socket

from _keepalive import in_state, leak_close_wait, set_keepalive, silence, timer_of, watch_drops
from _leaves import state_of
from tcplab import Lab, Scenario, TcpState, Verdicts
from tcplab.judges.timers import LATE_S, CloseWaitBound, KeepaliveClearsCloseWait
from tcplab.kernel import sysctl
from tcplab.lab import errno_name

S = TcpState
LOW, HIGH, LIVE = (1, 1, 1), (2, 1, 2), (1, 1, 2)  # idle, interval, probes: 2 s, 4 s, 3 s
PILE = 10
scenario = Scenario(id="closewait-keepalive", claims=("C22", "C23"), private_netns=True,
                    title="CLOSE_WAIT has no timer; keepalive clears it only for SO_KEEPALIVE "
                          "sockets whose peer is silent", timeout=30)


def total(setting: tuple[int, int, int]) -> int:  # when a silent peer is dropped
    return setting[0] + setting[1] * setting[2]


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    bare, live, low, high, default = [await lab.connect() for _ in range(5)]
    for conn, setting in ((live, LIVE), (low, LOW), (high, HIGH), (default, (None,) * 3)):
        set_keepalive(conn.server.sock, *setting)  # default: the namespace's (default) sysctls
    fin = {name: await leak_close_wait(conn) for name, conn in
           (("bare", bare), ("live", live), ("low", low), ("high", high), ("default", default))}
    for conn in (bare, low, high):  # these peers fall silent
        silence(conn.client)
    bare_timer, bare_timer_s = timer_of(bare.server.observe())
    default_timer, default_timer_s = timer_of(default.server.observe())
    leaking = [await lab.connect() for _ in range(PILE)]
    closing = [await lab.connect() for _ in range(PILE)]
    for conn in leaking + closing:
        await leak_close_wait(conn, close=conn in closing)

    until = fin["high"] + total(HIGH) + LATE_S + 0.5
    drops = await watch_drops(lab, {"low": (low.server, fin["low"]),
                                    "high": (high.server, fin["high"])}, until)
    bare_rec, live_rec = bare.server.observe(), live.server.observe()
    pending = low.server.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    verdicts.judge("C22", CloseWaitBound(
        bare_timer, bare_timer_s, state_of(bare_rec), lab.clock() - fin["bare"],
        default_timer, default_timer_s, sysctl.read_int("net.ipv4.tcp_keepalive_time"),
        PILE, in_state(leaking, S.CLOSE_WAIT), in_state(closing, S.CLOSE_WAIT)))
    verdicts.judge("C23", KeepaliveClearsCloseWait(
        total(LOW), drops["low"], total(HIGH), drops["high"], errno_name(pending) if pending else None,
        timer_of(bare_rec)[0], state_of(bare_rec),
        total(LIVE), state_of(live_rec), lab.clock() - fin["live"]))


if __name__ == "__main__":
    scenario.main()
