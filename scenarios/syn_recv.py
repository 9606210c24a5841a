"""How long SYN_RECV lasts, and what keeps it (C07; seeds 002, 003).

Both articles call SYN_RECV a fleeting server state, seen only when a client never sends
the handshake's final ACK. Four handshakes measure it (``_synrecv``): an ordinary one (the
trace times SYN_RECV), one whose final ACK is lost before the listener (a filter), and two
in which the client did send its ACK: one meets a full accept queue, one a listener with
TCP_DEFER_ACCEPT. Each holds SYN_RECV for up to a second, measured rather than asserted.
"""

from __future__ import annotations

import _synrecv
from tcplab import Lab, Scenario, Verdicts
from tcplab.judges.closing import SynRecvLinger

scenario = Scenario(
    id="syn-recv",
    title="SYN_RECV: microseconds in a handshake; held by a lost ACK, a full accept queue, "
          "TCP_DEFER_ACCEPT",
    claims=("C07",),
    requires=("capture",),  # the full-queue case counts the client's ACKs on the wire
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    ordinary_us, ordinary_seen = await _synrecv.ordinary(lab)
    held = await _synrecv.three_held(lab)
    verdicts.judge("C07", SynRecvLinger(
        ordinary_us=ordinary_us, ordinary_seen=ordinary_seen, withheld_s=held.withheld,
        full_queue_s=held.full_queue, full_queue_acks=held.full_queue_acks,
        deferred_s=held.deferred))


if __name__ == "__main__":
    scenario.main()
