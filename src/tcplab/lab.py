"""Real loopback sockets, with the named actions that scenarios are written in.

A ``Lab`` owns everything a scenario opens: listeners, both ends of every connection, child
processes. When its ``async with`` block ends — normally, by an exception, by cancellation
or by a timeout — it closes every socket and kills every child, so a scenario cannot leak
into the next one even when it leaks on purpose.

Ports are always ephemeral (bind to port 0). Actions map one-to-one to syscalls:

=============  ==========================================================================
``close``      close(2): graceful, FIN after any queued data
``abort``      SO_LINGER {on, 0 s} then close(2): RST, no TIME_WAIT, queued data dropped
``send_eof``   shutdown(SHUT_WR): FIN, but the fd stays open and can still receive
``leak``       nothing: the application forgets the socket (the lab still closes it at exit)
``fill``       send until the kernel refuses (EAGAIN): the peer's window and our buffer full
``read_eof``   recv until end of file, returning what arrived
=============  ==========================================================================

Scenarios run on trio, and there every action goes through trio's sockets as it always has.
The same ``Lab``, its ends and ``tcplab.expect`` also work in an asyncio program or test
(through anyio, which runs on both): there the actions use the non-blocking stdlib socket
and wait with ``anyio.wait_readable``/``wait_writable``. Only ``spawn`` needs trio.
"""

from __future__ import annotations

import asyncio
import asyncio.trsock
import errno
import os
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import IO, Any, Protocol, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel
import sniffio
import trio

from tcplab.kernel.model import Address, FourTuple, SocketRecord
from tcplab.kernel.observer import DiagObserver
from tcplab.kernel.process import Child
from tcplab.kernel.procfs import bound_interface, fd_only_record, with_owners
from tcplab.timeline import Timeline


class Evidence(Protocol):
    """What the lab and the expectations know of a run's recording (``tcplab.recording``,
    which imports the lab, never the other way round)."""

    @property
    def mode(self) -> str: ...

    @property
    def recorder(self) -> object | None:
        """The trace source or None (older scenarios ask this; ``has("trace")`` says it)."""

    @property
    def capture(self) -> object | None:
        """The capture source or None (``has("capture")`` says it)."""

    def has(self, name: str) -> bool:
        """Does the run have the evidence source ``name`` ("trace", "capture", ...)?"""

    def watch_port(self, port: int) -> None:
        """The lab opened ``port``."""

    def sync(self) -> None:
        """File into the lab's timelines everything the sources have read so far."""


LOOPBACK: dict[int, str] = {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"}

T = TypeVar("T")


def under_trio() -> bool:
    """Is the running event loop trio's? (The lab's own path; anything else goes through anyio.)"""
    try:
        return sniffio.current_async_library() == "trio"
    except sniffio.AsyncLibraryNotFoundError:
        return False


async def _nonblocking(call: Callable[[], T], sock: socket.socket, *, write: bool) -> T:
    """``call`` (an operation on the non-blocking ``sock``) once it no longer would block,
    waiting through anyio between tries: the lab's I/O outside trio."""
    await anyio.lowlevel.checkpoint_if_cancelled()
    while True:
        try:
            result = call()
        except BlockingIOError:
            await (anyio.wait_writable(sock) if write else anyio.wait_readable(sock))
        else:
            await anyio.lowlevel.cancel_shielded_checkpoint()
            return result


async def _close(sock: socket.socket, trio_sock: trio.socket.SocketType) -> None:
    """close(2), waking whoever waits on the socket (trio's close does that itself)."""
    if under_trio():
        trio_sock.close()
    else:
        if sock.fileno() != -1:
            anyio.notify_closing(sock)
        sock.close()
    await anyio.lowlevel.checkpoint()


class LabError(RuntimeError):
    """A lab action that could not be carried out (not an expectation about the kernel)."""


def _set_buffers(sock: socket.socket, rcvbuf: int | None, sndbuf: int | None) -> None:
    # Set before listen()/connect(): the window scale is fixed at the handshake, and an
    # accepted socket inherits the listener's buffers. Setting them also turns autotuning off.
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)


