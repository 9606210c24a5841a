"""Cases for the judges of real servers and pools (L04, L12, L05, L06, L09, L10)."""

from __future__ import annotations

from judge_case import Case
from tcplab.judges.servers import (
    ChannelRace,
    EarlyCloseRun,
    GunicornRun,
    HealthChecks,
    HeldConnections,
    IdleReaping,
    PoolRun,
    ServerClosedPool,
    SilentClients,
    SilentRun,
)
from tcplab.verdict import Verdict

C, P, R, OUT = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED, Verdict.OUTDATED


def silent(http: str = "httptools", held: float = 3.0, state: str | None = "ESTABLISHED",
           served: float | None = 1.0, owner: str | None = "python3/10/fd15") -> SilentRun:
    return SilentRun("0.54.0", http, 1.0, 3.0, held, state, owner, served)


def early(version: str, close_wait: int, held: float = 3.0) -> EarlyCloseRun:
    return EarlyCloseRun(version, "uvloop/httptools", 3.0, 4, close_wait, held,
                         "python3/10/fd16" if close_wait else None,
                         "FIN_WAIT2" if close_wait else "TIME_WAIT")


LEAKY = (early("0.15.0", 4), early("0.17.0", 4), early("0.17.1", 0))


def gunicorn(worker: str, cw_held: float, silent_held: float, owner: str | None = None,
             close_wait: int = 3, replaced: bool | None = None) -> GunicornRun:
    return GunicornRun("27.0.1", worker, 3.0, 1.0, 3, close_wait, owner, cw_held, silent_held,
                       10.0, worker == "sync" if replaced is None else replaced)


SYNC_LEAKS = gunicorn("sync", 4.2, 4.2)
GTHREAD_OK = gunicorn("gthread", 0.01, 6.0)


def redis_pool(close_wait: int = 4, held: float = 3.0, error: str | None = None,
               after: int = 3, owner: str | None = "python3/5/fd13",
               gone: bool = True) -> IdleReaping:
    return IdleReaping("redis-py 8.1.0", "Redis 7.0.15", 1.0, 4, close_wait, held, 3.0, owner,
                       "FIN_WAIT2", error, after, gone)


def pg_run(check: str, error: str | None, close_wait: int = 2, held: float = 3.0,
           lifetime: float | None = None) -> PoolRun:
    return PoolRun(check, lifetime, 2, close_wait, held, 3.0, 117, "python3/7/fd16", "FIN_WAIT2",
                   error)


DEAD = "IdleSessionTimeout: terminating connection due to idle-session timeout"
CHECKED = pg_run("ConnectionPool.check_connection", None)
LIFETIME = pg_run("", DEAD, lifetime=1.5)


def race(open_after_close: int = 4, held: float = 3.0, after_drop: int = 0,
         after_fix: int = 0, owner: str | None = "python/7/fd13") -> ChannelRace:
    return ChannelRace(4, 3.0, open_after_close, held, owner, after_drop, after_fix,
                       "grpcio 1.85.3", "Python 3.11.7")


def pg(default: PoolRun, lifetime: PoolRun | None = LIFETIME,
       checked: PoolRun | None = CHECKED) -> ServerClosedPool:
    return ServerClosedPool("psycopg_pool 3.3.3", "PostgreSQL 15.18", 2.0, default, lifetime,
                            checked)

