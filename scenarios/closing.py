"""CLOSING from a true simultaneous close: the two FINs cross (C06; seeds 002, 003).

The articles say CLOSING appears when both ends close at once, each receiving the other's
FIN before the ACK of its own. On bare loopback a FIN is processed before shutdown()
returns, so two closes microseconds apart do not cross. Here a valve on lo (a tc tbf in
this run's private network namespace, ``tcplab.kernel.qdisc``) holds packets on purpose:
both ends shut down while it is shut, so both FINs wait in its queue; then exactly those
two are let through together, and the ACKs they cause are held again for a second, so
CLOSING lasts long enough for snapshots as well as the trace. Then the valve opens. The
capture shows when each FIN and its ACK really went on the wire. Kernel: a FIN received in
FIN_WAIT1 is ACKed and moves the socket to CLOSING (tcp_fin, net/ipv4/tcp_input.c); the ACK
of its own FIN then moves it to TIME_WAIT (tcp_rcv_state_process, case TCP_CLOSING).
"""

from __future__ import annotations

from _fins import ack_of, fin_of, t_of
from tcplab import Lab, Scenario, TcpState, Verdicts
from tcplab.expect import ExpectationFailed, holds, segments
from tcplab.holding import episodes
from tcplab.judges.closing import SimultaneousClose
from tcplab.kernel.qdisc import Valve
from tcplab.measure import leaves, path_of, traced_of

S = TcpState
HOLD = 1.0
scenario = Scenario(id="closing", claims=("C06",), private_netns=True, requires=("capture",),
                    title="CLOSING on both ends: the FINs held by a qdisc, then let cross")


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    conn = await lab.connect()
    client, server = conn.ends
    async with Valve() as valve:
        await valve.shut()
        await client.send_eof()
        await server.send_eof()  # both FINs sent by TCP, both waiting in the valve
        await holds(client, S.FIN_WAIT1, for_=0.05)
        await holds(server, S.FIN_WAIT1, for_=0.05)
        if (released := await valve.release_queued())[1] < 2:  # a precondition
            raise ExpectationFailed(f"expected the two FINs in the valve, it held {released}")
        states = [await leaves(end, S.FIN_WAIT1) for end in conn.ends]  # measured
        if all(r is not None and r.state is S.CLOSING for r in states):
            await holds(client, S.CLOSING, for_=HOLD, mark=True)
            await holds(server, S.CLOSING, for_=0.0, mark=True)
        await valve.open()
    ended = [await leaves(end, S.FIN_WAIT1, S.FIN_WAIT2, S.CLOSING) for end in conn.ends]
    if all(r is not None and r.state is S.TIME_WAIT for r in ended):  # held for the timeline
        await holds(client, S.TIME_WAIT, for_=HOLD, mark=True)
        await holds(server, S.TIME_WAIT, for_=0.0, mark=True)

    segs = segments(client)
    fins = {end.label: fin_of(segs, end.label) for end in conn.ends}
    closing = [e.held for e in episodes(conn.timeline.to_json()) if e.state is S.CLOSING]
    verdicts.judge("C06", SimultaneousClose(
        path_of(conn, "client"), path_of(conn, "server"),
        traced_of(conn, "client"), traced_of(conn, "server"),
        client_fin_t=t_of(fins["client"]), server_fin_t=t_of(fins["server"]),
        client_fin_acked_t=t_of(ack_of(segs, fins["client"])),
        server_fin_acked_t=t_of(ack_of(segs, fins["server"])),
        closing_held_s=min(closing) if len(closing) == 2 else None))


if __name__ == "__main__":
    scenario.main()
