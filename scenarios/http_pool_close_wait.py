"""A keep-alive client pool whose responses are never closed (claim C21; seed 000).

Seed 000 blames CLOSE_WAIT piles on HTTP clients that never close their response bodies:
the pooled connections end up in CLOSE_WAIT and, with a bounded pool, new requests fail.
Here a real HTTP/1.1 server (h11 on trio) closes idle keep-alive connections after 1 s,
and a real client pool (httpx, 4 connections) streams four responses it never reads nor
closes. A fifth request is tried before and after the server's timeout; the pooled
sockets' states are read from the kernel. Then the fix (closing the responses), and a
client that reads and closes its responses against the same server, for contrast.
"""

from __future__ import annotations

from _http import batch, count_in, pool_client, pool_is_dry
from tcplab import Lab, Scenario, TcpState, Verdicts
from tcplab.expect import within
from tcplab.httplab import HttpServer, running, socket_of
from tcplab.judges.closewait import PoolLeak

S = TcpState
POOL, KEEPALIVE, POOL_WAIT, BODY = 4, 1.0, 0.2, b"x" * 2000
scenario = Scenario(
    id="http-pool-close-wait",
    title="HTTP client pool never closing responses: pooled sockets in CLOSE_WAIT, pool dry",
    claims=("C21",),
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    async with running(HttpServer(keepalive_timeout=KEEPALIVE, body=BODY)) as server, \
            pool_client(POOL, POOL_WAIT) as client:
        # The bug: stream responses, read the headers, never read nor close the bodies.
        responses = [await client.send(client.build_request("GET", server.url), stream=True)
                     for _ in range(POOL)]
        pooled = [lab.adopt(socket_of(r), label=f"pooled{i}") for i, r in enumerate(responses)]
        dry_before, _ = await pool_is_dry(client, server.url)
        close_wait = await count_in(pooled, S.CLOSE_WAIT, timeout=KEEPALIVE + 5)
        recv_q = tuple(r.recv_q for r in (e.observe() for e in pooled) if r is not None)
        dry_late, waited = await pool_is_dry(client, server.url)
        for response in responses:  # the fix: close them
            await response.aclose()
        gone = await within(lambda: all(e.observe() is None for e in pooled), timeout=2.0)
        dry_after, _ = await pool_is_dry(client, server.url)

    # For contrast, a client that reads and closes its responses (``client.get``).
    async with running(HttpServer(keepalive_timeout=KEEPALIVE, body=BODY)) as server2, \
            pool_client(POOL, POOL_WAIT) as tidy:
        first, _ = await batch(tidy, server2.url, POOL)
        idle = [lab.adopt(s, label=f"idle{i}") for i, s in enumerate(dict.fromkeys(first))]
        tidy_close_wait = await count_in(idle, S.CLOSE_WAIT, timeout=KEEPALIVE + 5)
        _, failed = await batch(tidy, server2.url, POOL)

    verdicts.judge("C21", PoolLeak(
        POOL, close_wait, recv_q, dry_before, dry_late, waited,
        freed_by_closing=bool(gone) and not dry_after, tidy_close_wait=tidy_close_wait,
        tidy_failed=failed))


if __name__ == "__main__":
    scenario.main()
