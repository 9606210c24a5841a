"""Cases of the real-library judges (L01, L02, L03, L07, L08, L11, L13): tcplab.judges.clients."""

from __future__ import annotations

from dataclasses import replace

from judge_case import Case
from tcplab.judges.clients import (
                            AbandonedWriter,
                            AbandonedWriters,
                            AiohttpSessionClose,
                            DeferredClose,
                            DeferredCloses,
                            IdlePool,
                            SessionClose,
                            StreamedUnreleased,
                            WsClose,
                            WsServerEnd,
)
from tcplab.verdict import Verdict

C, P, R, OUT = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED, Verdict.OUTDATED
FW2 = ("FIN_WAIT2",) * 3

# urllib3: 3 kept of 5, one request frees the one it checks out (2 left), close frees all
POOL = IdlePool("requests 2.34.2 / urllib3 2.8.0", 3, 5, 1.0, 3, 3, FW2, 1.0, 1.0, True, 2, 0)
# httpcore: the next request frees every readable idle one
HTTPX = replace(POOL, library="httpx 0.28.1 / httpcore 1.0.9", after_reuse=0)

STREAM = StreamedUnreleased("requests 2.34.2 / urllib3 2.8.0", 2, 2, False, 1.0, 1.0, 2, 2,
                            (21924, 21924), 1.0, 1.0, 0.004, 0)

LEAK_311 = AbandonedWriter("3.11.7", "CLOSE_WAIT", True, 1.0, True)
LEAK_312 = AbandonedWriter("3.12.1", "CLOSE_WAIT", True, 1.0, False)
NO_LEAK_313 = AbandonedWriter("3.13.0", "TIME_WAIT", False, 0.0, True)

DEFER = DeferredClose("3.13.0", "ESTABLISHED", 1.0, 0.002, "CLOSE_WAIT")

OPEN_OLD = SessionClose("aiohttp 3.12.3", "CLOSE_WAIT", True, 1.0, 0.002)
CLOSED_NEW = SessionClose("aiohttp 3.14.5", "TIME_WAIT", False, 1.0, 0.0)

WS_NEW = WsServerEnd("aiohttp 3.14.5", ("ESTABLISHED", "TIME_WAIT"), None, 0.002)
WS_OLD = WsServerEnd("aiohttp 3.9.3", ("ESTABLISHED", None), None, 2.0)
WS_CW = WsServerEnd("aiohttp 3.14.5", ("ESTABLISHED", "CLOSE_WAIT"), 2.0, 0.002)

