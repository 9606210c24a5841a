"""Both observer backends against ``ss -tanoH`` (iproute2), an independent reader of the same
kernel tables, on the same real sockets in five states, over IPv4 and IPv6.

``ss`` is the oracle: if sock_diag parsing or psutil's /proc reading drifted (a state number
folded wrongly, a port's byte order, an IPv6 address), the states per four-tuple would
disagree. For sock_diag the queues and the TIME_WAIT timer are compared too (psutil has
neither).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from dataclasses import dataclass

import pytest
import trio

from tcplab import Lab, TcpState, TimerKind
from tcplab.expect import reaches
from tcplab.kernel.model import Address, FourTuple, SocketRecord
from tcplab.kernel.observer import DiagObserver, PsutilObserver
from tcplab.lab import End

pytestmark = pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")

FAMILIES = [pytest.param(socket.AF_INET, id="ipv4"), pytest.param(socket.AF_INET6, id="ipv6")]
S = TcpState
SS_STATES = {"ESTAB": S.ESTABLISHED, "UNCONN": S.CLOSED}  # the rest parse as written
SS_LINE = re.compile(
    r"^(?P<state>\S+)\s+(?P<recv_q>\d+)\s+(?P<send_q>\d+)\s+(?P<local>\S+)\s+(?P<peer>\S+)"
    r"(?:.*\btimer:\((?P<timer>[^)]*)\))?"
)
#: ss's print_ms_timer: "59sec", "1min30sec", "5.123ms" (5.123 s), "200ms".
SS_DURATION = re.compile(r"^(?:(?P<min>\d+)min)?(?:(?P<sec>\d+)(?:sec|\.))?(?:(?P<ms>\d+)ms)?$")


@dataclass(frozen=True)
class SsSocket:
    """One line of ``ss -tanoH``."""

    state: TcpState
    four_tuple: FourTuple
    recv_q: int
    send_q: int
    timer_kind: str | None
    timer_s: float | None


def ss_address(text: str) -> Address:
    host, _, port = text.rpartition(":")
    host = host.strip("[]").split("%")[0]
    return Address(host, 0 if port == "*" else int(port))


def ss_duration(text: str) -> float:
    match = SS_DURATION.match(text)
    assert match and text, f"unexpected ss duration {text!r}"
    return (int(match["min"] or 0) * 60 + int(match["sec"] or 0) + int(match["ms"] or 0) / 1000)


def parse_ss(output: str) -> dict[FourTuple, SsSocket]:
    found: dict[FourTuple, SsSocket] = {}
    for line in output.splitlines():
        match = SS_LINE.match(line)
        assert match, f"unexpected ss line {line!r}"
        state = SS_STATES.get(match["state"]) or TcpState.parse(match["state"])
        kind = duration = None
        if match["timer"]:
            kind, left, _retrans = match["timer"].split(",")
            duration = ss_duration(left)
        four_tuple = FourTuple(ss_address(match["local"]), ss_address(match["peer"]))
        found[four_tuple] = SsSocket(state, four_tuple, int(match["recv_q"]), int(match["send_q"]),
                                     kind, duration)
    return found


def ss_ports(*ports: int) -> dict[FourTuple, SsSocket]:
    expression = " or ".join(f"sport = :{p} or dport = :{p}" for p in ports)
    done = subprocess.run(["ss", "-tanoH", "state", "all", f"( {expression} )"],
                          capture_output=True, text=True, check=True, timeout=30)
    return parse_ss(done.stdout)


def test_ss_parser_reads_ipv6_listeners_and_short_timers() -> None:
    out = ("LISTEN 0 128 [::1]:8080 [::]:*\n"
           "TIME-WAIT 0 0 [::1]:47528 [::1]:33623 timer:(timewait,3.632ms,0)\n"
           "ESTAB 5 7 127.0.0.1:1 127.0.0.1:2 timer:(keepalive,1min30sec,0)\n"
           "FIN-WAIT-2 0 0 127.0.0.1:3 127.0.0.1:4 timer:(on,200ms,2)\n")
    parsed = list(parse_ss(out).values())
    assert parsed[0].four_tuple == FourTuple(Address("::1", 8080), Address("::", 0))
    assert parsed[0].state is S.LISTEN and parsed[0].send_q == 128
    assert parsed[1].timer_kind == "timewait" and parsed[1].timer_s == pytest.approx(3.632)
    assert parsed[2].state is S.ESTABLISHED and parsed[2].timer_s == 90.0
    assert parsed[3].state is S.FIN_WAIT2 and parsed[3].timer_s == pytest.approx(0.2)


async def settled(end: End) -> SocketRecord:
    """Wait until ``end``'s queues stop changing (three equal readings 20 ms apart)."""
    seen: list[tuple[int, int]] = []
    with trio.fail_after(5):
        while True:
            record = end.observe()
            assert record is not None
            seen.append((record.recv_q, record.send_q))
            if len(seen) >= 3 and len(set(seen[-3:])) == 1:
                return record
            await trio.sleep(0.02)


