"""The server closes first, so the TIME_WAIT is the server's (claim C14; seed 004).

Seed 004 advises servers not to close first, so that TIME_WAIT sockets gather at the
clients. The advice stands on one mechanism: whichever end closes first keeps the
TIME_WAIT. Here the server closes first; the kernel then holds TIME_WAIT on the server's
four-tuple and nothing on the client's.
"""

from __future__ import annotations

from _leaves import leaves
from tcplab import Lab, Scenario, TcpState, TimerKind, Verdict, Verdicts
from tcplab.expect import reaches

S = TcpState
scenario = Scenario(
    id="server-closes-first",
    title="Server closes first: the TIME_WAIT lands on the server's four-tuple",
    claims=("C14",),
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    conn = await lab.connect()
    client, server = conn.client, conn.server

    await server.close()
    await reaches(server, S.FIN_WAIT2)
    await reaches(client, S.CLOSE_WAIT)
    await client.read_eof()
    await client.close()

    # Measured, not asserted: where the client's FIN takes each end is what C14 is about.
    tw = await leaves(server, S.FIN_WAIT2)
    await leaves(client, S.CLOSE_WAIT, S.LAST_ACK)

    remaining = tw.timer.remaining if tw is not None and tw.timer.kind is TimerKind.TIMEWAIT else None
    server_holds_tw = tw is not None and tw.state is S.TIME_WAIT and remaining is not None
    server_path = [s.value if s else "gone" for s in conn.timeline.path("server")]
    client_path = [s.value if s else "gone" for s in conn.timeline.path("client")]
    client_never_tw = S.TIME_WAIT.value not in client_path
    verdicts.record(
        "C14", Verdict.of(server_holds_tw and client_never_tw),
        f"the server closed first; its four-tuple went {' -> '.join(server_path)}"
        + (f" ({remaining:.1f} s left)" if remaining is not None else "")
        + f", the client's {' -> '.join(client_path)}: closing first is what puts TIME_WAIT on "
        "a side, so keeping servers from closing first keeps TIME_WAIT at the clients",
        server_timewait_s=remaining, server_path=server_path, client_path=client_path,
    )


if __name__ == "__main__":
    scenario.main()
