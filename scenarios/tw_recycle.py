"""tcp_tw_recycle on this kernel (claim C29; seeds 000, 002).

Both articles recommend ``net.ipv4.tcp_tw_recycle = 1`` for fast recycling of TIME_WAIT
sockets, off (0) by default. Linux 4.12 removed the tunable and the mechanism (it broke
clients behind NAT, whose timestamps are not monotonic across hosts). The scenario reads the
sysctl in a fresh namespace and does not declare it: declaring it would make the run fail
before it starts on a kernel without it. The namespace's neighbours (``tcp_tw_reuse``,
``tcp_fin_timeout``) are read too, so "absent" means this sysctl, not the whole directory.
"""

from __future__ import annotations

import errno
import os
import platform

from tcplab import Lab, Scenario, Verdict, Verdicts
from tcplab.expect import ExpectationFailed
from tcplab.kernel import sysctl

RECYCLE = "net.ipv4.tcp_tw_recycle"
NEIGHBOURS = ("net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_max_tw_buckets")

scenario = Scenario(
    id="tw-recycle",
    title="tcp_tw_recycle: is the tunable still there?",
    claims=("C29",),
    private_netns=True,  # a fresh namespace: what this kernel offers every namespace
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    neighbours = {name: sysctl.read(name) for name in NEIGHBOURS}
    if any(v is None for v in neighbours.values()):
        raise ExpectationFailed(f"the TIME_WAIT tunables are not readable here: {neighbours}")
    value = sysctl.read(RECYCLE)
    exists = sysctl.path_of(RECYCLE).exists()
    kernel = platform.release()
    refused = None
    if value is None and not exists:
        # What `sysctl -w` would meet: opening it for writing (no O_CREAT: nothing can be
        # made; the file is absent, so nothing is written either).
        try:
            os.close(os.open(sysctl.path_of(RECYCLE), os.O_WRONLY))
        except OSError as exc:
            refused = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    if value is None and not exists:
        verdict = Verdict.OUTDATED
        summary = (f"no {RECYCLE} on Linux {kernel} (removed in 4.12): reading finds nothing, "
                   f"opening it to set it fails ({refused}); tcp_tw_reuse="
                   f"{neighbours['net.ipv4.tcp_tw_reuse']} is there")
    else:  # an old kernel: the tunable exists; its recycling is not measured here
        verdict = Verdict.PARTLY if value != "0" else Verdict.CONFIRMED
        summary = f"{RECYCLE} exists on Linux {kernel} with default {value}"
    verdicts.record("C29", verdict, summary, value=value, kernel=kernel, neighbours=neighbours,
                    write_refused=refused)


if __name__ == "__main__":
    scenario.main()
