"""CLOSED, as the kernel can show it (C01; seeds 000, 001, 002, 003).

CLOSED is the diagram's "no connection". The kernel shows it in three ways, all held here
for a second: a socket that is bound but has never listened or connected is listed by
sock_diag in CLOSED (the kernel's TCP_BOUND_INACTIVE); a socket reset by its peer leaves the
kernel's tables while its owner still holds the fd (a CLOSED, fd-only record: the
application learns of it on its next call, ECONNRESET); and the end that sent the reset
is simply gone, absent from every table.
"""

from __future__ import annotations

import errno
import socket

import trio

from tcplab import Address, Lab, Scenario, TcpState, Verdicts
from tcplab.expect import ExpectationFailed, gone, holds, reaches
from tcplab.lab import errno_name

S = TcpState
HOLD = 1.0
scenario = Scenario(
    id="closed",
    title="CLOSED: a bound socket that never listened, a reset socket's fd, an absent four-tuple",
    claims=(),
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    conn = await lab.connect()
    client, server = conn.ends
    await client.abort()  # RST: the client's socket is gone at once
    await gone(client)
    await reaches(server, S.CLOSED)  # the kernel dropped it; only our fd holds it

    with socket.socket(lab.family, socket.SOCK_STREAM) as bound:
        bound.bind((lab.host, 0))
        local = Address.of(bound.getsockname())
        label = f"bound {local}"
        deadline = trio.current_time() + HOLD
        while True:  # held: the bound socket listed as CLOSED, the reset one CLOSED, fd only
            listed = [r for r in lab.observer.snapshot(port=local.port, states=[S.CLOSED], bound=True)
                      if r.four_tuple.local == local]
            last = trio.current_time() >= deadline
            conn.timeline.add(lab.clock(), label, listed[0] if listed else None, "sock_diag dump",
                              force=last)
            if len(listed) != 1 or listed[0].state is not S.CLOSED:
                raise ExpectationFailed(f"expected {local} listed once, CLOSED; sock_diag: {listed}\n"
                                        + conn.timeline.render())
            record = await holds(server, S.CLOSED, for_=0.0, mark=last)
            if not record.fd_only:
                raise ExpectationFailed(f"expected a fd-only record: {record.describe()}")
            if last:
                break
            await trio.sleep(0.02)
        inactive = listed[0]
    # Closed: the bound socket is gone from the tables too.
    if [r for r in lab.observer.snapshot(port=local.port, states=[S.CLOSED], bound=True) if r.four_tuple.local == local]:
        raise ExpectationFailed(f"{local} still listed after close()")
    conn.timeline.add(lab.clock(), label, None, "sock_diag dump")

    error = await server.recv_error()
    if error != errno.ECONNRESET:
        raise ExpectationFailed(f"expected ECONNRESET on the reset socket, got {errno_name(error)}")
    await holds(server, S.CLOSED, for_=0.0)
    await server.close()
    await gone(server)
    await gone(client)

    verdicts.note("closed", {
        "held_s": HOLD, "bound_never_listened": inactive.to_json(),
        "reset_end_errno": errno_name(error),
    })


if __name__ == "__main__":
    scenario.main()
