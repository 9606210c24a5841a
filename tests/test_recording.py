"""The recording on a real lab: traced transitions, captured segments, one timeline."""

from __future__ import annotations

import pytest
import trio

from tcplab import Lab, TcpState
from tcplab.expect import holds, reaches, segments, traced_path
from tcplab.kernel import packets, trace
from tcplab.recording import Recording

S = TcpState
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(trace.available() is not None or packets.available() is not None,
                       reason=f"needs tracefs and CAP_NET_RAW ({trace.available()})"),
]


async def _close_four_segments(lab: Lab) -> list[str]:
    conn = await lab.connect()
    await conn.client.send_eof()
    await reaches(conn.client, S.FIN_WAIT2)
    await conn.server.close()
    await reaches(conn.client, S.TIME_WAIT)
    await traced_path(conn.client, S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2, S.TIME_WAIT)
    await traced_path(conn.server, S.ESTABLISHED, S.CLOSE_WAIT, S.LAST_ACK, S.CLOSED)
    return [s.data["flags"] for s in segments(conn.client)]


async def test_each_segment_once_and_time_wait_from_trace_and_snapshot() -> None:
    async with Lab() as lab:
        with Recording(lab) as recording:
            flags = await _close_four_segments(lab)
            assert recording.mode == "snapshots + trace + capture"
    # each loopback segment is seen leaving and arriving: kept once
    assert flags == ["SYN", "SYN,ACK", "ACK", "FIN,ACK", "ACK", "FIN,ACK", "ACK"]


async def test_concurrent_recordings_keep_to_their_own_connections() -> None:
    results: list[list[str]] = []

    async def one() -> None:
        async with Lab() as lab:
            with Recording(lab):
                results.append(await _close_four_segments(lab))
                assert all(len(c.timeline.segments()) == 7 for c in lab.connections)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(one)
    assert len(results) == 3


async def test_without_trace_or_capture_the_mode_says_so() -> None:
    async with Lab() as lab:
        with Recording(lab, trace=False, capture=False) as recording:
            conn = await lab.connect()
            await conn.client.close()
            await reaches(conn.client, S.FIN_WAIT2)
            assert recording.mode == "snapshots only"
            assert conn.timeline.events == []


async def test_an_orphaned_fin_wait2_stays_fin_wait2_until_the_peers_fin() -> None:
    """Fault 1 of issue 10: an orphan in FIN_WAIT2 is moved into a timewait socket whose
    substate is FIN_WAIT2 (the trace says FIN_WAIT2 -> CLOSE); it is TIME_WAIT only once the
    peer's FIN reached it, and its timeline must say so, not relabel the CLOSE as TIME_WAIT."""
    async with Lab() as lab:
        with Recording(lab) as recording:
            conn = await lab.connect()
            await conn.client.close()  # the orphan: no fd left
            await reaches(conn.server, S.CLOSE_WAIT)
            await reaches(conn.client, S.FIN_WAIT2)
            await holds(conn.client, S.FIN_WAIT2, for_=0.3)
            recording.sync()
            before_fin = conn.timeline.traced_path("client")
            await conn.server.close()
            await reaches(conn.client, S.TIME_WAIT)
            recording.sync()
            events = list(conn.timeline.events)
            dwell = conn.timeline.dwell("client")
    assert before_fin[-1] is S.FIN_WAIT2, before_fin
    fin = next(e for e in events if e.kind == "segment" and e.end == "server"
               and "FIN" in e.data["flags"])
    entered = next(e for e in events if e.kind == "state" and e.end == "client"
                   and e.new is S.TIME_WAIT)
    assert entered.t >= fin.t, (entered.describe(), fin.describe())
    # one stay in FIN_WAIT2 from the FIN's ACK to the peer's FIN, however the kernel held it
    stay = next(d for d in dwell if d.state is S.FIN_WAIT2)
    assert stay.seconds is not None and stay.seconds >= 0.3
    assert stay.left == entered.t
    assert [d.state for d in dwell][-2:] == [S.FIN_WAIT2, S.TIME_WAIT]
