"""Judges of the leaks real servers and pools show (L04, L12, L05, L06, L09, L10): uvicorn,
gunicorn, redis-py against Redis, psycopg_pool against PostgreSQL, grpc.aio.

For these claims "outdated" means: the leak held in an older release of the library (the
judge names it and the release that changed it) and not in the one installed, both measured
in the same run. A state counts as *held* when it lasted the whole window the scenario
watched it (``held_through``: at least ``HELD_SHARE`` of the window, polled).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tcplab.judges import Judgement, held_through, judge
from tcplab.verdict import Verdict

C, P, R, OUT = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED, Verdict.OUTDATED

#: Share of the watched window a state must last to count as held (polling misses the rest).


def _who(owner: str | None) -> str:
    return f"held by {owner}" if owner else "no process holds it"


# -- L04: uvicorn and a client that sends nothing -----------------------------------------

@dataclass(frozen=True)
class SilentRun:
    """uvicorn with one HTTP implementation: a client that connected and sent nothing, and
    one that got a response and then sent nothing more, watched over the same window."""

    version: str = ""
    #: the HTTP implementation (``--http``: httptools, h11)
    http: str = ""
    keepalive_s: float = 0.0
    window_s: float = 0.0
    #: the silent client's server end: how long it stayed ESTABLISHED (up to the window),
    #: its state at the window's end, and who held it
    silent_held_s: float = 0.0
    silent_state: str | None = None
    silent_owner: str | None = None
    #: seconds until the server closed the served client's idle connection (its FIN
    #: arrived: the keep-alive timer armed by the response fired); None: not in the window
    served_closed_s: float | None = None


@dataclass(frozen=True)
class SilentClients:
    """The installed uvicorn, once per HTTP implementation."""

    runs: tuple[SilentRun, ...] = ()


#: Seconds allowed past the keep-alive timeout for the served connection's FIN (uvicorn's
#: timer fires on the event loop; polls of 10 ms here).
KEEPALIVE_SLACK_S = 1.0


def _silent_kept(run: SilentRun) -> bool:
    """The silent client's server end stayed ESTABLISHED, held by the server, through a
    window of at least twice the keep-alive timeout."""
    return (run.silent_state == "ESTABLISHED" and run.silent_owner is not None
            and held_through(run.silent_held_s, run.window_s) and run.window_s >= 2 * run.keepalive_s)


def _served_timed_out(run: SilentRun) -> bool:
    return run.served_closed_s is not None and \
        run.served_closed_s <= run.keepalive_s + KEEPALIVE_SLACK_S


def _silent_text(run: SilentRun) -> str:
    served = ("not closed in the window" if run.served_closed_s is None
              else f"closed by the server after {run.served_closed_s:.1f} s")
    return (f"uvicorn {run.version or '?'} --http {run.http or '?'} (keep-alive "
            f"{run.keepalive_s:g} s): the silent client's server end ESTABLISHED "
            f"{run.silent_held_s:.1f} s of {run.window_s:.1f} s, then {run.silent_state or 'gone'} "
            f"({_who(run.silent_owner)}); a served client idle after its response {served}")


@judge("L04", C, P, R)
def l04(m: SilentClients) -> Judgement:
    """uvicorn arms its keep-alive timer only when a response completes: a client that
    never sends a request keeps its server end ESTABLISHED (held through a window of at
    least twice the keep-alive, at ``HELD_SHARE``), while a served idle client is closed
    within the keep-alive plus ``KEEPALIVE_SLACK_S``. Confirmed with every HTTP
    implementation measured; partly if only some keep it, or the timer is not seen to fire
    after a response either."""
    kept = [run for run in m.runs if _silent_kept(run)]
    text = ("; ".join(map(_silent_text, m.runs)) or "no uvicorn run measured") + (
        f" (a served connection counts as timed out within the keep-alive + "
        f"{KEEPALIVE_SLACK_S:g} s)")
    if not kept:
        return Judgement(R, text)
    if len(kept) < len(m.runs):
        return Judgement(P, text + "; only with --http " + ", ".join(r.http for r in kept))
    return Judgement(C if all(map(_served_timed_out, m.runs)) else P, text)


# -- L12: uvicorn and a client that closes before sending -----------------------------------

@dataclass(frozen=True)
class EarlyCloseRun:
    """One uvicorn release against clients that connected and closed before sending anything
    (a TCP health check), their FINs arriving while the server was paused."""

    version: str = ""
    #: the event loop and HTTP parser it ran with ("uvloop/httptools")
    stack: str = ""
    window_s: float = 0.0
    closers: int = 0
    #: their server ends in CLOSE_WAIT at the window's end, how long the first stayed there
    #: (up to the window), who held it, and the first closer's own end then (FIN_WAIT2:
    #: the server never closed; TIME_WAIT or gone: it did)
    close_wait: int = 0
    close_wait_held_s: float = 0.0
    close_wait_owner: str | None = None
    closer_state: str | None = None


@dataclass(frozen=True)
class HealthChecks:
    """The installed uvicorn and older releases (from ``RELEASES``), measured the same way."""

    current: EarlyCloseRun = EarlyCloseRun()
    older: tuple[EarlyCloseRun, ...] = ()


#: What changed in a release that ended the leak, as its release notes say (named when the
#: measurement shows that release as the first without it).
CHANGES = {"0.17.1": "#1332 feeds the end of file to the HTTP protocol, which closes; 0.17.2 "
                     "reverted #1332 (#1354) and the streams handler itself (#1355)"}


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version)[:3])


def _early_leaks(run: EarlyCloseRun) -> bool:
    return (run.closers > 0 and run.close_wait == run.closers
            and run.close_wait_owner is not None and held_through(run.close_wait_held_s, run.window_s))


def _early_text(run: EarlyCloseRun) -> str:
    first = (f"the first for {run.close_wait_held_s:.1f} s of {run.window_s:.1f} s "
             f"({_who(run.close_wait_owner)}; the client's end {run.closer_state or 'gone'})")
    return f"uvicorn {run.version or '?'} ({run.stack or '?'}): {run.close_wait} of " \
        f"{run.closers} server ends in CLOSE_WAIT, {first}"


@judge("L12", C, R, OUT)
def l12(m: HealthChecks) -> Judgement:
    """Every client that closed before sending leaves the server's end in CLOSE_WAIT, held
    by the server through the window: confirmed if the installed release does it; outdated
    if only older releases do (the summary names the first measured release after the last
    leaking one, and what changed in it); refuted if none does."""
    runs = sorted((*m.older, m.current), key=lambda r: _release(r.version))
    text = "; ".join(map(_early_text, runs))
    if _early_leaks(m.current):
        return Judgement(C, text)
    leaking = [i for i, run in enumerate(runs) if _early_leaks(run)]
    if not leaking:
        return Judgement(R, text)
    last = runs[leaking[-1]]
    fixed = next((r.version for r in runs[leaking[-1] + 1:] if not _early_leaks(r)),
                 m.current.version)
    change = f" ({CHANGES[fixed]})" if fixed in CHANGES else ""
    return Judgement(OUT, text + f"; the leak ends in {fixed}{change}, the first release "
                     f"measured after {last.version}")


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


#: Seconds within which a served connection leaves CLOSE_WAIT; the slack allowed on the
#: worker timeout and on gthread's first-request wait (gunicorn's loops poll every 1 s);
#: the arbiter's own poll (it checks its workers about once a second); and the start of the
#: replacement worker until it accepts (measured up to 0.9 s past the other three on this
#: 2-core machine with both cores busy).
SERVED_S, SLACK_S, ARBITER_POLL_S, WORKER_START_S = 1.0, 2.0, 1.0, 1.0
#: The release whose gthread worker closes a client that never sends a request (its
#: release notes; 21.0.0 did it first, 21.2.0 reverted it).
GTHREAD_TIMES_OUT_SINCE = "25.2.0"


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
    """The sync worker, held by a client that sends nothing, leaves the clients queued behind
    it that give up in CLOSE_WAIT in the listen queue until the arbiter replaces it after
    --timeout (the CLOSE_WAIT lasts from the timeout minus ``SLACK_S`` to the timeout plus
    ``SLACK_S``, ``ARBITER_POLL_S`` and ``WORKER_START_S``, and the worker is replaced); the gthread worker
    serves them, and closes the silent client after its first-request wait plus its
    keep-alive (tolerances: ``SERVED_S``, ``SLACK_S``). Refuted if the sync worker leaves no
    such CLOSE_WAIT; partly if it does but not bounded by --timeout, or gthread does not
    serve or time out as said."""
    sync, gt = m.sync, m.gthread
    sync_leaks = (sync.closers > 0 and sync.close_wait == sync.closers
                  and sync.close_wait_owner is None
                  and sync.close_wait_held_s >= sync.worker_timeout_s - SLACK_S)
    sync_limit = sync.worker_timeout_s + SLACK_S + ARBITER_POLL_S + WORKER_START_S
    until_replaced = sync.worker_replaced and sync.close_wait_held_s <= sync_limit
    gt_serves = gt.closers > 0 and gt.close_wait_held_s < SERVED_S
    gt_limit = m.first_request_wait_s + gt.keepalive_s + SLACK_S
    gt_times_out = 0 < gt.silent_held_s <= gt_limit
    text = (f"{_gunicorn_text(sync)}; {_gunicorn_text(gt)} (the sync worker's CLOSE_WAIT "
            f"should end once it is replaced, within {sync_limit:g} s: --timeout + "
            f"{SLACK_S:g} s + the arbiter's {ARBITER_POLL_S:g} s poll + {WORKER_START_S:g} s "
            f"for the new worker to start; a served connection "
            f"leaves CLOSE_WAIT within {SERVED_S:g} s; gthread should close a silent client "
            f"within {gt_limit:g} s: first-request wait {m.first_request_wait_s:g} s + "
            f"keep-alive + {SLACK_S:g} s)")
    if gt_times_out:
        text += f"; gthread closes such a client since gunicorn {GTHREAD_TIMES_OUT_SINCE}"
    if not sync_leaks:
        return Judgement(R, text)
    return Judgement(C if until_replaced and gt_serves and gt_times_out else P, text)


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
    the application, until checked out again, when the pool replaces the one it hands out
    (one freed per checkout, the command succeeding); closing the idle connections
    (``pool.disconnect``), the fix, leaves none. Refuted without that CLOSE_WAIT; partly if
    a checkout frees another number, the command fails, or the fix leaves some."""
    leaks = (m.pooled > 0 and m.close_wait == m.pooled and m.owner is not None
             and held_through(m.close_wait_held_s, m.window_s))
    one_per_checkout = (m.first_command_error is None
                        and m.close_wait_after_command == m.pooled - 1)
    text = (f"{m.library or 'redis-py ?'} against {m.server or 'Redis ?'} (timeout "
            f"{m.server_idle_timeout_s:g} s): {m.close_wait} of {m.pooled} pooled connections in "
            f"CLOSE_WAIT, the first for {m.close_wait_held_s:.1f} s of {m.window_s:.1f} s "
            f"({_who(m.owner)}; the server's end {m.server_state or 'gone'}); the next command "
            f"{'succeeded' if m.first_command_error is None else f'failed: {m.first_command_error}'}"
            f", after which {m.close_wait_after_command} stayed in CLOSE_WAIT; closing the idle "
            f"connections (pool.disconnect) left "
            f"{'none' if m.gone_after_disconnect else 'some'} in CLOSE_WAIT")
    if not leaks:
        return Judgement(R, text)
    return Judgement(C if one_per_checkout and m.gone_after_disconnect else P, text)


