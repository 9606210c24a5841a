"""Judges of the leaks real servers and pools show (L04, L05, L06, L09, L10): uvicorn,
gunicorn, redis-py against Redis, psycopg_pool against PostgreSQL, grpc.aio.

For these claims "outdated" means: the leak held in an older release of the library (the
judge names it and the release that changed it) and not in the one installed, both measured
in the same run. A state counts as *held* when it lasted the whole window the scenario
watched it (``HELD``: at least 95 % of the window, polled).
"""

from __future__ import annotations

from dataclasses import dataclass

from tcplab.judges import Judgement, judge
from tcplab.verdict import Verdict

C, P, R, OUT = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED, Verdict.OUTDATED

#: Share of the watched window a state must last to count as held (polling misses the rest).
HELD = 0.95


def held(seconds: float | None, window: float) -> bool:
    """Did a state last (``seconds``) the whole ``window`` it was watched?"""
    return seconds is not None and window > 0 and seconds >= HELD * window


def _who(owner: str | None) -> str:
    return f"held by {owner}" if owner else "no process holds it"


# -- L04: uvicorn and a client that sends nothing ------------------------------------------

@dataclass(frozen=True)
class UvicornRun:
    """One uvicorn release against clients that send no request."""

    version: str = ""
    #: the event loop and HTTP parser it ran with ("uvloop/httptools")
    stack: str = ""
    keepalive_s: float = 0.0
    #: how long each state was watched
    window_s: float = 0.0
    #: the server's end of a client that connected and sent nothing: how long it stayed
    #: ESTABLISHED (up to the window), its state then, and who held it
    silent_held_s: float = 0.0
    silent_state: str | None = None
    silent_owner: str | None = None
    #: clients that connected and closed before sending anything (a TCP health check),
    #: their FINs arriving while the server was paused; their server ends in CLOSE_WAIT at
    #: the window's end, and how long the first one stayed there
    closers: int = 0
    close_wait: int = 0
    close_wait_held_s: float = 0.0
    close_wait_owner: str | None = None
    #: the first closer's own end at the window's end (FIN_WAIT2: the server never closed)
    closer_state: str | None = None


@dataclass(frozen=True)
class SilentClients:
    """The installed uvicorn, and (if installed under ``RELEASES``) the release #1199 was
    reported against, measured the same way."""

    current: UvicornRun
    old: UvicornRun | None = None
    #: the release that removed the asyncio-streams handler (#1354, #1355)
    fixed_in: str = "0.17.2"


def _uvicorn_text(run: UvicornRun) -> str:
    return (f"uvicorn {run.version or '?'} ({run.stack or '?'}, keep-alive {run.keepalive_s:g} s): "
            f"a silent client's server end stayed ESTABLISHED {run.silent_held_s:.1f} s of "
            f"{run.window_s:.1f} s ({_who(run.silent_owner)}); of {run.closers} clients that "
            f"closed before sending anything, {run.close_wait} server ends in CLOSE_WAIT, the "
            f"first for {run.close_wait_held_s:.1f} s ({_who(run.close_wait_owner)}; the "
            f"client's end {run.closer_state or 'gone'})")


def _uvicorn_leaks(run: UvicornRun) -> bool:
    return (run.closers > 0 and run.close_wait == run.closers
            and held(run.close_wait_held_s, run.window_s))


@judge("L04", C, P, R, OUT)
def l04(m: SilentClients) -> Judgement:
    """uvicorn arms no timeout for a client that sends nothing; one that closes before
    sending leaves the server's end in CLOSE_WAIT (#1199), in releases 0.14.0..0.17.1."""
    cur = m.current
    silent_kept = cur.silent_state == "ESTABLISHED" and held(cur.silent_held_s, cur.window_s) \
        and cur.window_s >= 2 * cur.keepalive_s
    old_leaks = m.old is not None and _uvicorn_leaks(m.old)
    text = _uvicorn_text(cur) + (f"; {_uvicorn_text(m.old)}" if m.old else
                                 "; the old release was not measured (not installed)")
    if _uvicorn_leaks(cur):
        verdict = C if silent_kept else P
    elif old_leaks:
        verdict = OUT
        text += f"; the CLOSE_WAIT leak is gone since {m.fixed_in}"
    else:
        verdict = P if silent_kept else R
    return Judgement(verdict, text)


# -- L05: gunicorn's sync and gthread workers behind clients that hold connections ----------

