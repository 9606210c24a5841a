"""asyncio streams: a handler that returns without ``writer.close()`` leaves its connection
open, in CLOSE_WAIT once the client closes; ``close()`` alone only schedules the close
(claim L03).

Reported in CPython gh-114914 (an abandoned StreamWriter is held by its protocol, so it is
never collected, never warned about, never closed: the reporter's server hangs on its
client), gh-104344 (3.12's ``Server.wait_closed()`` waits for exactly such connections, so
it hangs) and gh-109538 (3.11.5's new ``StreamWriter.__del__``, the safety net that closes
an abandoned writer, fails once the loop is closed).

The server, ``asyncio.start_server`` in a child process (``_rw_servers.py``), runs under
every CPython found here (this one, python3.N on PATH, pyenv's; one per minor version), so
a release that fixed it shows as such. Per interpreter, three connections from this
process: ``leak``, the handler returns without close(); the server runs gc.collect(); the
client closes; the server's end is watched over a 1 s window (CLOSE_WAIT, held by the
server's fd: nothing will ever close it). ``block``, close() and then the loop kept from
running (a blocking call) until SIGUSR2: the server's end is watched ESTABLISHED over the
window, then the FIN is timed once the loop runs. ``tidy``, the fix: close() and
``await wait_closed()``: by the time it returns the client has the server's FIN.
"""

from __future__ import annotations

import signal

import trio

from _rw_http import Client, held, interpreters, owned, start_server
from tcplab import Lab, Scenario, Verdicts
from tcplab.expect import within
from tcplab.judges.clients import AsyncioStreams, StreamsRun

WINDOW = 1.0
scenario = Scenario(
    id="rw-asyncio-streams",
    title="asyncio streams: handler without writer.close(), close() without wait_closed()",
    claims=("L03",), tags=("realworld",), timeout=90.0)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    runs = [await streams(lab, version, python) for version, python in interpreters()]
    verdicts.judge("L03", AsyncioStreams(WINDOW, tuple(runs)))


async def streams(lab: Lab, python_version: str, python: str) -> StreamsRun:
    """The three handlers on one interpreter's asyncio server."""
    server = await start_server(lab, "asyncio", python=python)
    leak = await Client.open(lab, server.port, "leak")
    await server.expect("returned leak")
    server.child.signal(signal.SIGUSR1)
    await server.expect("collected")
    owner = owned([leak.server_record()], server.pid) == 1
    leak.close()
    await within(lambda: leak.server_state() != "ESTABLISHED", timeout=2.0)
    leak_state = leak.server_state()
    leak_held = await held(lambda: leak.server_state() == leak_state == "CLOSE_WAIT", WINDOW)

    block = await Client.open(lab, server.port, "block")
    await server.expect("blocked")
    blocked_state = block.server_state()
    blocked_held = await held(
        lambda: block.server_state() == block.client_state() == "ESTABLISHED", WINDOW)
    released = trio.current_time()
    server.child.signal(signal.SIGUSR2)
    fin = await within(lambda: (block.client_state() == "CLOSE_WAIT"
                       and trio.current_time() - released) or None, timeout=2.0)
    await server.expect("released")
    block.close()

    tidy = await Client.open(lab, server.port, "tidy")
    await server.expect("waited")
    tidy_state = tidy.client_state()
    tidy.close()
    server.child.kill()
    return StreamsRun(python_version, leak_state, owner, leak_held, blocked_state, blocked_held,
                      fin, tidy_state)


if __name__ == "__main__":
    scenario.main()
