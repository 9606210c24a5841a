"""TIME_WAIT left per 1,000 requests: one connection each versus one kept-alive connection
(claim C17; seed 001).

Seed 001 says short-lived connections (one request each) pile up TIME_WAIT sockets and that
keep-alive avoids the repeated handshakes and teardowns. In a private namespace, 1,000
plain request/response exchanges (a short line, a 209-byte answer; not HTTP) are made twice:
once opening and closing a connection per request (client closes first), once over a single
connection closed at the end. Counted: TIME_WAIT sockets left on the server's port, the
connections opened (Tcp.ActiveOpens), segments sent, and the time per request.
"""

from __future__ import annotations

import time
from typing import Any

from _shortconn import client_closes_first, count_time_wait, drawn_example, open_listener, repeat
from tcplab import Lab, Scenario, Verdicts
from tcplab.judges.segments import RequestsTimeWait
from tcplab.kernel.procfs import counter_delta, netstat_counters

REQUESTS = 1000
scenario = Scenario(
    id="timewait-per-request",
    title="TIME_WAIT per 1,000 requests: a connection per request versus one keep-alive connection",
    claims=("C17",),
    private_netns=True,
    timeout=30,
)


async def serve(requests_per_connection: int) -> dict[str, Any]:
    """``REQUESTS`` requests in connections of ``requests_per_connection``; what they left."""
    listener = open_listener()
    try:
        before, started = netstat_counters(), time.perf_counter()
        await repeat(lambda: client_closes_first(listener, requests_per_connection),
                     REQUESTS // requests_per_connection, batch=100)
        elapsed = time.perf_counter() - started
        delta = counter_delta(before, netstat_counters())
        left = count_time_wait(listener.getsockname()[1])
    finally:
        listener.close()
    return {"time_wait": left, "connections": delta.get("Tcp.ActiveOpens", 0),
            "segments_per_request": delta.get("Tcp.OutSegs", 0) / REQUESTS,
            "us_per_request": elapsed / REQUESTS * 1e6}


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    short = await serve(1)
    kept = await serve(REQUESTS)
    # Drawn in the report: one connection of each kind (the bulk ran on plain sockets).
    await drawn_example(lab, requests=1, closer="client")
    await drawn_example(lab, requests=3, closer="client")

    verdicts.judge("C17", RequestsTimeWait(
        REQUESTS, short["time_wait"], short["connections"], short["segments_per_request"],
        kept["time_wait"], kept["connections"], kept["segments_per_request"],
        short["us_per_request"], kept["us_per_request"]))


if __name__ == "__main__":
    scenario.main()
