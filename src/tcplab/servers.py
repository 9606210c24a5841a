"""Real servers for the ``realworld`` scenarios: uvicorn, gunicorn, redis-server, PostgreSQL,
each a child of a ``Lab`` on an ephemeral loopback port.

How each gets its port without a race: uvicorn (``--fd``) and gunicorn (``--bind fd://N``)
take over a listening socket bound to port 0 here. redis-server and postgres cannot: a free
port is picked and the
start is retried if another process bound it in between (they exit saying so).

Every server runs in a session of its own (``setsid``), so all its processes (gunicorn's
workers, postgres's backends) share one process group that is stopped as a whole when the
``async with`` block ends — normally, by an exception, a timeout or Ctrl-C (the runner's
SIGTERM becomes a cancellation; the stop is shielded from it) — and then its temporary
directory (logs, data) is removed. If tcplab itself is SIGKILLed, the kernel kills the
server's first process (``PR_SET_PDEATHSIG``); its other processes notice their parent is
gone (gunicorn's workers poll for it, postgres's backends watch the postmaster).

PostgreSQL refuses to run as root: it runs as the ``postgres`` user when there is one,
else ``nobody``, its data directory in a temporary directory that user owns.

Old releases of a library (to show a bug a later release fixed, in the same run) are
installed with ``pip install --target`` under ``RELEASES`` (``nox -s realworld`` does it):
``release(dist, version)`` finds one, and a server started with ``release=`` imports it
ahead of the installed one.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.metadata
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import trio

from tcplab.kernel.model import FourTuple, SocketRecord
from tcplab.kernel.process import Child
from tcplab.kernel.procfs import with_owners
from tcplab.lab import Connection, End, Lab
from tcplab.states import TcpState

#: Where old releases are installed, one directory ``<dist>-<version>`` each.
RELEASES = Path(os.environ.get("TCPLAB_RELEASES", "~/.cache/tcplab/releases")).expanduser()
#: The directory holding this copy of tcplab, put on a Python server's PYTHONPATH.
_SRC = str(Path(__file__).resolve().parents[1])
#: Seconds a server gets to come up, and to stop after its stop signal before SIGKILL.
START_S, STOP_S = 30.0, 5.0
#: How many ports are tried for servers that cannot take over a socket.
PORT_TRIES = 5


class ServerError(RuntimeError):
    """A server could not be started (its log's end says why)."""


@dataclass
class Server:
    """A running server: its first process, address, directory and measured version."""

    name: str
    child: Child
    port: int
    directory: Path
    version: str
    host: str = "127.0.0.1"
    #: the signal that stops it cleanly (postgres: SIGINT, fast shutdown)
    stop_signal: int = signal.SIGTERM
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def log(self) -> Path:
        return self.directory / "log"

    def pids(self) -> set[int]:
        """Every live process of the server (its process tree)."""
        return tree_pids(self.child.pid)

    def log_tail(self, lines: int = 8) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""


def _processes() -> dict[int, tuple[int, int]]:
    """Every live process: pid -> (parent pid, process group), from ``/proc/<pid>/stat``."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 2 and fields[0] != "Z":
            found[int(name)] = (int(fields[1]), int(fields[2]))
    return found


def tree_pids(root: int) -> set[int]:
    """``root``, the processes of its process group, and all their descendants (postgres's
    children each start a session of their own: the group alone would miss them)."""
    table = _processes()
    found = {pid for pid, (_, group) in table.items() if group == root or pid == root}
    grew = True
    while grew:
        more = {pid for pid, (parent, _) in table.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found & table.keys()


def release(dist: str, version: str) -> Path | None:
    """The directory holding ``dist`` ``version`` installed with ``pip --target``, or None."""
    where = RELEASES / f"{dist}-{version}"
    return where if any(where.glob(f"{dist.replace('-', '_')}-{version}.dist-info")) else None


def version_of(dist: str, where: Path | None = None) -> str:
    """The version of ``dist`` found in ``where`` (a release directory) or installed."""
    if where is not None:
        for found in importlib.metadata.distributions(path=[str(where)]):
            if found.metadata["Name"].lower().replace("_", "-") == dist:
                return found.version
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def free_port(host: str = "127.0.0.1") -> int:
    """A port free at this instant (bound to 0, then released): only for servers that cannot
    take over a socket, started with retries (``PORT_TRIES``)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _python_env(where: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    parts = [str(where)] if where is not None else []
    env["PYTHONPATH"] = os.pathsep.join([*parts, _SRC, *filter(None, [env.get("PYTHONPATH")])])
    return env


async def _spawn(lab: Lab, argv: Sequence[str], directory: Path, *,
                 pass_fds: Sequence[int] = (), env: dict[str, str] | None = None) -> Child:
    """Start ``argv`` in a session of its own (one process group), output to its log."""
    with _log(directory) as log:
        return await lab.spawn(["setsid", *argv], stdout=log, stderr=subprocess.STDOUT,
                               pass_fds=pass_fds, env=env)


def _log(directory: Path) -> IO[bytes]:
    return open(directory / "log", "ab")  # closed by the caller's with


def _version(argv: Sequence[str], pattern: str) -> str:
    """The version a program prints (``pattern``'s group), "unknown" if it prints none."""
    found = re.search(pattern, subprocess.run(argv, capture_output=True, text=True).stdout)
    return found.group(1) if found else "unknown"


async def stop(server: Server) -> None:
    """Stop the server's whole process tree: its stop signal, then SIGKILL after ``STOP_S``.

    Shielded: it runs to the end even when the run is being cancelled."""
    with trio.CancelScope(shield=True):
        known = server.pids()
        server.child.signal(server.stop_signal)
        with trio.move_on_after(STOP_S):
            await server.child.wait()
        with trio.move_on_after(STOP_S):
            while pids := (known | tree_pids(server.child.pid)) & _processes().keys():
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                await trio.sleep(0.02)
        await server.child.aclose()


def _reachable_by_others(directory: Path) -> bool:
    """Can any user reach into ``directory`` (search permission on it and its parents)?"""
    return all(p.stat().st_mode & stat.S_IXOTH for p in (directory, *directory.parents))


@asynccontextmanager
async def _directory(name: str, owner: pwd.struct_passwd | None = None) -> AsyncIterator[Path]:
    """A temporary directory (owned by ``owner`` if given, in a place that user can reach:
    the usual temporary directory, else ``/tmp``), removed when the block ends."""
    base = Path(tempfile.gettempdir())
    if owner is not None and not _reachable_by_others(base):
        base = Path("/tmp")
    path = Path(tempfile.mkdtemp(prefix=f"tcplab-{name}-", dir=base))
    try:
        if owner is not None:
            os.chown(path, owner.pw_uid, owner.pw_gid)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@asynccontextmanager
async def _running(server: Server, ready: Callable[[Server], Awaitable[None]]) -> AsyncIterator[Server]:
    try:
        with trio.fail_after(START_S):
            await ready(server)
        yield server
    finally:
        await stop(server)


async def _exchange(server: Server, request: bytes, expect: bytes) -> None:
    """Until ``server`` answers ``request`` with bytes starting ``expect`` (raise if it exits)."""
    while True:
        if server.child.returncode is not None:
            raise ServerError(f"{server.name} exited ({server.child.returncode}): {server.log_tail()}")
        with contextlib.suppress(OSError, trio.BrokenResourceError), trio.move_on_after(2.0):
            stream = await trio.open_tcp_stream(*server.address)
            async with stream:
                await stream.send_all(request)
                if (await stream.receive_some(64)).startswith(expect):
                    return
        await trio.sleep(0.05)


def _http_ready(server: Server) -> Awaitable[None]:
    return _exchange(server, b"GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n", b"HTTP/1.")


def _listening(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.bind((host, 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@asynccontextmanager
async def _python_server(lab: Lab, name: str, dist: str, argv: list[str],
                         where: Path | None) -> AsyncIterator[Server]:
    """A Python HTTP server taking over a listening socket (``{fd}`` in ``argv``)."""
    async with _directory(name) as directory:
        with _listening() as sock:
            fd = sock.fileno()
            command = [sys.executable, "-m", name, *(a.format(fd=fd) for a in argv)]
            child = await _spawn(lab, command, directory, pass_fds=(fd,), env=_python_env(where))
            port = sock.getsockname()[1]
        server = Server(name, child, port, directory, version_of(dist, where))
        async with _running(server, _http_ready) as running:
            yield running


@asynccontextmanager
async def uvicorn(lab: Lab, *options: str, release: Path | None = None) -> AsyncIterator[Server]:
    """uvicorn serving ``asgi_app`` (``options``: its command-line options)."""
    argv = ["--fd", "{fd}", "--log-level", "warning", *options, "tcplab.servers:asgi_app"]
    async with _python_server(lab, "uvicorn", "uvicorn", argv, release) as server:
        yield server


@asynccontextmanager
async def gunicorn(lab: Lab, *options: str, release: Path | None = None) -> AsyncIterator[Server]:
    """gunicorn serving ``wsgi_app``, one worker (``options``: worker class, timeouts...)."""
    argv = ["--bind", "fd://{fd}", "--workers", "1", "--graceful-timeout", "1",
            "--log-level", "warning", *options, "tcplab.servers:wsgi_app"]
    async with _python_server(lab, "gunicorn", "gunicorn", argv, release) as server:
        yield server


async def _with_port_retries(start: Callable[[int], Awaitable[Server]],
                             ready: Callable[[Server], Awaitable[None]]) -> Server:
    """Start on a free port; if the server exits because the port was taken meanwhile,
    again on another (``PORT_TRIES``)."""
    for _ in range(PORT_TRIES):
        server = await start(free_port())
        try:
            with trio.fail_after(START_S):
                await ready(server)
            return server
        except ServerError:
            taken = re.search(r"already in use|could not bind", server.log_tail(), re.I)
            await stop(server)
            if not taken:
                raise
    raise ServerError(f"no free port found in {PORT_TRIES} tries")


@asynccontextmanager
async def redis(lab: Lab, *settings: str) -> AsyncIterator[Server]:
    """redis-server without persistence (``settings``: ``--timeout 1``...)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerError("redis-server is not installed")
    version = _version([binary, "--version"], r"v=(\S+)")
    async with _directory("redis") as directory:

        async def start(port: int) -> Server:
            argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", str(directory), "--protected-mode", "no",
                    "--daemonize", "no", *settings]
            return Server("redis-server", await _spawn(lab, argv, directory), port, directory,
                          version)

        def ping(server: Server) -> Awaitable[None]:
            return _exchange(server, b"PING\r\n", b"+PONG")

        server = await _with_port_retries(start, ping)
        async with _running(server, ping) as running:
            yield running


def postgres_binaries() -> tuple[Path, Path] | None:
    """PostgreSQL's ``postgres`` and ``initdb``: on PATH, else the newest Debian install
    (``/usr/lib/postgresql/<version>/bin``); None if there is none."""
    on_path = shutil.which("postgres")
    candidates = ([str(Path(on_path).parent)] if on_path else []) + sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(re.sub(r"\D", "", p) or 0),
        reverse=True)
    for directory in candidates:
        postgres, initdb = Path(directory, "postgres"), Path(directory, "initdb")
        if os.access(postgres, os.X_OK) and os.access(initdb, os.X_OK):
            return postgres, initdb
    return None


def unprivileged_user() -> pwd.struct_passwd:
    """The user PostgreSQL runs as: ``postgres`` if it exists, else ``nobody``."""
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServerError("neither a postgres nor a nobody user exists")


def _as(user: pwd.struct_passwd, argv: Sequence[str]) -> list[str]:
    """``argv`` run as ``user``; the parent-death signal survives the change of user."""
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
            "--pdeathsig=keep", "--", *argv]


@asynccontextmanager
async def postgres(lab: Lab, *settings: str) -> AsyncIterator[Server]:
    """A throwaway PostgreSQL cluster (``settings``: ``-c name=value`` options), user
    ``postgres``, trust authentication, on loopback only; its data in a temporary directory."""
    binaries = postgres_binaries()
    if binaries is None:
        raise ServerError("PostgreSQL (postgres, initdb) is not installed")
    binary, initdb = binaries
    version = _version([str(binary), "--version"], r"\(PostgreSQL\) (\S+)")
    user = unprivileged_user()
    async with _directory("postgres", user) as directory:
        data = directory / "data"
        init = await _spawn(lab, _as(user, [str(initdb), "-D", str(data), "-U", "postgres",
                                            "-A", "trust", "--no-sync", "-E", "UTF8",
                                            "--locale=C"]), directory)
        with trio.fail_after(START_S):
            if await init.wait() != 0:
                raise ServerError(f"initdb failed: {(directory / 'log').read_text()[-500:]}")
        await init.aclose()

        async def start(port: int) -> Server:
            argv = _as(user, [str(binary), "-D", str(data), "-p", str(port), "-k", str(directory),
                              "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                              "-c", "dynamic_shared_memory_type=mmap", *settings])
            return Server("postgres", await _spawn(lab, argv, directory), port, directory,
                          version, stop_signal=signal.SIGINT)

        async def ready(server: Server) -> None:
            while "ready to accept connections" not in server.log.read_text(errors="replace"):
                if server.child.returncode is not None:
                    raise ServerError(f"postgres exited: {server.log_tail()}")
                await trio.sleep(0.05)

        server = await _with_port_retries(start, ready)
        async with _running(server, ready) as running:
            yield running


# -- clients of a server, observed from both ends ------------------------------------------

async def dial(lab: Lab, server: Server, label: str = "client") -> Connection:
    """A client connected to ``server`` (handshake done), tracked with the server's end.

    The client socket is the lab's (closed when the lab exits); the server's end belongs to
    the server's processes, so it is observed by four-tuple only (``owner`` says whose)."""
    sock = lab._own(socket.socket())
    sock.setblocking(False)
    lab.watch_port(server.port)
    connecting = trio.socket.from_stdlib_socket(sock)
    await connecting.connect(server.address)
    client = End(lab, label, sock, connecting)
    peer = End(lab, server.name, sock, four_tuple=client.four_tuple.reversed(), borrowed=True)
    return lab.track(client, peer)


def watch(lab: Lab, fd: int, server: Server, label: str = "pooled") -> Connection:
    """Both ends of a connection a library in this process opened to ``server`` (``fd``: its
    socket's descriptor), observed by four-tuple only: the library keeps owning its socket
    (no duplicate descriptor is kept, which would hold the socket open after it closes)."""
    with socket.socket(fileno=os.dup(fd)) as dup:
        four_tuple = FourTuple.of(dup)
    lab.watch_port(server.port)
    ends = [End(lab, name, lab._own(socket.socket()), four_tuple=tuple_, borrowed=True)
            for name, tuple_ in ((label, four_tuple), (server.name, four_tuple.reversed()))]
    return lab.track(*ends)


def count_in(ends: Sequence[End], state: TcpState) -> int:
    """How many of ``ends`` the kernel shows in ``state`` now."""
    return sum(1 for end in ends if (record := end.observe()) is not None and record.state is state)


def owner(record: SocketRecord | None, pids: set[int]) -> str | None:
    """``name/pid/fdN`` of the process among ``pids`` holding ``record``'s socket, else None
    (a TIME_WAIT or orphaned socket, or one in a listener's accept queue, has no owner)."""
    if record is None or not record.inode:
        return None
    found = with_owners([record], pids)[0].owners
    return ", ".join(f"{o.name}/{o.pid}/fd{o.fd}" for o in found) or None


@contextlib.contextmanager
def paused(server: Server) -> Iterator[None]:
    """The server's processes stopped (SIGSTOP) inside the block, resumed however it ends:
    what a loaded server looks like to clients whose segments arrive before it runs."""
    pids = server.pids()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


# -- what the servers serve (imported by the server processes) ------------------------------

async def asgi_app(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                   send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    """The smallest ASGI application: 200, ``ok``."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """The smallest WSGI application: 200, ``ok``."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
