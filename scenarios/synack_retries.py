"""A listener whose SYN-ACKs go nowhere: how often it resends them, and when it drops the
half-open connection (claim K02).

The kernel's documentation (ip-sysctl.rst) counts tcp_synack_retries as the SYN-ACK's
retransmissions: 5 by default, 31 s to the last, the attempt over after 63 s. Here a client
in the far namespace sends one SYN and is closed at once (its close sends nothing in
SYN_SENT, and it retransmits no SYN that could draw an extra SYN-ACK), while the listener's
way back to it leads nowhere (``_vanish``). tcp_synack_retries is 2 (about 7 s); each
SYN-ACK is captured, and the request (SYN_RECV) is polled until the kernel drops it. The
default is read in a fresh namespace; 31 s and 63 s are projected from measured intervals.
The value in force is read (``tcplab try`` runs this with an operator's; the wait for the
drop grows with it, capped by ``--max-wait``).
"""

from __future__ import annotations

from _defaults import fresh_netns_ints
from _vanish import Wire, after, gone, syn, vanishing
from tcplab import Lab, Scenario, Verdicts
from tcplab.expect import ExpectationFailed
from tcplab.judges.retries import SynAckRetries
from tcplab.kernel import sysctl
from tcplab.kernel.model import Address, FourTuple
from tcplab.scenario import capped

NAME, RETRIES = "net.ipv4.tcp_synack_retries", 2
scenario = Scenario(
    id="synack-retries",
    title="SYN-ACKs to a vanished client: tcp_synack_retries, then the request is dropped",
    claims=("K02",),
    sysctls={NAME: RETRIES},
    timeout=40,
    measures=(NAME,),
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    retries = sysctl.read_int(NAME) or 0  # RETRIES, unless tcplab try overrides it
    async with vanishing() as part:
        listener = part.socket()
        listener.bind((part.near_ip, 0))
        listener.listen(8)
        part.vanish("far")
        wire = Wire(part.capture())
        client = part.socket(far=True)
        client.connect_ex(listener.getsockname())
        request = FourTuple(Address.of(listener.getsockname()), Address.of(client.getsockname()))
        port = request.local.port
        first = await wire.first(port, syn, timeout=2)  # the SYN arrived: the client can go
        client.close()
        if lab.observer.lookup(request) is None:
            raise ExpectationFailed("the listener holds no request (SYN_RECV) for the client")
        dropped_at = await gone(lambda: lab.observer.lookup(request),  # 30 s at 2
                                up_to=capped(max(30, 2 ** (retries + 1) + 4)))
        synacks = wire.sent(port, syn)
    default = (await fresh_netns_ints(NAME))[NAME]
    verdicts.judge("K02", SynAckRetries(
        synack_retries=retries, synack_s=after(synacks, first.t),
        dropped_s=None if dropped_at is None else dropped_at - first.t,
        default_synack_retries=default))


if __name__ == "__main__":
    scenario.main()
