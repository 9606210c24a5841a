"""An HTTP server whose error paths return without closing (claim C19; seed 003).

Seed 003 names the usual CLOSE_WAIT bug: a read returns end-of-file or an error and the code
returns without closing the socket. Here a real HTTP/1.1 server (h11 on trio, its own accept
loop) has exactly that bug on two paths, driven by a real client (httpx):

* end of file between requests: the client closes its idle keep-alive connection;
* an error mid-request: the client's upload fails half-way and it drops the connection
  (h11 reports a protocol error: the request was cut short).

Both server ends stay in CLOSE_WAIT, held by the server's connection registry. The two
tools a person chasing such a bug would use find them, called in-process: the leak check
of tcplab's pytest plugin (``tcplab.leaks``: fd, four-tuple, state) and a ``tcplab watch``
snapshot (CLOSE_WAIT growth, owned by this pid). The same traffic against the fixed server
(it closes on both paths) leaves nothing.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from tcplab import Lab, Scenario, TcpState, Verdict, Verdicts, watch
from tcplab.expect import eventually, gone, holds
from tcplab.httplab import HttpServer, ServerLog, running
from tcplab.kernel.diag import SockDiag
from tcplab.leaks import Leak, LeakCheck

S = TcpState
scenario = Scenario(
    id="http-error-path-leak",
    title="HTTP server returning without close() on EOF and on a cut-short request: CLOSE_WAIT, "
          "found by the leak check and by watch",
    claims=("C19",),
)


class UploadAborted(Exception):
    """The client's request body fails half-way (a file read error, a cancelled upload)."""


async def _failing_body() -> AsyncIterator[bytes]:
    yield b"a" * 1000
    raise UploadAborted("the upload failed half-way")


async def _drive(url: str) -> tuple[int, str]:
    """The client side: a request then close (EOF path), and an aborted upload (error path)."""
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    try:
        async with httpx.AsyncClient() as client:
            await client.post(url, content=_failing_body(), headers={"content-length": "2000"})
    except UploadAborted as exc:
        return response.status_code, str(exc)
    return response.status_code, "the upload did not fail"


@dataclass
class Trial:
    """One server (buggy or fixed) driven by both client paths, and what the tools found."""

    status: int
    upload: str
    log: ServerLog
    leaks: list[Leak]  # the leak check's findings on the server's port
    growth: int  # CLOSE_WAIT growth for this pid on the port, between two watch snapshots
    snapshot: watch.Snapshot


async def _trial(lab: Lab, *, close_on_error: bool) -> Trial:
    server = HttpServer(close_on_error=close_on_error)
    async with running(server):
        assert server.address is not None
        port = server.address.port
        with SockDiag() as diag:
            where = watch.WatchFilter(port=port, pid=os.getpid(), states=frozenset({S.CLOSE_WAIT}))
            before = watch.take(diag, where)
            check = LeakCheck()
            status, upload = await _drive(server.url)
            # Both client ends are closed; wait for the server to have seen both endings.
            await eventually(lambda: server.log.eof + server.log.errors >= 2,
                             what="the server to see the end of both connections")
            ends = [lab.adopt(stream, label=f"server{i}")
                    for i, stream in enumerate(server.connections.values())]
            for end in ends:
                await holds(end, S.CLOSE_WAIT, for_=0.3)
            leaks = check.leaks()
            after = watch.take(diag, where)
    for end in ends:  # the server's shutdown closes what its handlers leaked
        await gone(end)
    return Trial(status, upload, server.log,
                 [leak for leak in leaks if leak.socket.record.four_tuple.local.port == port],
                 after.close_wait_growth(before) or 0, after)


def _lines(leaks: list[Leak]) -> list[str]:
    return [leak.describe() for leak in leaks]


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    buggy = await _trial(lab, close_on_error=False)
    fixed = await _trial(lab, close_on_error=True)

    found_by_check = len(buggy.leaks) == 2 and all(
        leak.socket.state is S.CLOSE_WAIT for leak in buggy.leaks)
    found_by_watch = buggy.growth == 2
    both_paths = (buggy.log.eof, buggy.log.errors, buggy.log.leaked) == (1, 1, 2)
    fixed_clean = not fixed.leaks and fixed.growth == 0 and fixed.log.leaked == 0
    error = buggy.log.errors_seen[0] if buggy.log.errors_seen else "none"
    verdicts.record(
        "C19", Verdict.of(found_by_check and found_by_watch and both_paths and fixed_clean),
        "a server that returns without close() on end-of-file (the client closed its keep-alive "
        f"connection) and on an error (the request was cut short: {error}) kept both sockets in "
        f"CLOSE_WAIT; the leak check listed {len(buggy.leaks)} "
        f"({'; '.join(_lines(buggy.leaks))}), watch saw CLOSE_WAIT grow by {buggy.growth} for "
        f"this pid; the fixed server (close on both paths) left {len(fixed.leaks)} leaks and "
        f"CLOSE_WAIT growth {fixed.growth}",
        buggy_leaks=_lines(buggy.leaks), fixed_leaks=_lines(fixed.leaks),
        watch_growth_buggy=buggy.growth, watch_growth_fixed=fixed.growth,
        server_errors=buggy.log.errors_seen, client_upload=buggy.upload,
        watch_snapshot=buggy.snapshot.to_json(),
    )


if __name__ == "__main__":
    scenario.main()
