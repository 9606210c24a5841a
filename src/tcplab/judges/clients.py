"""Judges of leaks in real HTTP client and asyncio libraries: L01, L02, L03, L07, L08.

Each claim is our summary of what a library's issue tracker reports (``tcplab.claims``,
``source``); the ``realworld`` scenarios (``scenarios/rw_*.py``) run the library's own code
against a server in a child process on loopback and measure both ends in the kernel's
tables. A state "held" means it was still there at every poll of a window the scenario
waited on purpose (``window_s``): held for the whole window is the figure compared, no
other tolerance. Library versions are in each measurement (and in results.json).
"""

from __future__ import annotations

from dataclasses import dataclass

from tcplab.judges import Judgement, judge, path_text
from tcplab.verdict import Verdict

C, P, R, OUT = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED, Verdict.OUTDATED
CW = "CLOSE_WAIT"


def _held(held_s: float | None, window_s: float) -> bool:
    """Held through the whole window (a window of 0 proves nothing)."""
    return window_s > 0 and held_s is not None and held_s >= window_s


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


def _idle_pool(m: IdlePool, bound: str) -> Judgement:
    kept = min(m.opened, m.pool_size)
    stays = m.close_wait > 0 and m.owned == m.close_wait and _held(m.held_s, m.window_s)
    bounded = m.close_wait <= m.pool_size and (m.opened <= m.pool_size or m.close_wait == kept)
    reused = bool(m.reuse_ok) and m.after_reuse is not None and m.after_reuse < m.close_wait
    released = reused and m.after_close == 0
    summary = (
        f"{m.library}: {m.opened} connections opened at once, pool of {m.pool_size}; after the "
        f"server's {m.keepalive_s:g} s keep-alive timeout {m.close_wait} client ends were in "
        f"CLOSE_WAIT ({m.owned} held by the client's own fds; server ends "
        f"{', '.join(s or 'gone' for s in m.server_ends) or 'not seen'}), held "
        f"{_s(m.held_s)} of a {m.window_s:g} s idle window; one more request "
        f"{'succeeded' if m.reuse_ok else 'failed' if m.reuse_ok is False else 'was not tried'}"
        f" and left {m.after_reuse} in CLOSE_WAIT; closing the pool left {m.after_close}")
    if not stays:
        return Judgement(R, summary + ": the pool did not keep them in CLOSE_WAIT")
    if not bounded:
        return Judgement(P, summary + f": more than {bound} ({m.pool_size}) were kept")
    if not released:
        return Judgement(P, summary + ": reuse or closing the pool did not release them")
    return Judgement(C, summary)


@judge("L01", C, P, R)
def l01(m: IdlePool) -> Judgement:
    """urllib3 keeps idle pooled connections the server closed in CLOSE_WAIT until reused
    (``is_connection_dropped`` on checkout) or the pool closes; at most ``pool_maxsize``."""
    return _idle_pool(m, "pool_maxsize")


