"""The CLOSE_WAIT leak: the peer closed, the application never does (claims C18, C19, C20,
C24; seeds 000, 003, 004).

Handlers whose read ends (end of file; a reset) return without close(). A peer that called
close() gets a 1 s FIN_WAIT2 lifetime (TCP_LINGER2, the per-socket tcp_fin_timeout) so the
pair can be watched past it; another peer only half-closes. Then, as in seed 003's lsof
listing, three leaked sockets are shared by two processes (SCM_RIGHTS, which shares the
open file as fork does), their owners are read from /proc/*/fd (lsof's own source on
Linux), and they are killed one at a time. (Seed 003's listing shows two pids holding the
same fds and an empty listing after killing one: the listing does not say why the other
went too.) Nothing here is held on purpose: CLOSE_WAIT is held by the application itself.
"""

from __future__ import annotations

import _closewait as h
from _leaves import path_of, state_of
from tcplab import Lab, Scenario, TcpState, Verdicts
from tcplab.expect import reaches
from tcplab.judges import closewait as m
from tcplab.kernel import sysctl
from tcplab.lab import errno_name

S = TcpState
LINGER, WATCH, SHARED, HOLDERS = 1, 3.0, 3, 2
scenario = Scenario(
    id="close-wait-leak",
    title="CLOSE_WAIT leak: handlers return without close(); the FIN_WAIT2 pair; killing owners",
    claims=("C18", "C19", "C20", "C24"),
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    orphan, reset, half = await lab.connect(), await lab.connect(), await lab.connect()
    orphan.client.set_linger2(LINGER)
    await orphan.client.close()  # the peer closes: its FIN_WAIT2 is an orphan
    await reset.client.abort()  # the peer resets
    await half.client.send_eof()  # the peer only half-closes, and keeps its fd
    eof, errno = await orphan.server.read_eof(), await reset.server.recv_error()
    await half.server.read_eof()
    # The handlers return here without close(): what is left behind?
    paths = (h.left_behind("end of file", "EOF" if eof == b"" else f"{len(eof)} bytes", orphan.server),
             h.left_behind("reset", errno_name(errno), reset.server))
    await reaches(orphan.client, S.FIN_WAIT2)
    await reaches(half.client, S.FIN_WAIT2)
    fw2, half_fw2 = orphan.client.observe(), half.client.observe()
    pair = [state_of(e.observe()) for e in (orphan.client, orphan.server, half.client, half.server)]
    ended = await h.lifetimes(lab, {"orphan": (orphan.client, S.FIN_WAIT2), "cw": (orphan.server, S.CLOSE_WAIT),
                                  "half": (half.client, S.FIN_WAIT2), "half cw": (half.server, S.CLOSE_WAIT)}, WATCH)
    cw = orphan.server.observe()
    await orphan.server.close()  # the fix, in the application
    closed, after = await h.after_leaving(orphan.server, S.CLOSE_WAIT)

    listener = await lab.listen()
    shared = [await lab.connect(listener) for _ in range(SHARED)]
    children = await h.share(lab, [c.server for c in shared], HOLDERS)
    for conn in shared:
        await conn.client.close()
    records = [await reaches(conn.server, S.CLOSE_WAIT) for conn in shared]
    named = h.holders_named(records, [child.pid for child in children])
    left = await h.kill_one_by_one(children, lambda: sum(
        state_of(c.server.observe()) == "CLOSE_WAIT" for c in shared))

    verdicts.judge("C18", m.PassiveCloseWait(
        path_of(orphan, "client"), path_of(orphan, "server"),
        held_s=WATCH if ended["cw"] is None else ended["cw"],
        timer=None if cw is None else cw.timer.kind.value, after_close=after, ended_by_close=closed))
    verdicts.judge("C19", m.ReturnWithoutClose(paths))
    verdicts.judge("C20", m.LeakPair(
        pair_seen=pair == ["FIN_WAIT2", "CLOSE_WAIT"] * 2, orphan_linger_s=LINGER,
        orphan_timer_s=h.timer_s(fw2), orphan_lasted_s=ended["orphan"],
        close_wait_stayed=ended["cw"] is None, watched_s=WATCH, half_timer_s=h.timer_s(half_fw2),
        half_pair_stayed=ended["half"] is None and ended["half cw"] is None,
        tcp_fin_timeout_s=sysctl.read_int("net.ipv4.tcp_fin_timeout")))
    verdicts.judge("C24", m.KillTheOwner(len(records), tuple(c.pid for c in children), named, left))


if __name__ == "__main__":
    scenario.main()
