"""Helpers of the HTTP scenarios (http-error-path-leak, http-pool-close-wait,
http-keepalive-timeout): the client paths that end a connection, and where each left the
server's end.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import trio

from tcplab import Connection, End, Lab, SocketRecord, TcpState
from tcplab.expect import eventually, within
from tcplab.httplab import HttpServer, four_tuple_of, socket_of
from tcplab.judges.closewait import LeakPath
from tcplab.kernel.model import FourTuple
from tcplab.kernel.procfs import fd_only_record
from tcplab.lab import AdoptableSocket


class UploadAborted(Exception):
    """The client's request body fails half-way (a file read error, a cancelled upload)."""


async def _failing_body() -> AsyncIterator[bytes]:
    yield b"a" * 1000
    raise UploadAborted("the upload failed half-way")


async def end_of_file(server: HttpServer) -> None:
    """One request, then the client closes its idle keep-alive connection."""
    async with httpx.AsyncClient() as client:
        (await client.get(server.url)).raise_for_status()


async def cut_short(server: HttpServer) -> None:
    """The client's upload fails half-way and it drops the connection (FIN mid-request)."""
    try:
        async with httpx.AsyncClient() as client:
            await client.post(server.url, content=_failing_body(), headers={"content-length": "2000"})
    except UploadAborted:
        return
    raise RuntimeError("the upload did not fail")


async def reset(server: HttpServer) -> None:
    """Half a request, then the client process dies: SO_LINGER 0, a reset mid-request (once
    the server's handler has the connection: a reset before that is another path)."""
    assert server.address is not None
    with trio.socket.socket() as sock:
        await sock.connect((server.address.host, server.address.port))
        await sock.send(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2000\r\n\r\n" + b"a" * 1000)
        port = sock.getsockname()[1]
        await eventually(lambda: any(k.remote.port == port for k in server.connections),
                         what="the server's handler to take the connection")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


PATHS: dict[str, Callable[[HttpServer], Awaitable[None]]] = {
    "end of file": end_of_file, "request cut short": cut_short, "reset": reset}


def _server_side(lab: Lab, port: int) -> dict[FourTuple, SocketRecord]:
    return {r.four_tuple: r for r in lab.observer.snapshot(port=port)
            if r.four_tuple.local.port == port and r.state is not TcpState.LISTEN}


async def drive(lab: Lab, server: HttpServer, name: str) -> LeakPath:
    """Run one client path; then what the server's handler left: the state of its end
    (CLOSED: dropped by the kernel, fd still open; None: gone) and whether the server still
    holds it. What the server's read gave is the last entry of its log."""
    assert server.address is not None
    port, eofs, errors = server.address.port, server.log.eof, server.log.errors
    registered, in_kernel = set(server.connections), set(_server_side(lab, port))
    await PATHS[name](server)
    await eventually(lambda: server.log.eof + server.log.errors > eofs + errors,
                     what=f"the server to see the {name}")
    read = "EOF" if server.log.eof > eofs else _short(server.log.errors_seen[-1])
    kept = [(k, s) for k, s in server.connections.items() if k not in registered]
    if kept:  # the handler returned without close(): the stream is still registered
        key, stream = kept[0]
        record = lab.observer.lookup(key)
        if record is None:  # not in the kernel's tables, its fd still open: a reset
            with socket.socket(fileno=os.dup(stream.socket.fileno())) as dup:
                record = fd_only_record(dup, key)
        return LeakPath(name, read, record.state.value, True)

    def settled() -> bool:  # closed by the handler: wait for its end to finish
        return not set(_server_side(lab, port)) - in_kernel

    await within(settled, timeout=1.0)
    left = [r for k, r in _server_side(lab, port).items() if k not in in_kernel]
    return LeakPath(name, read, left[0].state.value if left else None, False)



def _short(error: str) -> str:
    """``BrokenResourceError: ... [Errno 104] ...`` -> ``BrokenResourceError (ECONNRESET)``."""
    number = re.search(r"\[Errno (\d+)\]", error)
    kind = error.split(":")[0]
    return f"{kind} ({errno.errorcode.get(int(number.group(1)), '?')})" if number else kind


def pool_client(size: int, pool_wait: float) -> httpx.AsyncClient:
    """An httpx client whose pool holds ``size`` connections; a request waits at most
    ``pool_wait`` s for one (then PoolTimeout)."""
    return httpx.AsyncClient(limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
                             timeout=httpx.Timeout(5.0, pool=pool_wait))


async def pool_is_dry(client: httpx.AsyncClient, url: str) -> tuple[bool, float]:
    """One more request: True if it failed waiting for a pooled connection; and how long."""
    started = trio.current_time()
    try:
        response = await client.get(url)
    except httpx.PoolTimeout:
        return True, trio.current_time() - started
    await response.aclose()
    return False, trio.current_time() - started


async def batch(client: httpx.AsyncClient, url: str, n: int) -> tuple[list[AdoptableSocket], int]:
    """``n`` requests at once, each read and closed: the sockets they used, and failures."""
    used: list[AdoptableSocket] = []
    failed = 0

    async def fetch() -> None:
        nonlocal failed
        try:
            response = await client.get(url)
            response.raise_for_status()
            used.append(socket_of(response))
        except httpx.HTTPError:
            failed += 1

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(fetch)
    return used, failed


async def count_in(ends: list[End], state: TcpState, *, timeout: float) -> int:
    """How many of ``ends`` are in ``state`` once all are, or when ``timeout`` runs out."""
    def count() -> int:
        return sum(1 for end in ends if (r := end.observe()) is not None and r.state is state)

    await within(lambda: count() == len(ends), timeout=timeout)
    return count()


async def one_request(lab: Lab, server: HttpServer, client: httpx.AsyncClient) -> Connection:
    """One request, read and closed; both ends of its (now idle) connection, adopted."""
    response = await client.get(server.url)
    response.raise_for_status()
    client_sock = socket_of(response)
    server_stream = next(s for t, s in server.connections.items()
                         if t.reversed() == four_tuple_of(client_sock))
    return lab.adopt_connection(client_sock, server_stream)
