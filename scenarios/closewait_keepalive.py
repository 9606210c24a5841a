"""CLOSE_WAIT has no timer; keepalive clears it only when the peer is gone (C22, C23; seeds 000, 003).

Seed 003 says CLOSE_WAIT lasts at least two hours, so a hostile peer can pile such sockets
up; seeds 000 and 003 say TCP keepalive lets the system clear CLOSE_WAIT sockets, sooner
with lower settings. Three servers leak a socket the same way: the client half-closes
(shutdown(SHUT_WR)), the server reads end-of-file and never calls close().

1. No keepalive: is there any timer on the CLOSE_WAIT socket (sock_diag), does it hold?
2. Keepalive (1 s idle, 1 s interval, 2 probes) and a client that keeps its half-closed fd
   (FIN_WAIT2, fd open): the probes are answered; does CLOSE_WAIT survive several periods?
3. Keepalive (3 s idle) and a client that is gone: it closed, its orphaned FIN_WAIT2 was
   given 1 s (TCP_LINGER2) and vanished from the tables. The first probe meets no socket,
   the kernel answers RST: what becomes of the CLOSE_WAIT socket, its fd, and what does
   the application see on its next recv() and send()?
"""

from __future__ import annotations

import errno
import socket

import trio

from _keepalive import set_keepalive
from tcplab import (
    Connection,
    End,
    Lab,
    Scenario,
    SocketRecord,
    TcpState,
    TimerKind,
    Verdict,
    Verdicts,
)
from tcplab.expect import ExpectationFailed, gone, holds, reaches
from tcplab.kernel.procfs import counter_delta, netstat_counters
from tcplab.lab import errno_name

S = TcpState
HOLD_S = 3.5  # several keepalive periods of phase 2
GONE_IDLE = 3  # phase 3: the first probe, after the client's 1 s FIN_WAIT2 is long gone
LEFT = "left CLOSE_WAIT"  # among the "timer kinds" seen when a held socket left the state
scenario = Scenario(
    id="closewait-keepalive",
    title="CLOSE_WAIT has no timer; keepalive resets it only once the peer is gone",
    claims=("C22", "C23"),
    private_netns=True,
    timeout=25,
)


async def leak_close_wait(conn: Connection) -> float:
    """Client half-closes; the server reads EOF and keeps the socket. Returns trio time of EOF."""
    await conn.client.send_eof()
    await reaches(conn.server, S.CLOSE_WAIT)
    if await conn.server.read_eof() != b"":
        raise ExpectationFailed("the server read data before end-of-file")
    conn.server.leak()
    return trio.current_time()


async def timers_while_holding(end: End, for_: float) -> tuple[set[str], int]:
    """Watch ``end`` in CLOSE_WAIT for ``for_`` s; the timer kinds seen and the most probes
    out. Measured, not asserted: if it leaves CLOSE_WAIT, "left" is among the kinds."""
    kinds: set[str] = set()
    most = 0
    deadline = trio.current_time() + for_
    while trio.current_time() < deadline:
        try:
            record = await holds(end, S.CLOSE_WAIT, for_=min(0.05, deadline - trio.current_time()))
        except ExpectationFailed:
            kinds.add(LEFT)
            break
        kinds.add(record.timer.kind.value)
        if record.timer.kind is TimerKind.KEEPALIVE:
            most = max(most, record.timer.fired)
    return kinds, most