# -- L09: psycopg_pool and PostgreSQL's idle_session_timeout --------------------------------

@dataclass(frozen=True)
class PoolRun:
    """One psycopg_pool ConnectionPool whose idle connections the server closed."""

    #: the pool's ``check`` callback ("" for none, the default)
    check: str = ""
    #: the pool's ``max_lifetime`` in seconds (None: the default, an hour)
    max_lifetime_s: float | None = None
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
    """The default pool; #584's pool (``max_lifetime`` below the server's timeout); and the
    pool with ``check=ConnectionPool.check_connection``: against the same server."""

    library: str = ""
    server: str = ""
    idle_session_timeout_s: float = 0.0
    default: PoolRun = PoolRun()
    lifetime: PoolRun | None = None
    checked: PoolRun | None = None


#: The psycopg_pool release that added ``check=`` (its changelog; #584's answer).
CHECK_SINCE = "3.2.0"


def _pool_text(run: PoolRun) -> str:
    lifetime = "" if run.max_lifetime_s is None else f", max_lifetime={run.max_lifetime_s:g} s"
    return (f"pool with check={run.check or 'None (default)'}{lifetime}: {run.close_wait} of "
            f"{run.pooled} idle connections in CLOSE_WAIT, the first for "
            f"{run.close_wait_held_s:.1f} s of {run.window_s:.1f} s (Recv-Q {run.recv_q}, "
            f"{_who(run.owner)}; the server's end {run.server_state or 'gone'}); a query on the "
            f"next connection handed out "
            f"{'worked' if run.query_error is None else f'failed: {run.query_error}'}")


