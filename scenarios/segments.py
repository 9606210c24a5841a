"""Segments of the handshake and of the close, counted over many connections (C04; seeds
002, 003).

The articles say opening takes three segments (the server's SYN and its ACK share one) and
closing four, because the passive side's ACK of the FIN and its own FIN usually travel
apart (it may still have data to send). Here ``N`` connections are closed in each of four
ways, differing in what the server's application does after the client's FIN: it closes at
once (close(), or shutdown(SHUT_WR) on both sides), it still sends a reply then closes, or
it works for ``WORK_S`` first. A packet tap captures every segment; for each close, the
server's first segment acknowledging the FIN either carries the server's FIN too (three
segments) or not (four). The kernel's own count of segments sent (Tcp.OutSegs, this
private namespace only) must equal the capture's: nothing was missed. One connection goes
through the lab too, for the report's drawing.
"""

from __future__ import annotations

import _segments as way
from _shortconn import drawn_example, open_listener
from tcplab import Lab, Scenario, Verdicts
from tcplab.expect import eventually
from tcplab.judges.segments import SegmentCounts
from tcplab.kernel.packets import Tap
from tcplab.kernel.procfs import counter_delta, netstat_counters

N = 50
scenario = Scenario(
    id="segments",
    title="Segments of the handshake and of the close, over many closes of four kinds",
    claims=("C04",),
    private_netns=True,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    listener = open_listener()
    port = listener.getsockname()[1]
    with Tap() as tap:
        before, mark = netstat_counters(), len(tap.segments())
        ways = {"server closes at once": await way.one_by_one(listener, tap, way.at_once, N),
                "both shutdown(), server at once":
                    await way.one_by_one(listener, tap, way.shutdown_at_once, N),
                "server sends a reply, then closes":
                    await way.one_by_one(listener, tap, way.reply_then_close, N),
                "server works 0.25 s, then closes": await way.after_work(listener, N)}
        await eventually(lambda: way.settled(port), what="every close to finish")
        counted = counter_delta(before, netstat_counters()).get("Tcp.OutSegs", 0)
        captured = tap.segments()[mark:]
    listener.close()
    results = [way.classify(name, ports, captured, port) for name, ports in ways.items()]
    await drawn_example(lab, requests=0, closer="client")

    verdicts.judge("C04", SegmentCounts(
        handshakes=sum(r[1] for r in results), three_segment_handshakes=sum(r[2] for r in results),
        closes=tuple(r[0] for r in results), counted_segments=counted,
        captured_segments=len(captured)))


if __name__ == "__main__":
    scenario.main()
