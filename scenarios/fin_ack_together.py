"""FIN and ACK in one segment: FIN_WAIT1 straight to TIME_WAIT? (claim C05; seeds 002, 003).

The articles say a socket in FIN_WAIT1 that receives the peer's FIN together with the ACK of
its own FIN skips FIN_WAIT2. On loopback that segment happens when the peer's application
closes before its kernel's delayed ACK of our FIN goes out: the FIN it sends then carries
the ACK. The client shuts down its side and the server closes at once; if the scheduler
delayed the server's close past the delayed ACK (the ACK then travels alone), the attempt
is repeated with a fresh connection, and the number of attempts is part of the measurement.

What is judged is what an observer or peer can see: snapshots of the client, the segments
that arrive while it is in FIN_WAIT2, and how long that FIN_WAIT2 lasts. Linux handles the
segment in two steps, ACK then FIN (tcp_rcv_state_process, then tcp_fin), so the trace shows
FIN_WAIT2 for microseconds within that one segment: a note in the summary.
"""

from __future__ import annotations

from _fins import ack_of, fin_of
from tcplab import Lab, Scenario, TcpState, Verdicts
from tcplab.expect import ExpectationFailed, segments, traced_path
from tcplab.judges.closing import FinAckTogether
from tcplab.measure import leaves, path_of, traced_of

S = TcpState
ATTEMPTS = 5
scenario = Scenario(
    id="fin-ack-together",
    title="FIN and ACK in one segment: FIN_WAIT1 to TIME_WAIT without a visible FIN_WAIT2",
    claims=("C05",),
    requires=("trace", "capture"),
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    attempts, combined = 0, None
    while combined is None:  # until the precondition: one segment carried both
        if attempts == ATTEMPTS:
            raise ExpectationFailed(f"in {ATTEMPTS} attempts the server's ACK always went alone")
        attempts += 1
        conn = await lab.connect()
        client, server = conn.client, conn.server
        await client.send_eof()  # FIN: on loopback it is in the server's socket on return
        await server.close()  # at once: the server's FIN carries the ACK of the client's FIN
        await leaves(client, S.ESTABLISHED, S.FIN_WAIT1)  # FIN_WAIT2 held would be measured
        await traced_path(client, S.FIN_WAIT1)
        segs = segments(client)
        acked = ack_of(segs, fin_of(segs, "client"))
        combined = acked if acked is not None and "FIN" in acked.data["flags"].split(",") else None

    states = [e for e in conn.timeline.events if e.end == "client" and e.kind == "state"]
    fw2 = next((e.t for e in states if e.new is S.FIN_WAIT2), None)
    left = next((e.t for e in states if fw2 is not None and e.t >= fw2 and e.old is S.FIN_WAIT2), None)
    between = [s for s in segs if fw2 is not None and s.data["direction"] == "server->client"
               and fw2 < s.t < (left if left is not None else float("inf"))]
    verdicts.judge("C05", FinAckTogether(
        attempts=attempts, combined_segment=combined.text,
        client_path=path_of(conn, "client"), client_traced=traced_of(conn, "client"),
        fin_wait2_us=None if fw2 is None else ((left or lab.clock()) - fw2) * 1e6,
        segments_during_fin_wait2=len(between)))


if __name__ == "__main__":
    scenario.main()
