"""Helpers of the CLOSE_WAIT scenarios (close-wait-leak, watch-vs-netstat): processes that
hold sockets, and reading who holds what.

``share`` hands the same sockets to several child processes, as a forking server does (the
article's lsof listing, seed 003, shows two pids holding the same fds): each child gets the
open files through SCM_RIGHTS, which shares the open file itself exactly as fork() does, so
the kernel releases a socket only when the last of them closes it. The children never read
nor close: they hold until killed (and die with this process: ``Lab.spawn``).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable

import trio

from tcplab import End, Lab, SocketRecord, TcpState, TimerKind
from tcplab.expect import within
from tcplab.judges.closewait import LeakPath
from tcplab.kernel.process import Child
from tcplab.kernel.procfs import socket_inodes

# Receives fds over a unix socket, says so, and holds them without ever reading or closing.
HOLDER = """
import socket, sys, time
unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
unix.connect(sys.argv[1].encode().replace(b"@", b"\\0", 1))
_, fds, _, _ = socket.recv_fds(unix, 16, int(sys.argv[2]))
print("held", len(fds), flush=True)
time.sleep(3600)
"""


async def read_line(child: Child) -> bytes:
    """One line of the child's stdout (EOFError if it exits first)."""
    assert child.stdout is not None
    line = b""
    while not line.endswith(b"\n"):
        chunk = await child.stdout.receive_some(1)
        if not chunk:
            raise EOFError(f"child {child.pid} exited early")
        line += chunk
    return line.strip()


async def share(lab: Lab, ends: list[End], holders: int) -> list[Child]:
    """Give ``ends``' sockets to ``holders`` new processes, then close ours: from then on
    only those processes hold them."""
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    address = f"@tcplab-share-{os.getpid()}-{id(unix)}"
    with unix:
        unix.bind(address.encode().replace(b"@", b"\0", 1))
        unix.listen(holders)
        unix.setblocking(False)
        children = []
        for _ in range(holders):
            child = await lab.spawn([sys.executable, "-c", HOLDER, address, str(len(ends))])
            await trio.lowlevel.wait_readable(unix)
            conn, _ = unix.accept()
            with conn:
                socket.send_fds(conn, [b"x"], [e.fd for e in ends])
            if await read_line(child) != f"held {len(ends)}".encode():
                raise EOFError(f"child {child.pid} did not take the sockets")
            children.append(child)
    for end in ends:
        await end.close()  # our copies only: the sockets live on in the children
    return children


def holders_named(records: list[SocketRecord], pids: list[int]) -> tuple[int, ...]:
    """Per socket, how many of ``pids`` a scan of every /proc/PID/fd names as holding it."""
    owners = socket_inodes()
    return tuple(len({o.pid for o in owners.get(r.inode, ())} & set(pids)) for r in records)


async def kill_one_by_one(
    children: list[Child], count: Callable[[], int], *, settle: float = 1.0
) -> tuple[int, ...]:
    """Kill each child in turn and reap it; after each, how many sockets ``count()`` finds.

    A dying process drops its files before its parent can reap it (kernel/exit.c do_exit:
    exit_files, then exit_task_work runs the deferred __fput, then exit_notify), so after
    ``wait`` a released socket has already left CLOSE_WAIT; ``settle`` seconds more are
    given anyway, ending early once none remain."""
    left = []
    for child in children:
        child.kill()
        await child.wait()
        await within(lambda: count() == 0, timeout=settle)
        left.append(count())
    return tuple(left)


async def lifetimes(
    lab: Lab, watched: dict[str, tuple[End, TcpState]], seconds: float
) -> dict[str, float | None]:
    """Watch each end for ``seconds``: when (s from now) it left its state, None if it stayed."""
    start = lab.clock()
    ended: dict[str, float] = {}

    def probe() -> bool:
        for name, (end, state) in watched.items():
            record = end.observe() if name not in ended else None
            if name not in ended and (record is None or record.state is not state):
                ended[name] = lab.clock() - start
        return len(ended) == len(watched)

    await within(probe, timeout=seconds)
    return {name: ended.get(name) for name in watched}


async def after_leaving(end: End, state: TcpState, *, timeout: float = 2.0) -> tuple[bool, str | None]:
    """Whether ``end`` left ``state`` within ``timeout``, and the state it was then in."""
    def probe() -> list[SocketRecord | None]:
        record = end.observe_all()
        return [record] if record is None or record.state is not state else []

    found = await within(probe, timeout=timeout)
    return found is not None, None if not found or found[0] is None else found[0].state.value


def timer_s(record: SocketRecord | None) -> float | None:
    """Seconds left on ``record``'s kernel timer; None when it has none (or is gone)."""
    return None if record is None or record.timer.kind is TimerKind.OFF else record.timer.remaining


def timewait_s(record: SocketRecord | None) -> float | None:
    """Seconds left on a TIME_WAIT socket's timer; None if ``record`` is not in TIME_WAIT."""
    return timer_s(record) if record is not None and record.state is TcpState.TIME_WAIT else None


def left_behind(path: str, read: str, end: End) -> LeakPath:
    """What a handler that returned without close() left: ``end``'s state, fd still held."""
    record = end.observe()
    return LeakPath(path, read, None if record is None else record.state.value, not end.closed)
