"""A server closing idle keep-alive connections holds the TIME_WAIT (claim C39; seed 001).

Seed 001's keep-alive settings imply it: when the server's keep-alive timeout ends an idle
connection, the server closes first, so its end goes through FIN_WAIT2 into TIME_WAIT.
Here a real HTTP/1.1 server (h11 on trio) with a 0.3 s keep-alive timeout serves one
request to a real client pool (httpx), three times: the client closes its pool once the
server has closed (the pool would on next use); the client closes first, before the
server's timeout; and the client closes only after the server's orphaned FIN_WAIT2 has run
out (its lifetime cut to 1 s with TCP_LINGER2 on the server's socket, where
tcp_fin_timeout, 60 s, would otherwise rule), as an idle pool does when nothing uses it.
Whether the server's timeout closed anything is measured (the client's end seen in
CLOSE_WAIT, the server's log), never assumed: a server that closed nothing is a result.
Run in a private network namespace so the TIME_WAIT sockets vanish with it.
"""

from __future__ import annotations

import httpx

from _closewait import in_state, timewait_s, where_after
from _http import one_request
from tcplab import Lab, Scenario, TcpState, Verdicts
from tcplab.expect import within
from tcplab.httplab import HttpServer, running
from tcplab.judges.closewait import KeepAliveCloser
from tcplab.measure import path_of

S = TcpState
SHORT, LONG, LINGER = 0.3, 30.0, 1  # keep-alive timeouts; the late trial's FIN_WAIT2 life
scenario = Scenario(
    id="http-keepalive-timeout",
    title="HTTP keep-alive timeout: the server closes first; who holds the TIME_WAIT",
    claims=("C39",),
    private_netns=True,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    async with running(HttpServer(keepalive_timeout=SHORT)) as server, httpx.AsyncClient() as client:
        conn = await one_request(lab, server, client)
        await within(lambda: in_state(conn.client, S.CLOSE_WAIT), timeout=SHORT + 5)  # server closed?
        await client.aclose()  # the pool closes its stale connection
        tw = await where_after(conn.server, S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2)
        await where_after(conn.client, S.CLOSE_WAIT, S.LAST_ACK)
        idle_closed = server.log.idle_closed

    async with running(HttpServer(keepalive_timeout=LONG)) as server2, httpx.AsyncClient() as client2:
        conn2 = await one_request(lab, server2, client2)
        await client2.aclose()  # the client closes first
        tw2 = await where_after(conn2.client, S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2)
        await where_after(conn2.server, S.ESTABLISHED, S.CLOSE_WAIT, S.LAST_ACK)

    async with running(HttpServer(keepalive_timeout=SHORT)) as server3, httpx.AsyncClient() as client3:
        conn3 = await one_request(lab, server3, client3)
        conn3.server.set_linger2(LINGER)
        await within(lambda: in_state(conn3.client, S.CLOSE_WAIT), timeout=SHORT + 5)
        await where_after(conn3.server, S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2, timeout=LINGER + 5)
        await client3.aclose()  # only now (or after 6 s, if the FIN_WAIT2 stayed)
        await where_after(conn3.client, S.CLOSE_WAIT, S.LAST_ACK)
        tw3 = await within(lambda: timewait_s(conn3.server.observe_all()), timeout=1.0)

    verdicts.judge("C39", KeepAliveCloser(
        idle_closed, path_of(conn, "server"), path_of(conn, "client"), timewait_s(tw),
        timewait_s(tw2), path_of(conn2, "server"), float(LINGER), path_of(conn3, "server"), tw3))


if __name__ == "__main__":
    scenario.main()
