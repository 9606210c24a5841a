"""Which side gathers the TIME_WAIT sockets: server closing first or clients closing first
(claim C14; seed 004).

Seed 004 advises servers not to close first, so that TIME_WAIT sockets gather at the
clients and not at the server. In a private namespace, ``N`` connections are closed with
the server first (its application closes; each client closes after reading end-of-file),
then ``N`` with the clients first; after each batch the TIME_WAIT sockets are counted by
side: the listener's port is the server's local port, every other local port a client's.
One connection of each order goes through the lab too, for the report's drawing.
"""

from __future__ import annotations

from _shortconn import (
    client_closes_first,
    drawn_example,
    open_listener,
    repeat,
    server_closes_first,
)
from tcplab import Lab, Scenario, TcpState, Verdicts
from tcplab.expect import eventually
from tcplab.judges.segments import WhereTimeWaitGathers
from tcplab.kernel.observer import DiagObserver

N = 200
scenario = Scenario(
    id="server-closes-first",
    title="Server first or clients first: on which side the TIME_WAIT sockets gather",
    claims=("C14",),
    private_netns=True,
)


def time_wait_by_side(port: int) -> list[int]:
    """[at the server, at the clients] once every close on ``port`` is over; else []."""
    with DiagObserver() as observer:
        records = [r for r in observer.snapshot(port=port) if r.state is not TcpState.LISTEN]
    if any(r.state is not TcpState.TIME_WAIT for r in records):
        return []
    at_server = sum(r.four_tuple.local.port == port for r in records)
    return [at_server, len(records) - at_server]


async def batch(close: str) -> list[int]:
    listener = open_listener()
    port = listener.getsockname()[1]
    if close == "server":
        await repeat(lambda: server_closes_first(listener), N, batch=50)
    else:
        await repeat(lambda: client_closes_first(listener), N, batch=50)
    listener.close()
    return await eventually(lambda: time_wait_by_side(port), what="every close to finish")


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    server_first = await batch("server")
    client_first = await batch("client")
    await drawn_example(lab, requests=1, closer="server")
    await drawn_example(lab, requests=1, closer="client")

    verdicts.judge("C14", WhereTimeWaitGathers(N, *server_first, *client_first))


if __name__ == "__main__":
    scenario.main()
