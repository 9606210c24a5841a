"""aiohttp: a ClientSession never closed keeps its connections open while its event loop is
not running (CLOSE_WAIT once the server closes them); the server's end of a websocket after
the client's close (claim L07).

Reported in aiohttp #1115 (closing a transport takes one more turn of the loop: a loop
stopped right after leaves it open, "by design"), #3736 (``BaseConnector.close()`` did not
wait for its connections to close) and #4805 (the server's end of a websocket sits in
CLOSE_WAIT for about 10 s after the client's ``ws.close()``).

Against the ``aiohttp`` script server (keep-alive timeout 1 s, websocket close timeout 2 s),
the client's loop runs only during its calls, as in sync code embedding aiohttp
(``_rw_aiohttp``). Its connection, once the server closed it, is watched in CLOSE_WAIT over
1 s, then with the loop running idle. The fix: ``session.close()`` in the same run of the
loop. Last, a websocket's close by the client; the server's end is followed for 3 s.
"""

from __future__ import annotations

import os
from importlib.metadata import version

from _rw_aiohttp import Embedded
from tcplab import Lab, Scenario, TcpState, Verdicts, servers
from tcplab.expect import within
from tcplab.judges.clients import AiohttpLeak
from tcplab.measure import follow, owner, state_of, stays

S = TcpState
KEEPALIVE, WINDOW, WS_TIMEOUT = 1.0, 1.0, 2.0
scenario = Scenario(
    id="rw-aiohttp", title="aiohttp: an unclosed ClientSession's CLOSE_WAIT; a websocket's server end",
    claims=("L07",), requires=("python:aiohttp",), tags=("realworld",), timeout=60.0)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    async with (servers.script(lab, "aiohttp", KEEPALIVE, WS_TIMEOUT) as server,
                Embedded() as client):
        await client.get(server.url)  # through the session the application never closes
        kept = servers.watch_all(lab, server, S.ESTABLISHED, S.CLOSE_WAIT, label="kept")[0].client
        await within(lambda: state_of(kept.observe()) == "CLOSE_WAIT", timeout=KEEPALIVE + 5)
        stopped = kept.observe()
        owned = owner(stopped, {os.getpid()}) is not None
        stopped_held = await stays(kept, S.CLOSE_WAIT, up_to=WINDOW)
        async with client.idle():
            await within(lambda: state_of(kept.observe()) != "CLOSE_WAIT", timeout=2.0)
            running_state = state_of(kept.observe())
        await client.get(server.url, close=True)  # the fix
        closed_state = state_of(servers.watch_all(lab, server, label="closed")[0].client.observe())
        await client.ws_open(server.url + "ws")
        ws_end = servers.watch_all(lab, server, S.ESTABLISHED, label="ws")[0].server
        async with client.ws_closing():
            ws_path, ws_times = await follow(ws_end, up_to=WS_TIMEOUT * 1.5)
    verdicts.judge("L07", AiohttpLeak(
        f"aiohttp {version('aiohttp')} (server {server.version})", KEEPALIVE, WINDOW,
        state_of(stopped), owned, stopped_held, running_state, closed_state, ws_path,
        ws_times.get("CLOSE_WAIT"), WS_TIMEOUT))


if __name__ == "__main__":
    scenario.main()