class End:
    """One end of a connection (``client`` or ``server``), owned by a ``Lab``."""

    def __init__(
        self,
        lab: Lab,
        label: str,
        sock: socket.socket,
        trio_sock: trio.socket.SocketType | None = None,
        *,
        four_tuple: FourTuple | None = None,
        borrowed: bool = False,
    ) -> None:
        """``four_tuple`` defaults to the socket's name and peer name; pass it when the socket
        has no peer yet (a connect in progress, a listener). ``borrowed``: ``sock`` is not this
        end's own socket (the listener's, for the server side of a connection not accepted
        yet), so the end is only observed by four-tuple, never as an fd-only record."""
        self.lab = lab
        self.label = label
        self.sock = sock  # the stdlib socket (non-blocking), for setsockopt and raw sends
        # ``trio_sock``: the caller's own trio wrapper of ``sock`` (adopted sockets), else a new one
        self.trio_sock = trio_sock or trio.socket.from_stdlib_socket(sock)
        if four_tuple is None:
            four_tuple = FourTuple.of(sock)
        self.four_tuple = four_tuple
        self.fd = sock.fileno()
        self.timeline = Timeline()
        self.peers: list[End] = []
        self.leaked = False
        self.borrowed = borrowed
        #: The device ``sock`` is bound to (SO_BINDTODEVICE), which an exact lookup must
        #: send; re-read at each observation while the fd is open, kept after it closes.
        self.interface = bound_interface(sock)

    def __repr__(self) -> str:
        return f"<End {self.label} {self.four_tuple}>"

    @property
    def closed(self) -> bool:
        return self.sock.fileno() == -1

    # -- actions -----------------------------------------------------------------

    async def close(self) -> None:
        """close(2): the kernel sends FIN once queued data is out."""
        await _close(self.sock, self.trio_sock)

    async def abort(self) -> None:
        """SO_LINGER on with a zero timeout, then close(2): the kernel sends RST."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await self.close()

    async def send_eof(self) -> None:
        """shutdown(SHUT_WR): send FIN, keep the fd open for reading."""
        if under_trio():
            self.trio_sock.shutdown(socket.SHUT_WR)
        else:
            self.sock.shutdown(socket.SHUT_WR)
        await anyio.lowlevel.checkpoint()

    def leak(self) -> None:
        """The application forgets this socket: it will never close it (the lab will, at exit)."""
        self.leaked = True

    async def send(self, data: bytes) -> None:
        """Send all of ``data`` (waits while the peer's window is full)."""
        view = memoryview(data)
        while view:
            if under_trio():
                sent = await self.trio_sock.send(view)
            else:
                sent = await _nonblocking(partial(self.sock.send, view), self.sock, write=True)
            view = view[sent:]

    def fill(self, chunk: int = 65536) -> int:
        """Queue bytes until the kernel refuses more (EAGAIN); return how many it took.

        Afterwards the peer's receive window is zero (if it doesn't read) and our send
        buffer is full: the state that holds FIN_WAIT1 and LAST_ACK on loopback.
        """
        total = 0
        block = b"x" * chunk
        while True:
            try:
                total += self.sock.send(block)
            except BlockingIOError:
                return total

    async def recv(self, size: int = 65536) -> bytes:
        if under_trio():
            return await self.trio_sock.recv(size)
        return await _nonblocking(lambda: self.sock.recv(size), self.sock, write=False)

    async def read_eof(self) -> bytes:
        """Receive until end of file; return everything that arrived."""
        parts = []
        while chunk := await self.recv(65536):
            parts.append(chunk)
        return b"".join(parts)

    async def recv_error(self) -> int:
        """Receive once, expecting the kernel to fail it; return the errno (e.g. ECONNRESET)."""
        try:
            data = await self.recv(65536)
        except OSError as exc:
            return exc.errno or 0
        raise LabError(f"{self.label}: recv returned {len(data)} bytes instead of failing")

    def set_linger2(self, seconds: int) -> None:
        """TCP_LINGER2: this socket's FIN_WAIT2 lifetime once orphaned (tcp_fin_timeout's per-socket form)."""
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2, seconds)

    async def connected(self) -> None:
        """Wait until a connect started by ``Lab.start_connect`` completes (the handshake is
        done); raise ``LabError`` with the errno if the kernel failed it."""
        await anyio.wait_writable(self.sock)
        error = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            raise LabError(f"{self.label}: connect failed: {errno_name(error)}")

    # -- observation -------------------------------------------------------------

    def observe(
        self, *, owners: bool = False, source: str = "snapshot", force: bool = False
    ) -> SocketRecord | None:
        """What the kernel holds for this end now, recorded in the timeline.

        Looked up by exact four-tuple, so TIME_WAIT (which has no fd) is found too. If the
        tables have nothing but our fd is still open, the kernel dropped the socket (a reset):
        that is reported as a CLOSED, fd-only record, not as nothing. ``source`` and
        ``force`` go to ``Timeline.add``.
        """
        if not self.closed:
            self.interface = bound_interface(self.sock)
        record = self.lab.observer.lookup(self.four_tuple, interface=self.interface)
        if record is None and not self.closed and not self.borrowed:
            record = fd_only_record(self.sock, self.four_tuple)
        elif record is not None and owners:
            record = with_owners([record], [os.getpid()])[0]
        self.timeline.add(self.lab.clock(), self.label, record, source, force=force)
        return record

    def observe_all(self) -> SocketRecord | None:
        """Observe this end and its peers (so a timeline shows both sides); return this end's."""
        for peer in self.peers:
            peer.observe()
        return self.observe()


