"""aiohttp websockets: the server's end after the client's close (claim L11).

Reported in aiohttp #4805 (after an aiohttp client's ``ws.close()`` the server's end sits
in CLOSE_WAIT for about 10 s) and #8184 (aiohttp's server answered a client's close frame
but did not close the connection while the handler still ran; fixed in 3.9.4 by PR #8200).

``aiohttp`` script servers of the pinned release and of 3.9.3, the release before the fix
(from ``RELEASES``; without it the run is skipped), whose ``/ws`` handler runs on 3 s after
the close, as #8184's did. First this process's aiohttp client closes a websocket: the
server's end is followed for 2 s. Then #8184's own client (``_rw_aiohttp``: it sends a
close frame and waits for the server to close, as RFC 6455 asks of a client): how long
the server's end stays ESTABLISHED, of 2 s. The fix shown working: the upgrade.
"""

from __future__ import annotations

from pathlib import Path

from _rw_aiohttp import waiting_client, websocket
from tcplab import Lab, Scenario, TcpState, Verdicts, servers
from tcplab.judges.clients import WsClose, WsServerEnd
from tcplab.measure import follow, stays

S, OLD = TcpState, "3.9.3"
KEEPALIVE, WS_TIMEOUT, HOLD, WINDOW = 1.0, 2.0, 3.0, 2.0
scenario = Scenario(
    id="rw-aiohttp-ws", title="aiohttp websocket: the server's end after the client's close",
    claims=("L11",), tags=("realworld",), timeout=60.0,
    requires=("python:aiohttp", f"release:aiohttp=={OLD}"))


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    current = await server_end(lab, None)
    old = await server_end(lab, servers.release("aiohttp", OLD))
    verdicts.judge("L11", WsClose(WINDOW, HOLD, current, old))


async def server_end(lab: Lab, release: Path | None) -> WsServerEnd:
    async with servers.script(lab, "aiohttp", KEEPALIVE, WS_TIMEOUT, HOLD,
                              release=release) as server:
        async with websocket(server.url + "ws") as closing:
            end = servers.watch_all(lab, server, S.ESTABLISHED, label="ws")[0].server
            closing.set()  # the client's ws.close()
            path, times = await follow(end, up_to=WINDOW)
        waiting = await waiting_client(lab, server)
        open_s = await stays(waiting.server, S.ESTABLISHED, up_to=WINDOW)
    return WsServerEnd(f"aiohttp {server.version}", path, times.get("CLOSE_WAIT"), open_s)


if __name__ == "__main__":
    scenario.main()
