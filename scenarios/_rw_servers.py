"""Servers the ``realworld`` HTTP scenarios run in a child process (``_rw_http.spawn_server``).

Run by path with any Python 3 (``python _rw_servers.py KIND ARGS...``): the module imports
nothing but the standard library at the top, so an older or newer interpreter than tcplab's
(pyenv's 3.12, 3.13) can run the asyncio server, and an older aiohttp can be put first on
``PYTHONPATH``. Each server listens on an ephemeral loopback port, prints that port on a
line of its own, and runs until it is killed (the lab kills its children however a run
ends). A child of its own gives the server a pid of its own, so the owner of each end of a
connection is a different process, as in production.

Kinds:

``http KEEPALIVE_S BODY_BYTES``
    The standard library's ``ThreadingHTTPServer`` speaking HTTP/1.1 keep-alive; an idle
    connection is closed by the server after ``KEEPALIVE_S`` (the handler's socket
    timeout: ``BaseHTTPRequestHandler.handle_one_request`` gives up on the read and the
    server closes), as a production server's keep-alive timeout does.
``asyncio``
    ``asyncio.start_server`` whose handler reads one line and acts on it: ``leak`` returns
    without ``writer.close()``; ``block`` calls ``close()`` and then blocks the event loop
    until SIGUSR2 (so the loop does not run again meanwhile); ``tidy`` calls ``close()``
    and awaits ``wait_closed()``. SIGUSR1 runs ``gc.collect()``. It prints what it did.
``aiohttp KEEPALIVE_S WS_TIMEOUT_S``
    An ``aiohttp.web`` server: ``/`` answers a short body (connections kept alive for
    ``KEEPALIVE_S``), ``/ws`` is a websocket echo handler that returns when the client
    closes (``WebSocketResponse(timeout=WS_TIMEOUT_S)``: the close handshake's timeout).
    It prints the aiohttp version it runs after the port.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _say(*words: object) -> None:
    print(*words, flush=True)


def serve_http(keepalive: float, body: int) -> None:
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

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    _say(server.server_address[1])
    server.serve_forever()


async def _asyncio_server() -> None:
    loop = asyncio.get_running_loop()

    def collect() -> None:
        gc.collect()
        _say("collected")

    loop.add_signal_handler(signal.SIGUSR1, collect)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        what = (await reader.readline()).decode().strip()
        if what == "leak":  # the bug: return without writer.close()
            _say("returned", what)
            return
        writer.close()
        if what == "block":  # close() only schedules the close: keep the loop from running
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
            _say("blocked")
            signal.sigwait({signal.SIGUSR2})
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR2})
            _say("released")
        elif what == "tidy":
            await writer.wait_closed()
            _say("waited")

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    _say(server.sockets[0].getsockname()[1], sys.version.split()[0])
    await asyncio.Event().wait()


async def _aiohttp_server(keepalive: float, ws_timeout: float) -> None:
    import aiohttp
    from aiohttp import web

    async def index(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(timeout=ws_timeout)
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str(message.data)
        return ws

    app = web.Application()
    app.add_routes([web.get("/", index), web.get("/ws", echo)])
    runner = web.AppRunner(app, keepalive_timeout=keepalive)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server: Any = site._server
    _say(server.sockets[0].getsockname()[1], aiohttp.__version__)
    await asyncio.Event().wait()


def main(argv: list[str]) -> None:
    kind, *args = argv
    if kind == "http":
        serve_http(float(args[0]), int(args[1]))
    elif kind == "asyncio":
        asyncio.run(_asyncio_server())
    elif kind == "aiohttp":
        asyncio.run(_aiohttp_server(float(args[0]), float(args[1])))
    else:
        raise SystemExit(f"unknown server kind {kind!r}")


if __name__ == "__main__":
    threading.current_thread().name = "rw-server"
    main(sys.argv[1:])
