"""Graceful close, client first (claims C02, C03, C10; seeds 000, 002, 003, 004).

The articles draw the four-segment close: the side that closes first passes through
FIN_WAIT1 and FIN_WAIT2 into TIME_WAIT, the other side through CLOSE_WAIT and LAST_ACK to
CLOSED, and only the first side keeps a TIME_WAIT. Here the client sends its FIN, the
server's kernel acknowledges it before the server application has done anything, the
server reads end-of-file, answers with data the client is slow to read, and closes; the
client drains and the connection ends. LAST_ACK is held by the client's full window.
"""

from __future__ import annotations

from _leaves import leaves
from tcplab import Lab, Scenario, SocketRecord, TcpState, TimerKind, Verdict, Verdicts
from tcplab.expect import holds, reaches
from tcplab.states import check_path

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
    await reaches(client, S.FIN_WAIT2)  # its FIN was acknowledged ...
    cw = await holds(server, S.CLOSE_WAIT, for_=0.3)  # ... by the server's kernel alone
    # Recv-Q counts sequence numbers not yet read: 1 is the FIN itself, unread by the app.
    fin_unread = cw.recv_q == 1

    eof = await server.read_eof()
    after_read = server.observe()
    queued = server.fill()  # the client does not read yet: its window closes
    await server.close()
    await holds(server, S.LAST_ACK, for_=1.0, mark=True)  # its FIN waits behind the queued data

    received = await client.read_eof()
    # Measured, not asserted: where the server's FIN took the client (TIME_WAIT, or gone if
    # the kernel skipped it), and whether the server, which closed second, ever had one.
    await leaves(client, S.FIN_WAIT2)
    server_after = await leaves(server, S.LAST_ACK)
    await client.close()  # closing the fd must change nothing: a timewait socket has none
    after_close = client.observe()
    client_tw = after_close is not None and after_close.state is S.TIME_WAIT
    remaining = (after_close.timer.remaining if after_close is not None
                 and after_close.timer.kind is TimerKind.TIMEWAIT else None)

    paths = {e.label: [s.value if s else "gone" for s in conn.timeline.path(e.label)] for e in conn.ends}
    textbook = conn.timeline.saw("client", S.ESTABLISHED, S.FIN_WAIT2, S.TIME_WAIT) and (
        conn.timeline.saw("server", S.ESTABLISHED, S.CLOSE_WAIT, S.LAST_ACK, None))
    server_tw = S.TIME_WAIT in conn.timeline.path("server")
    for end in conn.ends:  # whatever the paths, each must be legal in RFC 9293's diagram
        check_path([s for s in conn.timeline.path(end.label) if s is not None], strict=False)

    verdicts.record(
        "C02", Verdict.of(textbook),
        f"active closer {' -> '.join(paths['client'])}, passive side "
        f"{' -> '.join(paths['server'])} (FIN_WAIT1 lasts until the peer's delayed ACK, a few ms on loopback: see the "
        "FIN_WAIT1 scenario)",
        paths=paths,
    )
    read_q = after_read.recv_q if after_read else None
    verdicts.record(
        "C03", Verdict.of(fin_unread and eof == b"" and read_q == 0),
        "the client reached FIN_WAIT2 while its FIN was still unread by the server (CLOSE_WAIT, "
        f"Recv-Q {cw.recv_q}: the FIN); the application's read returned end-of-file "
        f"(Recv-Q then {read_q}); the server stayed in CLOSE_WAIT until it called close()",
        recv_q_before_read=cw.recv_q, recv_q_after_read=read_q, eof_bytes=len(eof),
    )
    timer = "no timewait timer" if remaining is None else f"timer {remaining:.1f} s left"
    verdicts.record(
        "C10", Verdict.of(client_tw and remaining is not None and not server_tw
                          and server_after is None),
        f"the client (closed first) is {_show(after_close)} after closing its fd, {timer}; the "
        f"server (closed second) {'went through TIME_WAIT' if server_tw else 'never showed TIME_WAIT'}"
        f" and is then {_show(server_after)}",
        client_state=_show(after_close), client_timewait_s=remaining, server_path=paths["server"],
        server_bytes_delivered=len(received), server_bytes_queued=queued,
    )


def _show(record: SocketRecord | None) -> str:
    return "gone" if record is None else record.state.value


if __name__ == "__main__":
    scenario.main()
