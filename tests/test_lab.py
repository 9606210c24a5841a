"""The lab's actions, observed on real sockets (IPv4 and IPv6)."""

from __future__ import annotations

import errno
import os
import socket

import pytest

from tcplab import Lab, TcpState, TimerKind
from tcplab.expect import ExpectationFailed, gone, holds, reaches

FAMILIES = [pytest.param(socket.AF_INET, id="ipv4"), pytest.param(socket.AF_INET6, id="ipv6")]


@pytest.mark.parametrize("family", FAMILIES)
async def test_connect_listens_on_an_ephemeral_loopback_port(family: int) -> None:
    async with Lab(family=family) as lab:
        listener = await lab.listen()
        assert listener.address.port >= 1024
        record = listener.observe()
        assert record is not None and record.state is TcpState.LISTEN
        conn = await lab.connect(listener)
        for end in conn.ends:
            seen = end.observe(owners=True)
            assert seen is not None and seen.state is TcpState.ESTABLISHED
            assert seen.owners and seen.owners[0].pid == os.getpid() and seen.owners[0].fd == end.fd
        assert conn.client.four_tuple == conn.server.four_tuple.reversed()


@pytest.mark.parametrize("family", FAMILIES)
async def test_abort_resets_the_peer_which_keeps_a_closed_fd(family: int) -> None:
    async with Lab(family=family) as lab:
        conn = await lab.connect()
        await conn.client.abort()
        await gone(conn.client)
        record = await reaches(conn.server, TcpState.CLOSED)
        assert record.fd_only  # dropped from the tables, not from the process
        assert await conn.server.recv_error() == errno.ECONNRESET


async def test_time_wait_is_found_by_four_tuple_after_the_fd_is_closed() -> None:
    async with Lab() as lab:
        conn = await lab.connect()
        await conn.client.close()
        await reaches(conn.server, TcpState.CLOSE_WAIT)
        await conn.server.close()
        record = await reaches(conn.client, TcpState.TIME_WAIT)
        assert record.inode == 0 and record.timer.kind is TimerKind.TIMEWAIT
        assert 50 < record.timer.remaining <= 60


async def test_holds_fails_with_both_ends_in_the_message() -> None:
    async with Lab() as lab:
        conn = await lab.connect()
        await conn.client.send_eof()
        with pytest.raises(ExpectationFailed) as failure:
            await holds(conn.server, TcpState.ESTABLISHED, for_=1.0)
        text = str(failure.value)
        assert "expected ESTABLISHED to hold" in text and "saw CLOSE_WAIT" in text
        assert "client" in text and "FIN_WAIT" in text  # the peer's states are in the timeline


async def test_the_lab_closes_everything_it_opened() -> None:
    before = set(os.listdir("/proc/self/fd"))
    async with Lab() as lab:
        conn = await lab.connect()
        conn.server.leak()
        await lab.listen()
        opened = set(os.listdir("/proc/self/fd")) - before
        assert len(opened) >= 3
    assert set(os.listdir("/proc/self/fd")) <= before