CASES = [
    # L04
    Case("L04", "both HTTP implementations keep the silent client; the served one times out",
         SilentClients((silent(), silent("h11"))), C,
         ("ESTABLISHED 3.0 s of 3.0 s", "closed by the server after 1.0 s")),
    Case("L04", "only httptools keeps the silent client: a condition left out",
         SilentClients((silent(), silent("h11", 1.1, None, owner=None))), P,
         ("only with --http httptools",)),
    Case("L04", "the silent client is kept, but no timer closed the served one either",
         SilentClients((silent(served=None), silent("h11", served=None))), P,
         ("not closed in the window",)),
    Case("L04", "the served close just outside keep-alive + 1 s slack",
         SilentClients((silent(served=2.1), silent("h11"))), P, ("after 2.1 s",)),
    Case("L04", "the served close just inside keep-alive + 1 s slack",
         SilentClients((silent(served=1.9), silent("h11"))), C),
    Case("L04", "a timer closed the silent client on both: refuted",
         SilentClients((silent(held=1.0, state=None, owner=None),
                        silent("h11", 1.0, None, owner=None))), R, ("ESTABLISHED 1.0 s",)),
    Case("L04", "ESTABLISHED 2.8 s of 3 s (under 95 %): not held", SilentClients(
        (silent(held=2.8, state=None), silent("h11", 2.8, None))), R),
    Case("L04", "held, but nobody owns the server end (a queued connection)", SilentClients(
        (silent(owner=None), silent("h11", owner=None))), R, ("no process holds it",)),
    Case("L04", "nothing measured", SilentClients(()), R, ("no uvicorn run measured",)),
    # L12
    Case("L12", "the installed release still leaks", HealthChecks(early("0.54.0", 4), LEAKY), C,
         ("4 of 4 server ends in CLOSE_WAIT",)),
    Case("L12", "0.15.0 and 0.17.0 leak, 0.17.1 and the installed do not: outdated since 0.17.1",
         HealthChecks(early("0.54.0", 0), LEAKY), OUT,
         ("the leak ends in 0.17.1", "#1332", "#1355", "after 0.17.0")),
    Case("L12", "only the installed release measured past the leak: it is named",
         HealthChecks(early("0.54.0", 0), LEAKY[:2]), OUT, ("the leak ends in 0.54.0",)),
    Case("L12", "no release leaks", HealthChecks(early("0.54.0", 0), (early("0.17.0", 0),)), R),
    Case("L12", "only some closers in CLOSE_WAIT: not the leak",
         HealthChecks(early("0.54.0", 2), ()), R, ("2 of 4",)),
    Case("L12", "CLOSE_WAIT that ended inside the window (2.8 s of 3 s)",
         HealthChecks(early("0.54.0", 4, 2.8), ()), R),
    # L05
    Case("L05", "sync leaks in the listen queue until --timeout; gthread serves and times out",
         HeldConnections(SYNC_LEAKS, GTHREAD_OK), C,
         ("in the listen queue", "the first for 4.2 s", "within 8 s", "since gunicorn 25.2.0")),
    Case("L05", "the sync CLOSE_WAIT lasts just the worker timeout minus the 2 s slack",
         HeldConnections(gunicorn("sync", 1.0, 1.0), GTHREAD_OK), C),
    Case("L05", "the sync CLOSE_WAIT ended well before the worker timeout: refuted",
         HeldConnections(gunicorn("sync", 0.9, 0.9), GTHREAD_OK), R),
    Case("L05", "an abandoned connection accepted by a process: not the listen queue",
         HeldConnections(gunicorn("sync", 4.2, 4.2, owner="gunicorn/9/fd7"), GTHREAD_OK), R),
    Case("L05", "the sync CLOSE_WAIT ends at --timeout + slack, poll and worker start: bounded",
         HeldConnections(gunicorn("sync", 7.0, 7.0), GTHREAD_OK), C, ("within 7 s",)),
    Case("L05", "the sync CLOSE_WAIT outlasts the bound (7.5 s > 7 s)",
         HeldConnections(gunicorn("sync", 7.5, 7.5), GTHREAD_OK), P),
    Case("L05", "the sync CLOSE_WAIT held the whole window, the worker never replaced",
         HeldConnections(gunicorn("sync", 10.0, 10.0, replaced=False), GTHREAD_OK), P,
         ("not replaced",)),
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
    Case("L06", "pool.disconnect left some in CLOSE_WAIT: the fix does not hold",
         redis_pool(gone=False), P, ("left some in CLOSE_WAIT",)),
    Case("L06", "CLOSE_WAIT that ended inside the window", redis_pool(held=2.0), R),
    # L09
    Case("L09", "default and #584's pools hand out a dead connection; check= replaces it",
         pg(pg_run("", DEAD)), C,
         ("failed: IdleSessionTimeout", "max_lifetime=1.5 s", "worked", "since 3.2.0")),
    Case("L09", "the default pool replaced it without an error", pg(pg_run("", None)), P),
    Case("L09", "max_lifetime below the server's timeout did help",
         pg(pg_run("", DEAD), pg_run("", None, close_wait=0, held=0.0, lifetime=1.5)), P,
         ("max_lifetime=1.5 s: 0 of 2",)),
    Case("L09", "the checked pool failed too (a pool older than 3.2 has no check)",
         pg(pg_run("", DEAD), checked=pg_run("ConnectionPool.check_connection", "PoolTimeout: x")),
         P),
    Case("L09", "the checked pool worked, but had no dead connection to replace",
         pg(pg_run("", DEAD), checked=pg_run("ConnectionPool.check_connection", None, 0, 0.0)),
         P, ("check=ConnectionPool.check_connection: 0 of 2",)),
    Case("L09", "the checked and lifetime pools not measured", pg(pg_run("", DEAD), None, None),
         P, ("the max_lifetime pool was not measured", "the checked pool was not measured")),
    Case("L09", "the server never closed the idle sessions",
         pg(pg_run("", None, close_wait=0, held=0.0)), R),
    # L10
    Case("L10", "every raced connection outlives close() and the program's references",
         race(after_drop=4), C, ("4 connections ESTABLISHED after close() returned",)),
    Case("L10", "open after close(), but closed once the cancelled tasks are dropped",
         race(), P, ("0 still open once the program dropped",)),
    Case("L10", "unreachable, but the fix leaves one open too", race(after_drop=4, after_fix=1),
         P, ("left 1 open",)),
    Case("L10", "close() closed every connection", race(0, 0.0, owner=None), R, ("0 connections",)),
    Case("L10", "only some raced sessions keep their connection open", race(2, after_drop=2), P,
         ("2 connections ESTABLISHED",)),
    Case("L10", "open for 2.8 s of 3 s: not held", race(held=2.8, after_drop=4), R),
]
