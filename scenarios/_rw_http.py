"""Helpers of the ``realworld`` HTTP scenarios (rw_*): a server in a child process, the
connections to it as the kernel lists them, who holds them, and how long a state holds.

How the libraries run: a sync client (urllib3, requests, httpx.Client) runs in a worker
thread (``trio.to_thread.run_sync``), so the scenario's trio loop keeps observing the kernel
while the library blocks; an asyncio client (aiohttp) runs ``asyncio.run`` in a worker
thread, with its own event loop; servers run in a child process of their own
(``_rw_servers.py``), so the client's and the server's ends have different owners, as in
production. The lab kills the child and the scenario closes its clients however it ends;
worker threads end with their call (nothing here leaves one waiting forever).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import trio

from tcplab import Lab, TcpState
from tcplab.expect import POLL_INTERVAL, within
from tcplab.judges.clients import IdlePool
from tcplab.kernel.model import FourTuple, SocketRecord
from tcplab.kernel.process import Child
from tcplab.kernel.procfs import socket_fds

SERVERS = str(Path(__file__).with_name("_rw_servers.py"))
S = TcpState


class ChildServer:
    """A server of ``_rw_servers.py`` running in a child process of the lab."""

    def __init__(self, child: Child) -> None:
        self.child = child
        self.pid = child.pid
        self.port = 0
        self.info: tuple[str, ...] = ()
        self._buffer = b""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def line(self, timeout: float = 10.0) -> str:
        """The next line the server printed (it says what it did)."""
        assert self.child.stdout is not None
        with trio.fail_after(timeout):
            while b"\n" not in self._buffer:
                chunk = await self.child.stdout.receive_some(4096)
                if not chunk:
                    raise RuntimeError(f"the server (pid {self.pid}) exited")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode().strip()

    async def expect(self, wanted: str) -> None:
        line = await self.line()
        if line != wanted:
            raise RuntimeError(f"the server said {line!r}, expected {wanted!r}")


async def start_server(lab: Lab, *args: object, python: str = sys.executable) -> ChildServer:
    """Start ``_rw_servers.py ARGS`` under ``python``; wait for its port (and its info)."""
    server = ChildServer(await lab.spawn([python, SERVERS, *map(str, args)]))
    port, *info = (await server.line()).split()
    server.port, server.info = int(port), tuple(info)
    lab.watch_port(server.port)
    return server


def client_ends(lab: Lab, port: int) -> list[FourTuple]:
    """The four-tuples of the client ends connected to ``port`` that are still open (not
    closed by the client: ESTABLISHED, or CLOSE_WAIT if the server closed already)."""
    return [r.four_tuple for r in lab.observer.snapshot(port=port)
            if r.four_tuple.remote.port == port and r.state in (S.ESTABLISHED, S.CLOSE_WAIT)]


def look(lab: Lab, ends: Iterable[FourTuple]) -> list[SocketRecord | None]:
    return [lab.observer.lookup(end) for end in ends]


def count(lab: Lab, ends: Iterable[FourTuple], state: TcpState) -> int:
    return sum(1 for r in look(lab, ends) if r is not None and r.state is state)


def state_of(lab: Lab, end: FourTuple) -> str | None:
    record = lab.observer.lookup(end)
    return None if record is None else record.state.value


def owned(records: Iterable[SocketRecord | None], pid: int) -> int:
    """How many of ``records`` an fd of process ``pid`` holds (its /proc/PID/fd links)."""
    inodes = {r.inode for r in records if r is not None and r.inode}
    held = socket_fds([pid], inodes)
    return sum(1 for inode in inodes if inode in held)


async def held(probe: Callable[[], bool], seconds: float) -> float:
    """How long ``probe`` stayed true, polled until it fails or ``seconds`` have passed."""
    start = trio.current_time()
    with trio.move_on_after(seconds):
        while probe():
            await trio.sleep(POLL_INTERVAL * 10)
        return trio.current_time() - start
    return seconds


async def idle_pool(lab: Lab, server: ChildServer, *, library: str, pool_size: int,
                    opened: int, keepalive: float, window: float,
                    burst: Callable[[int], None], one: Callable[[], bool],
                    close: Callable[[], None]) -> IdlePool:
    """L01/L08's experiment with a client's three calls: ``burst(n)`` holds ``n`` requests
    open at once, then reads and closes them all (back to the pool); ``one()`` is one more
    request (True: it succeeded); ``close()`` closes the pool. Between them, the client's
    ends are watched while the server's keep-alive timeout closes the idle connections."""
    await trio.to_thread.run_sync(burst, opened)
    ends = client_ends(lab, server.port)  # what the pool kept (the rest it closed already)
    await within(lambda: count(lab, ends, S.CLOSE_WAIT) == len(ends) > 0, timeout=keepalive + 5)
    close_wait = count(lab, ends, S.CLOSE_WAIT)
    holders = owned(look(lab, ends), os.getpid())
    held_s = await held(lambda: count(lab, ends, S.CLOSE_WAIT) == close_wait > 0, window)
    server_ends = tuple(state_of(lab, e.reversed()) for e in ends)  # after the FINs' ACKs
    reuse_ok = await trio.to_thread.run_sync(one)
    await within(lambda: count(lab, ends, S.CLOSE_WAIT) < close_wait, timeout=1.0)
    after_reuse = count(lab, ends, S.CLOSE_WAIT)
    await trio.to_thread.run_sync(close)
    await within(lambda: count(lab, ends, S.CLOSE_WAIT) == 0, timeout=2.0)
    return IdlePool(library, pool_size, opened, keepalive, close_wait, holders, server_ends,
                    held_s, window, reuse_ok, after_reuse, count(lab, ends, S.CLOSE_WAIT))