@pytest.mark.parametrize("family", FAMILIES)
async def test_both_backends_agree_with_ss_on_every_state(family: int) -> None:
    async with Lab(family=family) as lab:
        listener = await lab.listen()
        established = await lab.connect(listener)
        await established.client.send(b"x" * 100)  # unread: Recv-Q 100 at the server
        half = await lab.connect(listener)
        await half.client.send_eof()  # FIN_WAIT2 (fd still open) against CLOSE_WAIT
        closed = await lab.connect(listener)
        await closed.client.close()
        await reaches(closed.server, S.CLOSE_WAIT)
        await closed.server.close()
        await reaches(closed.client, S.TIME_WAIT)
        await reaches(half.client, S.FIN_WAIT2)
        await reaches(half.server, S.CLOSE_WAIT)
        # A zero window: bytes stuck in the client's Send-Q (another listener: small buffer).
        slow = await lab.listen(rcvbuf=4096)
        stuck = await lab.connect(slow, sndbuf=16384)
        stuck.client.fill()
        await settled(stuck.client)
        await settled(established.server)

        ports = (listener.address.port, slow.address.port)
        expected = {
            listener.four_tuple: S.LISTEN, slow.four_tuple: S.LISTEN,
            established.client.four_tuple: S.ESTABLISHED, established.server.four_tuple: S.ESTABLISHED,
            half.client.four_tuple: S.FIN_WAIT2, half.server.four_tuple: S.CLOSE_WAIT,
            closed.client.four_tuple: S.TIME_WAIT,
            stuck.client.four_tuple: S.ESTABLISHED, stuck.server.four_tuple: S.ESTABLISHED,
        }
        oracle = ss_ports(*ports)  # first: our timers are read after it, so never later than its
        diag, psutil_ = DiagObserver(), PsutilObserver()
        try:
            ours = {r.four_tuple: r for p in ports for r in diag.snapshot(port=p)}
            theirs = {r.four_tuple: r for p in ports for r in psutil_.snapshot(port=p)}
        finally:
            diag.close()
            psutil_.close()

    # The host's other sockets may share a port number (another family, a TIME_WAIT whose
    # peer port it was): the comparison is on this lab's four-tuples, each seen exactly once.
    def mine(found: dict[FourTuple, TcpState]) -> dict[FourTuple, TcpState]:
        return {t: found[t] for t in found if t in expected}

    assert mine({t: s.state for t, s in oracle.items()}) == expected
    assert mine({t: r.state for t, r in ours.items()}) == expected
    assert mine({t: r.state for t, r in theirs.items()}) == expected
    assert all(t.family == family for t in expected)

    for four_tuple in expected:
        line, record = oracle[four_tuple], ours[four_tuple]
        assert (record.recv_q, record.send_q) == (line.recv_q, line.send_q), (line, record)
        if line.timer_kind is None:
            assert record.timer.kind is TimerKind.OFF, (line, record)
        elif record.send_q == 0:  # a zero-window probe may flip between persist and on
            assert record.timer.kind.value == line.timer_kind, (line, record)
    assert ours[established.server.four_tuple].recv_q == 100
    assert ours[stuck.client.four_tuple].send_q > 0
    assert ours[listener.four_tuple].send_q == 16  # a listener's Send-Q is its backlog

    # TIME_WAIT: ss prints whole seconds (truncated) above 9 s; ours is in ms, read just after.
    tw_line, tw = oracle[closed.client.four_tuple], ours[closed.client.four_tuple]
    assert tw_line.timer_kind == "timewait" and tw.timer.kind is TimerKind.TIMEWAIT
    assert tw_line.timer_s is not None and abs(tw.timer.remaining - tw_line.timer_s) <= 1.0
    assert 50 < tw.timer.remaining <= 60
