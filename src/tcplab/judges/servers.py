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

C, P, R, O = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED, Verdict.OUTDATED

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


@judge("L04", C, P, R, O)
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
        verdict = O
        text += f"; the CLOSE_WAIT leak is gone since {m.fixed_in}"
    else:
        verdict = P if silent_kept else R
    return Judgement(verdict, text)
