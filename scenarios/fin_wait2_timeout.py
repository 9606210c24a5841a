"""FIN_WAIT2's timeout, and what tcp_fin_timeout does not touch (claims C25, C26, C27;
seeds 000, 002, 003).

Three closers face peers that never close (each peer keeps its CLOSE_WAIT socket open):

* an orphan: the application called close(), so no fd holds the FIN_WAIT2 socket;
* an orphan with TCP_LINGER2 = 1 s, the per-socket form of the same limit;
* a half-closed socket: shutdown(SHUT_WR), the fd still open (it may still read).

In this namespace ``tcp_fin_timeout`` is 3 s. The kernel arms a timer for the orphans and
drops them when it runs out; the half-closed socket has no timer and outlives the timeout.
Seed 003 says FIN_WAIT2 never times out (C25), seed 002 that tcp_fin_timeout bounds it
(C26), seed 000 that tcp_fin_timeout sets TIME_WAIT's length (C27): TIME_WAIT's timer is
measured here and, for comparison, in a fresh namespace with the default fin timeout.
"""

from __future__ import annotations

from typing import Any

from tcplab import Connection, Lab, Scenario, SocketRecord, TcpState, TimerKind, Verdict, Verdicts
from tcplab.expect import ExpectationFailed, gone, holds, reaches
from tcplab.isolated import run_isolated
from tcplab.kernel import sysctl
from tcplab.ports import active_close

S = TcpState
FIN_TIMEOUT = 3
LINGER2 = 1
SLACK = 1.0  # a FIN_WAIT2 timer fires within a few hundred ms of its figure; 1 s of slack
FIN = "net.ipv4.tcp_fin_timeout"

scenario = Scenario(
    id="fin-wait2-timeout",
    title="tcp_fin_timeout, TCP_LINGER2: orphaned FIN_WAIT2 times out, a half-closed one doesn't",
    claims=("C25", "C26", "C27"),
    sysctls={FIN: FIN_TIMEOUT},
)


