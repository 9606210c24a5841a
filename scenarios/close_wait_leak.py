"""The CLOSE_WAIT leak: the peer closed, the application never does (claims C18, C19, C20,
C24; seeds 000, 003, 004).

Handlers whose read ends (end of file; a reset) return without close(). A peer that called
close() gets a 1 s FIN_WAIT2 lifetime (TCP_LINGER2, the per-socket tcp_fin_timeout) so the
pair can be watched past it; another peer only half-closes. Then, as in seed 003's lsof
listing, three leaked sockets at a time go to an owner: a single process, a multi-threaded
process, a server whose child inherited them; their holders are read from /proc/*/fd
(lsof's own source on Linux) and killed in turn, the server first. Nothing here is held on
purpose: CLOSE_WAIT is held by the application itself.
"""

from __future__ import annotations

import _closewait as h
from tcplab import Lab, Scenario, TcpState, Verdicts
from tcplab.expect import reaches, within
from tcplab.judges import closewait as m
from tcplab.kernel import sysctl
from tcplab.measure import path_of, state_of

S = TcpState
LINGER, WATCH, SHARED = 1, 3.0, 3
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
    reads = [await h.read_outcome(e) for e in (orphan.server, reset.server, half.server)]
    # The handlers return here without close(): what is left behind?
    paths = (h.left_behind("end of file", reads[0], orphan.server), h.left_behind("reset", reads[1], reset.server))
    await within(lambda: all(state_of(e.observe()) == "FIN_WAIT2" for e in (orphan.client, half.client)), timeout=5)
    fw2, half_fw2 = orphan.client.observe(), half.client.observe()
    pair = [state_of(e.observe()) for e in (orphan.client, orphan.server, half.client, half.server)]
    ended = await h.lifetimes(lab, {"orphan": (orphan.client, S.FIN_WAIT2), "cw": (orphan.server, S.CLOSE_WAIT),
                                  "half": (half.client, S.FIN_WAIT2), "half cw": (half.server, S.CLOSE_WAIT)}, WATCH)
    cw = orphan.server.observe()
    await orphan.server.close()  # the fix, in the application
    closed, after = await h.after_leaving(orphan.server, S.CLOSE_WAIT)

    listener, owners = await lab.listen(), []
    for kind in (m.ONE, m.THREADS, m.FORKED):
        conns = [await lab.connect(listener) for _ in range(SHARED)]
        for conn in conns:
            await conn.client.close()
        records = [await reaches(conn.server, S.CLOSE_WAIT) for conn in conns]
        owners.append(await h.owner_trial(lab, kind, conns, records))

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
    verdicts.judge("C24", m.KillTheOwner(tuple(owners)))


if __name__ == "__main__":
    scenario.main()