class Connection:
    """A client end and a server end that share one timeline."""

    def __init__(self, client: End, server: End) -> None:
        self.client = client
        self.server = server
        client.peers.append(server)
        server.peers.append(client)
        shared = Timeline()
        client.timeline = server.timeline = shared
        self.timeline = shared

    @property
    def ends(self) -> tuple[End, End]:
        return (self.client, self.server)

    def join(self, end: End) -> End:
        """Add a third end to this connection's timeline (e.g. the accepted socket of a
        connection whose server side was watched through the listener): it and the two
        ends observe each other from now on."""
        end.timeline = self.timeline
        for other in self.ends:
            other.peers.append(end)
            end.peers.append(other)
        return end


class Listener:
    """A listening socket on an ephemeral loopback port."""

    def __init__(self, lab: Lab, sock: socket.socket) -> None:
        self.lab = lab
        self.sock = sock
        self.trio_sock = trio.socket.from_stdlib_socket(sock)
        self.address = Address.of(sock.getsockname())
        self.four_tuple = FourTuple(self.address, Address.wildcard(sock.family))

    async def accept(self) -> socket.socket:
        if under_trio():
            conn, _ = await self.trio_sock.accept()
            raw = socket.socket(fileno=conn.detach())
        else:
            raw, _ = await _nonblocking(self.sock.accept, self.sock, write=False)
        raw.setblocking(False)
        self.lab._own(raw)
        return raw

    def observe(self) -> SocketRecord | None:
        return self.lab.observer.lookup(self.four_tuple, interface=bound_interface(self.sock))

    def as_end(self, label: str = "listener") -> End:
        """The listening socket as an ``End``, so a timeline shows it beside connections
        (its four-tuple: the local address and the wildcard peer, as sock_diag reports it)."""
        return End(self.lab, label, self.sock, four_tuple=self.four_tuple)

    def pending_end(self, client: End, label: str = "server") -> End:
        """The server side of ``client``'s connection before the application accepts it:
        the kernel's request socket (SYN_RECV) or the full socket waiting in the accept
        queue. It has no fd of its own, so it is observed by four-tuple only."""
        return End(self.lab, label, self.sock, four_tuple=client.four_tuple.reversed(), borrowed=True)

    async def close(self) -> None:
        await _close(self.sock, self.trio_sock)


