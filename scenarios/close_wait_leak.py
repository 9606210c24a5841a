"""The CLOSE_WAIT leak: the peer closed, the application never does (claims C18, C19, C20,
C24; seeds 000, 003, 004).

Seed 003 describes the bug that fills servers with CLOSE_WAIT: a handler reads end-of-file
and returns without closing. The kernel then keeps the socket in CLOSE_WAIT for as long as
the process holds the fd — no timer runs — and the peer sits in FIN_WAIT2. Here a handler
does exactly that; the kernel names the owner (pid and fd, what lsof would show); a child
process that leaked three such sockets is killed and its CLOSE_WAIT sockets vanish; and
the pair's FIN_WAIT2 half turns out to expire when the peer had called close().
"""

from __future__ import annotations

import os
import sys

import trio

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
from tcplab.expect import eventually, gone, holds, reaches
from tcplab.kernel import sysctl
from tcplab.kernel.procfs import with_owners

S = TcpState
scenario = Scenario(
    id="close-wait-leak",
    title="CLOSE_WAIT leak: the handler returns on EOF without close(); owners; killing the owner",
    claims=("C18", "C19", "C20", "C24"),
)

HOLD = 2.0
CHILD_SOCKETS = 3
# A child that connects, waits for each peer's FIN, and then forgets its sockets.
LEAKY_CHILD = """
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks = [socket.create_connection((host, port)) for _ in range(n)]
print("connected", flush=True)
for s in socks:
    s.recv(1)  # returns b"" at end-of-file; the child never calls close()
print("eof", flush=True)
time.sleep(600)
"""


async def buggy_handler(conn: End) -> None:
    """The bug of C19: on end-of-file, return — without closing."""
    data = await conn.read_eof()
    if not data:
        conn.leak()
        return


async def hold_pairs(*conns: Connection) -> None:
    """Every client holds FIN_WAIT2 and every server CLOSE_WAIT, for HOLD seconds, together."""
    for conn in conns:
        await reaches(conn.client, S.FIN_WAIT2)  # the FIN's ACK may be delayed a few ms

    async def hold(end: End, state: TcpState) -> None:
        await holds(end, state, for_=HOLD)

    async with trio.open_nursery() as nursery:
        for conn in conns:
            nursery.start_soon(hold, conn.server, S.CLOSE_WAIT)
            nursery.start_soon(hold, conn.client, S.FIN_WAIT2)


async def read_line(stream: trio.abc.ReceiveStream) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        chunk = await stream.receive_some(1)
        if not chunk:
            raise EOFError("the leaky child exited early")
        line += chunk
    return line.strip()


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    fin_timeout = sysctl.read_int("net.ipv4.tcp_fin_timeout")

    # 1. The client closes (orphan FIN_WAIT2); the server's handler leaks its end.
    orphan = await lab.connect()
    await orphan.client.close()
    await buggy_handler(orphan.server)
    returned = orphan.server.observe(owners=True)  # the handler has returned: what is left?
    assert returned is not None  # its fd is still open: at worst an fd-only CLOSED record

    # 2. The same with a client that only half-closed (it keeps its fd).
    half = await lab.connect()
    await half.client.send_eof()
    await buggy_handler(half.server)

    await hold_pairs(orphan, half)
    leaked = orphan.server.observe(owners=True)
    fw2 = orphan.client.observe()
    open_fw2 = half.client.observe()
    assert leaked is not None and fw2 is not None and open_fw2 is not None

    # 3. The fix is in the application: close() ends CLOSE_WAIT at once.
    await orphan.server.close()
    await gone(orphan.server)
    await reaches(orphan.client, S.TIME_WAIT)

    passive_only = all(S.CLOSE_WAIT not in c.timeline.path("client") for c in (orphan, half))
    no_timer = leaked.timer.kind is TimerKind.OFF
    verdicts.record(
        "C18", Verdict.of(passive_only and no_timer),
        f"CLOSE_WAIT only on the passive (server) side; it held {HOLD} s with no kernel timer at "
        "all, and ended as soon as the application called close()",
        close_wait_timer=leaked.timer.kind.value,
    )
    verdicts.record(
        "C19", Verdict.of(returned.state is S.CLOSE_WAIT and returned.owners != ()),
        f"a handler that returned on end-of-file without close() left its socket in "
        f"{returned.state.value}, still held by this process "
        f"({', '.join(f'pid {o.pid} fd {o.fd}' for o in returned.owners) or 'no owner'})",
        state_after_handler=returned.state.value,
    )
    orphan_expires = fw2.timer.kind is not TimerKind.OFF
    open_persists = open_fw2.timer.kind is TimerKind.OFF
    verdicts.record(
        "C20", Verdict.PARTLY if orphan_expires and open_persists else Verdict.of(open_persists),
        f"the FIN_WAIT2/CLOSE_WAIT pair appeared both times, but when the peer called close() its "
        f"FIN_WAIT2 carries a {fw2.timer.kind.value} timer ({fw2.timer.remaining:.0f} s, "
        f"tcp_fin_timeout={fin_timeout}) and vanishes, leaving CLOSE_WAIT alone; only a peer that "
        "half-closed and kept its fd shows the pair for as long as the leak lasts",
        orphan_fin_wait2_timer=str(fw2.timer), open_fin_wait2_timer=str(open_fw2.timer),
        tcp_fin_timeout=fin_timeout,
    )

    # 4. C24: a process that leaked CLOSE_WAIT sockets; find it by owner, kill it.
    listener = await lab.listen()
    child = await lab.spawn([sys.executable, "-c", LEAKY_CHILD, listener.address.host,
                             str(listener.address.port), str(CHILD_SOCKETS)])
    assert child.stdout is not None
    accepted = [await listener.accept() for _ in range(CHILD_SOCKETS)]
    if await read_line(child.stdout) != b"connected":
        raise EOFError("the leaky child did not connect")
    for sock in accepted:
        sock.close()
    if await read_line(child.stdout) != b"eof":
        raise EOFError("the leaky child did not see end-of-file")

    port = listener.address.port

    def close_waits() -> list[SocketRecord]:
        return lab.observer.snapshot(port=port, states=[S.CLOSE_WAIT])

    def all_close_waits() -> list[SocketRecord]:
        found = close_waits()
        return found if len(found) == CHILD_SOCKETS else []

    waiting = await eventually(all_close_waits, what=f"{CHILD_SOCKETS} CLOSE_WAIT sockets in the child")
    owned = with_owners(waiting, [child.pid])
    owners = sorted({(o.pid, o.name) for r in owned for o in r.owners})
    fds = sorted(o.fd for r in owned for o in r.owners)

    child.kill()
    await child.wait()
    await eventually(lambda: not close_waits(), what="no CLOSE_WAIT left after the kill")
    left = close_waits()
    named = {pid for pid, _ in owners} == {child.pid}
    verdicts.record(
        "C24", Verdict.of(named and len(fds) == CHILD_SOCKETS and not left),
        f"the kernel tables plus /proc/PID/fd named the owner of the {CHILD_SOCKETS} CLOSE_WAIT "
        f"sockets (pid {child.pid}, fds {fds}; ours was pid {os.getpid()} fd "
        f"{leaked.owners[0].fd if leaked.owners else '?'}); after SIGKILL none is left",
        child_pid=child.pid, child_fds=fds, close_wait_after_kill=len(left),
    )


if __name__ == "__main__":
    scenario.main()
