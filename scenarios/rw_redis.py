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

import trio

from _rw_pool import server_closed
from tcplab import Lab, Scenario, TcpState, Verdicts, servers
from tcplab.expect import within
from tcplab.judges.servers import IdleReaping
from tcplab.measure import count_in

CW = TcpState.CLOSE_WAIT
POOL, TIMEOUT, WINDOW = 4, 2, 3.0  # a timeout of 1 s closed a fresh connection on a busy machine
scenario = Scenario(
    id="rw-redis", title="redis-py pool vs Redis timeout: idle pooled connections in CLOSE_WAIT",
    claims=("L06",), tags=("realworld",), timeout=60.0,
    requires=("python:redis", "program:redis-server"),
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    import redis  # optional (tcplab[realworld]): imported where it runs

    async with servers.redis(lab, "--timeout", str(TIMEOUT)) as server:
        pool = redis.ConnectionPool(host=server.host, port=server.port)
        burst = [pool.get_connection() for _ in range(POOL)]  # a burst: all in use at once
        idle = await server_closed(
            lab, server, burst, lambda c: c._sock.fileno(),  # type: ignore[attr-defined]
            pool.release, timeout=TIMEOUT + 5, window=WINDOW)
        try:
            await trio.to_thread.run_sync(redis.Redis(connection_pool=pool).ping)
            error = None
        except redis.RedisError as exc:
            error = f"{type(exc).__name__}: {exc}"
        after = count_in(idle.ends, CW)
        pool.disconnect(inuse_connections=False)  # the fix: the application reaps them
        gone = await within(lambda: all(e.observe() is None for e in idle.ends), timeout=2.0)
        pool.disconnect()
    verdicts.judge("L06", IdleReaping(
        f"redis-py {redis.__version__}", f"Redis {server.version}", TIMEOUT, POOL,
        idle.close_wait, idle.held_s, WINDOW, idle.holder, idle.server_state, error, after,
        bool(gone)))


if __name__ == "__main__":
    scenario.main()