@dataclass(frozen=True)
class GunicornRun:
    """One gunicorn worker class, one worker, a client that connected and sent nothing, then
    clients that sent a request behind it and gave up (closed) before an answer came."""

    version: str = ""
    worker: str = ""
    #: gunicorn's --timeout (the arbiter replaces a worker silent that long) and --keep-alive
    worker_timeout_s: float = 0.0
    keepalive_s: float = 0.0
    closers: int = 0
    #: their server ends seen in CLOSE_WAIT, who held the first (None: the listen queue),
    #: and how long it stayed there (up to ``window_s``)
    close_wait: int = 0
    close_wait_owner: str | None = None
    close_wait_held_s: float = 0.0
    #: how long the silent client's server end stayed ESTABLISHED (up to ``window_s``)
    silent_held_s: float = 0.0
    window_s: float = 0.0
    #: the worker process was replaced meanwhile (the arbiter killed it)
    worker_replaced: bool = False


@dataclass(frozen=True)
class HeldConnections:
    """The sync worker (the default) and the gthread worker under the same clients."""

    sync: GunicornRun
    gthread: GunicornRun
    #: how long gthread (25.2.0+) waits in a thread for a first request before it parks the
    #: connection under its keep-alive timeout (gunicorn/workers/gthread.py)
    first_request_wait_s: float = 5.0


#: Seconds within which a served connection leaves CLOSE_WAIT, and the slack allowed on the
#: worker timeout and on gthread's first-request wait (polls of 1 s in gunicorn's loops).
SERVED_S, SLACK_S = 1.0, 2.0


def _gunicorn_text(run: GunicornRun) -> str:
    where = run.close_wait_owner or "in the listen queue, no process holds them"
    return (f"{run.worker} worker (gunicorn {run.version or '?'}, --timeout "
            f"{run.worker_timeout_s:g} s, --keep-alive {run.keepalive_s:g} s): {run.close_wait} "
            f"of {run.closers} abandoned connections in CLOSE_WAIT ({where}), the first for "
            f"{run.close_wait_held_s:.1f} s; the silent client's end ESTABLISHED "
            f"{run.silent_held_s:.1f} s of {run.window_s:.1f} s; worker "
            f"{'replaced' if run.worker_replaced else 'not replaced'}")


@judge("L05", C, P, R)
def l05(m: HeldConnections) -> Judgement:
    """The sync worker, held by a client that sends nothing until its --timeout, leaves the
    clients queued behind it that give up in CLOSE_WAIT in the listen queue; the gthread
    worker serves them, and closes the silent client after its first-request wait plus its
    keep-alive (tolerances: ``SERVED_S``, ``SLACK_S``)."""
    sync, gt = m.sync, m.gthread
    sync_leaks = (sync.closers > 0 and sync.close_wait == sync.closers
                  and sync.close_wait_owner is None
                  and sync.close_wait_held_s >= sync.worker_timeout_s - SLACK_S)
    gt_serves = gt.closers > 0 and gt.close_wait_held_s < SERVED_S
    gt_limit = m.first_request_wait_s + gt.keepalive_s + SLACK_S
    gt_times_out = 0 < gt.silent_held_s <= gt_limit
    text = (f"{_gunicorn_text(sync)}; {_gunicorn_text(gt)} (a served connection leaves "
            f"CLOSE_WAIT within {SERVED_S:g} s; gthread should close a silent client within "
            f"{gt_limit:g} s: first-request wait {m.first_request_wait_s:g} s + keep-alive + "
            f"{SLACK_S:g} s)")
    if not sync_leaks:
        return Judgement(R, text)
    return Judgement(C if gt_serves and gt_times_out else P, text)


# -- L06: redis-py's pool and Redis's idle `timeout` ----------------------------------------

@dataclass(frozen=True)
class IdleReaping:
    """A burst checks out ``pooled`` connections at once and returns them; the server then
    closes them after its idle timeout while they sit in the pool; one command follows."""

    library: str = ""
    server: str = ""
    server_idle_timeout_s: float = 0.0
    pooled: int = 0
    #: pooled client ends in CLOSE_WAIT once the server's timeout passed, how long the
    #: first stayed there (up to ``window_s``), who held it, and the server's end then
    close_wait: int = 0
    close_wait_held_s: float = 0.0
    window_s: float = 0.0
    owner: str | None = None
    server_state: str | None = None
    #: what the first command after the timeout raised (None: it succeeded)
    first_command_error: str | None = None
    #: pooled ends still in CLOSE_WAIT after that command (the pool replaced the one it used)
    close_wait_after_command: int = 0
    #: all gone after the application closed the idle connections (pool.disconnect)
    gone_after_disconnect: bool = False


