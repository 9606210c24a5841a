"""redis-py's connection pool and Redis's idle ``timeout`` (claim L06; redis-py #306, #1235,
#1364, PR #886).

A burst needs several connections at once; afterwards they wait in the pool. Redis closes
a client idle longer than its ``timeout``, but the pool never looks at idle connections:
each sits in CLOSE_WAIT, its descriptor held by the application, until the pool hands it
out again (#306; #1235 and #1364 report file descriptors running out). PR #886 proposed a
liveness check at checkout; redis-py now has one (``can_read`` in ``get_connection``,
reconnecting quietly), but no reaping, so only the connection a command reuses is replaced.
The fix shown: the application closes idle connections itself (``pool.disconnect``
with ``inuse_connections=False``). A real redis-server child, ``timeout 2``.
"""

from __future__ import annotations

import os

import redis
import trio

from tcplab import Lab, Scenario, TcpState, Verdicts, servers
from tcplab.expect import within
from tcplab.judges.servers import IdleReaping
from tcplab.measure import state_of, stays

S = TcpState
POOL, TIMEOUT, WINDOW = 4, 2, 3.0  # a timeout of 1 s closed a fresh connection on a busy machine
scenario = Scenario(
    id="rw-redis", title="redis-py pool vs Redis timeout: idle pooled connections in CLOSE_WAIT",
    claims=("L06",), tags=("realworld",), timeout=60.0,
    requires=("python:redis", "program:redis-server"),
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    async with servers.redis(lab, "--timeout", str(TIMEOUT)) as server:
        pool = redis.ConnectionPool(host=server.host, port=server.port)
        client = redis.Redis(connection_pool=pool)
        burst = [pool.get_connection() for _ in range(POOL)]  # a burst: all in use at once
        pooled = [servers.watch(lab, c._sock.fileno(), server, f"pooled{i}")  # type: ignore[attr-defined]
                  for i, c in enumerate(burst)]
        for conn in burst:
            pool.release(conn)
        ends = [conn.client for conn in pooled]
        await within(lambda: servers.count_in(ends, S.CLOSE_WAIT) == POOL, timeout=TIMEOUT + 5)
        close_wait = servers.count_in(ends, S.CLOSE_WAIT)
        held = await stays(ends[0], S.CLOSE_WAIT, up_to=WINDOW)
        first, its_server = ends[0].observe(), pooled[0].server.observe()
        holder = servers.owner(first, {os.getpid()})
        try:
            await trio.to_thread.run_sync(client.ping)
            error = None
        except redis.RedisError as exc:
            error = f"{type(exc).__name__}: {exc}"
        after = servers.count_in(ends, S.CLOSE_WAIT)
        pool.disconnect(inuse_connections=False)  # the fix: the application reaps them
        gone = await within(lambda: all(e.observe() is None for e in ends), timeout=2.0)
        pool.disconnect()

    verdicts.judge("L06", IdleReaping(
        f"redis-py {redis.__version__}", f"Redis {server.version}", TIMEOUT, POOL, close_wait,
        held, WINDOW, holder, state_of(its_server), error, after, bool(gone)))


if __name__ == "__main__":
    scenario.main()
