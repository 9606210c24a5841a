"""Graceful close, client first (claims C02, C03, C10; articles 000, 002, 003, 004).

The first closer passes FIN_WAIT1 and FIN_WAIT2 into TIME_WAIT, the other side CLOSE_WAIT
and LAST_ACK, and only the first keeps a TIME_WAIT. The client sends its FIN while the
server's application sleeps; the server reads end-of-file, answers with data the client is
slow to read (LAST_ACK held on purpose by the client's full window), and closes.
"""

from __future__ import annotations

from tcplab import Lab, Scenario, TcpState, TimerKind, Verdicts
from tcplab.expect import holds
from tcplab.judges.closing import FinAckedByKernel, GracefulClose, WhoHoldsTimeWait
from tcplab.measure import leaves, path_of, state_of, timer_left, traced_of

S = TcpState
scenario = Scenario(
    id="graceful-close",
    title="Graceful close, client first: FIN_WAIT2 and TIME_WAIT against CLOSE_WAIT and LAST_ACK",
    claims=("C02", "C03", "C10"),
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    conn = await lab.connect(rcvbuf=4096, server_sndbuf=4096)
    client, server = conn.client, conn.server
    await client.send_eof()  # the client's FIN
    cw = await holds(server, S.CLOSE_WAIT, for_=0.3)  # the server's app asleep: who ACKed?
    acked = client.observe()
    eof = await server.read_eof()
    after_read = server.observe()
    server.fill()  # the client does not read yet: its window closes
    await server.close()
    last_ack = await leaves(server, S.CLOSE_WAIT)
    if last_ack is not None and last_ack.state is S.LAST_ACK:  # its FIN waits behind the data
        await holds(server, S.LAST_ACK, for_=1.0, mark=True)

    await client.read_eof()
    await leaves(client, S.FIN_WAIT2)  # where the server's FIN took it: measured, not asserted
    await leaves(server, S.LAST_ACK)
    await client.close()  # closing the fd must change nothing: a timewait socket has none
    after_close = client.observe()

    verdicts.judge("C02", GracefulClose(path_of(conn, "client"), path_of(conn, "server"),
                                        traced_of(conn, "client"), traced_of(conn, "server")))
    verdicts.judge("C03", FinAckedByKernel(
        acked_before_read=state_of(acked) == "FIN_WAIT2",
        recv_q_before_read=cw.recv_q, read_bytes=len(eof),
        recv_q_after_read=None if after_read is None else after_read.recv_q,
        close_wait_until_close=after_read is not None and after_read.state is S.CLOSE_WAIT,
        after_close=state_of(last_ack)))
    verdicts.judge("C10", WhoHoldsTimeWait(
        first_state=state_of(after_close),
        first_timewait_s=timer_left(after_close, TimerKind.TIMEWAIT),
        second_path=path_of(conn, "server")))


if __name__ == "__main__":
    scenario.main()
