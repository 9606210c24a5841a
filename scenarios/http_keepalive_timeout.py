"""A server closing idle keep-alive connections holds the TIME_WAIT (claim C39; seed 001).

Seed 001's keep-alive settings imply it: when the server's keep-alive timeout ends an idle
connection, the server closes first, so the server's end — not the client's — goes through
FIN_WAIT2 into TIME_WAIT. Here a real HTTP/1.1 server (h11 on trio) with a 0.3 s keep-alive
timeout serves one request to a real client pool (httpx). The pooled client end sits in
CLOSE_WAIT until the client closes it; then the server's four-tuple is in TIME_WAIT and the
client's is gone. For contrast, a client that closes its pool before the server's timeout
is the active closer and keeps the TIME_WAIT itself. Run in a private network namespace so
the TIME_WAIT sockets vanish with it.
"""

from __future__ import annotations

import httpx

from _leaves import leaves
from tcplab import (
    Connection,
    Lab,
    Scenario,
    SocketRecord,
    TcpState,
    TimerKind,
    Verdict,
    Verdicts,
)
from tcplab.expect import reaches
from tcplab.httplab import HttpServer, four_tuple_of, running, socket_of

S = TcpState
SHORT = 0.3  # the server's keep-alive timeout, seconds
LONG = 30.0  # a timeout the contrast never reaches

scenario = Scenario(
    id="http-keepalive-timeout",
    title="HTTP keep-alive timeout: the server closes first and holds the TIME_WAIT; a client "
          "closing first holds it instead",
    claims=("C39",),
    private_netns=True,
)


async def _one_request(lab: Lab, server: HttpServer, client: httpx.AsyncClient) -> Connection:
    """One request, read and closed; both ends of its (now idle) connection, adopted."""
    response = await client.get(server.url)
    response.raise_for_status()
    client_sock = socket_of(response)
    server_stream = next(s for t, s in server.connections.items()
                         if t.reversed() == four_tuple_of(client_sock))
    return lab.adopt_connection(client_sock, server_stream)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    # The server's keep-alive timeout ends the idle connection.
    async with running(HttpServer(keepalive_timeout=SHORT)) as server, \
            httpx.AsyncClient() as client:
        conn = await _one_request(lab, server, client)
        await reaches(conn.client, S.CLOSE_WAIT, timeout=SHORT + 5)  # the server closed
        await reaches(conn.server, S.FIN_WAIT2)
        await client.aclose()  # the pool closes its stale connection (or would, on next use)
        # Measured, not asserted: where each end went once the client's FIN was in.
        tw = await leaves(conn.server, S.FIN_WAIT2)
        await leaves(conn.client, S.CLOSE_WAIT, S.LAST_ACK)
        idle_closed = server.log.idle_closed

    # Contrast: the client closes its idle connection before the server's timeout.
    async with running(HttpServer(keepalive_timeout=LONG)) as server2, \
            httpx.AsyncClient() as client2:
        conn2 = await _one_request(lab, server2, client2)
        await client2.aclose()
        tw2 = await leaves(conn2.client, S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2)
        # the server read EOF and closed: LAST_ACK, then (on the client's last ACK) no state
        await leaves(conn2.server, S.ESTABLISHED, S.CLOSE_WAIT, S.LAST_ACK)

    def path(conn: Connection, label: str) -> list[str]:
        return [s.value if s else "gone" for s in conn.timeline.path(label)]

    left, left2 = _timewait_s(tw), _timewait_s(tw2)
    server_holds = left is not None and "TIME_WAIT" not in path(conn, "client")
    client_holds = left2 is not None and "TIME_WAIT" not in path(conn2, "server")
    paths = {"server_timeout": {e.label: path(conn, e.label) for e in conn.ends},
             "client_first": {e.label: path(conn2, e.label) for e in conn2.ends}}
    verdicts.record(
        "C39", Verdict.of(idle_closed == 1 and server_holds and client_holds),
        f"the server's {SHORT:g} s keep-alive timeout closed {idle_closed} idle connection: the "
        f"server's four-tuple went {' -> '.join(paths['server_timeout']['server'])} "
        f"({_timer(left)}) and the client's {' -> '.join(paths['server_timeout']['client'])}; "
        f"when the client closed first instead, the client's end went "
        f"{' -> '.join(paths['client_first']['client'])} ({_timer(left2)}) and the server's "
        f"{' -> '.join(paths['client_first']['server'])}",
        paths=paths, server_timewait_s=left, contrast_client_timewait_s=left2,
        server_four_tuple=str(conn.server.four_tuple),
    )


def _timewait_s(record: SocketRecord | None) -> float | None:
    """Seconds left on ``record``'s TIME_WAIT timer; None if it is not in TIME_WAIT."""
    if record is None or record.state is not S.TIME_WAIT or record.timer.kind is not TimerKind.TIMEWAIT:
        return None
    return record.timer.remaining


def _timer(left: float | None) -> str:
    return "no TIME_WAIT" if left is None else f"TIME_WAIT, {left:.1f} s left"


if __name__ == "__main__":
    scenario.main()
