"""LISTEN and ESTABLISHED, held side by side (C01; seeds 000, 001, 002, 003).

The simplest two states of the diagram, shown the way the kernel holds them: a listener
(its accept queue length and limit are what sock_diag reports as its queues) and a
connection accepted from it, both held for a second. Closing the listener then removes it
from the kernel's tables without touching the accepted connection, which is an independent
socket; finally the connection is closed and each end's final state is asserted.
"""

from __future__ import annotations

from tcplab import Lab, Scenario, TcpState, Verdicts
from tcplab.expect import ExpectationFailed, gone, holds, reaches

S = TcpState
HOLD = 1.0
BACKLOG = 8
scenario = Scenario(
    id="listen",
    title="LISTEN and ESTABLISHED held; the listener closes, the accepted connection stays",
    claims=(),
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    listener = await lab.listen(backlog=BACKLOG)
    conn = await lab.connect(listener)
    watcher = conn.join(listener.as_end())
    listening = await holds(watcher, S.LISTEN, for_=HOLD, mark=True)  # observes both ends too
    if (listening.recv_q, listening.send_q) != (0, BACKLOG):
        raise ExpectationFailed(f"expected an empty accept queue of {BACKLOG}: {listening.describe()}")
    for end in conn.ends:
        await holds(end, S.ESTABLISHED, for_=0.0)  # and they were ESTABLISHED all along
    if conn.timeline.path("client") != [S.ESTABLISHED] or conn.timeline.path("server") != [S.ESTABLISHED]:
        raise ExpectationFailed("a connection end left ESTABLISHED while the listener was held")

    await listener.close()
    await gone(watcher)
    await holds(conn.server, S.ESTABLISHED, for_=0.1)  # the accepted socket outlives its listener
    await conn.client.close()
    await conn.server.read_eof()
    await conn.server.close()
    await reaches(conn.client, S.TIME_WAIT)
    await gone(conn.server)

    verdicts.note("listen", {"held_s": HOLD, "listener": listening.to_json()})


if __name__ == "__main__":
    scenario.main()