class Lab:
    """Owns the sockets and processes of one scenario run; see the module docstring."""

    def __init__(self, *, family: int = socket.AF_INET) -> None:
        self.family = family
        self.host = LOOPBACK[family]
        self.observer = DiagObserver()
        self._sockets: list[socket.socket] = []
        self._processes: list[Child] = []
        self._started = time.monotonic()
        self.connections: list[Connection] = []
        #: Called with each port the lab opens (before the socket listens), so recorders
        #: (tracefs filters, packet capture) can widen their kernel filters in time.
        self.port_hooks: list[Callable[[int], None]] = []
        #: The run's evidence beyond snapshots (trace, capture...), when a recording has
        #: subscribed (``subscribe``): ``expect.traced_path`` and ``expect.segments`` use it.
        self.recording: Evidence | None = None
        #: Every ``End`` made by ``adopt`` (the recording files their traffic too).
        self.adopted: list[End] = []

    def watch_port(self, port: int) -> None:
        """Tell the recorders about ``port`` (``listen`` does it itself; call it for sockets
        a scenario opens on its own)."""
        for hook in self.port_hooks:
            hook(port)

    def subscribe(self, evidence: Evidence) -> Callable[[], None]:
        """Let ``evidence`` (a ``tcplab.recording.Recording``) hear of every port the lab
        opens and stand as ``lab.recording``; return the call that unsubscribes it. The lab
        knows the recording only through this hook and the ``Evidence`` protocol."""
        self.port_hooks.append(evidence.watch_port)
        self.recording = evidence

        def unsubscribe() -> None:
            if evidence.watch_port in self.port_hooks:
                self.port_hooks.remove(evidence.watch_port)

        return unsubscribe

    def clock(self) -> float:
        """Seconds since the lab opened: the time axis of every timeline."""
        return time.monotonic() - self._started

    async def __aenter__(self) -> Lab:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self.aclose()

    async def aclose(self) -> None:
        """Kill every child and close every socket; safe to call twice.

        Runs shielded from cancellation when the lab exits, so a timeout or Ctrl-C still
        waits for children to be reaped (bounded: SIGKILL cannot be ignored).
        """
        try:
            for proc in self._processes:
                proc.kill()
            for proc in self._processes:
                with trio.move_on_after(5):  # SIGKILL cannot be ignored: only a safety net
                    await proc.aclose()
        finally:  # whatever reaping a child raised, no socket outlives the lab
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()
            self._processes.clear()
            self.observer.close()

    def close(self) -> None:
        """``aclose`` without an event loop (the ``tcplab_lab`` fixture's teardown, whatever
        framework the test ran on): children are SIGKILLed and reaped, blocking (SIGKILL
        cannot be ignored), then every socket is closed."""
        try:
            for proc in self._processes:
                proc.close()
        finally:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()
            self._processes.clear()
            self.observer.close()

    def _own(self, sock: socket.socket) -> socket.socket:
        self._sockets.append(sock)
        return sock

    def _socket(self, family: int | None = None) -> socket.socket:
        sock = self._own(socket.socket(family or self.family, socket.SOCK_STREAM))
        sock.setblocking(False)
        return sock

    async def listen(
        self,
        *,
        backlog: int = 16,
        rcvbuf: int | None = None,
        sndbuf: int | None = None,
        defer_accept: int | None = None,
    ) -> Listener:
        """A listener on an ephemeral port of this lab's loopback address."""
        sock = self._socket()
        _set_buffers(sock, rcvbuf, sndbuf)
        if defer_accept is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, defer_accept)
        sock.bind((self.host, 0))
        self.watch_port(sock.getsockname()[1])  # before listen(): its LISTEN is traced too
        sock.listen(backlog)
        await anyio.lowlevel.checkpoint()
        return Listener(self, sock)

    async def open_client(
        self, listener: Listener, *, rcvbuf: int | None = None, sndbuf: int | None = None
    ) -> tuple[socket.socket, trio.socket.SocketType]:
        """A client socket connected (handshake done) to ``listener``, not yet accepted."""
        sock = self._socket()
        _set_buffers(sock, rcvbuf, sndbuf)
        tsock = trio.socket.from_stdlib_socket(sock)
        if under_trio():
            await tsock.connect((listener.address.host, listener.address.port))
            return sock, tsock
        code = sock.connect_ex((listener.address.host, listener.address.port))
        if code == errno.EINPROGRESS:
            await anyio.wait_writable(sock)
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise OSError(code, f"connect to {listener.address}: {os.strerror(code)}")
        return sock, tsock

    async def start_connect(
        self, listener: Listener, *, rcvbuf: int | None = None, sndbuf: int | None = None,
        label: str = "client",
    ) -> End:
        """Send the SYN and return at once, without waiting for the handshake: the end is in
        SYN_SENT until the listener answers (``End.connected`` waits for that)."""
        sock = self._socket()
        _set_buffers(sock, rcvbuf, sndbuf)
        code = sock.connect_ex((listener.address.host, listener.address.port))
        if code not in (0, errno.EINPROGRESS):
            raise LabError(f"connect to {listener.address} failed at once: {errno_name(code)}")
        await anyio.lowlevel.checkpoint()
        return End(self, label, sock, four_tuple=FourTuple(Address.of(sock.getsockname()), listener.address))

    def track(self, client: End, server: End) -> Connection:
        """Pair two ends built by hand (``start_connect``, ``Listener.as_end``...) into a
        connection whose shared timeline goes into the scenario's results."""
        conn = Connection(client, server)
        self.connections.append(conn)
        return conn

    async def connect(
        self,
        listener: Listener | None = None,
        *,
        rcvbuf: int | None = None,
        sndbuf: int | None = None,
        server_rcvbuf: int | None = None,
        server_sndbuf: int | None = None,
    ) -> Connection:
        """Open a connection and accept it: both ends ESTABLISHED.

        Without ``listener`` a fresh one is made (its buffers from ``server_*``) and closed
        once the connection is accepted, so only the two ends remain in the tables.
        """
        own_listener = listener is None
        if listener is None:
            listener = await self.listen(rcvbuf=server_rcvbuf, sndbuf=server_sndbuf)
        client, _ = await self.open_client(listener, rcvbuf=rcvbuf, sndbuf=sndbuf)
        server = await listener.accept()
        if own_listener:
            await listener.close()
        conn = Connection(End(self, "client", client), End(self, "server", server))
        self.connections.append(conn)
        conn.server.observe_all()  # the timeline starts at ESTABLISHED
        return conn

    def adopt(self, sock: AdoptableSocket, *, label: str = "adopted") -> End:
        """An ``End`` for a connected socket that someone else opened and keeps owning.

        This is how a user's own sockets (``AdoptableSocket``: a stdlib socket, a trio
        socket or ``trio.SocketStream``, an asyncio ``StreamWriter`` or transport, an anyio
        ``SocketStream``) get the lab's observation and expectations (``reaches``, ``holds``,
        ``gone``...) without changing their life: the lab never closes an adopted socket, and
        a blocking stdlib socket keeps its blocking mode and timeout (wrapping it for trio
        would switch it to non-blocking, so the mode is restored). Use the ``End`` to
        observe; act on the socket through the caller's own code (an asyncio transport owns
        its socket: the ``End``'s actions must not read or write it).
        """
        stdlib, trio_sock = _stdlib_socket_of(sock)
        if trio_sock is None:
            timeout = stdlib.gettimeout()
            trio_sock = trio.socket.from_stdlib_socket(stdlib)
            stdlib.settimeout(timeout)
        try:
            end = End(self, label, stdlib, trio_sock)
        except OSError as exc:
            raise LabError(f"cannot adopt {label}: the socket is not connected ({exc})") from None
        self.adopted.append(end)
        self.watch_port(end.four_tuple.local.port)  # recorders: from now on, both ports
        self.watch_port(end.four_tuple.remote.port)
        return end

    def adopt_connection(self, client: AdoptableSocket, server: AdoptableSocket) -> Connection:
        """Adopt both ends of one connection (``adopt``): they share one timeline, so an
        expectation's failure shows both ends, as for the lab's own connections."""
        conn = Connection(self.adopt(client, label="client"), self.adopt(server, label="server"))
        if conn.client.four_tuple.reversed() != conn.server.four_tuple:
            raise LabError(
                f"{conn.client.four_tuple} and {conn.server.four_tuple} are not one connection"
            )
        self.connections.append(conn)
        return conn

    async def spawn(
        self, argv: Sequence[str], *, stdout: int | IO[Any] | None = subprocess.PIPE,
        stderr: int | IO[Any] | None = None, pass_fds: Sequence[int] = (),
        env: Mapping[str, str] | None = None,
    ) -> Child:
        """Start a child process that the lab kills when it exits; its stdout is a pipe
        unless ``stdout`` says otherwise (a trio stream: this action needs trio). ``pass_fds``
        are inherited (a listening socket a server takes over), ``env`` replaces the
        environment (``tcplab.servers``)."""
        if not under_trio():
            raise LabError("Lab.spawn needs trio (its child's stdout is a trio stream)")
        proc = Child(argv, stdout=stdout, stderr=stderr, pass_fds=pass_fds, env=env)
        self._processes.append(proc)
        await trio.lowlevel.checkpoint()
        return proc


