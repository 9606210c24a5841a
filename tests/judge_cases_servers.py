"""Cases for the judges of real servers and pools (L04, L05, L06, L09)."""

from __future__ import annotations

from judge_case import Case
from tcplab.judges.servers import (
    GunicornRun,
    HeldConnections,
    IdleReaping,
    PoolRun,
    ServerClosedPool,
    SilentClients,
    UvicornRun,
)
from tcplab.verdict import Verdict

C, P, R, OUT = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED, Verdict.OUTDATED


def uvicorn(version: str, close_wait: int, cw_held: float, silent_held: float = 3.0,
            silent: str | None = "ESTABLISHED") -> UvicornRun:
    return UvicornRun(version, "uvloop/httptools", 1.0, 3.0, silent_held, silent,
                      "python3/10/fd15", 4, close_wait, cw_held,
                      "python3/10/fd16" if close_wait else None,
                      "FIN_WAIT2" if close_wait else "TIME_WAIT")


FIXED, LEAKY = uvicorn("0.54.0", 0, 0.002), uvicorn("0.15.0", 4, 3.0)


def gunicorn(worker: str, cw_held: float, silent_held: float, owner: str | None = None,
             close_wait: int = 3) -> GunicornRun:
    return GunicornRun("27.0.1", worker, 3.0, 1.0, 3, close_wait, owner, cw_held, silent_held,
                       10.0, worker == "sync")


SYNC_LEAKS = gunicorn("sync", 4.2, 4.2)
GTHREAD_OK = gunicorn("gthread", 0.01, 6.0)


def redis_pool(close_wait: int = 4, held: float = 3.0, error: str | None = None,
               after: int = 3, owner: str | None = "python3/5/fd13") -> IdleReaping:
    return IdleReaping("redis-py 8.1.0", "Redis 7.0.15", 1.0, 4, close_wait, held, 3.0, owner,
                       "FIN_WAIT2", error, after, True)


def pg_run(check: str, error: str | None, close_wait: int = 2, held: float = 3.0) -> PoolRun:
    return PoolRun(check, 2, close_wait, held, 3.0, 117, "python3/7/fd16", "FIN_WAIT2", error)


DEAD = "IdleSessionTimeout: terminating connection due to idle-session timeout"
CHECKED = pg_run("ConnectionPool.check_connection", None)

CASES = [
    # L04
    Case("L04", "the installed release leaks CLOSE_WAIT and holds a silent client",
         SilentClients(LEAKY, None), C, ("4 server ends in CLOSE_WAIT, the first for 3.0 s",)),
    Case("L04", "the installed release fixed it, 0.15.0 leaks: outdated since 0.17.2",
         SilentClients(FIXED, LEAKY), OUT, ("gone since 0.17.2", "0 server ends in CLOSE_WAIT")),
    Case("L04", "fixed, the old release not installed: only the silent client is held",
         SilentClients(FIXED, None), P, ("not measured",)),
    Case("L04", "fixed, and the old release did not leak either: the silent client held",
         SilentClients(FIXED, uvicorn("0.15.0", 0, 0.0)), P, ("0.15.0",)),
    Case("L04", "leaks CLOSE_WAIT, but a timer closed the silent client",
         SilentClients(uvicorn("x", 4, 3.0, silent_held=1.0, silent=None), None), P,
         ("ESTABLISHED 1.0 s",)),
    Case("L04", "no CLOSE_WAIT and the silent client closed by a timer: refuted",
         SilentClients(uvicorn("x", 0, 0.0, silent_held=1.1, silent=None), None), R),
    Case("L04", "CLOSE_WAIT that ended inside the window (2.8 s of 3 s, under 95 %)",
         SilentClients(uvicorn("x", 4, 2.8, silent_held=1.0, silent=None), None), R),
    Case("L04", "only some closers left in CLOSE_WAIT: not the leak",
         SilentClients(uvicorn("x", 2, 3.0), None), P),
    # L05
    Case("L05", "sync leaks in the listen queue until --timeout; gthread serves and times out",
         HeldConnections(SYNC_LEAKS, GTHREAD_OK), C,
         ("in the listen queue", "the first for 4.2 s", "within 8 s")),
    Case("L05", "the sync CLOSE_WAIT lasts just the worker timeout minus the 2 s slack",
         HeldConnections(gunicorn("sync", 1.0, 1.0), GTHREAD_OK), C),
    Case("L05", "the sync CLOSE_WAIT ended well before the worker timeout: refuted",
         HeldConnections(gunicorn("sync", 0.9, 0.9), GTHREAD_OK), R),
    Case("L05", "an abandoned connection accepted by a process: not the listen queue",
         HeldConnections(gunicorn("sync", 4.2, 4.2, owner="gunicorn/9/fd7"), GTHREAD_OK), R),
    Case("L05", "gthread never closes the silent client (21.2.0 to 25.1.0)",
         HeldConnections(SYNC_LEAKS, gunicorn("gthread", 0.01, 10.0)), P, ("10.0 s of 10.0 s",)),
    Case("L05", "gthread leaves abandoned connections in CLOSE_WAIT too",
         HeldConnections(SYNC_LEAKS, gunicorn("gthread", 4.0, 6.0)), P),
    Case("L05", "nothing abandoned in CLOSE_WAIT", HeldConnections(
        gunicorn("sync", 0.0, 4.2, close_wait=0), GTHREAD_OK), R, ("0 of 3",)),
    # L06
    Case("L06", "all pooled connections in CLOSE_WAIT; one command replaces one quietly",
         redis_pool(), C, ("4 of 4 pooled connections in CLOSE_WAIT", "3 stayed")),
    Case("L06", "the pool handed out a dead connection and the command failed",
         redis_pool(error="ConnectionError: Connection closed by server."), P, ("failed",)),
    Case("L06", "a command reaped every idle connection: more than the claim says",
         redis_pool(after=0), P),
    Case("L06", "the server never closed them (no CLOSE_WAIT)", redis_pool(close_wait=0), R),
    Case("L06", "CLOSE_WAIT but not held by the application", redis_pool(owner=None), R,
         ("no process holds it",)),
    Case("L06", "CLOSE_WAIT that ended inside the window", redis_pool(held=2.0), R),
    # L09
    Case("L09", "the default pool hands out a dead connection; check= fixes it",
         ServerClosedPool("psycopg_pool 3.3.3", "PostgreSQL 15.18", 2.0,
                          pg_run("", DEAD), CHECKED), C, ("failed: IdleSessionTimeout", "worked")),
    Case("L09", "the default pool replaced it without an error",
         ServerClosedPool("psycopg_pool 3.3.3", "PostgreSQL 15.18", 2.0, pg_run("", None),
                          CHECKED), P),
    Case("L09", "the checked pool failed too (a pool older than 3.2 has no check)",
         ServerClosedPool("psycopg_pool 3.1.9", "PostgreSQL 15.18", 2.0, pg_run("", DEAD),
                          pg_run("ConnectionPool.check_connection", "PoolTimeout: x")), P),
    Case("L09", "the checked pool not measured",
         ServerClosedPool("psycopg_pool 3.3.3", "PostgreSQL 15.18", 2.0, pg_run("", DEAD)), P,
         ("not measured",)),
    Case("L09", "the server never closed the idle sessions",
         ServerClosedPool("psycopg_pool 3.3.3", "PostgreSQL 15.18", 2.0,
                          pg_run("", None, close_wait=0, held=0.0), CHECKED), R),
]
