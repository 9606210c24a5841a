"""Helpers of the CLOSE_WAIT scenarios (close-wait-leak, watch-vs-netstat, http-keepalive-
timeout): processes that hold sockets, reading who holds what, and where an end went.

``owner_trial`` hands CLOSE_WAIT sockets to one kind of owner (claim C24, seed 003): a
single process; a multi-threaded one (threads share one fd table, CLONE_FILES, as
LinuxThreads' did); a server that started a child without closing its fds, so that the
child inherited them (a fork copies the fd table, and exec keeps every fd not marked
close-on-exec: fs/exec.c ``do_close_on_exec``). The sockets reach the owner through
SCM_RIGHTS, which shares the open file itself exactly as fork() does, so from then on the
owner's processes are the only holders. Owners never read nor close: they hold until killed.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Callable

import trio

from tcplab import Connection, End, Lab, SocketRecord, TcpState, TimerKind
from tcplab.expect import within
from tcplab.judges.closewait import LeakPath, OwnerKill
from tcplab.kernel.process import Child
from tcplab.kernel.procfs import socket_inodes
from tcplab.lab import errno_name

#: An owner of ``kind``: takes the fds sent over a unix socket, prints its holders' pids
#: (FORKED: the server's, then its child's) and holds them until killed. FORKED runs as a
#: subreaper whose child is the server, so that the server's orphaned child is reaped here
#: (not by init) once killed; that child ends by itself when the subreaper does.
OWNER = """
import ctypes, os, signal, socket, subprocess, sys, threading, time
kind, address, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
libc = ctypes.CDLL(None, use_errno=True)
CHILD = "import os, select, sys; select.select([os.pidfd_open(int(sys.argv[1]))], [], [])"

def take():
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
        unix.connect(address.encode().replace(b"@", b"\\0", 1))
        return socket.recv_fds(unix, 16, n)[1]

if kind == "forked child":
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    top = os.getpid()
    if os.fork() == 0:  # the server
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        fds = take()
        for fd in fds:  # inheritable, as a C program's fds are unless opened O_CLOEXEC
            os.set_inheritable(fd, True)
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(top)], close_fds=False)
        print(os.getpid(), child.pid, flush=True)
        time.sleep(3600)
        os._exit(0)
    while True:  # reap the server and, once orphaned, its child
        try:
            os.wait()
        except ChildProcessError:
            time.sleep(3600)
fds = take()
for _ in range(3 if kind == "threads" else 0):
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
print(os.getpid(), flush=True)
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


async def hand_over(lab: Lab, kind: str, ends: list[End]) -> list[int]:
    """Give ``ends``' sockets to a new owner of ``kind``, then close ours: from then on
    only the owner's processes hold them. Returns those processes' pids."""
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    address = f"@tcplab-owner-{os.getpid()}-{id(unix)}"
    with unix:
        unix.bind(address.encode().replace(b"@", b"\0", 1))
        unix.listen(1)
        unix.setblocking(False)
        child = await lab.spawn([sys.executable, "-c", OWNER, kind, address, str(len(ends))])
        with trio.fail_after(30):
            await trio.lowlevel.wait_readable(unix)
        conn, _ = unix.accept()
        with conn:
            socket.send_fds(conn, [b"x"], [e.fd for e in ends])
        pids = [int(p) for p in (await read_line(child)).split()]
    for end in ends:
        await end.close()  # our copies only: the sockets live on in the owner
    return pids


def _lists(fd_dir: str, inodes: set[int]) -> bool:
    """Whether the fd directory ``fd_dir`` holds every socket of ``inodes``."""
    try:
        links = {os.readlink(os.path.join(fd_dir, fd)) for fd in os.listdir(fd_dir)}
    except OSError:
        return False
    return all(f"socket:[{inode}]" in links for inode in inodes)


async def kill_in_turn(pids: list[int], count: Callable[[], int], *, settle: float = 1.0) -> tuple[int, ...]:
    """SIGKILL each of ``pids`` in turn (through a pidfd, so a reused pid is never hit);
    after each death, how many sockets ``count()`` finds.

    A dying process drops its files before anyone can see it dead (kernel/exit.c do_exit:
    exit_files, then exit_task_work runs the deferred __fput, then exit_notify wakes the
    pidfd), so a released socket has already left CLOSE_WAIT; ``settle`` seconds more are
    given anyway, ending early once none remain."""
    pidfds = [os.pidfd_open(pid) for pid in pids]
    left = []
    try:
        for pidfd in pidfds:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            await trio.lowlevel.wait_readable(pidfd)
            await within(lambda: count() == 0, timeout=settle)
            left.append(count())
    finally:
        for pidfd in pidfds:
            os.close(pidfd)
    return tuple(left)


async def owner_trial(lab: Lab, kind: str, conns: list[Connection], records: list[SocketRecord]) -> OwnerKill:
    """Hand the CLOSE_WAIT server ends of ``conns`` to an owner of ``kind``; name their
    holders by a scan of every /proc/PID/fd (lsof's source on Linux), count the first
    holder's threads listing them, then kill the holders in order (FORKED: the server first)."""
    holders = await hand_over(lab, kind, [c.server for c in conns])
    inodes = {r.inode for r in records}
    owners = socket_inodes(inodes=inodes)
    named = set.intersection(*({o.pid for o in owners.get(i, ())} for i in inodes))
    task_dir = f"/proc/{holders[0]}/task"
    threads = sum(_lists(f"{task_dir}/{tid}/fd", inodes) for tid in os.listdir(task_dir))
    left = await kill_in_turn(holders, lambda: sum(
        (r := c.server.observe()) is not None and r.state is TcpState.CLOSE_WAIT for c in conns))
    return OwnerKill(kind, len(records), tuple(holders), tuple(sorted(named)), threads, left)


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


async def read_outcome(end: End) -> str:
    """Read ``end`` until end of file or an error: "EOF", the errno's name, or, if data came
    and then nothing for a second, how many bytes (a measurement: no outcome is asserted)."""
    got = 0
    try:
        with trio.move_on_after(1.0):
            while chunk := await end.trio_sock.recv(65536):
                got += len(chunk)
            return "EOF" if got == 0 else f"{got} bytes, then EOF"
    except OSError as exc:
        return errno_name(exc.errno or 0)
    return f"{got} bytes, then nothing"


async def where_after(end: End, *states: TcpState, timeout: float = 5.0) -> SocketRecord | None:
    """``end``'s record once it has left ``states`` (None: gone), or, if it is still in one
    of them after ``timeout``, its record then: staying is a measurement here, not a failure."""
    def left() -> list[SocketRecord | None]:
        record = end.observe_all()
        return [record] if record is None or record.state not in states else []

    found = await within(left, timeout=timeout)
    return found[0] if found else end.observe_all()


def in_state(end: End, state: TcpState) -> bool:
    """Whether the kernel reports ``end`` in ``state`` now."""
    record = end.observe()
    return record is not None and record.state is state
