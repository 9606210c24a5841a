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

from tcplab import Connection, Lab, Scenario, TcpState, TimerKind, Verdict, Verdicts
from tcplab.expect import absent, gone, path_seen, reaches, timer_between
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
        tw = await reaches(conn.server, S.TIME_WAIT)
        left = timer_between(conn.server, tw, TimerKind.TIMEWAIT, 50.0, 60.5)
        await gone(conn.client)
        absent(conn.client, S.TIME_WAIT)
        path_seen(conn.server, S.ESTABLISHED, S.FIN_WAIT2, S.TIME_WAIT)
        path_seen(conn.client, S.ESTABLISHED, S.CLOSE_WAIT, None)
        idle_closed = server.log.idle_closed

    # Contrast: the client closes its idle connection before the server's timeout.
    async with running(HttpServer(keepalive_timeout=LONG)) as server2, \
            httpx.AsyncClient() as client2:
        conn2 = await _one_request(lab, server2, client2)
        await client2.aclose()
        tw2 = await reaches(conn2.client, S.TIME_WAIT)
        await gone(conn2.server)  # the server read EOF and closed: LAST_ACK, then gone
        absent(conn2.server, S.TIME_WAIT)

    server_paths = {e.label: [s.value if s else "gone" for s in conn.timeline.path(e.label)]
                    for e in conn.ends}
    verdicts.record(
        "C39", Verdict.of(idle_closed == 1 and tw.state is S.TIME_WAIT),
        f"the server's {SHORT:g} s keep-alive timeout closed the idle connection: the server's "
        f"four-tuple went FIN_WAIT2 -> TIME_WAIT ({left:.1f} s left) and the client's "
        "CLOSE_WAIT -> gone, no TIME_WAIT on the client; when the client closed first instead, "
        f"the client's end held the TIME_WAIT ({tw2.timer.remaining:.1f} s) and the server's "
        "was gone",
        paths=server_paths, server_timewait_s=left, contrast_client_timewait_s=tw2.timer.remaining,
        server_four_tuple=str(conn.server.four_tuple),
    )


if __name__ == "__main__":
    scenario.main()