@judge("L06", C, P, R)
def l06(m: IdleReaping) -> Judgement:
    """The pool never reaps connections the server closed: they sit in CLOSE_WAIT, held by
    the application, until checked out again, when the pool replaces them."""
    leaks = (m.pooled > 0 and m.close_wait == m.pooled and m.owner is not None
             and held(m.close_wait_held_s, m.window_s))
    replaced_quietly = m.first_command_error is None and m.close_wait_after_command == m.pooled - 1
    text = (f"{m.library or 'redis-py ?'} against {m.server or 'Redis ?'} (timeout "
            f"{m.server_idle_timeout_s:g} s): {m.close_wait} of {m.pooled} pooled connections in "
            f"CLOSE_WAIT, the first for {m.close_wait_held_s:.1f} s of {m.window_s:.1f} s "
            f"({_who(m.owner)}; the server's end {m.server_state or 'gone'}); the next command "
            f"{'succeeded' if m.first_command_error is None else f'failed: {m.first_command_error}'}"
            f", after which {m.close_wait_after_command} stayed in CLOSE_WAIT; closing the idle "
            f"connections (pool.disconnect) {'removed' if m.gone_after_disconnect else 'did not remove'} them")
    if not leaks:
        return Judgement(R, text)
    return Judgement(C if replaced_quietly else P, text)


# -- L09: psycopg_pool and PostgreSQL's idle_session_timeout --------------------------------

@dataclass(frozen=True)
class PoolRun:
    """One psycopg_pool ConnectionPool whose idle connections the server closed."""

    #: the pool's ``check`` callback ("" for none, the default)
    check: str = ""
    pooled: int = 0
    #: pooled client ends in CLOSE_WAIT, how long the first stayed there (up to
    #: ``window_s``), its unread bytes (the server's goodbye), who held it, the server's end
    close_wait: int = 0
    close_wait_held_s: float = 0.0
    window_s: float = 0.0
    recv_q: int | None = None
    owner: str | None = None
    server_state: str | None = None
    #: what a query on the next connection the pool handed out raised (None: it worked)
    query_error: str | None = None


@dataclass(frozen=True)
class ServerClosedPool:
    """The default pool, and the same pool with ``check=ConnectionPool.check_connection``
    (psycopg_pool 3.2, the answer to psycopg #584), against the same server."""

    library: str = ""
    server: str = ""
    idle_session_timeout_s: float = 0.0
    default: PoolRun = PoolRun()
    checked: PoolRun | None = None


def _pool_text(run: PoolRun) -> str:
    return (f"pool with check={run.check or 'None (default)'}: {run.close_wait} of {run.pooled} "
            f"idle connections in CLOSE_WAIT, the first for {run.close_wait_held_s:.1f} s of "
            f"{run.window_s:.1f} s (Recv-Q {run.recv_q}, {_who(run.owner)}; the server's end "
            f"{run.server_state or 'gone'}); a query on the next connection handed out "
            f"{'worked' if run.query_error is None else f'failed: {run.query_error}'}")


def _pool_leaks(run: PoolRun) -> bool:
    return (run.pooled > 0 and run.close_wait == run.pooled and run.owner is not None
            and held(run.close_wait_held_s, run.window_s))


@judge("L09", C, P, R)
def l09(m: ServerClosedPool) -> Judgement:
    """psycopg_pool keeps connections the server closed in CLOSE_WAIT and hands one out
    (its query fails) unless the pool checks connections (``check=``)."""
    d = m.default
    handed_out = d.query_error is not None
    fixed = m.checked is not None and m.checked.query_error is None
    text = (f"{m.library or 'psycopg_pool ?'} against {m.server or 'PostgreSQL ?'} "
            f"(idle_session_timeout {m.idle_session_timeout_s:g} s): {_pool_text(d)}; "
            + (_pool_text(m.checked) if m.checked else "the checked pool was not measured"))
    if not _pool_leaks(d):
        return Judgement(R, text)
    return Judgement(C if handed_out and fixed else P, text)
