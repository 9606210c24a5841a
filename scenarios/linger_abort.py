"""SO_LINGER with a zero timeout: no TIME_WAIT, at the price of a reset (claim C36; seed 004).

Seed 004 mentions turning lingering off to avoid TIME_WAIT, and warns that the protocol
advises against it. With SO_LINGER {on, 0 s}, close() sends RST instead of FIN: neither
end keeps a TIME_WAIT, the peer's next receive fails with ECONNRESET, and bytes still
queued in the aborting end's send buffer are thrown away. A graceful close of a third
connection shows, for contrast, the TIME_WAIT that the abort avoided.
"""

from __future__ import annotations

import errno

from _leaves import leaves
from tcplab import Lab, Scenario, TcpState, Verdict, Verdicts
from tcplab.expect import reaches
from tcplab.lab import errno_name

S = TcpState
scenario = Scenario(
    id="linger-abort",
    title="SO_LINGER 0 abort: RST instead of FIN, no TIME_WAIT anywhere, queued data lost",
    claims=("C36",),
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    # 1. Abort an idle connection.
    conn = await lab.connect()
    await conn.client.abort()
    # Measured, not asserted: where the abort leaves the client (gone, or TIME_WAIT) is C36.
    await leaves(conn.client, S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2)
    reset = await reaches(conn.server, S.CLOSED)  # dropped from the tables, fd still open
    error = await conn.server.recv_error()

    # 2. Abort with data still queued towards a peer that has not read it.
    busy = await lab.connect(sndbuf=16384, server_rcvbuf=4096)
    queued = busy.client.fill()
    await busy.client.abort()
    await leaves(busy.client, S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2)
    await reaches(busy.server, S.CLOSED)
    delivered = 0
    while True:
        try:
            chunk = await busy.server.recv()
        except ConnectionResetError:
            break
        if not chunk:
            break
        delivered += len(chunk)

    # 3. For contrast: a graceful close of the same kind of connection.
    calm = await lab.connect()
    await calm.client.close()
    await calm.server.read_eof()
    await calm.server.close()
    await reaches(calm.client, S.TIME_WAIT)

    no_time_wait = all(
        S.TIME_WAIT not in c.timeline.path(end) for c in (conn, busy) for end in ("client", "server")
    )
    lost = queued - delivered
    verdicts.record(
        "C36", Verdict.of(no_time_wait and error == errno.ECONNRESET and lost > 0 and reset.fd_only),
        f"after SO_LINGER 0 no end of the aborted connections entered TIME_WAIT (a graceful close "
        f"did); the peer's socket left the kernel's tables while its fd stayed open, and its next "
        f"receive failed with {errno_name(error)}; of {queued} bytes accepted by send(), only "
        f"{delivered} reached the peer: {lost} were lost",
        peer_errno=errno_name(error), bytes_queued=queued, bytes_delivered=delivered,
        bytes_lost=lost,
    )


if __name__ == "__main__":
    scenario.main()
