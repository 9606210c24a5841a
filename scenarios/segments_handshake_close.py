"""Counting the segments of the handshake and of the close (claim C04; seeds 002, 003).

The articles say the handshake takes three segments because the server's SYN and its ACK of
the client's SYN share one segment, and the close takes four because the passive side's ACK
and FIN usually travel apart. The segments are captured on loopback (each counted once, as
it leaves its sender) for two closes that differ only in when the server's application
calls close():

* ``waits``: after its kernel has acknowledged the client's FIN by itself (the client is in
  FIN_WAIT2), as an application that still has work to do would;
* ``prompt``: at once, before the delayed ACK of the FIN leaves: the FIN carries the ACK.

The verdict is computed from the counts: three for the handshake, and whether the close
took four segments in both cases or only when the application waited.

``segments`` measures the same two closes with the kernel's Tcp.OutSegs/InSegs counters in
a private namespace instead: no trace or capture needed, but only totals. The capture here
adds which flags each segment carried (the FIN that carries the ACK) and the delayed ACK's
timing; the two agree on the counts, so on the verdict.
"""

from __future__ import annotations

from tcplab import Connection, Lab, Scenario, TcpState, Verdict, Verdicts
from tcplab.expect import reaches, segments, traced_path
from tcplab.timeline import Event

S = TcpState
ATTEMPTS = 5
scenario = Scenario(
    id="segments-handshake-close",
    title="Segments counted: three for the handshake, four (or three) for the close",
    claims=("C04",),
    requires=("trace", "capture"),
)


def _flags(seg: Event) -> set[str]:
    return set(seg.data["flags"].split(","))


def split(segs: list[Event]) -> tuple[list[Event], list[Event]]:
    """(handshake, close): segments up to the first ACK without SYN; from the first FIN on."""
    handshake: list[Event] = []
    for seg in segs:
        handshake.append(seg)
        if "SYN" not in _flags(seg) and "ACK" in _flags(seg):
            break
    first_fin = next(i for i, seg in enumerate(segs) if "FIN" in _flags(seg))
    return handshake, segs[first_fin:]


async def close_waiting(lab: Lab) -> Connection:
    conn = await lab.connect()
    await conn.client.send_eof()
    await reaches(conn.client, S.FIN_WAIT2)  # the server's kernel acknowledged the FIN alone
    await conn.server.read_eof()
    await conn.server.close()
    await reaches(conn.client, S.TIME_WAIT)
    return conn


async def close_prompt(lab: Lab) -> tuple[Connection, int]:
    """A close where the server closes at once; repeated if its scheduler let the ACK go alone.

    One attempt whose FIN carried the ACK shows that the kernel does it; if none of
    ``ATTEMPTS`` does, the last one is returned and its four segments count as measured.
    """
    attempts = 0
    while True:
        attempts += 1
        conn = await lab.connect()
        await conn.client.send_eof()
        await conn.server.close()
        await reaches(conn.client, S.TIME_WAIT)
        _, closing = split(segments(conn.client))
        if attempts == ATTEMPTS or (len(closing) > 1 and "FIN" in _flags(closing[1])):
            return conn, attempts


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    waiting = await close_waiting(lab)
    await traced_path(waiting.client, S.FIN_WAIT1, S.FIN_WAIT2, S.TIME_WAIT)
    await traced_path(waiting.server, S.ESTABLISHED, S.CLOSE_WAIT, S.LAST_ACK, S.CLOSED)
    hs, close_w = split(segments(waiting.client))
    ack_delay = close_w[1].t - close_w[0].t  # the client's FIN -> the server's lone ACK

    prompt, attempts = await close_prompt(lab)
    hs_p, close_p = split(segments(prompt.client))

    handshake_ok = [s.data["flags"] for s in hs] == ["SYN", "SYN,ACK", "ACK"] and len(hs_p) == 3
    counts = {"handshake": len(hs), "close_waiting": len(close_w), "close_prompt": len(close_p)}
    if not handshake_ok:
        verdict = Verdict.REFUTED
    elif len(close_w) == 4 and len(close_p) == 4:
        verdict = Verdict.CONFIRMED
    elif len(close_w) == 4 and len(close_p) == 3:
        verdict = Verdict.PARTLY
    else:
        verdict = Verdict.REFUTED
    verdicts.record(
        "C04", verdict,
        f"handshake {len(hs)} segments ({', '.join(s.data['flags'] for s in hs)}); close "
        f"{len(close_w)} segments when the server application closed after its kernel's ACK "
        f"(sent alone {ack_delay * 1e3:.2f} ms after the FIN), {len(close_p)} when it closed at once "
        f"(attempt {attempts} of at most {ATTEMPTS}): "
        + ("its FIN carried the ACK, so four only if the application is slower than the delayed "
           "ACK" if len(close_p) == 3 else "ACK and FIN travelled apart every time"),
        counts=counts, ack_after_fin_ms=round(ack_delay * 1e3, 2), prompt_attempts=attempts,
        close_waiting=[s.text for s in close_w], close_prompt=[s.text for s in close_p],
    )


if __name__ == "__main__":
    scenario.main()
