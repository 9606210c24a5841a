"""Where sockets were made (``tcplab.origins``): the audit hook's records, in-process, on
real sockets of every kind the leak check meets."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator

import pytest

from tcplab import origins


@pytest.fixture
def tracker() -> Iterator[origins.Tracker]:
    tracker = origins.start()
    try:
        yield tracker
    finally:
        origins.stop()


def _inode(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


def _line(text: str) -> int:
    with open(__file__) as f:
        return next(i for i, line in enumerate(f, 1) if text in line and "_line(" not in line)


def test_connect_accept_and_fromfd_are_recorded_with_their_lines(tracker: origins.Tracker) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname()) as client:
        server, _ = listener.accept()  # the accept
        dup = socket.fromfd(server.fileno(), server.family, server.type)
        with server, dup:
            tracker.resolve()
            made = tracker.by_inode
            assert made[_inode(listener)].frames[-2][1:] == (
                _line("socket.create_server((\"127.0.0.1\", 0)) as listener"),
                "test_connect_accept_and_fromfd_are_recorded_with_their_lines")
            accepted = made[_inode(server)]
            assert accepted.listener == _inode(listener)
            assert accepted.listener_address == f"127.0.0.1:{listener.getsockname()[1]}"
            assert (__file__, _line("# the accept"),
                    "test_connect_accept_and_fromfd_are_recorded_with_their_lines") in accepted.frames
            assert _inode(client) in made
            # a dup shares its socket's inode: the first record (the accept) stays
            assert made[_inode(dup)] is accepted


def test_unix_sockets_are_not_tracked_and_a_detached_fd_keeps_its_origin(
        tracker: origins.Tracker) -> None:
    a, b = socket.socketpair()
    with a, b:
        sock = socket.socket()
        inode = _inode(sock)
        fd = sock.detach()  # nothing made since: detach() itself resolves the record
        try:
            tracker.resolve()
            assert _inode(a) not in tracker.by_inode and _inode(b) not in tracker.by_inode
            assert tracker.by_inode[inode].frames[-1][1] == _line("sock = socket.socket()")
        finally:
            os.close(fd)


def test_nothing_is_recorded_while_no_check_runs() -> None:
    origins.install()
    origins.stop()
    with socket.socket() as sock:
        assert origins.active() is None
    tracker = origins.start()
    origins.stop()
    with socket.socket() as sock:
        tracker.resolve()
        assert _inode(sock) not in tracker.by_inode


def test_asyncio_loops_that_made_sockets_are_remembered(tracker: origins.Tracker) -> None:
    async def connect() -> asyncio.AbstractEventLoop:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        async with server:
            _reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
            writer.close()
            await writer.wait_closed()
        return asyncio.get_running_loop()

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(connect()) is loop
        assert tracker.loops() == [loop]
    finally:
        loop.close()