async def probe_time_wait_timer(lab: Lab) -> dict[str, Any]:
    """Probe (run in a fresh namespace): TIME_WAIT's timer on entry, and the fin timeout there."""
    conn = await lab.connect()
    record = await active_close(conn)
    if record.state is not S.TIME_WAIT or record.timer.kind is not TimerKind.TIMEWAIT:
        raise ExpectationFailed(f"expected TIME_WAIT and its timer, got {record.describe()}")
    return {"fin_timeout": sysctl.read_int(FIN), "time_wait_timer_s": record.timer.remaining}


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    if sysctl.read_int(FIN) != FIN_TIMEOUT:
        raise ExpectationFailed(f"{FIN} is {sysctl.read(FIN)} in this namespace, not {FIN_TIMEOUT}")
    orphan = await lab.connect()
    lingering = await lab.connect()
    half = await lab.connect()
    lingering.client.set_linger2(LINGER2)

    start = lab.clock()
    await orphan.client.close()
    await lingering.client.close()
    await half.client.send_eof()
    fw_orphan = await reaches(orphan.client, S.FIN_WAIT2)
    fw_linger = await reaches(lingering.client, S.FIN_WAIT2)
    fw_half = await reaches(half.client, S.FIN_WAIT2)
    for conn in (orphan, lingering, half):  # the peers never close: CLOSE_WAIT stays
        await reaches(conn.server, S.CLOSE_WAIT)

    # Measured, not asserted (C25 says there is no timeout): the orphans' timers, and whether
    # and when they left the tables; None if still there well after their timeout.
    async def lifetime(conn: Connection, limit: float) -> float | None:
        try:
            await gone(conn.client, timeout=max(0.0, start + limit - lab.clock()))
        except ExpectationFailed:
            return None
        return lab.clock() - start

    linger_life = await lifetime(lingering, LINGER2 + SLACK + 1)
    orphan_life = await lifetime(orphan, FIN_TIMEOUT + SLACK + 1)
    # The half-closed one must outlive the fin timeout by a clear margin, timer-less.
    rest = max(0.0, start + FIN_TIMEOUT + SLACK - lab.clock())
    try:
        last: SocketRecord | None = await holds(half.client, S.FIN_WAIT2, for_=rest)
    except ExpectationFailed:  # it left FIN_WAIT2: measured, the verdicts say so
        last = None
    half_life = lab.clock() - start
    open_persists = (fw_half.timer.kind is TimerKind.OFF and last is not None
                     and last.timer.kind is TimerKind.OFF)
    timed = {TimerKind.TIMEWAIT, TimerKind.KEEPALIVE}  # the FIN_WAIT2 timer, as sock_diag names it
    orphan_times_out = (fw_orphan.timer.kind in timed and orphan_life is not None
                        and abs(orphan_life - FIN_TIMEOUT) <= SLACK)
    linger_times_out = (fw_linger.timer.kind in timed and linger_life is not None
                        and abs(linger_life - LINGER2) <= SLACK)

    # TIME_WAIT with fin_timeout = 3 s: a plain active close, and an orphan whose FIN_WAIT2
    # receives the peer's FIN before its 3 s run out.
    tw_plain = await active_close(await lab.connect())
    late = await lab.connect()
    await late.client.close()
    await reaches(late.client, S.FIN_WAIT2)
    await late.server.close()
    tw_orphan = await reaches(late.client, S.TIME_WAIT)
    fresh = await run_isolated(__file__, "probe_time_wait_timer", seconds=5.0)
    tw_records = (tw_plain, tw_orphan)
    tw_here = [r.timer.remaining for r in tw_records if r.timer.kind is TimerKind.TIMEWAIT]
    if len(tw_here) != 2:
        shown = " / ".join(r.describe() for r in tw_records)
        raise ExpectationFailed(f"TIME_WAIT without its timer: {shown}")
    tw_default = float(fresh["time_wait_timer_s"])
    changed = any(abs(t - tw_default) > SLACK for t in tw_here)

    figures = {
        "fin_timeout_s": FIN_TIMEOUT, "linger2_s": LINGER2,
        "orphan_timer": str(fw_orphan.timer), "linger2_orphan_timer": str(fw_linger.timer),
        "half_closed_timer": str(fw_half.timer),
        "orphan_lifetime_s": _round(orphan_life), "linger2_lifetime_s": _round(linger_life),
        "half_closed_seen_for_s": round(half_life, 3),
    }
    verdicts.note("fin_wait2", figures)
    if open_persists and orphan_times_out:
        c25 = Verdict.PARTLY
    else:
        c25 = Verdict.of(open_persists and not orphan_times_out)
    verdicts.record(
        "C25", c25,
        f"an orphaned FIN_WAIT2 (close() called) had a {fw_orphan.timer.kind.value} timer and was "
        f"dropped after {_secs(orphan_life)} (tcp_fin_timeout {FIN_TIMEOUT} s); a half-closed one "
        f"(shutdown, fd open) had {'no timer' if open_persists else fw_half.timer} and "
        + (f"was still FIN_WAIT2 after {half_life:.2f} s" if last is not None
           else f"left FIN_WAIT2 within {half_life:.2f} s")
        + (": only sockets the application still holds wait forever"
           if c25 is Verdict.PARTLY else ""),
        **figures,
    )
    if orphan_times_out and linger_times_out:
        c26 = Verdict.PARTLY if open_persists else Verdict.CONFIRMED
    else:
        c26 = Verdict.REFUTED
    verdicts.record(
        "C26", c26,
        f"tcp_fin_timeout={FIN_TIMEOUT}: the orphan left FIN_WAIT2 after {_secs(orphan_life)}; "
        f"TCP_LINGER2={LINGER2} overrode it per socket ({_secs(linger_life)}); but a socket closed "
        f"with shutdown() whose fd stays open is not bound by it ({half_life:.2f} s and counting)",
        **figures,
    )
    verdicts.record(
        "C27", Verdict.of(changed),
        f"TIME_WAIT timer with tcp_fin_timeout={FIN_TIMEOUT}: {tw_here[0]:.1f} s (plain close), "
        f"{tw_here[1]:.1f} s (orphan that got the FIN in FIN_WAIT2); in a fresh namespace "
        f"(tcp_fin_timeout={fresh['fin_timeout']}): {tw_default:.1f} s: "
        + ("changed" if changed else "unchanged: the fin timeout bounds FIN_WAIT2, not TIME_WAIT"),
        time_wait_timer_s_fin3=[round(t, 3) for t in tw_here],
        time_wait_timer_s_default=round(tw_default, 3), default_fin_timeout=fresh["fin_timeout"],
    )


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def _secs(seconds: float | None) -> str:
    return "never (still there)" if seconds is None else f"{seconds:.2f} s"


if __name__ == "__main__":
    scenario.main()
