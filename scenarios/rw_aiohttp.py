"""aiohttp: ``ClientSession.close()`` returns before its connections' sockets are closed
(claim L07).

Reported in aiohttp #1115 ("unclosed transport" after ``async with ClientSession()``: a
transport closes one turn of the loop later, by design), #3736 and #1925 (the connector's
close() does not wait for its connections; TLS needs a shutdown exchange first). aiohttp
3.12.4's changelog: ``BaseConnector.close()`` now waits (PR #11074, from #3733).

An ``aiohttp`` script server serves TLS on loopback (a throwaway certificate,
``_rw_aiohttp``). A client in a child process (``aiohttp-client``), of the pinned release
and of 3.12.3 (from ``RELEASES``; without it the run is skipped), GETs a page, awaits
``session.close()`` and at once blocks its loop, as a loop that stops right after close()
does. The client's end is read when close() has returned and watched over 1 s; then the
loop runs again and the close is timed. (Over plain TCP both releases close before close()
returns, so TLS it is.) The fix shown working: the upgrade.
"""

from __future__ import annotations

import signal
from pathlib import Path

from _rw_aiohttp import certificate
from tcplab import Lab, Scenario, TcpState, Verdicts, servers
from tcplab.judges.clients import AiohttpSessionClose, SessionClose
from tcplab.measure import owner, state_of, stays, takes

S, OLD = TcpState, "3.12.3"
KEEPALIVE, WS_TIMEOUT, WINDOW = 30.0, 2.0, 1.0
scenario = Scenario(
    id="rw-aiohttp", title="aiohttp: ClientSession.close() returns before its TLS sockets close",
    claims=("L07",), tags=("realworld",), timeout=60.0,
    requires=("python:aiohttp", "program:openssl", f"release:aiohttp=={OLD}"))


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    with certificate() as (cert, key):
        async with servers.script(lab, "aiohttp", KEEPALIVE, WS_TIMEOUT, 0, cert, key) as server:
            current = await close_session(lab, server, None)
            old = await close_session(lab, server, servers.release("aiohttp", OLD))
    verdicts.judge("L07", AiohttpSessionClose(WINDOW, current, old))


async def close_session(lab: Lab, server: servers.Server, release: Path | None) -> SessionClose:
    url = f"https://{server.host}:{server.port}/"
    async with servers.script(lab, "aiohttp-client", url, release=release) as client:
        await servers.logged(client, "^got$")
        end = servers.watch_all(lab, server, S.ESTABLISHED, label=f"aiohttp{client.version}_")[0]
        client.child.signal(signal.SIGUSR1)  # close the session, then block the loop
        await servers.logged(client, "^blocked$")
        record = end.client.observe()
        owned = owner(record, client.pids()) is not None
        held = 0.0 if record is None else await stays(end.client, record.state, up_to=WINDOW)
        client.child.signal(signal.SIGUSR2)  # the loop runs again
        closed = await takes(lambda: state_of(end.client.observe()) not in ("ESTABLISHED",
                                                                             "CLOSE_WAIT"), up_to=2.0)
    return SessionClose(f"aiohttp {client.version}", state_of(record), owned, held, closed)


if __name__ == "__main__":
    scenario.main()
