"""grpc.aio: ``channel.close()`` while a bidirectional stream's reader is being cancelled
(claim L10; grpc #42125, PR #43121).

#42125: a reader task blocked on ``call.read()`` is cancelled without being awaited and the
channel closed at once; the channel's TCP connection stays ESTABLISHED after ``close()``
returned (the reporter: about 150 for 75 sessions, Python 3.13, grpcio 1.80.0). PR #43121
was merged as its fix, and the issue reopened as not fixed.

``_rw_grpc.py`` runs a grpc.aio echo server and the client sessions in one child process,
under this interpreter. Measured: the race's client ends still ESTABLISHED once every
``close()`` returned, over 3 s, and who holds them; whether they close once the program
drops its cancelled reader tasks (and collects garbage); and the fix, awaiting the
cancelled reader before ``close()``: its connections' ends once it returned.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from tcplab import Lab, Scenario, TcpState, Verdicts, servers
from tcplab.expect import within
from tcplab.judges.servers import ChannelRace
from tcplab.measure import count_in, owner, stays

S = TcpState
SESSIONS, WINDOW = 4, 3.0
PROGRAM = str(Path(__file__).with_name("_rw_grpc.py"))
scenario = Scenario(
    id="rw-grpc", title="grpc.aio: channel.close() racing a cancelled bidi reader",
    claims=("L10",), tags=("realworld",), requires=("python:grpcio",), timeout=60.0,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    async with servers.self_bound(lab, "grpc", [sys.executable, PROGRAM, str(SESSIONS)]) as server:
        await servers.logged(server, "^raced$")
        raced = [c.client for c in servers.watch_all(lab, server, S.ESTABLISHED, label="raced")]
        holder = owner(raced[0].observe(), server.pids()) if raced else None
        held = await stays(raced, S.ESTABLISHED, up_to=WINDOW)
        server.child.signal(signal.SIGUSR1)
        await servers.logged(server, "^dropped$")
        await within(lambda: count_in(raced, S.ESTABLISHED) == 0, timeout=2.0)
        after_drop = count_in(raced, S.ESTABLISHED)
        server.child.signal(signal.SIGUSR2)
        await servers.logged(server, "^awaited$")
        fixed = [c.client for c in servers.watch_all(lab, server, S.ESTABLISHED, label="fixed")]
        await within(lambda: count_in(fixed, S.ESTABLISHED) == 0, timeout=2.0)
        fixed_open = count_in(fixed, S.ESTABLISHED)
    verdicts.judge("L10", ChannelRace(
        SESSIONS, WINDOW, len(raced), held, holder, after_drop, fixed_open,
        f"grpcio {server.version}", f"Python {sys.version.split()[0]}"))


if __name__ == "__main__":
    scenario.main()
