"""asyncio streams: a handler that returns without ``writer.close()`` leaves its connection
open, in CLOSE_WAIT once the client closes; ``close()`` alone only schedules the close
(claim L03).

Reported in CPython gh-114914 (the protocol holds an abandoned StreamWriter: never collected
nor closed, the reporter's server hangs on its client), gh-104344 (3.12's
``Server.wait_closed()`` waits for such connections, and hangs) and gh-109538 (3.11.5's
``StreamWriter.__del__``, the safety net, fails once the loop is closed). The ``asyncio``
script server runs under every CPython found (``servers.interpreters``). Per interpreter:
``leak`` (no close(), then gc.collect(), then the client closes: the server's end over 1 s);
``block`` (close(), the loop blocked until SIGUSR2: ESTABLISHED over 1 s, then the FIN
timed once the loop runs); ``tidy``, the fix (``await wait_closed()``: the FIN has left)."""

from __future__ import annotations

import signal

from tcplab import Lab, Scenario, TcpState, Verdicts, servers
from tcplab.judges.clients import AsyncioStreams, StreamsRun
from tcplab.lab import Connection
from tcplab.measure import leaves, owner, state_of, stays, takes

WINDOW = 1.0
scenario = Scenario(
    id="rw-asyncio-streams",
    title="asyncio streams: handler without writer.close(), close() without wait_closed()",
    claims=("L03",), tags=("realworld",), timeout=90.0)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    runs = [await streams(lab, python) for _, python in servers.interpreters()]
    verdicts.judge("L03", AsyncioStreams(WINDOW, tuple(runs)))


async def streams(lab: Lab, python: str) -> StreamsRun:
    """The three handlers on one interpreter's asyncio server."""
    async with servers.script(lab, "asyncio", python=python) as server:

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
    return StreamsRun(server.version, leak_state, leak_owned, leak_held, blocked_state,
                      blocked_held, fin, tidy_state)


if __name__ == "__main__":
    scenario.main()
