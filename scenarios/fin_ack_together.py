"""FIN and ACK in one segment: FIN_WAIT1 straight to TIME_WAIT? (claim C05; seeds 002, 003).

The articles say a socket in FIN_WAIT1 that receives the peer's FIN together with the ACK of
its own FIN skips FIN_WAIT2. On loopback that segment happens when the peer's application
closes before its kernel's delayed ACK of our FIN goes out (a few milliseconds): the FIN it
then sends carries the ACK. The client shuts down its side and the server closes at once;
the capture shows which segments crossed, and the trace shows the client's own transitions,
each ``tcp_set_state`` of the kernel, so even a state held for a microsecond is in it.

Linux handles such a segment in two steps: the ACK part first (FIN_WAIT1 -> FIN_WAIT2), then
the FIN (FIN_WAIT2 -> TIME_WAIT, traced as a move to CLOSE), both while processing that one
segment. The verdict says which the kernel did. If the server's scheduler delayed its close
past the delayed ACK (the ACK then travels alone), the precondition was not met and the
attempt is repeated with a fresh connection (the count is in the evidence).
"""

from __future__ import annotations

from tcplab import Lab, Scenario, TcpState, Verdict, Verdicts
from tcplab.expect import reaches, segments, traced_path
from tcplab.timeline import Event

S = TcpState
ATTEMPTS = 5
scenario = Scenario(
    id="fin-ack-together",
    title="FIN and ACK in one segment: FIN_WAIT1 to TIME_WAIT without a visible FIN_WAIT2",
    claims=("C05",),
    requires=("trace", "capture"),
)


def _fin_and_ack(segs: list[Event], client_fin_seq: int) -> Event | None:
    """The server's first segment that acknowledges the client's FIN, if it also carries FIN."""
    for seg in segs:
        if seg.data["direction"] == "server->client" and (seg.data["ack"] or 0) > client_fin_seq:
            return seg if "FIN" in seg.data["flags"].split(",") else None
    return None


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    attempts = 0
    while True:
        attempts += 1
        conn = await lab.connect()
        client, server = conn.client, conn.server
        await client.send_eof()  # FIN: on loopback it is in the server's socket on return
        await server.close()  # at once: the server's FIN carries the ACK of the client's FIN
        await reaches(client, S.TIME_WAIT)
        segs = segments(client)
        fin = next(s for s in segs if s.data["direction"] == "client->server"
                   and "FIN" in s.data["flags"].split(","))
        together = _fin_and_ack(segs, fin.data["seq"])
        if together is not None:
            break
        if attempts == ATTEMPTS:
            raise AssertionError(f"in {ATTEMPTS} attempts the server's ACK always went alone")

    path = await traced_path(client, S.FIN_WAIT1)
    after = path[path.index(S.FIN_WAIT1) + 1:]
    states = [e for e in conn.timeline.events if e.end == "client" and e.kind == "state"]
    fw2 = [e for e in states if e.new is S.FIN_WAIT2]
    tw = [e for e in states if e.new is S.TIME_WAIT]
    # How long FIN_WAIT2 lasted, and whether any segment arrived while it lasted.
    held = (tw[0].t - fw2[0].t) if fw2 and tw else None
    between = [s for s in segs if fw2 and tw and fw2[0].t < s.t < tw[0].t
               and s.data["direction"] == "server->client"]
    seen_fw2 = conn.timeline.saw("client", S.FIN_WAIT2)  # by any snapshot
    direct = after[:1] == [S.TIME_WAIT]
    two_steps = after[:2] == [S.FIN_WAIT2, S.TIME_WAIT] and not between and not seen_fw2

    if direct:
        verdict, summary = Verdict.CONFIRMED, "the kernel moved FIN_WAIT1 -> TIME_WAIT directly"
    elif two_steps:
        verdict = Verdict.PARTLY
        summary = (
            f"one segment ({together.data['flags']}) carried the server's FIN and the ACK of the "
            f"client's FIN; the client was never seen in FIN_WAIT2 and no segment came in between, "
            f"but the kernel's own transitions pass through FIN_WAIT2 for {held * 1e6:.0f} µs "
            "while processing that segment (ACK first, then FIN)"
        ) if held is not None else "FIN_WAIT2 traced but not timed"
    else:
        verdict = Verdict.REFUTED
        summary = f"after FIN_WAIT1 the client went {' -> '.join(s.value for s in after)}"
    verdicts.record(
        "C05", verdict, summary,
        traced_client_path=[s.value for s in path], attempts=attempts,
        segment=together.text, fin_wait2_us=None if held is None else round(held * 1e6, 1),
        close_segments=[s.text for s in segs if s.t >= fin.t],
    )


if __name__ == "__main__":
    scenario.main()
