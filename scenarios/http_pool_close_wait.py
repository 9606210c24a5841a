"""A keep-alive client pool whose responses are never closed (claim C21; seed 000).

Seed 000 blames CLOSE_WAIT piles on HTTP clients that never close their response bodies:
the pooled connections end up in CLOSE_WAIT and, with a bounded pool, new requests fail.
Here a real HTTP/1.1 server (h11 on trio) closes idle keep-alive connections after 1 s,
and a real client pool (httpx, 4 connections) streams four responses it never reads nor
closes. The kernel shows the four pooled sockets in CLOSE_WAIT, holding the unread body
and the server's FIN; a fifth request waits for the pool and times out. Then the two fixes:
closing the responses frees the pool at once; and a client that reads and closes its
responses leaves idle pooled connections that also go CLOSE_WAIT when the server times
them out — but the pool checks an idle connection before reusing it (readable means the
peer closed) and closes the stale ones, so nothing piles up and no request fails.
"""

from __future__ import annotations

import os
import time

import httpx
import trio

from tcplab import End, Lab, Scenario, TcpState, Verdict, Verdicts, watch
from tcplab.expect import gone, holds, reaches
from tcplab.httplab import HttpServer, running, socket_of
from tcplab.kernel.diag import SockDiag
from tcplab.lab import AdoptableSocket

S = TcpState
POOL = 4  # connections the client may open
KEEPALIVE = 1.0  # seconds the server keeps an idle connection
POOL_WAIT = 0.2  # seconds a request may wait for a free pooled connection
BODY = b"x" * 2000

scenario = Scenario(
    id="http-pool-close-wait",
    title="HTTP client pool never closing responses: pooled sockets in CLOSE_WAIT, pool dry; "
          "the fixes",
    claims=("C21",),
)


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL),
        timeout=httpx.Timeout(5.0, pool=POOL_WAIT),
    )


async def _pool_is_dry(client: httpx.AsyncClient, url: str) -> tuple[bool, float]:
    """One more request: True if it failed waiting for a pooled connection; and how long."""
    started = time.monotonic()
    try:
        response = await client.get(url)
    except httpx.PoolTimeout:
        return True, time.monotonic() - started
    await response.aclose()
    return False, time.monotonic() - started


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    server = HttpServer(keepalive_timeout=KEEPALIVE, body=BODY)
    async with running(server), _client() as client:
        assert server.address is not None
        port = server.address.port
        # The bug: stream responses, read the headers, never read nor close the bodies.
        responses = [await client.send(client.build_request("GET", server.url), stream=True)
                     for _ in range(POOL)]
        pooled = [lab.adopt(socket_of(r), label=f"pooled{i}") for i, r in enumerate(responses)]
        dry_early, _ = await _pool_is_dry(client, server.url)
        states_early = [_state(end) for end in pooled]

        for end in pooled:  # the server's keep-alive timeout: it closes, the client never does
            await reaches(end, S.CLOSE_WAIT, timeout=KEEPALIVE + 5)
        held = await holds(pooled[0], S.CLOSE_WAIT, for_=0.3)
        close_wait = [end.observe() for end in pooled]
        all_close_wait = all(r is not None and r.state is S.CLOSE_WAIT for r in close_wait)
        dry_late, waited_late = await _pool_is_dry(client, server.url)
        with SockDiag() as diag:  # what `tcplab watch --port P --pid <us>` would show
            snap = watch.take(diag, watch.WatchFilter(port=port, pid=os.getpid()))
        watched = snap.states[S.CLOSE_WAIT]

        # Fix 1: close the responses. Unread bodies make the connections unusable: closed.
        for response in responses:
            await response.aclose()
        for end in pooled:
            await gone(end)
        after_fix = await client.get(server.url)

    # Fix 2: a client that reads and closes its responses (``client.get``).
    async with running(HttpServer(keepalive_timeout=KEEPALIVE, body=BODY)) as server2, \
            _client() as good:
        first = await _batch(good, server2.url)
        idle = [lab.adopt(sock, label=f"idle{i}") for i, sock in enumerate(dict.fromkeys(first))]
        for end in idle:  # idle in the pool when the server times them out: CLOSE_WAIT too
            await reaches(end, S.CLOSE_WAIT, timeout=KEEPALIVE + 5)
        second = await _batch(good, server2.url)
        for end in idle:  # reusing the pool found them readable (peer closed) and closed them
            await gone(end)
        reused_stale = any(sock in first for sock in second)

    unread = [r.recv_q for r in close_wait if r is not None]
    leak_shown = all_close_wait and dry_late and watched == POOL
    verdicts.record(
        "C21", Verdict.of(leak_shown),
        f"{POOL} never-closed streamed responses: their pooled sockets went CLOSE_WAIT when the "
        f"server's {KEEPALIVE:g} s keep-alive timeout closed them (Recv-Q {unread}: unread body "
        f"+ FIN), `watch` counted {watched} CLOSE_WAIT for this pid on the port, and a new request "
        f"{'timed out waiting for the pool' if dry_late else 'still got a connection'} "
        f"({waited_late:.2f} s). The pool was "
        f"{'already dry' if dry_early else 'not yet dry'} while they were "
        f"{'/'.join(sorted(set(states_early)))} — the unclosed responses exhaust it; CLOSE_WAIT "
        "is the symptom once the server gives up. Closing the responses freed it (the next "
        f"request: {after_fix.status_code}); a client that closes its responses also had "
        f"{len(idle)} idle pooled sockets in CLOSE_WAIT after the server's timeout, but the pool "
        f"closed them on its next use and all {len(second)} requests succeeded",
        pool=POOL, keepalive_timeout_s=KEEPALIVE, states_while_dry_early=states_early,
        pool_dry_before_timeout=dry_early, pool_dry_in_close_wait=dry_late,
        pool_wait_s=round(waited_late, 3), close_wait_recv_q=unread, watch_close_wait=watched,
        held_close_wait_s=0.3, held_record=held.describe(),
        after_closing_bodies_status=after_fix.status_code, idle_close_wait_with_fix=len(idle),
        stale_reused=reused_stale, second_batch=len(second),
    )


def _state(end: End) -> str:
    record = end.observe()
    return record.state.value if record else "gone"


async def _batch(client: httpx.AsyncClient, url: str) -> list[AdoptableSocket]:
    """``POOL`` requests at once, each read and closed; the sockets they used."""
    used: list[AdoptableSocket] = []

    async def fetch() -> None:
        response = await client.get(url)
        response.raise_for_status()
        used.append(socket_of(response))

    async with trio.open_nursery() as nursery:
        for _ in range(POOL):
            nursery.start_soon(fetch)
    return used


if __name__ == "__main__":
    scenario.main()
