"""psycopg_pool and PostgreSQL's ``idle_session_timeout`` (claim L09; psycopg #584).

PostgreSQL ends a session idle longer than ``idle_session_timeout`` (a FATAL message, then
its FIN): a pooled connection sits in CLOSE_WAIT, the goodbye unread, and the pool hands it
out; the query fails. #584: min_size=2 and a ``max_lifetime`` below the server's timeout do
not help (ages are checked when a connection comes back). psycopg_pool 3.2.0 added
``check=ConnectionPool.check_connection`` (the default is still no check). Three pools
(default, #584's, checked) against one real PostgreSQL child.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from _rw_pool import server_closed
from tcplab import Lab, Scenario, Verdicts, servers
from tcplab.judges.servers import PoolRun, ServerClosedPool

if TYPE_CHECKING:  # optional (tcplab[realworld]): imported where it runs
    import psycopg
    from psycopg_pool import ConnectionPool

POOL, IDLE_S, WINDOW = 2, 2, 3.0  # the pool hands a new connection over in about 1 s
LIFETIME = 1.5  # #584: below IDLE_S, and above the time a burst takes to come back
Check = Callable[["psycopg.Connection"], None]
scenario = Scenario(
    id="rw-psycopg", title="psycopg_pool vs idle_session_timeout: dead pooled connections handed out",
    claims=("L09",), tags=("realworld",), timeout=90.0,
    requires=("python:psycopg", "python:psycopg-pool", "postgresql"),
)


def first_query(pool: ConnectionPool) -> str | None:
    """Run a query on the next connection the pool hands out: what it raised, or None."""
    import psycopg
    try:
        with pool.connection(timeout=10) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
    return None


async def measure(lab: Lab, server: servers.Server, check: Check | None = None,
                  lifetime: float | None = None) -> PoolRun:
    from psycopg_pool import ConnectionPool

    dsn = f"host={server.host} port={server.port} user=postgres dbname=postgres sslmode=disable"
    pool: ConnectionPool = ConnectionPool(dsn, min_size=POOL, max_size=POOL, open=False,
                                          check=check, max_lifetime=lifetime or 3600.0)
    await trio.to_thread.run_sync(lambda: pool.open(wait=True, timeout=20))
    try:
        conns = [pool.getconn() for _ in range(POOL)]  # a burst: all in use at once
        idle = await server_closed(lab, server, conns, lambda c: c.pgconn.socket, pool.putconn,
                                   timeout=IDLE_S + 5, window=WINDOW)
        error = await trio.to_thread.run_sync(first_query, pool)
    finally:
        await trio.to_thread.run_sync(pool.close)
    return PoolRun("" if check is None else "ConnectionPool.check_connection", lifetime, POOL,
                   idle.close_wait, idle.held_s, WINDOW, None if idle.first is None else idle.first.recv_q,
                   idle.holder, idle.server_state, error)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    from psycopg_pool import ConnectionPool

    async with servers.postgres(lab, "-c", f"idle_session_timeout={IDLE_S * 1000}") as server:
        default = await measure(lab, server)
        lifetime = await measure(lab, server, lifetime=LIFETIME)
        checked = await measure(lab, server, ConnectionPool.check_connection)
    verdicts.judge("L09", ServerClosedPool(
        f"psycopg_pool {servers.version_of('psycopg-pool')}", f"PostgreSQL {server.version}",
        IDLE_S, default, lifetime, checked))


if __name__ == "__main__":
    scenario.main()
