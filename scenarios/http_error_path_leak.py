"""An HTTP server whose handlers return without closing (claim C19; seed 003).

Seed 003 names the usual CLOSE_WAIT bug: a read returns end-of-file or an error and the code
returns without closing the socket. Here a real HTTP/1.1 server (h11 on trio, its own
accept loop, ``tcplab.httplab``) has that bug, and three client paths end a connection:
the client closes its idle keep-alive connection (end of file), its upload fails half-way
and it drops the connection (the server's parser raises: the request was cut short), and
it resets mid-request (the read fails: ECONNRESET). After each, the server's end is read
from the kernel; the tools a person would use (tcplab's leak check, a ``watch`` snapshot)
look at what the buggy server left. The same three paths against the fixed server (it
closes on every path) show what close() changes.
"""

from __future__ import annotations

import os

from _http import PATHS, drive
from tcplab import Lab, Scenario, TcpState, Verdicts, watch
from tcplab.httplab import HttpServer, running
from tcplab.judges.closewait import ReturnWithoutClose
from tcplab.leaks import LeakCheck

scenario = Scenario(
    id="http-error-path-leak",
    title="HTTP server returning without close() on end of file, a cut-short request, a reset",
    claims=("C19",),
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    async with running(HttpServer(close_on_error=False)) as buggy:
        assert buggy.address is not None
        where = watch.WatchFilter(port=buggy.address.port, pid=os.getpid(),
                                  states=frozenset({TcpState.CLOSE_WAIT}))
        before, check = watch.take(lab.observer, where), LeakCheck()
        leaked = tuple([await drive(lab, buggy, name) for name in PATHS])
        found = [leak for leak in check.leaks() if leak.socket.state is TcpState.CLOSE_WAIT]
        growth = watch.take(lab.observer, where).close_wait_growth(before)
    async with running(HttpServer(close_on_error=True)) as fixed:
        closed = tuple([await drive(lab, fixed, name) for name in PATHS])

    verdicts.judge("C19", ReturnWithoutClose(leaked, closed, (
        f"the leak check ({len(found)} in CLOSE_WAIT)", f"watch (CLOSE_WAIT +{growth} for this pid)")))


if __name__ == "__main__":
    scenario.main()
