"""Half-close: after the client's FIN the server can still send, and it arrives (claim C09;
seeds 002, 003).

A FIN closes one direction only. The client calls shutdown(SHUT_WR) and sits in FIN_WAIT2;
the server, in CLOSE_WAIT, keeps sending a response in several writes, and the client reads
each one. Measured: how many bytes arrived and whether they are the bytes sent, both ends'
states after each write, and where the server's own close() then takes the client.
"""

from __future__ import annotations

import hashlib

from tcplab import Lab, Scenario, TcpState, Verdicts
from tcplab.expect import reaches
from tcplab.judges.closing import HalfClose
from tcplab.measure import leaves, state_of

S = TcpState
CHUNKS = 5
CHUNK = b"response-after-the-client-fin " * 1000
scenario = Scenario(
    id="half-close",
    title="Half-close: the server keeps sending to a client in FIN_WAIT2, and the data arrives",
    claims=("C09",),
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    conn = await lab.connect()
    client, server = conn.client, conn.server
    await client.send_eof()
    await reaches(client, S.FIN_WAIT2)  # the precondition: the client's direction is closed
    await reaches(server, S.CLOSE_WAIT)
    await server.read_eof()

    sent, received = hashlib.sha256(), hashlib.sha256()
    delivered, states = 0, []
    for _ in range(CHUNKS):
        await server.send(CHUNK)
        sent.update(CHUNK)
        want = len(CHUNK)
        while want and (data := await client.recv(want)):  # b"": end of file came early
            received.update(data)
            want -= len(data)
            delivered += len(data)
        states.append((state_of(client.observe_all()), state_of(server.observe())))

    await server.close()
    delivered += len(await client.read_eof())  # anything more after the writes: none expected
    after = await leaves(client, S.FIN_WAIT2)
    verdicts.judge("C09", HalfClose(
        sent=CHUNKS * len(CHUNK), delivered=delivered, intact=sent.digest() == received.digest(),
        client_states=tuple(c for c, _ in states), server_states=tuple(s for _, s in states),
        client_after_close=state_of(after)))


if __name__ == "__main__":
    scenario.main()
