"""Small servers the ``realworld`` scenarios run in a child process (``tcplab.servers.script``).

Run by path with any Python 3.11+ (``python _script_servers.py KIND FD ARGS...``): the
module imports nothing but the standard library at the top, so an older or newer
interpreter than tcplab's (pyenv's 3.12, 3.13) can run the asyncio server, and an older
aiohttp can be put first on ``PYTHONPATH``. Like uvicorn and gunicorn under
``tcplab.servers``, each takes over the listening socket ``FD`` (bound by tcplab to an
ephemeral loopback port), prints ``serving VERSION`` once it serves (the Python's version,
or aiohttp's for that kind), and runs until stopped. What it prints goes to the server's
log, where ``tcplab.servers.logged`` reads it. A child of its own gives the server a pid of
its own, so the owner of each end of a connection is a different process, as in production.

Kinds:

``http KEEPALIVE_S BODY_BYTES``
    The standard library's ``ThreadingHTTPServer`` speaking HTTP/1.1 keep-alive; an idle
    connection is closed by the server after ``KEEPALIVE_S`` (the handler's socket
    timeout: ``BaseHTTPRequestHandler.handle_one_request`` gives up on the read and the
    server closes), as a production server's keep-alive timeout does.
``asyncio [WAIT_S]``
    ``asyncio.start_server`` whose handler reads one line and acts on it: ``leak`` returns
    without ``writer.close()``; ``block`` calls ``close()`` and then blocks the event loop
    until SIGUSR2 (so the loop does not run again meanwhile); ``tidy`` calls ``close()``
    and awaits ``wait_closed()``. SIGUSR1 runs ``gc.collect()``; SIGHUP closes the server
    and waits up to ``WAIT_S`` (1 s) for ``Server.wait_closed()``. It prints what it did.
``aiohttp KEEPALIVE_S WS_TIMEOUT_S [HOLD_S [CERT KEY]]``
    An ``aiohttp.web`` server: ``/`` answers a short body (connections kept alive for
    ``KEEPALIVE_S``), ``/ws`` is a websocket echo handler (``WebSocketResponse(timeout=
    WS_TIMEOUT_S)``: the close handshake's timeout) that keeps running ``HOLD_S`` seconds
    after the client's close, like a handler that cleans up (aiohttp #8184); with ``CERT``
    and ``KEY`` (PEM files) it serves TLS.
``aiohttp-client URL``
    Not a server (the listening socket goes unused): an ``aiohttp.ClientSession`` that GETs
    ``URL`` (TLS not verified), prints ``got``, and on SIGUSR1 awaits ``session.close()``,
    prints ``closed`` and at once blocks its event loop until SIGUSR2 (a loop that stops or
    blocks right after the close: aiohttp #1115, #3736), then prints ``released``. It
    prints ``ready VERSION`` (aiohttp's) where a server prints ``serving VERSION``.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PYTHON = sys.version.split()[0]


def _say(*words: object) -> None:
    print(*words, flush=True)


def serve_http(sock: socket.socket, keepalive: float, body: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = keepalive  # the socket timeout of each connection: the keep-alive timeout

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-length", str(body))
            self.end_headers()
            self.wfile.write(b"x" * body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(sock.getsockname(), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock  # already bound and listening
    server.daemon_threads = True
    _say("serving", PYTHON)
    server.serve_forever()


def _blocked_until_sigusr2() -> None:
    """Keep the event loop from running (this thread waits) until SIGUSR2 arrives."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    _say("blocked")
    signal.sigwait({signal.SIGUSR2})
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR2})
    _say("released")


async def _asyncio_server(sock: socket.socket, wait: float) -> None:
    loop = asyncio.get_running_loop()

    def collect() -> None:
        gc.collect()
        _say("collected")

    async def close_and_wait() -> None:  # gh-104344: does wait_closed() return?
        server.close()
        try:
            await asyncio.wait_for(server.wait_closed(), wait)
            _say("wait_closed returned")
        except TimeoutError:
            _say("wait_closed waiting")

    tasks: set[asyncio.Task[None]] = set()
    loop.add_signal_handler(signal.SIGUSR1, collect)
    loop.add_signal_handler(signal.SIGHUP, lambda: tasks.add(loop.create_task(close_and_wait())))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        what = (await reader.readline()).decode().strip()
        if what == "leak":  # the bug: return without writer.close()
            _say("returned", what)
            return
        writer.close()
        if what == "block":  # close() only schedules the close: keep the loop from running
            _blocked_until_sigusr2()
        elif what == "tidy":
            await writer.wait_closed()
            _say("waited")

    server = await asyncio.start_server(handle, sock=sock)
    _say("serving", PYTHON)
    await asyncio.Event().wait()


async def _aiohttp_server(sock: socket.socket, keepalive: float, ws_timeout: float,
                          hold: float = 0.0, cert: str = "", key: str = "") -> None:
    import ssl

    import aiohttp
    from aiohttp import web

    async def index(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(timeout=ws_timeout)
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str(message.data)
        await asyncio.sleep(hold)  # the handler goes on after the client's close
        return ws

    app = web.Application()
    app.add_routes([web.get("/", index), web.get("/ws", echo)])
    runner = web.AppRunner(app, keepalive_timeout=keepalive)
    await runner.setup()
    context = None
    if cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
    await web.SockSite(runner, sock, ssl_context=context).start()
    _say("serving", aiohttp.__version__)
    await asyncio.Event().wait()


async def _aiohttp_client(url: str) -> None:
    import aiohttp

    _say("ready", aiohttp.__version__)
    go = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, go.set)
    session = aiohttp.ClientSession()
    async with session.get(url, ssl=False) as response:
        await response.read()
    _say("got")
    await go.wait()
    await session.close()
    _say("closed")
    _blocked_until_sigusr2()  # no await in between: the loop does not run again first
    await asyncio.Event().wait()


def main(argv: list[str]) -> None:
    kind, fd, *args = argv
    sock = socket.socket(fileno=int(fd))
    if kind == "http":
        serve_http(sock, float(args[0]), int(args[1]))
    elif kind == "asyncio":
        asyncio.run(_asyncio_server(sock, float((args or ["1"])[0])))
    elif kind == "aiohttp":
        hold, cert, key = float((args[2:3] or ["0"])[0]), *(args[3:5] or ["", ""])
        asyncio.run(_aiohttp_server(sock, float(args[0]), float(args[1]), hold, cert, key))
    elif kind == "aiohttp-client":
        sock.close()
        asyncio.run(_aiohttp_client(args[0]))
    else:
        raise SystemExit(f"unknown server kind {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
