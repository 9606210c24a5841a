"""psycopg_pool and PostgreSQL's ``idle_session_timeout`` (claim L09; psycopg #584).

PostgreSQL ends a session idle longer than ``idle_session_timeout`` (a FATAL message, then
its FIN). A pool's idle connections are such sessions: each sits in CLOSE_WAIT in the pool,
the goodbye unread, and the pool hands it out; the query fails (#584: a ``max_lifetime``
below the server's timeout did not help, the pool checks ages only when a connection comes
back). psycopg_pool 3.2.0 added ``check=ConnectionPool.check_connection`` (#656), a test
before handing out; the default is still no check. Both pools, one real PostgreSQL child.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import psycopg
import trio
from psycopg_pool import ConnectionPool

from tcplab import Lab, Scenario, TcpState, Verdicts, servers
from tcplab.expect import within
from tcplab.judges.servers import PoolRun, ServerClosedPool
from tcplab.measure import state_of, stays

S = TcpState
POOL, IDLE_S, WINDOW = 2, 2, 3.0  # the pool hands a new connection over in about 1 s
scenario = Scenario(
    id="rw-psycopg", title="psycopg_pool vs idle_session_timeout: dead pooled connections handed out",
    claims=("L09",), tags=("realworld",), timeout=90.0,
    requires=("python:psycopg", "python:psycopg-pool", "postgresql"),
)


def first_query(pool: ConnectionPool) -> str | None:
    """Run a query on the next connection the pool hands out: what it raised, or None."""
    try:
        with pool.connection(timeout=10) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
    return None


async def measure(lab: Lab, server: servers.Server, check: Callable[[Any], None] | None) -> PoolRun:
    dsn = f"host={server.host} port={server.port} user=postgres dbname=postgres sslmode=disable"
    pool: ConnectionPool = ConnectionPool(dsn, min_size=POOL, max_size=POOL, open=False, check=check)
    await trio.to_thread.run_sync(lambda: pool.open(wait=True, timeout=20))
    try:
        conns = [pool.getconn() for _ in range(POOL)]
        pooled = [servers.watch(lab, c.pgconn.socket, server, f"pooled{i}") for i, c in enumerate(conns)]
        for conn in conns:
            pool.putconn(conn)
        ends = [p.client for p in pooled]
        await within(lambda: servers.count_in(ends, S.CLOSE_WAIT) == POOL, timeout=IDLE_S + 5)
        close_wait = servers.count_in(ends, S.CLOSE_WAIT)
        held = await stays(ends[0], S.CLOSE_WAIT, up_to=WINDOW)
        first, its_server = ends[0].observe(), pooled[0].server.observe()
        holder = servers.owner(first, {os.getpid()})
        error = await trio.to_thread.run_sync(first_query, pool)
    finally:
        await trio.to_thread.run_sync(pool.close)
    return PoolRun("" if check is None else "ConnectionPool.check_connection", POOL, close_wait,
                   held, WINDOW, None if first is None else first.recv_q, holder, state_of(its_server), error)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    async with servers.postgres(lab, "-c", f"idle_session_timeout={IDLE_S * 1000}") as server:
        default = await measure(lab, server, None)
        checked = await measure(lab, server, ConnectionPool.check_connection)
    verdicts.judge("L09", ServerClosedPool(
        f"psycopg_pool {servers.version_of('psycopg-pool')}", f"PostgreSQL {server.version}",
        IDLE_S, default, checked))


if __name__ == "__main__":
    scenario.main()