@judge("L08", C, P, R)
def l08(m: IdlePool) -> Judgement:
    """httpcore keeps an idle pooled connection the peer closed in CLOSE_WAIT until the
    next request to the origin discards it (and succeeds on a new one) or the client closes."""
    return _idle_pool(m, "max_keepalive_connections")


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
    the server closes), so a blocking pool's next request waits; closing a response releases
    its connection (requests PR #3462, the fix of requests #3461)."""
    waits = (m.unreleased >= m.pool_size > 0 and not m.got_connection
             and _held(m.waited_s, m.wait_window_s))
    stuck = (m.close_wait == m.unreleased > 0 and m.owned == m.close_wait
             and _held(m.held_s, m.window_s))
    fixed = m.unblocked_s is not None and m.after_close == 0
    summary = (
        f"{m.library}: {m.unreleased} streamed responses left unread and unclosed, pool of "
        f"{m.pool_size} with pool_block=True; the next request "
        f"{'got a connection' if m.got_connection else 'got no connection'} (waited "
        f"{_s(m.waited_s)}, window {m.wait_window_s:g} s); after the server's keep-alive "
        f"timeout {m.close_wait} of them were CLOSE_WAIT ({m.owned} held by the client's fds, "
        f"Recv-Q {list(m.recv_q)}), held {_s(m.held_s)} of {m.window_s:g} s; closing one "
        f"response let the waiting request through after {_s(m.unblocked_s)}; closing all "
        f"left {m.after_close} in CLOSE_WAIT")
    if not (waits and stuck):
        return Judgement(R, summary)
    if not fixed:
        return Judgement(P, summary + ": closing the responses did not release the pool "
                         "(the bug of requests #3461)")
    return Judgement(C, summary)


@dataclass(frozen=True)
class StreamsRun:
    """One interpreter's asyncio streams server (L03), each case on a fresh connection."""

    #: the interpreter's version ("3.11.7")
    python: str
    #: a handler returned without writer.close(); the server ran gc.collect(); then the client
    #: closed: the server's end then (CLOSE_WAIT: still open), whether the server process's
    #: fd held it, and how long it stayed so, of the window
    leak_state: str | None
    leak_owned: bool
    leak_held_s: float | None
    #: a handler called writer.close() and then kept the event loop from running: the
    #: server's end meanwhile, how long it stayed so, and how long after the loop ran again
    #: the client saw the server's FIN
    blocked_state: str | None
    blocked_held_s: float | None
    fin_after_release_s: float | None
    #: a handler called close() and awaited wait_closed(): the client's end when it returned
    #: (CLOSE_WAIT: the server's FIN had arrived)
    tidy_client_state: str | None


@dataclass(frozen=True)
class AsyncioStreams:
    """L03 on every interpreter found here, oldest first (the last is the newest)."""

    window_s: float
    runs: tuple[StreamsRun, ...]


def _leaks(run: StreamsRun, window_s: float) -> bool:
    return run.leak_state == CW and run.leak_owned and _held(run.leak_held_s, window_s)


def _deferred(run: StreamsRun, window_s: float) -> bool:
    return (run.blocked_state == "ESTABLISHED" and _held(run.blocked_held_s, window_s)
            and run.fin_after_release_s is not None and run.tidy_client_state == CW)


@judge("L03", C, P, R, OUT)
def l03(m: AsyncioStreams) -> Judgement:
    """Judged on the newest interpreter measured; an older one that leaks while the newest
    does not makes it outdated, since the oldest measured version that no longer leaks
    (the abandoned StreamWriter is collected and closes its transport: gh-114914's fix)."""
    lines = [
        f"Python {r.python}: handler without close() -> server end {r.leak_state or 'gone'}"
        f"{' (its fd)' if r.leak_owned else ''} held {_s(r.leak_held_s)}; close() with the loop "
        f"blocked -> {r.blocked_state or 'gone'} held {_s(r.blocked_held_s)}, FIN "
        f"{_s(r.fin_after_release_s)} after the loop ran; wait_closed() returned with the client "
        f"{r.tidy_client_state or 'gone'}" for r in m.runs]
    summary = "; ".join(lines) or "no interpreter measured"
    summary += f" (window {m.window_s:g} s)"
    if not m.runs:
        return Judgement(R, summary)
    newest = m.runs[-1]
    deferred = all(_deferred(r, m.window_s) for r in m.runs)
    if _leaks(newest, m.window_s):
        return Judgement(C if deferred else P, summary if deferred else
                         summary + ": close() did not wait for the loop as stated")
    leaking = [i for i, r in enumerate(m.runs) if _leaks(r, m.window_s)]
    if leaking:  # the newest does not leak: the first after the last leaking one is the fix
        last, fixed = m.runs[leaking[-1]], m.runs[leaking[-1] + 1]
        return Judgement(OUT, summary + f": the abandoned writer leaks up to Python "
                         f"{last.python}, not since {fixed.python} among those measured "
                         "(gh-114914: the protocol no longer holds the writer)")
    return Judgement(R, summary)


@dataclass(frozen=True)
class AiohttpLeak:
    """aiohttp: a ClientSession never closed, and the server's end of a websocket after the
    client's close (L07)."""

    library: str
    keepalive_s: float
    window_s: float
    #: the session never closed, its event loop stopped (asyncio.run returned): the client's
    #: end once the server's keep-alive timeout closed the connection, held by our fd?, held
    stopped_state: str | None
    stopped_owned: bool
    stopped_held_s: float | None
    #: the same while the loop still ran: the client's end once the server closed (None: gone)
    running_state: str | None
    #: the fix, ``async with ClientSession()``: the client's end after the loop stopped
    closed_state: str | None
    #: websocket: the server's end after the client's ws.close(), as observed, and how long
    #: it stayed in CLOSE_WAIT (None: never seen there); the server's close timeout
    ws_server_path: tuple[str | None, ...]
    ws_close_wait_s: float | None
    ws_timeout_s: float


@judge("L07", C, P, R)
def l07(m: AiohttpLeak) -> Judgement:
    """The unclosed session's CLOSE_WAIT (loop stopped), the connector closing it while the
    loop runs, the fix; and the websocket server end lingering in CLOSE_WAIT for at least
    half its close timeout after the client's close (#4805)."""
    leak = m.stopped_state == CW and m.stopped_owned and _held(m.stopped_held_s, m.window_s)
    running_ok = m.running_state != CW
    fixed = m.closed_state not in (CW, "ESTABLISHED")
    lingers = m.ws_close_wait_s is not None and m.ws_close_wait_s >= m.ws_timeout_s / 2
    summary = (
        f"{m.library}: a session never closed, its loop stopped -> client end "
        f"{m.stopped_state or 'gone'}{' (our fd)' if m.stopped_owned else ''} held "
        f"{_s(m.stopped_held_s)} of {m.window_s:g} s after the server's {m.keepalive_s:g} s "
        f"keep-alive timeout; with the loop running -> {m.running_state or 'gone'}; closed with "
        f"async with -> {m.closed_state or 'gone'}; websocket server end after the client's "
        f"close: {path_text(m.ws_server_path)}, CLOSE_WAIT for {_s(m.ws_close_wait_s)} "
        f"(close timeout {m.ws_timeout_s:g} s)")
    if not leak or not fixed:
        return Judgement(P if lingers else R, summary)
    if not running_ok:
        return Judgement(P, summary + ": the connector did not close it with the loop running")
    if not lingers:
        return Judgement(P, summary + ": the websocket half does not reproduce (the server "
                         "closes first)")
    return Judgement(C, summary)
