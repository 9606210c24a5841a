"""A valve on loopback: a token bucket (tc tbf) that holds every packet until told otherwise.

This kernel has tbf and htb but no netem, no plug and no tc classifiers, so a partition
that is later lifted is built from tbf alone. A tbf with a rate of one byte per second
holds every packet that finds its bucket empty (queued, not dropped, up to ``limit``
bytes), so:

* ``shut``: install ``tbf rate 8bit`` on ``lo`` and empty its bucket with one UDP
  datagram of our own, leaving fewer tokens than the smallest TCP segment (66 bytes on
  IPv4 with timestamps): from then on every segment waits in the queue, in order.
* ``release_queued``: refill the bucket with exactly the bytes now queued (plus less than
  one segment), and kick the queue with one more datagram: what was queued leaves, in
  order, at once; whatever is sent afterwards waits again.
* ``open``: a fast rate and a kick: everything queued leaves; then the qdisc is removed.

A ``change`` refills the bucket (``tbf_change`` sets tokens to the new buffer) but does not
reschedule a queue that is waiting on its watchdog (net/sched/sch_tbf.c), hence the kick.
Segments pass the packet taps (the capture) when they leave the qdisc, so the capture shows
when a held segment really went on the wire.

Only in a private network namespace: the valve refuses to touch the host's loopback.
"""

from __future__ import annotations

import re
import shutil
import socket
from types import TracebackType

import trio

from tcplab.errors import Unavailable
from tcplab.kernel import netns

#: Bytes a UDP datagram adds on lo (Ethernet 14 + IPv4 20 + UDP 8) beyond its payload.
UDP_OVERHEAD = 42
#: Less than any TCP segment (66 bytes): tokens left in a shut bucket.
MARGIN = 33
#: The shut bucket's size: a queued packet larger than this would be dropped, not held.
SHUT_BURST = 1500
LIMIT = 1_000_000


class Valve:
    """A tbf on this namespace's ``lo`` that holds, releases or passes every packet."""

    def __init__(self) -> None:
        self._tc = shutil.which("tc")
        self._kick: socket.socket | None = None
        self.installed = False

    async def __aenter__(self) -> Valve:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        with trio.CancelScope(shield=True):
            await self.remove()

    async def _run(self, *args: str) -> str:
        assert self._tc is not None
        done = await trio.run_process([self._tc, *args], capture_stdout=True,
                                      capture_stderr=True, check=False)
        if done.returncode != 0:
            raise Unavailable(f"tc {' '.join(args)}: {done.stderr.decode().strip()}")
        return done.stdout.decode()

    async def _tbf(self, verb: str, rate: str, burst: int) -> None:
        await self._run("qdisc", verb, "dev", "lo", "root", "tbf", "rate", rate,
                        "burst", str(burst), "limit", str(LIMIT))

    def _send(self, size: int) -> None:
        """One datagram of ``size`` bytes on the wire, to our own UDP socket (no reply)."""
        if self._kick is None:
            self._kick = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._kick.bind(("127.0.0.1", 0))
        self._kick.sendto(b"k" * (size - UDP_OVERHEAD), self._kick.getsockname())

    async def shut(self) -> None:
        """Install the valve, shut: every packet sent from now on waits in its queue."""
        if netns.private() is None:
            raise Unavailable("the valve changes lo's qdisc: only in a private network namespace")
        if self._tc is None:
            raise Unavailable("no tc binary: the valve needs iproute2's tc")
        await self._tbf("add", "8bit", SHUT_BURST)
        self.installed = True
        self._send(SHUT_BURST - MARGIN)  # empties the bucket but for MARGIN bytes

    async def queued(self) -> tuple[int, int]:
        """(bytes, packets) waiting in the valve now."""
        shown = await self._run("-s", "qdisc", "show", "dev", "lo")
        found = re.search(r"backlog (\d+)b (\d+)p", shown)
        return (int(found[1]), int(found[2])) if found else (0, 0)

    async def release_queued(self) -> tuple[int, int]:
        """Let exactly what is queued now leave (in order); hold what comes after.
        Returns the (bytes, packets) released."""
        size, packets = await self.queued()
        kick = UDP_OVERHEAD + 8
        await self._tbf("change", "8bit", size + kick + MARGIN)
        self._send(kick)
        return size, packets

    async def open(self) -> None:
        """Let everything through, now and from now on, and remove the valve."""
        if not self.installed:
            return
        await self._tbf("change", "10gbit", SHUT_BURST * 100)
        self._send(UDP_OVERHEAD + 8)
        with trio.move_on_after(2.0):  # drained at once, unless the queue was deferred to a softirq
            while (await self.queued())[1]:
                await trio.sleep(0.002)
        await self.remove()

    async def remove(self) -> None:
        """Remove the qdisc (anything still queued is dropped) and the kick socket."""
        if self.installed:
            self.installed = False
            await self._run("qdisc", "del", "dev", "lo", "root")
        if self._kick is not None:
            self._kick.close()
            self._kick = None
