"""Half-close: after the client's FIN the server can still send, and it arrives (claim C09;
seeds 002, 003).

A FIN closes one direction only. The client calls shutdown(SHUT_WR) and sits in FIN_WAIT2;
the server, in CLOSE_WAIT, keeps sending a response for a while, and every byte reaches the
client. Only when the server closes does the client move on to TIME_WAIT.
"""

from __future__ import annotations

import hashlib

from tcplab import Lab, Scenario, TcpState, Verdict, Verdicts
from tcplab.expect import gone, holds, reaches

S = TcpState
scenario = Scenario(
    id="half-close",
    title="Half-close: the server keeps sending to a client in FIN_WAIT2, and the data arrives",
    claims=("C09",),
)

CHUNKS = 5
CHUNK = b"response-after-the-client-fin " * 1000


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    conn = await lab.connect()
    client, server = conn.client, conn.server

    await client.send_eof()
    await reaches(client, S.FIN_WAIT2)
    await reaches(server, S.CLOSE_WAIT)
    assert await server.read_eof() == b""

    sent = hashlib.sha256()
    received = hashlib.sha256()
    total = 0
    for _ in range(CHUNKS):
        await server.send(CHUNK)
        sent.update(CHUNK)
        want = len(CHUNK)
        while want:  # read this chunk fully while both ends stay half-closed
            data = await client.recv(want)
            assert data, "the client saw end-of-file before the server closed"
            received.update(data)
            want -= len(data)
            total += len(data)
        await holds(client, S.FIN_WAIT2, for_=0.05)
        await holds(server, S.CLOSE_WAIT, for_=0.05)

    await server.close()
    assert await client.read_eof() == b""
    await reaches(client, S.TIME_WAIT)
    await gone(server)

    intact = sent.digest() == received.digest() and total == CHUNKS * len(CHUNK)
    verdicts.record(
        "C09", Verdict.of(intact),
        f"with the client in FIN_WAIT2 and the server in CLOSE_WAIT, the server sent {total} bytes "
        f"in {CHUNKS} writes and all arrived intact (sha256 equal: {intact}); the client reached "
        "TIME_WAIT only after the server's own close",
        bytes_after_fin=total, sha256_equal=intact,
    )


if __name__ == "__main__":
    scenario.main()
