"""Which TCP sockets this process holds, and which of them a piece of code leaked.

A leak, for a CLOSE_WAIT hunt, is one of two things left behind by the code under test:

* a TCP socket this process holds now and did not hold before (its fd is still open:
  nobody closed it, whatever its state), or
* a socket of this process in CLOSE_WAIT that was not in CLOSE_WAIT before: the peer
  closed, this process never did (claims C18-C20).

Only sockets held through this process's own file descriptors count. A socket the code
closed properly may still be in the kernel's tables — TIME_WAIT, FIN_WAIT2 as an orphan,
LAST_ACK — but it belongs to no process (inode 0, no fd), so it is not a leak and is never
reported. Ownership is read from ``/proc/self/fd`` (``socket:[INODE]`` links); each held
socket's four-tuple comes from a duplicate of its fd (closed again at once: closing a
duplicate never closes the socket), and its state from the kernel's sock_diag table by
exact four-tuple lookup (with the device the socket is bound to, if any), or, for a socket the kernel already dropped (a reset), from
``TCP_INFO`` on the fd. The cost grows with the sockets this process holds, not with the
host's (a whole-table dump on a server with 50,000 sockets would cost tens of ms per test).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tcplab.kernel.model import Address, FourTuple, SocketRecord
from tcplab.kernel.observer import DiagObserver
from tcplab.kernel.procfs import bound_interface, is_tcp_fd, socket_fds, tcp_info_state
from tcplab.states import TcpState

GRACE_POLL = 0.005  # seconds between re-reads while a grace period runs


@dataclass(frozen=True)
class HeldSocket:
    """A TCP socket this process holds: the fd, and what the kernel reports for it."""

    fd: int
    record: SocketRecord

    @property
    def state(self) -> TcpState:
        return self.record.state

    @property
    def inode(self) -> int:
        return self.record.inode

    def describe(self) -> str:
        """``fd 7  127.0.0.1:8080 -> 127.0.0.1:41234  CLOSE_WAIT  Recv-Q 1``."""
        record = self.record
        line = f"fd {self.fd:<4} {record.four_tuple}  {record.state.value}"
        if (record.recv_q or record.send_q) and record.state is not TcpState.LISTEN:
            line += f"  Recv-Q {record.recv_q} Send-Q {record.send_q}"
        if record.fd_only:
            line += "  (in no kernel table: never connected, or reset; the fd is still open)"
        return line


@dataclass(frozen=True)
class Leak:
    """A held socket and why it counts as leaked."""

    socket: HeldSocket
    reason: str

    def describe(self) -> str:
        return f"{self.socket.describe()}  <- {self.reason}"


def _four_tuple(sock: socket.socket) -> FourTuple:
    local = Address.of(sock.getsockname())
    try:
        remote = Address.of(sock.getpeername())
    except OSError:  # a listener, a socket never connected, or one reset by its peer
        remote = Address.wildcard(sock.family)
    return FourTuple(local, remote)


def _held(fd: int, inode: int, observer: DiagObserver) -> HeldSocket | None:
    try:
        dup = socket.socket(fileno=os.dup(fd))
    except OSError:  # closed meanwhile (another thread)
        return None
    with dup:
        four_tuple = _four_tuple(dup)
        record = (observer.lookup(four_tuple, interface=bound_interface(dup))
                  if four_tuple.local.port else None)
        if record is None or record.inode != inode:
            # Not in the kernel's tables: never connected, or dropped after a reset.
            # The fd itself still knows its state.
            record = SocketRecord(
                state=tcp_info_state(dup), four_tuple=four_tuple, inode=inode, fd_only=True
            )
    return HeldSocket(fd, record)


def held_tcp_sockets(
    observer: DiagObserver | None = None, inodes: Container[int] | None = None
) -> dict[int, HeldSocket]:
    """Every TCP socket this process holds through an fd, by socket inode (only those in
    ``inodes``, if given)."""
    own_observer = observer is None
    observer = observer or DiagObserver()
    held: dict[int, HeldSocket] = {}
    pid = os.getpid()
    try:
        for inode, holders in socket_fds([pid], inodes).items():
            # One socket may sit behind several fds (dup, fork): the first fd still open
            # describes it. An fd that is no TCP socket *now* may have been closed since
            # /proc was read (a thread of the test), so the next fd is asked too.
            for _pid, fd in sorted(holders):
                found = _held(fd, inode, observer) if is_tcp_fd(pid, fd) else None
                if found is not None:
                    held[inode] = found
                    break
    finally:
        if own_observer:
            observer.close()
    return held


def held_socket_inodes() -> dict[int, list[int]]:
    """Socket inode -> the fds of this process that hold it, any protocol: one scan of
    ``/proc/self/fd`` (a readlink per fd), the cheap first read of a leak check."""
    return {inode: [fd for _pid, fd in holders]
            for inode, holders in socket_fds([os.getpid()]).items()}


def tcp_inodes(inodes: Mapping[int, list[int]]) -> set[int]:
    """Those of ``inodes`` (from ``held_socket_inodes``) that are TCP sockets."""
    pid = os.getpid()
    return {inode for inode, fds in inodes.items() if any(is_tcp_fd(pid, fd) for fd in fds)}


def wait_closed(inodes: Iterable[int], grace: float, loops: Iterable[Any] = (),
                since: float | None = None) -> set[int]:
    """Those of ``inodes`` this process still holds after up to ``grace`` seconds (counted
    from ``since``, a ``time.monotonic()`` reading, when given: the time already spent
    since then counts, but the peers always get one step and one re-read).

    While it waits, the peers that could still close run: other threads (the wait
    releases the GIL) and, one step at a time, an asyncio loop of ``loops`` that is alive
    but idle in this thread (a loop that outlives the test, whose server handler may
    still have to see the peer's FIN and close). Only the candidate inodes are re-read.
    """
    left = set(inodes)
    deadline = (time.monotonic() if since is None else since) + grace
    first = True
    while left:
        remaining = deadline - time.monotonic()
        if remaining <= 0 and not first:
            break
        first = False
        step = min(GRACE_POLL, remaining) if remaining > 0 else GRACE_POLL
        if not _run_idle_loop(loops, step):
            time.sleep(step)
        left &= held_socket_inodes().keys()
    return left


@dataclass(frozen=True)
class ThreadFate:
    """What a thread did while :func:`wait_threads` waited for it."""

    name: str  # ``Thread-3 (serve)``
    #: Seconds from the start of the wait to the moment it was seen ended; None: it was
    #: still running when the wait stopped (at its bound, or once every socket was closed).
    ended_after: float | None


def wait_threads(
    inodes: Iterable[int], threads: Sequence[threading.Thread], bound: float,
    loops: Iterable[Any] = (),
) -> tuple[set[int], list[ThreadFate]]:
    """Those of ``inodes`` still held once ``threads`` ended (or after ``bound`` seconds,
    or as soon as none is held), and what each thread did meanwhile.

    For a thread of the code under test that closes its socket on its way out (a server
    thread that accepts, sleeps, then closes): joined a few ms at a time, so that the
    sockets are re-read as it goes and the wait stops when nothing is left to wait for.
    The bound keeps a thread that never ends (a daemon serving forever) from hanging the
    caller. Idle asyncio loops of ``loops`` run meanwhile, as in :func:`wait_closed`.
    """
    left = set(inodes)
    started = time.monotonic()
    deadline = started + bound
    running = [t for t in threads if t.is_alive()]
    ended: dict[threading.Thread, float] = {}
    while left and running:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        step = min(GRACE_POLL, remaining)
        if not _run_idle_loop(loops, step):
            running[0].join(step)
        now = time.monotonic() - started
        ended.update((t, now) for t in running if not t.is_alive())
        running = [t for t in running if t.is_alive()]
        left &= held_socket_inodes().keys()
    fates = [ThreadFate(t.name, ended.get(t)) for t in threads]
    return left, fates


def _run_idle_loop(loops: Iterable[Any], seconds: float) -> bool:
    """Run one alive, idle asyncio loop for ``seconds``; False if there is none."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None or asyncio._get_running_loop() is not None:
        return False
    for loop in loops:
        if loop.is_closed() or loop.is_running():
            continue
        try:
            loop.run_until_complete(asyncio.sleep(seconds))
        except Exception:  # a loop that can't run now: wait the plain way
            continue
        return True
    return False


def find_leaks(before: Mapping[int, HeldSocket], after: Mapping[int, HeldSocket]) -> list[Leak]:
    """What ``after`` holds that counts as leaked since ``before`` (see the module docstring)."""
    leaks = []
    for inode, held in sorted(after.items(), key=lambda item: item[1].fd):
        previous = before.get(inode)
        if previous is None:
            reason = "opened and never closed"
            if held.state is TcpState.CLOSE_WAIT:
                reason += " (the peer closed it: CLOSE_WAIT)"
            leaks.append(Leak(held, reason))
        elif held.state is TcpState.CLOSE_WAIT and previous.state is not TcpState.CLOSE_WAIT:
            leaks.append(Leak(held, "the peer closed it and this process never did (CLOSE_WAIT)"))
    return leaks


def render_leaks(leaks: list[Leak], *, what: str = "the test") -> str:
    """The failure message: one line per leaked socket (fd, four-tuple, state, why)."""
    count = len(leaks)
    noun = "socket" if count == 1 else "sockets"
    lines = [f"{what} leaked {count} TCP {noun} of process {os.getpid()}:"]
    lines += [f"  {leak.describe()}" for leak in leaks]
    return "\n".join(lines)


class LeakCheck:
    """Before/after around a piece of code: ``check = LeakCheck(); ...; check.leaks()``."""

    def __init__(self) -> None:
        self.before = held_tcp_sockets()

    def leaks(self, *, grace: float = 0.0) -> list[Leak]:
        """The leaks now; with ``grace``, those still there after up to ``grace`` seconds.

        The grace is for peers that close asynchronously — a server thread of the same
        process that closes its end a moment after the client did: re-read every few ms
        until nothing is left or the time is up (a blocking sleep: call it outside trio).
        """
        deadline = time.monotonic() + grace
        found = find_leaks(self.before, held_tcp_sockets())
        while found and time.monotonic() < deadline:
            time.sleep(GRACE_POLL)
            found = find_leaks(self.before, held_tcp_sockets())
        return found
