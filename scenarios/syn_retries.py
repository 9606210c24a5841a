"""connect() to a peer that vanished: how many SYNs, when, and when it fails (claim K01).

The kernel's documentation (ip-sysctl.rst) counts tcp_syn_retries as the retransmissions
of the SYN and gives 67 s to the last one at the defaults (tcp_syn_linear_timeouts 4). Here
the peer's address maps to nowhere (``_vanish``: a veth to a far namespace, the neighbour
entry pointed at an unused MAC), tcp_syn_retries is 3 with the default linear timeouts
(about 20 s), every SYN is captured as it leaves, and connect()'s failure is timed. The
defaults are read in a fresh namespace; the 67 s is projected from the measured intervals,
not waited out. The values in force are read (``tcplab try`` runs this with an operator's;
the wait for the failure grows with them, capped by ``--max-wait``).
"""

from __future__ import annotations

from _defaults import fresh_netns_ints
from _vanish import Wire, after, failure, far_listener, syn, vanishing
from tcplab import Lab, Scenario, Verdicts
from tcplab.judges.retries import SynRetries
from tcplab.kernel import sysctl
from tcplab.scenario import capped

SETTING = {"net.ipv4.tcp_syn_retries": 3, "net.ipv4.tcp_syn_linear_timeouts": 4}
scenario = Scenario(
    id="syn-retries",
    title="SYNs to a vanished peer: tcp_syn_retries with tcp_syn_linear_timeouts",
    claims=("K01",),
    sysctls=SETTING,
    timeout=60,
    measures=tuple(SETTING),
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    retries, linear = (sysctl.read_int(name) or 0 for name in SETTING)  # SETTING, unless tried
    async with vanishing() as part:
        server = await far_listener(part)  # there, but unreachable
        part.vanish("far")
        wire = Wire(part.capture())
        client = part.socket()
        client.connect_ex(server.getsockname())
        port = client.getsockname()[1]
        first = await wire.first(port, syn, timeout=2)
        failed_at, errno = await failure(  # 45 s at 3/4; ~2^(retries+1) s beyond
            client, up_to=capped(max(45, 2 ** (retries + 1) + 4 * (linear + 1))), connecting=True)
        syns = wire.sent(port, syn)
    defaults = await fresh_netns_ints(*SETTING)
    verdicts.judge("K01", SynRetries(
        syn_retries=retries, linear_timeouts=linear,
        syn_s=after(syns, first.t), failed_s=None if failed_at is None else failed_at - first.t,
        errno=errno, default_syn_retries=defaults["net.ipv4.tcp_syn_retries"],
        default_linear_timeouts=defaults["net.ipv4.tcp_syn_linear_timeouts"]))


if __name__ == "__main__":
    scenario.main()