CASES = [
    Case("L01", "three pooled ends CLOSE_WAIT for the whole window, reuse frees one, close all",
         POOL, C, says=("3 client ends were in CLOSE_WAIT", "left 2 in CLOSE_WAIT", "95%")),
    Case("L01", "the pool closed them itself before the window ended", replace(POOL, held_s=0.3), R,
         says=("held 0.30 s",)),
    Case("L01", "held 96 % of the window: inside the tolerance", replace(POOL, held_s=0.96), C),
    Case("L01", "no CLOSE_WAIT at all: the server never closed, or the client noticed",
         replace(POOL, close_wait=0, owned=0), R),
    Case("L01", "CLOSE_WAIT ends not held by the client's fds", replace(POOL, owned=0), R),
    Case("L01", "all five opened kept: the pool size does not bound them",
         replace(POOL, close_wait=5, owned=5, after_reuse=4), P, says=("pool_maxsize",)),
    Case("L01", "reuse left them all in CLOSE_WAIT", replace(POOL, after_reuse=3), P,
         says=("the one it checked out",)),
    Case("L01", "reuse freed every stale one, not just the one checked out",
         replace(POOL, after_reuse=0), P),
    Case("L01", "closing the pool left some: the fix must leave none",
         replace(POOL, after_close=1), P, says=("did not free them all",)),
    Case("L01", "the reuse request failed", replace(POOL, reuse_ok=False), P, says=("failed",)),
    Case("L01", "a window of 0 proves nothing", replace(POOL, window_s=0.0, held_s=0.0), R),
    Case("L08", "httpcore frees every readable idle connection on the next request", HTTPX, C,
         says=("left 0 in CLOSE_WAIT",)),
    Case("L08", "the next request freed only one", replace(HTTPX, after_reuse=2), P,
         says=("every readable idle one",)),
    Case("L08", "the next request failed on the stale connection", replace(HTTPX, reuse_ok=False),
         P),
    Case("L08", "closing the client left one", replace(HTTPX, after_close=1), P),
    Case("L08", "nothing stayed in CLOSE_WAIT", replace(HTTPX, close_wait=0, owned=0, held_s=None), R),
    Case("L02", "the next request hangs, both CLOSE_WAIT with the unread body, close releases",
         STREAM, C, says=("got no connection", "[21924, 21924]", "requests 2.11.0")),
    Case("L02", "closing a response did not release the pool (requests #3461 before 2.11.0)",
         replace(STREAM, unblocked_s=None), P, says=("#3461", "2.11.0")),
    Case("L02", "closing left CLOSE_WAIT ends", replace(STREAM, after_close=1), P),
    Case("L02", "the next request got a connection anyway", replace(STREAM, got_connection=True,
                                                                     waited_s=0.01), R),
    Case("L02", "it waited less than the window", replace(STREAM, waited_s=0.5), R),
    Case("L02", "the unreleased connections never went CLOSE_WAIT",
         replace(STREAM, close_wait=0, owned=0, held_s=None), R),
    Case("L03", "3.11 and 3.12 leak, the current 3.13 closes the abandoned writer",
         AbandonedWriters(1.0, (LEAK_311, LEAK_312, NO_LEAK_313)), OUT,
         says=("leaks on Python 3.11.7, 3.12.1", "not on 3.13.0", "gh-114914")),
    Case("L03", "the current line leaks and wait_closed() waits for good",
         AbandonedWriters(1.0, (LEAK_311, replace(LEAK_312, python="3.13.0"))), C,
         says=("still waiting",)),
    Case("L03", "the current line leaks but wait_closed() returned",
         AbandonedWriters(1.0, (replace(LEAK_311, python="3.13.0"),)), P, says=("did not wait",)),
    Case("L03", "no line leaks", AbandonedWriters(1.0, (replace(NO_LEAK_313, python="3.12.1"),
                                                        NO_LEAK_313)), R),
    Case("L03", "the leak ended within the window on the older line",
         AbandonedWriters(1.0, (replace(LEAK_312, held_s=0.4), NO_LEAK_313)), R),
    Case("L03", "nothing measured", AbandonedWriters(1.0, ()), R, says=("no interpreter",)),
    Case("L13", "close() waits for the loop's next turn, wait_closed() returns after the FIN",
         DeferredCloses(1.0, (replace(DEFER, python="3.12.1"), DEFER)), C,
         says=("ESTABLISHED held 1.00 s", "2.0 ms after the loop ran again")),
    Case("L13", "the FIN left while the loop was blocked",
         DeferredCloses(1.0, (replace(DEFER, blocked_state="FIN_WAIT2", blocked_held_s=0.0),)), R),
    Case("L13", "the FIN never came once the loop ran",
         DeferredCloses(1.0, (replace(DEFER, fin_after_release_s=None),)), R),
    Case("L13", "wait_closed() returned before the FIN arrived",
         DeferredCloses(1.0, (replace(DEFER, tidy_client_state="ESTABLISHED"),)), P,
         says=("before the FIN",)),
    Case("L13", "nothing measured", DeferredCloses(1.0, ()), R),
    Case("L07", "3.12.3 leaves the TLS connection open after close(), 3.14.5 closes it first",
         AiohttpSessionClose(1.0, CLOSED_NEW, OPEN_OLD), OUT,
         says=("CLOSE_WAIT (its fd), still open", "3.12.4", "#11074")),
    Case("L07", "the current release leaves it open too",
         AiohttpSessionClose(1.0, replace(OPEN_OLD, library="aiohttp 3.14.5"), OPEN_OLD), C),
    Case("L07", "the old release's end closed within the blocked window",
         AiohttpSessionClose(1.0, CLOSED_NEW, replace(OPEN_OLD, held_s=0.3)), R),
    Case("L07", "neither leaves it open", AiohttpSessionClose(1.0, CLOSED_NEW, CLOSED_NEW), R,
         says=("closed already",)),
    Case("L07", "open but not held by the client's fd",
         AiohttpSessionClose(1.0, CLOSED_NEW, replace(OPEN_OLD, owned=False)), R),
    Case("L07", "old release not measured", AiohttpSessionClose(1.0, CLOSED_NEW, None), R),
    Case("L11", "neither server's end enters CLOSE_WAIT; 3.9.3 keeps a waiting client open",
         WsClose(2.0, 3.0, WS_NEW, WS_OLD), R,
         says=("CLOSE_WAIT never", "ESTABLISHED 2.00 s", "PR #8200")),
    Case("L11", "the current server's end in CLOSE_WAIT for the whole window",
         WsClose(2.0, 3.0, WS_CW, WS_OLD), C, says=("CLOSE_WAIT 2.00 s",)),
    Case("L11", "only the old server's end in CLOSE_WAIT",
         WsClose(2.0, 3.0, WS_NEW, replace(WS_CW, library="aiohttp 3.9.3")), OUT,
         says=("CLOSE_WAIT on aiohttp 3.9.3",)),
    Case("L11", "CLOSE_WAIT only briefly", WsClose(2.0, 3.0, replace(WS_CW, close_wait_s=0.01),
                                                   WS_OLD), R),
    Case("L11", "old release not measured", WsClose(2.0, 3.0, WS_NEW, None), R),
]
