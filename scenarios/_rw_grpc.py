"""The grpc.aio program of ``rw_grpc.py`` (claim L10): an echo server with one bidirectional
method, and client sessions against it, in one process. Run as ``python _rw_grpc.py N``.

It logs ``serving <grpcio version> <port>``, then runs ``N`` sessions the way grpc #42125
does: a reader task blocked on ``call.read()`` is cancelled without being awaited and
``channel.close()`` follows at once; the tasks are kept, as an application keeps its
session objects. It logs ``raced``; on SIGUSR1 it drops them, collects garbage and logs
``dropped``; on SIGUSR2 it runs ``N`` sessions that await the cancelled reader before
``close()`` (the fix) and logs ``awaited``. Each channel has its own subchannel pool, so
each has its own connection (by default channels to one address in a process share one).
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from collections.abc import AsyncIterator

import grpc

OPTIONS = [("grpc.use_local_subchannel_pool", 1)]


async def echo(requests: AsyncIterator[bytes], context: object) -> AsyncIterator[bytes]:
    async for request in requests:
        yield request


async def session(port: int, awaited: bool) -> asyncio.Task[None]:
    """One bidi call with a reader task; the reader cancelled, then the channel closed."""
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=OPTIONS)
    call = channel.stream_stream("/lab.Echo/Bidi")()
    await call.write(b"hello")

    first = asyncio.Event()

    async def reader() -> None:
        while await call.read() is not grpc.aio.EOF:
            first.set()

    task = asyncio.create_task(reader())
    await first.wait()  # the reader has its first message (the echo) and waits for more
    task.cancel()
    if awaited:
        await asyncio.gather(task, return_exceptions=True)
    await channel.close()
    return task


async def main(sessions: int) -> None:
    handler = grpc.method_handlers_generic_handler(
        "lab.Echo", {"Bidi": grpc.stream_stream_rpc_method_handler(echo)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"serving {grpc.__version__} {port}", flush=True)
    loop, usr1, usr2 = asyncio.get_running_loop(), asyncio.Event(), asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, usr1.set)
    loop.add_signal_handler(signal.SIGUSR2, usr2.set)
    kept = [await session(port, awaited=False) for _ in range(sessions)]
    print("raced", flush=True)
    await usr1.wait()
    kept.clear()
    gc.collect()
    print("dropped", flush=True)
    await usr2.wait()
    for _ in range(sessions):
        await session(port, awaited=True)
    print("awaited", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
