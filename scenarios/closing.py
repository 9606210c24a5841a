"""CLOSING from a true simultaneous close (C06; seeds 002, 003).

The articles say CLOSING appears when both ends close at the same moment, each receiving
the other's FIN before the ACK of its own. On loopback "the same moment" is made exact:
both ends fill each other's window (small SO_RCVBUF, nobody reads) and both call
shutdown(SHUT_WR), so both are in FIN_WAIT1 with their FIN queued behind data the other
cannot take. Then the client drains: it reads the server's data and then the server's FIN
while its own FIN is still unsent, so it moves to CLOSING and stays there (held) while the
server does not read. The server, whose FIN the client has acknowledged, is in FIN_WAIT2.
Then the server drains too, receives the client's data and FIN, and both end in TIME_WAIT.
"""

from __future__ import annotations

from _leaves import leaves
from tcplab import Lab, Scenario, TcpState, Verdict, Verdicts
from tcplab.expect import ExpectationFailed, holds
from tcplab.states import check_path

S = TcpState
HOLD = 1.0
SMALL = 4096
scenario = Scenario(
    id="closing",
    title="CLOSING held in a simultaneous close: both FINs queued behind full windows",
    claims=("C06",),
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    conn = await lab.connect(rcvbuf=SMALL, sndbuf=SMALL, server_rcvbuf=SMALL, server_sndbuf=SMALL)
    client, server = conn.ends
    to_server = client.fill()
    to_client = server.fill()
    await client.send_eof()
    await server.send_eof()
    # Both FINs sent by the application, neither acknowledged: a simultaneous close.
    await holds(client, S.FIN_WAIT1, for_=0.1)
    both = await holds(server, S.FIN_WAIT1, for_=0.1)
    both_waiting = both.send_q > 0

    data = await client.read_eof()  # the server's data, then its FIN, before the client's is acked
    if len(data) != to_client:
        raise ExpectationFailed(f"the server queued {to_client} bytes, the client read {len(data)}")
    # Measured, not asserted: where the peer's FIN took each end is what C06 is about.
    closing = await leaves(client, S.FIN_WAIT1)
    if closing is not None and closing.state is S.CLOSING:
        closing = await holds(client, S.CLOSING, for_=HOLD, mark=True)
    server_meanwhile = await leaves(server, S.FIN_WAIT1)
    still_queued = closing is not None and closing.send_q > 0  # the client's data and FIN

    received = await server.read_eof()
    if len(received) != to_server:
        raise ExpectationFailed(f"the client queued {to_server} bytes, the server read {len(received)}")
    client_tw = await leaves(client, S.FIN_WAIT1, S.FIN_WAIT2, S.CLOSING)
    server_tw = await leaves(server, S.FIN_WAIT1, S.FIN_WAIT2, S.CLOSING)
    both_tw = all(r is not None and r.state is S.TIME_WAIT for r in (client_tw, server_tw))
    if both_tw:  # held, so that the timeline shows both TIME_WAITs for a while
        await holds(client, S.TIME_WAIT, for_=HOLD, mark=True)
        await holds(server, S.TIME_WAIT, for_=0.0, mark=True)  # still there after the client's hold
    for end in conn.ends:  # whatever the paths, each must be legal in RFC 9293's diagram
        check_path([s for s in conn.timeline.path(end.label) if s is not None], strict=False)

    paths = {e.label: [s.value if s else "gone" for s in conn.timeline.path(e.label)] for e in conn.ends}
    through_closing = [e.label for e in conn.ends if conn.timeline.saw(e.label, S.CLOSING)]
    if len(through_closing) == 2:
        verdict = Verdict.CONFIRMED
    elif through_closing and both_waiting and still_queued and both_tw:
        verdict = Verdict.PARTLY
    else:
        verdict = Verdict.REFUTED
    verdicts.record(
        "C06", verdict,
        f"both ends sent FIN before either was acknowledged; CLOSING appeared on "
        f"{', '.join(through_closing) or 'neither'} (client {' -> '.join(paths['client'])}; "
        f"server {' -> '.join(paths['server'])})"
        + (f": the client held it {HOLD} s, its data and FIN still queued "
           f"({closing.send_q if closing else 0} bytes), while the server's FIN was acknowledged "
           "first. A simultaneous close gives CLOSING on the end that receives the peer's FIN "
           "before the ACK of its own, not necessarily on both" if verdict is Verdict.PARTLY else "")
        + ("; both ended in TIME_WAIT" if both_tw else "; not both ended in TIME_WAIT"),
        paths=paths, closing_record=closing and closing.to_json(),
        other_end=server_meanwhile and server_meanwhile.to_json(),
        time_wait={"client": client_tw and client_tw.to_json(),
                   "server": server_tw and server_tw.to_json()},
    )


if __name__ == "__main__":
    scenario.main()