def interpreters(oldest: tuple[int, int] = (3, 11)) -> list[tuple[str, str]]:
    """``(version, path)`` of one CPython per minor version from ``oldest`` on: this one, and
    those on PATH (``python3.N``) or under pyenv's root; the newest patch of each minor,
    oldest first. On a machine with none but this one, that is all L03 measures."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = {sys.executable, *map(str, root.glob("versions/3.*/bin/python3"))}
    candidates |= {p for n in range(oldest[1], 20) if (p := shutil.which(f"python3.{n}"))}
    found: dict[tuple[int, int], tuple[tuple[int, ...], str]] = {}
    for path in sorted(candidates):
        try:
            out = subprocess.run([path, "-c", "import sys; print(sys.version.split()[0])"],
                                 capture_output=True, text=True, timeout=10, check=True).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        numbers = tuple(int(n) for n in re.findall(r"\d+", out)[:3])
        if len(numbers) == 3 and numbers[:2] >= oldest and numbers > found.get(
                numbers[:2], ((), ""))[0]:
            found[numbers[:2]] = (numbers, path)
    return [(".".join(map(str, v)), p) for _, (v, p) in sorted(found.items())]


class Client:
    """A plain client connection to ``port``, adopted by the lab so both ends are watched;
    the scenario closes it (``close``) or the ``async with`` does."""

    def __init__(self, lab: Lab, sock: trio.socket.SocketType) -> None:
        self.lab, self.sock = lab, sock
        self.end = lab.adopt(sock, label="client")
        self.tuple = self.end.four_tuple

    @classmethod
    async def open(cls, lab: Lab, port: int, line: str) -> Client:
        sock = trio.socket.socket()
        try:
            await sock.connect(("127.0.0.1", port))
            await sock.send(line.encode() + b"\n")
            return cls(lab, sock)
        except BaseException:
            sock.close()
            raise

    def client_state(self) -> str | None:
        return state_of(self.lab, self.tuple)

    def server_state(self) -> str | None:
        return state_of(self.lab, self.tuple.reversed())

    def server_record(self) -> SocketRecord | None:
        return self.lab.observer.lookup(self.tuple.reversed())

    def close(self) -> None:
        self.sock.close()


def tuples(lab: Lab, port: int, *, client: bool) -> set[FourTuple]:
    """Every end the kernel lists on connections to ``port`` (any state but LISTEN): the
    client's ends (remote port ``port``) or the server's."""
    return {r.four_tuple for r in lab.observer.snapshot(port=port) if r.state is not S.LISTEN
            and (r.four_tuple.remote.port if client else r.four_tuple.local.port) == port}


async def path_over(lab: Lab, end: FourTuple, seconds: float
                    ) -> tuple[tuple[str | None, ...], dict[str, float]]:
    """The states ``end`` passed through over ``seconds`` (None: gone), each once in order,
    and how long it was seen in each (the last one: until the window ended)."""
    path: list[str | None] = [state_of(lab, end)]
    times: dict[str, float] = {}
    since = start = trio.current_time()
    with trio.move_on_after(seconds):
        while path[-1] is not None:
            await trio.sleep(POLL_INTERVAL)
            if (now := state_of(lab, end)) != path[-1]:
                times[str(path[-1])] = trio.current_time() - since
                since = trio.current_time()
                path.append(now)
    if path[-1] is not None:
        times[path[-1]] = min(trio.current_time(), start + seconds) - since
    return tuple(path), times
