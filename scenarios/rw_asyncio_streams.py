"""asyncio streams: a handler returning without ``writer.close()`` (claim L03); ``close()``
only schedules the close, ``wait_closed()`` waits for it (claim L13).

L03: CPython gh-114914 (the protocol holds an abandoned StreamWriter), gh-104344
(``Server.wait_closed()`` then hangs); gh-109538 (3.11.5's ``__del__`` failing once the loop
is closed) is a note. L13: python/asyncio #466, aiohttp #1115. The ``asyncio`` script server
runs under the pinned current line (``CURRENT_PYTHON``) and each older one from 3.11 found
(``servers.interpreters``); without the current line and an older one the run is skipped.
Per interpreter: ``leak`` (no close(), gc.collect(), the client closes), ``block`` (close(),
the loop blocked until SIGUSR2), ``tidy`` (the fix: ``await wait_closed()``), each watched
over 1 s; last ``server.close()`` and ``wait_closed()`` given 1 s (SIGHUP)."""

from __future__ import annotations

import signal

from tcplab import Lab, Scenario, TcpState, Verdicts, servers
from tcplab.judges.clients import AbandonedWriter, AbandonedWriters, DeferredClose, DeferredCloses
from tcplab.lab import Connection
from tcplab.measure import leaves, owner, state_of, stays, takes

CURRENT_PYTHON, WINDOW = (3, 13), 1.0
scenario = Scenario(
    id="rw-asyncio-streams", title="asyncio streams: handler without writer.close(); close()",
    claims=("L03", "L13"), tags=("realworld",), timeout=90.0,
    requires=("interpreter:{}.{}".format(*CURRENT_PYTHON), "interpreter:3.11|3.12"))


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    runs = [await streams(lab, python) for version, python in servers.interpreters()
            if tuple(map(int, version.split(".")[:2])) <= CURRENT_PYTHON]
    # oldest first: the current line last
    verdicts.judge("L03", AbandonedWriters(WINDOW, tuple(leak for leak, _ in runs)))
    verdicts.judge("L13", DeferredCloses(WINDOW, tuple(close for _, close in runs)))


async def streams(lab: Lab, python: str) -> tuple[AbandonedWriter, DeferredClose]:
    """The three handlers, then the server's close, on one interpreter's asyncio server."""
    async with servers.script(lab, "asyncio", WINDOW, python=python) as server:

        async def ask(what: str, answer: str) -> Connection:  # one line; what the server did
            conn = await servers.dial(lab, server, what)
            await conn.client.send(f"{what}\n".encode())
            await servers.logged(server, f"^{answer}$")
            return conn

        leak = await ask("leak", "returned leak")
        server.child.signal(signal.SIGUSR1)
        await servers.logged(server, "^collected$")
        leak_owned = owner(leak.server.observe(), server.pids()) is not None
        await leak.client.close()
        leak_state = state_of(await leaves(leak.server, TcpState.ESTABLISHED, timeout=2.0))
        leak_held = await stays(leak.server, TcpState.CLOSE_WAIT, up_to=WINDOW)

        block = await ask("block", "blocked")
        blocked_state = state_of(block.server.observe())
        blocked_held = await stays(block.ends, TcpState.ESTABLISHED, up_to=WINDOW)
        server.child.signal(signal.SIGUSR2)
        fin = await takes(lambda: state_of(block.client.observe()) == "CLOSE_WAIT", up_to=2.0)
        await servers.logged(server, "^released$")

        tidy = await ask("tidy", "waited")
        tidy_state = state_of(tidy.client.observe())
        server.child.signal(signal.SIGHUP)
        waited = await servers.logged(server, "^wait_closed (returned|waiting)$", timeout=WINDOW + 5)
    return (AbandonedWriter(server.version, leak_state, leak_owned, leak_held,
                            waited.group(1) == "returned"),
            DeferredClose(server.version, blocked_state, blocked_held, fin, tidy_state))


if __name__ == "__main__":
    scenario.main()