def _pool_leaks(run: PoolRun | None) -> bool:
    return (run is not None and run.pooled > 0 and run.close_wait == run.pooled
            and run.owner is not None and held_through(run.close_wait_held_s, run.window_s))


def _hands_out_dead(run: PoolRun | None) -> bool:
    return _pool_leaks(run) and run is not None and run.query_error is not None


@judge("L09", C, P, R)
def l09(m: ServerClosedPool) -> Judgement:
    """psycopg_pool keeps connections the server closed in CLOSE_WAIT and hands one out (its
    query fails), also with a ``max_lifetime`` below the server's timeout; a pool that
    checks connections (``check=``) held such dead connections too and its query worked.
    Refuted if the default pool holds no such CLOSE_WAIT; partly if a part of that is not
    seen (or not measured)."""
    runs = [m.default, *(r for r in (m.lifetime, m.checked) if r is not None)]
    text = (f"{m.library or 'psycopg_pool ?'} against {m.server or 'PostgreSQL ?'} "
            f"(idle_session_timeout {m.idle_session_timeout_s:g} s): "
            + "; ".join(map(_pool_text, runs)))
    for run, what in ((m.lifetime, "the max_lifetime pool"), (m.checked, "the checked pool")):
        if run is None:
            text += f"; {what} was not measured"
    fixed = _pool_leaks(m.checked) and m.checked is not None and m.checked.query_error is None
    if fixed:
        text += f" (check= is in psycopg_pool since {CHECK_SINCE})"
    if not _pool_leaks(m.default):
        return Judgement(R, text)
    confirmed = _hands_out_dead(m.default) and _hands_out_dead(m.lifetime) and fixed
    return Judgement(C if confirmed else P, text)