def next_ops(sock: socket.socket) -> dict[str, str]:
    """What the application gets from recv() then send() on the reset socket (non-blocking)."""
    seen: dict[str, str] = {}
    try:
        data = sock.recv(100)
        seen["recv"] = f"{len(data)} bytes (end of file)"
    except OSError as exc:
        seen["recv"] = errno_name(exc.errno or 0)
    try:
        sock.send(b"late reply")
        seen["send"] = "accepted"
    except OSError as exc:
        seen["send"] = errno_name(exc.errno or 0)
    return seen


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    # Phases 1 and 2 side by side (only phase 2 probes, so the counter is its own).
    bare, alive = await lab.connect(), await lab.connect()
    set_keepalive(alive.server.sock, 1, 1, 2)
    before = netstat_counters()
    await leak_close_wait(bare)
    await leak_close_wait(alive)
    results: dict[str, tuple[set[str], int]] = {}

    async def hold(name: str, end: End) -> None:
        results[name] = await timers_while_holding(end, HOLD_S)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, "bare", bare.server)
        nursery.start_soon(hold, "alive", alive.server)
    probes_alive = counter_delta(before, netstat_counters()).get("TcpExt.TCPKeepAlive", 0)
    client_alive = alive.client.observe()
    bare_kinds, _ = results["bare"]
    alive_kinds, alive_most = results["alive"]

    for conn in (bare, alive):  # done with them: their probes must not count in phase 3
        await conn.server.close()
        await gone(conn.server)

    # Phase 3: the peer is gone before the first probe.
    lost = await lab.connect()
    set_keepalive(lost.server.sock, GONE_IDLE, 1, 3)
    eof_at = await leak_close_wait(lost)
    lost.client.set_linger2(1)
    await lost.client.close()
    await gone(lost.client, timeout=3)  # its FIN_WAIT2 expired: nothing answers for it now
    client_gone_s = trio.current_time() - eof_at
    before = netstat_counters()
    try:  # measured, not asserted: whether the first probe clears it is what C23 is about
        reset: SocketRecord | None = await reaches(lost.server, S.CLOSED, timeout=GONE_IDLE + 3)
    except ExpectationFailed:
        reset = None
    reset_s = trio.current_time() - eof_at
    counters = counter_delta(before, netstat_counters())
    ops = next_ops(lost.server.sock)
    verdicts.note("phase1_no_keepalive", {"timers": sorted(bare_kinds)})
    verdicts.note("phase2_live_peer", {"timers": sorted(alive_kinds), "max_probes_out": alive_most,
                                       "TCPKeepAlive": probes_alive,
                                       "client": client_alive and client_alive.to_json()})
    verdicts.note("phase3_gone_peer", {
        "client_gone_after_s": round(client_gone_s, 3), "reset_after_s": round(reset_s, 3),
        "record": reset and reset.to_json(), "counters": counters, "next_ops": ops,
    })

    no_timer = bare_kinds == {TimerKind.OFF.value}
    survives = probes_alive >= 2 and alive_kinds == {TimerKind.KEEPALIVE.value} and alive_most <= 1
    verdicts.record(
        "C22", Verdict.PARTLY if no_timer and survives else Verdict.REFUTED,
        f"a leaked CLOSE_WAIT socket has no timer at all (sock_diag timer {sorted(bare_kinds)} "
        f"for {HOLD_S} s): it lasts until the application calls close(), not 'two hours'. The "
        "two hours are tcp_keepalive_time, which applies only with SO_KEEPALIVE; even then a "
        f"peer that answers keeps it: {probes_alive} probes answered in {HOLD_S} s, still "
        "CLOSE_WAIT. Only the leaking application can pile them up",
        timers_without_keepalive=sorted(bare_kinds), probes_answered=probes_alive,
    )
    cleared = (
        reset is not None and reset.fd_only and counters.get("TcpExt.TCPKeepAlive", 0) >= 1
        and GONE_IDLE - 0.3 <= reset_s <= GONE_IDLE + 1.5
    )
    if cleared and survives:
        c23 = Verdict.PARTLY
    elif cleared:
        c23 = Verdict.CONFIRMED
    else:
        c23 = Verdict.REFUTED
    verdicts.record(
        "C23", c23,
        (f"with the peer gone, keepalive's first probe ({reset_s:.2f} s after EOF, TCP_KEEPIDLE "
         f"{GONE_IDLE}) met RST (Tcp.OutRsts {counters.get('Tcp.OutRsts', 0)}) and the socket "
         "left the tables, its fd still open (CLOSED, fd only)" if cleared else
         f"with the peer gone, keepalive did not clear CLOSE_WAIT as expected within "
         f"{reset_s:.2f} s (TCP_KEEPIDLE {GONE_IDLE}; kernel: "
         f"{reset.describe() if reset else 'still CLOSE_WAIT'})")
        + f"; then recv() gave {ops['recv']}, send() {ops['send']}. A peer that still answers "
        f"(half-closed, fd open) "
        + (f"kept CLOSE_WAIT alive through {probes_alive} probes: keepalive clears CLOSE_WAIT "
           "only when the peer is gone, lower values only make the first probe come sooner, "
           "and the application must still close() its fd" if survives else
           f"did not keep CLOSE_WAIT alive (timers {sorted(alive_kinds)}, {probes_alive} probes)"),
        reset_after_s=round(reset_s, 3), next_ops=ops, probes_answered=probes_alive,
    )
    if ops.get("send") not in (errno_name(errno.EPIPE), errno_name(errno.ECONNRESET)):
        raise ExpectationFailed(f"send on the reset CLOSE_WAIT socket: {ops}")


if __name__ == "__main__":
    scenario.main()
