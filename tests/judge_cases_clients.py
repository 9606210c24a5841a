"""Cases of the real-library judges (L01, L02, L03, L07, L08): tcplab.judges.clients."""

from __future__ import annotations

from dataclasses import replace

from judge_case import Case
from tcplab.judges.clients import (
                            AiohttpLeak,
                            AsyncioStreams,
                            IdlePool,
                            StreamedUnreleased,
                            StreamsRun,
)
from tcplab.verdict import Verdict

C, P, R, OUT = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED, Verdict.OUTDATED
FW2 = ("FIN_WAIT2",) * 3

POOL = IdlePool("requests 2.34.2 / urllib3 2.8.0", 3, 5, 1.0, 3, 3, FW2, 1.0, 1.0, True, 2, 0)
HTTPX = replace(POOL, library="httpx 0.28.1 / httpcore 1.0.9", after_reuse=0)

STREAM = StreamedUnreleased("requests 2.34.2 / urllib3 2.8.0", 2, 2, False, 1.0, 1.0, 2, 2,
                            (21924, 21924), 1.0, 1.0, 0.004, 0)

LEAKS = StreamsRun("3.11.7", "CLOSE_WAIT", True, 1.0, "ESTABLISHED", 1.0, 0.001, "CLOSE_WAIT")
FIXED = replace(LEAKS, python="3.13.0", leak_state="TIME_WAIT", leak_owned=False, leak_held_s=0.0)

AIO = AiohttpLeak("aiohttp 3.14.5 (server 3.14.5)", 1.0, 1.0, "CLOSE_WAIT", True, 1.0, None,
                  "TIME_WAIT", ("CLOSE_WAIT", "LAST_ACK", None), 2.0, 2.0)
AIO_WS_FIXED = replace(AIO, ws_server_path=("TIME_WAIT",), ws_close_wait_s=None)

CASES = [
    Case("L01", "three pooled ends CLOSE_WAIT for the whole window, reuse drops one, close all",
         POOL, C, says=("3 client ends were in CLOSE_WAIT", "left 2 in CLOSE_WAIT")),
    Case("L01", "the pool closed them itself before the window ended", replace(POOL, held_s=0.3), R,
         says=("held 0.30 s",)),
    Case("L01", "no CLOSE_WAIT at all: the server never closed, or the client noticed",
         replace(POOL, close_wait=0, owned=0), R),
    Case("L01", "CLOSE_WAIT ends not held by the client's fds", replace(POOL, owned=0), R),
    Case("L01", "all five opened kept: the pool size does not bound them",
         replace(POOL, close_wait=5, owned=5, after_reuse=4), P, says=("pool_maxsize",)),
    Case("L01", "reuse left them all in CLOSE_WAIT", replace(POOL, after_reuse=3), P),
    Case("L01", "closing the pool left some", replace(POOL, after_close=1), P),
    Case("L01", "the reuse request failed", replace(POOL, reuse_ok=False), P, says=("failed",)),
    Case("L01", "a window of 0 proves nothing", replace(POOL, window_s=0.0, held_s=0.0), R),
    Case("L08", "httpcore drops every stale idle connection on the next request", HTTPX, C,
         says=("left 0 in CLOSE_WAIT",)),
    Case("L08", "the next request failed on the stale connection", replace(HTTPX, reuse_ok=False),
         P),
    Case("L08", "nothing stayed in CLOSE_WAIT", replace(HTTPX, close_wait=0, owned=0, held_s=None), R),
    Case("L02", "the next request hangs, both CLOSE_WAIT with the unread body, close releases",
         STREAM, C, says=("got no connection", "[21924, 21924]")),
    Case("L02", "closing a response did not release the pool (requests #3461 before PR #3462)",
         replace(STREAM, unblocked_s=None), P, says=("#3461",)),
    Case("L02", "closing left CLOSE_WAIT ends", replace(STREAM, after_close=1), P),
    Case("L02", "the next request got a connection anyway", replace(STREAM, got_connection=True,
                                                                     waited_s=0.01), R),
    Case("L02", "it waited less than the window", replace(STREAM, waited_s=0.5), R),
    Case("L02", "the unreleased connections never went CLOSE_WAIT",
         replace(STREAM, close_wait=0, owned=0, held_s=None), R),
    Case("L03", "one interpreter, it leaks and close() is deferred", AsyncioStreams(1.0, (LEAKS,)),
         C, says=("Python 3.11.7", "CLOSE_WAIT")),
    Case("L03", "3.11 and 3.12 leak, 3.13 closes the abandoned writer",
         AsyncioStreams(1.0, (LEAKS, replace(LEAKS, python="3.12.1"), FIXED)), OUT,
         says=("up to Python 3.12.1", "not since 3.13.0")),
    Case("L03", "the newest leaks but close() sent the FIN with the loop blocked",
         AsyncioStreams(1.0, (replace(LEAKS, blocked_state="FIN_WAIT2", blocked_held_s=0.0),)), P),
    Case("L03", "wait_closed() returned before the FIN arrived",
         AsyncioStreams(1.0, (replace(LEAKS, tidy_client_state="ESTABLISHED"),)), P),
    Case("L03", "no interpreter leaks", AsyncioStreams(1.0, (FIXED,)), R),
    Case("L03", "the leak ended within the window", AsyncioStreams(1.0, (replace(
        LEAKS, leak_held_s=0.4),)), R),
    Case("L03", "nothing measured", AsyncioStreams(1.0, ()), R, says=("no interpreter",)),
    Case("L07", "both halves: the session's CLOSE_WAIT and the websocket's server end", AIO, C,
         says=("CLOSE_WAIT (our fd)", "CLOSE_WAIT for 2.00 s")),
    Case("L07", "the session half holds, the server closes the websocket first",
         AIO_WS_FIXED, P, says=("does not reproduce",)),
    Case("L07", "the websocket server end in CLOSE_WAIT only briefly",
         replace(AIO, ws_close_wait_s=0.01), P),
    Case("L07", "the connector left it in CLOSE_WAIT with the loop running",
         replace(AIO, running_state="CLOSE_WAIT"), P, says=("loop running",)),
    Case("L07", "no CLOSE_WAIT with the loop stopped, websocket fine",
         replace(AIO_WS_FIXED, stopped_state=None, stopped_owned=False, stopped_held_s=None), R),
    Case("L07", "async with did not close it", replace(AIO_WS_FIXED, closed_state="ESTABLISHED"), R),
]
