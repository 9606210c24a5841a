"""Judges of leaks in real HTTP client and asyncio libraries: L01, L02, L03, L07, L08,
L11, L13.

Each claim is our summary of what a library's issue tracker reports (``tcplab.claims``,
``source``); the ``realworld`` scenarios (``scenarios/rw_*.py``) run the library's own code
against a server in a child process on loopback and measure both ends in the kernel's
tables. A state "held" means it lasted the window the scenario watched it on purpose
(``window_s``), within the one tolerance every judge uses (``tcplab.judges.HELD_SHARE``
of the window: the last poll may fall a little short of its end); each summary states it.
Library versions are in each measurement (and in results.json). Where a pinned release is
compared with an old one (aiohttp) or the current CPython line with older ones (asyncio),
the scenario runs both or is skipped saying what is missing: never judged on one alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcplab.judges import HELD_SHARE, Judgement, held_through, judge, path_text
from tcplab.verdict import Verdict

C, P, R, OUT = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED, Verdict.OUTDATED
CW = "CLOSE_WAIT"




def _s(value: float | None) -> str:
    if value is None:
        return "never"
    return f"{value * 1000:.1f} ms" if value < 0.1 else f"{value:.2f} s"


@dataclass(frozen=True)
class IdlePool:
    """A client pool's idle keep-alive connections after the server's keep-alive timeout
    closed them (L01 urllib3/requests, L08 httpx/httpcore)."""

    #: the libraries and versions that ran ("requests 2.34.2 / urllib3 2.8.0")
    library: str
    #: how many idle connections the pool keeps per host, and how many the client had open
    #: at once before returning them all to the pool
    pool_size: int
    opened: int
    #: the server's keep-alive timeout
    keepalive_s: float
    #: the client's ends in CLOSE_WAIT once the server closed, and how many of those an fd
    #: of the client's own process held
    close_wait: int
    owned: int
    #: the server's ends of those connections then (FIN_WAIT2: closed, waiting for a FIN)
    server_ends: tuple[str | None, ...]
    #: how long all of them stayed in CLOSE_WAIT while the pool sat idle, of ``window_s``
    held_s: float | None
    window_s: float
    #: one more request to the same origin: did it succeed, and how many stayed CLOSE_WAIT
    reuse_ok: bool | None
    after_reuse: int | None
    #: CLOSE_WAIT ends left once the pool (session, client) was closed
    after_close: int | None


def _idle_pool(m: IdlePool, bound: str, left: int, freed: str) -> Judgement:
    """``left``: the CLOSE_WAIT ends the claim says one more request leaves (``freed``
    names what it frees); the fix, closing the pool, must leave none."""
    kept = min(m.opened, m.pool_size)
    stays = m.close_wait > 0 and m.owned == m.close_wait and held_through(m.held_s, m.window_s)
    bounded = m.close_wait <= m.pool_size and (m.opened <= m.pool_size or m.close_wait == kept)
    reused = bool(m.reuse_ok) and m.after_reuse == max(left, 0)
    summary = (
        f"{m.library}: {m.opened} connections opened at once, pool of {m.pool_size}; after the "
        f"server's {m.keepalive_s:g} s keep-alive timeout {m.close_wait} client ends were in "
        f"CLOSE_WAIT ({m.owned} held by the client's own fds; server ends "
        f"{', '.join(s or 'gone' for s in m.server_ends) or 'not seen'}), held "
        f"{_s(m.held_s)} of a {m.window_s:g} s idle window (held: {HELD_SHARE:.0%} of it); "
        f"one more request "
        f"{'succeeded' if m.reuse_ok else 'failed' if m.reuse_ok is False else 'was not tried'}"
        f" and left {m.after_reuse} in CLOSE_WAIT; closing the pool left {m.after_close}")
    if not stays:
        return Judgement(R, summary + ": the pool did not keep them in CLOSE_WAIT")
    if not bounded:
        return Judgement(P, summary + f": more than {bound} ({m.pool_size}) were kept")
    if not reused:
        return Judgement(P, summary + f": the request did not free just {freed} "
                         f"({max(left, 0)} left, as stated)")
    if m.after_close != 0:
        return Judgement(P, summary + ": closing the pool did not free them all")
    return Judgement(C, summary)


@judge("L01", C, P, R)
def l01(m: IdlePool) -> Judgement:
    """urllib3 keeps idle pooled connections the server closed in CLOSE_WAIT, at most
    ``pool_maxsize``; a request frees the one it checks out (``is_connection_dropped``) and
    connects anew, the rest stay; closing the pool frees them all."""
    return _idle_pool(m, "pool_maxsize", m.close_wait - 1, "the one it checked out")


@judge("L08", C, P, R)
def l08(m: IdlePool) -> Judgement:
    """httpcore keeps idle pooled connections the server closed in CLOSE_WAIT; the next
    request to the origin closes every idle one it finds readable and succeeds on a new
    connection; closing the client frees them all."""
    return _idle_pool(m, "max_keepalive_connections", 0, "every readable idle one")


@dataclass(frozen=True)
class StreamedUnreleased:
    """requests responses fetched with ``stream=True`` whose bodies were neither read nor
    closed, against a pool with ``pool_block=True`` (L02)."""

    library: str
    pool_size: int
    #: responses left unreleased (headers read, body neither read nor closed)
    unreleased: int
    #: the next request: did it get a connection while they were unreleased, and how long
    #: it had waited when the scenario stopped waiting (``wait_window_s``) or it got one
    got_connection: bool
    waited_s: float | None
    wait_window_s: float
    #: the unreleased connections in CLOSE_WAIT once the server's keep-alive timeout closed
    #: them, held by the client's fds; their Recv-Q (the unread body, and the FIN)
    close_wait: int
    owned: int
    recv_q: tuple[int, ...]
    held_s: float | None
    window_s: float
    #: closing one response: seconds until the waiting request completed (None: it did not)
    unblocked_s: float | None
    #: CLOSE_WAIT ends left once every response was closed
    after_close: int | None


@judge("L02", C, P, R)
def l02(m: StreamedUnreleased) -> Judgement:
    """Unreleased streamed responses keep their connections out of the pool (CLOSE_WAIT once
    the server closes), so a blocking pool's next request waits; closing a response
    releases its connection, and closing all leaves no CLOSE_WAIT (else partly: the bug of
    requests #3461, fixed in requests 2.11.0 by PR #3462)."""
    waits = (m.unreleased >= m.pool_size > 0 and not m.got_connection
             and held_through(m.waited_s, m.wait_window_s))
    stuck = (m.close_wait == m.unreleased > 0 and m.owned == m.close_wait
             and held_through(m.held_s, m.window_s))
    fixed = m.unblocked_s is not None and m.after_close == 0
    summary = (
        f"{m.library}: {m.unreleased} streamed responses left unread and unclosed, pool of "
        f"{m.pool_size} with pool_block=True; the next request "
        f"{'got a connection' if m.got_connection else 'got no connection'} (waited "
        f"{_s(m.waited_s)}, window {m.wait_window_s:g} s); after the server's keep-alive "
        f"timeout {m.close_wait} of them were CLOSE_WAIT ({m.owned} held by the client's fds, "
        f"Recv-Q {list(m.recv_q)}), held {_s(m.held_s)} of {m.window_s:g} s (held: "
        f"{HELD_SHARE:.0%} of a window); closing one response let the waiting request through "
        f"after {_s(m.unblocked_s)}; closing all left {m.after_close} in CLOSE_WAIT")
    if not (waits and stuck):
        return Judgement(R, summary)
    if not fixed:
        return Judgement(P, summary + ": closing the responses did not release the pool "
                         "(the bug of requests #3461, fixed in requests 2.11.0 by PR #3462)")
    return Judgement(C, summary + "; closing releases the connection, as it does since "
                     "requests 2.11.0 (PR #3462, the fix of #3461)")


def _current_or_old(summary: str, current: bool, old: bool, why_old: str) -> Judgement:
    """Confirmed when the current release (or CPython line) shows it; outdated when only an
    older one measured does (``why_old``: which, and what changed); refuted when none does."""
    if current:
        return Judgement(C, summary)
    return Judgement(OUT, summary + why_old) if old else Judgement(R, summary)


def _open_states(state: str | None) -> bool:
    """Is a socket in ``state`` still open by its owner (not closed by it, not gone)?"""
    return state in ("ESTABLISHED", CW)


@dataclass(frozen=True)
class AbandonedWriter:
    """One interpreter's asyncio streams server whose handler returned without
    ``writer.close()`` (L03): the server ran gc.collect(), then the client closed."""

    #: the interpreter's version ("3.12.1")
    python: str
    #: the server's end then (CLOSE_WAIT: still open), whether a fd of the server process
    #: held it, and how long it stayed so, of the window
    state: str | None
    owned: bool
    held_s: float | None
    #: then ``server.close()`` and ``Server.wait_closed()``: did it return within the window
    #: (None: not measured)
    wait_closed_returned: bool | None


@dataclass(frozen=True)
class AbandonedWriters:
    """L03 on the CPython lines found here, oldest first; the last is the pinned current
    line (the scenario's precondition: it and at least one older line)."""

    window_s: float
    runs: tuple[AbandonedWriter, ...]


def _leaks(run: AbandonedWriter, window_s: float) -> bool:
    return run.state == CW and run.owned and held_through(run.held_s, window_s)


def _waited(run: AbandonedWriter) -> str:
    return {None: "not tried", True: "returned"}.get(run.wait_closed_returned, "still waiting")


@judge("L03", C, P, R, OUT)
def l03(m: AbandonedWriters) -> Judgement:
    """Judged on the current line (the last run): it leaks -> confirmed (partly if
    ``wait_closed()`` returned anyway); an older line that leaks while the current one does
    not -> outdated (3.13's StreamWriter closes its transport once it is collected: the fix
    of gh-114914)."""
    summary = "; ".join(
        f"Python {r.python}: server end {r.state or 'gone'}{' (its fd)' if r.owned else ''} "
        f"held {_s(r.held_s)}, then Server.wait_closed() {_waited(r)}" for r in m.runs)
    summary = (summary or "no interpreter measured") + (
        f" (a handler returned without writer.close(), gc.collect(), the client closed; "
        f"window {m.window_s:g} s, held: {HELD_SHARE:.0%} of it)")
    if not m.runs:
        return Judgement(R, summary)
    current = m.runs[-1]
    if _leaks(current, m.window_s) and current.wait_closed_returned is not False:
        return Judgement(P, summary + f": on {current.python} wait_closed() did not wait for "
                         "the leaked connection")
    leaking = [r.python for r in m.runs[:-1] if _leaks(r, m.window_s)]
    return _current_or_old(
        summary, _leaks(current, m.window_s), bool(leaking),
        f": the abandoned writer leaks on Python {', '.join(leaking)}, not on "
        f"{current.python}, the current line (its StreamWriter closes the transport once "
        "collected: gh-114914)")


@dataclass(frozen=True)
class DeferredClose:
    """One interpreter's asyncio streams server closing a connection (L13)."""

    python: str
    #: a handler called writer.close() and then kept the event loop from running: the
    #: server's end meanwhile and how long it stayed so; how long after the loop ran again
    #: the client saw the server's FIN (None: not within the wait)
    blocked_state: str | None
    blocked_held_s: float | None
    fin_after_release_s: float | None
    #: a handler called close() and awaited wait_closed(): the client's end once it returned
    #: (CLOSE_WAIT: the server's FIN had arrived)
    tidy_client_state: str | None


@dataclass(frozen=True)
class DeferredCloses:
    """L13 on the CPython lines found here, oldest first; the last is the current line."""

    window_s: float
    runs: tuple[DeferredClose, ...]


def _deferred(run: DeferredClose, window_s: float) -> bool:
    return (run.blocked_state == "ESTABLISHED" and held_through(run.blocked_held_s, window_s)
            and run.fin_after_release_s is not None)


@judge("L13", C, P, R)
def l13(m: DeferredCloses) -> Judgement:
    """Judged on the current line: close() left the end open while the loop was blocked and
    the FIN left once it ran (else refuted); wait_closed() returned once the FIN had left
    (else partly). The older lines are in the summary."""
    summary = "; ".join(
        f"Python {r.python}: close() with the loop blocked -> server end "
        f"{r.blocked_state or 'gone'} held {_s(r.blocked_held_s)}, the FIN "
        f"{_s(r.fin_after_release_s)} after the loop ran again; when wait_closed() returned "
        f"the client's end was {r.tidy_client_state or 'gone'}" for r in m.runs)
    summary = (summary or "no interpreter measured") + (
        f" (window {m.window_s:g} s, held: {HELD_SHARE:.0%} of it)")
    if not m.runs or not _deferred(m.runs[-1], m.window_s):
        return Judgement(R, summary)
    if m.runs[-1].tidy_client_state != CW:
        return Judgement(P, summary + ": wait_closed() returned before the FIN had arrived")
    return Judgement(C, summary)


@dataclass(frozen=True)
class SessionClose:
    """One aiohttp release's ClientSession closed over TLS on loopback, its event loop
    blocked right after ``await session.close()`` returned (L07)."""

    #: "aiohttp 3.12.3"
    library: str
    #: the client's end when close() had returned (ESTABLISHED or CLOSE_WAIT: still open),
    #: whether a fd of the client's process held it, and how long it stayed so while the
    #: loop was blocked
    after_close: str | None
    owned: bool
    held_s: float | None
    #: once the loop ran again: seconds until the client's end was closed (None: not within
    #: the wait, or it never was open)
    closed_after_s: float | None


@dataclass(frozen=True)
class AiohttpSessionClose:
    """L07: the pinned release and an old one (``None``: not measured)."""

    window_s: float
    current: SessionClose
    old: SessionClose | None


def _left_open(run: SessionClose, window_s: float) -> bool:
    return _open_states(run.after_close) and run.owned and held_through(run.held_s, window_s)


def _session_text(run: SessionClose) -> str:
    said = (f"{run.library}: when close() returned the client's end was "
            f"{run.after_close or 'gone'}{' (its fd)' if run.owned else ''}")
    if not _open_states(run.after_close):
        return said + ", closed already"
    return (said + f", still open; so for {_s(run.held_s)} with the loop blocked, closed "
            f"{_s(run.closed_after_s)} after the loop ran again")


@judge("L07", C, R, OUT)
def l07(m: AiohttpSessionClose) -> Judgement:
    """Left open after close() on the current release -> confirmed; only on the old one ->
    outdated (aiohttp 3.12.4's changelog: BaseConnector.close() waits for its connections,
    PR #11074, partial backport of #3733); on neither -> refuted."""
    runs = [m.current, *([m.old] if m.old is not None else [])]
    summary = "; ".join(map(_session_text, runs)) + (
        f" (TLS on loopback; window {m.window_s:g} s, held: {HELD_SHARE:.0%} of it)")
    old = m.old is not None and _left_open(m.old, m.window_s)
    return _current_or_old(
        summary, _left_open(m.current, m.window_s), old,
        f": left open by {m.old and m.old.library}, not by {m.current.library}; fixed in "
        "aiohttp 3.12.4 (PR #11074: BaseConnector.close() waits for its connections to close)")


@dataclass(frozen=True)
class WsServerEnd:
    """One aiohttp release's websocket server, its handler running on after the close (L11)."""

    #: "aiohttp 3.9.3"
    library: str
    #: the server's end after an aiohttp client's ws.close(), followed over the window, and
    #: how long it was in CLOSE_WAIT (None: never)
    path: tuple[str | None, ...]
    close_wait_s: float | None
    #: #8184's client (it sends a close frame, then waits for the server to close, as RFC
    #: 6455 asks of a client): how long the server's end stayed ESTABLISHED, of the window
    waiting_open_s: float | None


@dataclass(frozen=True)
class WsClose:
    """L11: the pinned release and an old one (``None``: not measured)."""

    window_s: float
    #: how long the server's handler runs on after the client's close
    hold_s: float
    current: WsServerEnd
    old: WsServerEnd | None


def _ws_text(run: WsServerEnd) -> str:
    return (f"{run.library} server: after the aiohttp client's ws.close() its end went "
            f"{path_text(run.path)}, CLOSE_WAIT {_s(run.close_wait_s)}; with a client that "
            f"waits for the server's close it stayed ESTABLISHED {_s(run.waiting_open_s)}")


@judge("L11", C, R, OUT)
def l11(m: WsClose) -> Judgement:
    """The server's end in CLOSE_WAIT for the whole window after an aiohttp client's close:
    on the current release -> confirmed; only on the old one -> outdated; on neither ->
    refuted. How long a waiting client's connection stayed open (#8184's own case, PR
    #8200 in 3.9.4) is told, not weighed: it is not CLOSE_WAIT."""
    runs = [m.current, *([m.old] if m.old is not None else [])]
    summary = "; ".join(map(_ws_text, runs)) + (
        f" (the handler runs {m.hold_s:g} s on after the close; window {m.window_s:g} s, "
        f"held: {HELD_SHARE:.0%} of it)")
    current = held_through(m.current.close_wait_s, m.window_s)
    old = m.old is not None and held_through(m.old.close_wait_s, m.window_s)
    if not (current or old):
        summary += (": aiohttp's client closes its end after the close handshake and the "
                    "server's end closes on that FIN; #8184's bug keeps a waiting client's "
                    "connection ESTABLISHED (fixed in 3.9.4, PR #8200)")
    return _current_or_old(summary, current, old, f": CLOSE_WAIT on {m.old and m.old.library}, "
                           f"not on {m.current.library}")
