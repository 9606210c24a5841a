"""tcp_tw_recycle on this kernel (claim C29; articles 000, 002).

Both articles recommend tcp_tw_recycle=1 (fast recycling of TIME_WAIT sockets, default 0).
A probe in a fresh namespace reads the tunable and its neighbours (so "absent" means this
sysctl, not the directory). Where it exists, the probe turns it on there and times one
client-side TIME_WAIT (recycled: ~3.5 RTO, not 60 s); where not, it records what opening it
for writing meets, as `sysctl -w` would.
"""

from __future__ import annotations

import errno
import os
import platform
from typing import Any

from tcplab import Lab, Scenario, Verdicts
from tcplab.expect import within
from tcplab.isolated import run_isolated
from tcplab.judges.tuning import TwRecycle
from tcplab.kernel import sysctl
from tcplab.ports import active_close

RECYCLE = "net.ipv4.tcp_tw_recycle"
NEIGHBOURS = ("net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_max_tw_buckets")
LIMIT_S = 10.0  # a recycled TIME_WAIT lasts ~3.5 RTO; an ordinary one 60 s
scenario = Scenario(
    id="tw-recycle",
    title="tcp_tw_recycle: is the tunable still there, and does it recycle?",
    claims=("C29",),
    requires=("root",),  # its probe runs in a fresh network namespace of its own
)


async def probe_recycle(lab: Lab) -> dict[str, Any]:
    """Probe (fresh namespace): presence, default; if present, a TIME_WAIT timed with it on."""
    path = sysctl.path_of(RECYCLE)
    found: dict[str, Any] = {"present": path.exists(), "default": sysctl.read(RECYCLE),
                             "neighbours": all(sysctl.read(n) is not None for n in NEIGHBOURS),
                             "write_error": None, "time_wait_s": None}
    if not path.exists():
        try:
            os.close(os.open(path, os.O_WRONLY))  # no O_CREAT: nothing is made or written
        except OSError as exc:
            found["write_error"] = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        return found
    path.write_text("1")
    conn = await lab.connect()
    await active_close(conn)
    started = lab.clock()
    if await within(lambda: conn.client.observe_all() is None, timeout=LIMIT_S):
        found["time_wait_s"] = lab.clock() - started
    return found


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    found = await run_isolated(__file__, "probe_recycle", seconds=LIMIT_S + 5)
    default = found["default"]
    verdicts.judge("C29", TwRecycle(
        platform.release(), found["present"], found["neighbours"],
        None if default is None else int(default), found["write_error"], found["time_wait_s"],
        LIMIT_S))


if __name__ == "__main__":
    scenario.main()