# -- L10: grpc.aio channel.close() racing a cancelled reader --------------------------------

@dataclass(frozen=True)
class ChannelRace:
    """Sessions that cancel a bidi stream's reader without awaiting it and close the channel
    at once (grpc #42125), each channel with its own connection; then the fix."""

    #: the raced sessions, the window their connections were watched over; of their client
    #: ends, those still ESTABLISHED once every close() returned, how long they all stayed
    #: (up to the window), and who held the first
    sessions: int
    window_s: float
    open_after_close: int
    held_s: float
    owner: str | None
    #: still ESTABLISHED once the program dropped its cancelled reader tasks and collected
    #: garbage (2 s allowed); and those of the fix (the cancelled reader awaited before
    #: close()) 2 s after it returned
    open_after_drop: int
    open_after_fix: int
    #: "grpcio 1.85.3", "Python 3.11.7"
    library: str
    python: str


@judge("L10", C, P, R)
def l10(m: ChannelRace) -> Judgement:
    """Every raced session's connection stays ESTABLISHED after close() returned, held by
    the program through the window: confirmed if it also outlives the program's last
    reference to the cancelled reader (unreachable from Python) and the fix leaves none;
    partly if only some sessions keep theirs, they close once the reader task is dropped, or
    the fix leaves some; refuted if close() closes them all."""
    kept = (m.open_after_close > 0 and m.owner is not None and held_through(m.held_s, m.window_s))
    text = (f"{m.library or 'grpcio ?'} on {m.python or 'Python ?'}: of {m.sessions} channels "
            f"closed while their reader's cancellation was pending, {m.open_after_close} "
            f"connections ESTABLISHED after close() returned, for {m.held_s:.1f} s of "
            f"{m.window_s:.1f} s ({_who(m.owner)}); {m.open_after_drop} still open once the "
            f"program dropped the cancelled reader tasks; awaiting the cancelled reader before "
            f"close() left {m.open_after_fix} open")
    if not kept:
        return Judgement(R, text)
    every = m.open_after_close == m.sessions
    unreachable = m.open_after_drop == m.open_after_close
    return Judgement(C if every and unreachable and m.open_after_fix == 0 else P, text)