#: What ``Lab.adopt`` accepts: a stdlib socket; a trio socket or stream; an asyncio
#: ``StreamWriter``, transport, or the ``TransportSocket`` of ``get_extra_info("socket")``;
#: an anyio ``SocketStream`` (either backend).
AdoptableSocket = (
    socket.socket | trio.socket.SocketType | trio.SocketStream | asyncio.StreamWriter
    | asyncio.BaseTransport | asyncio.trsock.TransportSocket | anyio.abc.SocketStream
)


def _stdlib_socket_of(sock: AdoptableSocket) -> tuple[socket.socket, trio.socket.SocketType | None]:
    """The stdlib socket behind ``sock``, and the caller's trio socket if it gave one.

    trio keeps the stdlib socket it wraps in ``_sock``, and so does asyncio's
    ``TransportSocket`` (what ``get_extra_info("socket")`` returns); neither offers a public
    accessor. Reading it (rather than dup(2)-ing the fd) matters: a duplicate fd would keep
    the socket open after the caller closes theirs, and no FIN would ever be sent.
    """
    given: object = sock
    if isinstance(sock, asyncio.StreamWriter | asyncio.BaseTransport):
        sock = sock.get_extra_info("socket")
    elif isinstance(sock, anyio.abc.SocketStream):
        sock = sock.extra(anyio.abc.SocketAttribute.raw_socket)
    elif isinstance(sock, trio.SocketStream):
        sock = sock.socket
    if isinstance(sock, socket.socket):
        return sock, None
    inner = getattr(sock, "_sock", None)
    if isinstance(sock, asyncio.trsock.TransportSocket) and isinstance(inner, socket.socket):
        return inner, None
    if isinstance(sock, trio.socket.SocketType) and isinstance(inner, socket.socket):
        return inner, sock
    raise LabError(f"cannot adopt {given!r}: pass the stdlib socket it wraps")


def errno_name(number: int) -> str:
    """``104`` -> ``ECONNRESET``."""
    return errno.errorcode.get(number, str(number))
