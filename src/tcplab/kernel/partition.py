"""A peer that really vanishes: two network namespaces joined by a veth pair, then cut.

A scenario measuring what the kernel does when the other end of a connection stops
answering (SYN, SYN-ACK, data and FIN retransmissions, and the moment it gives up) needs a
peer whose packets go nowhere, not one whose socket filters them: a filtered socket still
gets the segments into its host, and on loopback both ends share one host. Here the
scenario's own private namespace (*near*) and a second namespace (*far*) are joined by a
veth pair on TEST-NET-2 addresses (RFC 5737, 198.51.100.0/24). ``vanish`` then points the
neighbour entry of the other side at an unused MAC address (``nud permanent``, so ARP never
repairs it): every frame still leaves the interface, where a capture sees it, and the far
veth drops it as addressed to another host. A one-way partition, and it needs no netem
(this kernel has none).

The far namespace belongs to this process alone: a thread unshares it and keeps only a file
descriptor to it (``/proc/thread-self/ns/net``), so it has no name and no process of its
own. Sockets, captures and sock_diag handles are made in it by ``in_far`` (a short-lived
thread that ``setns``-es there first: a socket stays in the namespace it was created in,
whichever thread uses it later). The kernel destroys both namespaces, and the veth pair
with them, when this process exits, however it exits; ``close`` removes them earlier.

Only inside a private namespace: ``open`` refuses to add interfaces to the host's.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tcplab.errors import Unavailable
from tcplab.kernel import netns, sysctl
from tcplab.kernel.observer import DiagObserver
from tcplab.kernel.packets import SegmentCapture

T = TypeVar("T")

#: An unused, locally administered unicast MAC: frames sent to it reach no one.
NOWHERE = "02:00:00:00:00:01"


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _in_thread(fn: Callable[[], T]) -> T:
    """``fn()`` in a new thread that ends with it (its namespace changes die with it), so no
    thread of a pool (trio's workers) is ever left in another namespace."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # handed back to the caller
            error.append(exc)

    thread = threading.Thread(target=run, name="tcplab-partition")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def _new_namespace_fd() -> int:
    """A new, empty network namespace, held by the returned fd only."""
    def unshare() -> int:
        if _libc().unshare(netns.CLONE_NEWNET) != 0:
            raise Unavailable(f"unshare(CLONE_NEWNET): {os.strerror(ctypes.get_errno())}")
        return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    return _in_thread(unshare)


@dataclass
class Partition:
    """The near side (this process's namespace) and a far namespace, joined by veth."""

    near_ip: str = "198.51.100.1"
    far_ip: str = "198.51.100.2"
    near_if: str = "tlnear"
    far_if: str = "tlfar"
    far_fd: int = -1
    #: what ``vanish`` has cut: "far" (near -> far lost), "near" (far -> near lost)
    cut: list[str] = field(default_factory=list)
    #: sockets and captures made through ``socket``/``capture``, closed by ``close``
    owned: list[socket.socket | SegmentCapture | DiagObserver] = field(default_factory=list)

    # -- life -----------------------------------------------------------------------

    def open(self) -> Partition:
        if netns.private() is None:
            raise Unavailable("a partition is built only inside a private network namespace")
        self.far_fd = _new_namespace_fd()
        try:
            far = self._far_path()
            self._ip("link", "add", self.near_if, "type", "veth", "peer", "name", self.far_if,
                     "netns", far)
            self._ip("addr", "add", f"{self.near_ip}/24", "dev", self.near_if)
            self._ip("link", "set", self.near_if, "up")
            self._ip("link", "set", "lo", "up", far=True)
            self._ip("addr", "add", f"{self.far_ip}/24", "dev", self.far_if, far=True)
            self._ip("link", "set", self.far_if, "up", far=True)
            self._wait_running()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Remove the veth pair and let the far namespace go; safe to call twice."""
        for thing in reversed(self.owned):
            thing.close()
        self.owned.clear()
        if self.far_fd < 0:
            return
        with contextlib.suppress(subprocess.CalledProcessError):
            self._ip("link", "del", self.near_if)  # both ends go together
        os.close(self.far_fd)
        self.far_fd = -1

    def __enter__(self) -> Partition:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the cut --------------------------------------------------------------------

    def vanish(self, side: str = "far") -> None:
        """``side`` vanishes for the other: its address now maps to ``NOWHERE`` on the other
        side's interface, so whatever the other side sends it is lost on the wire."""
        if side == "far":
            self._ip("neigh", "replace", self.far_ip, "dev", self.near_if, "lladdr", NOWHERE,
                     "nud", "permanent")
        elif side == "near":
            self._ip("neigh", "replace", self.near_ip, "dev", self.far_if, "lladdr", NOWHERE,
                     "nud", "permanent", far=True)
        else:
            raise ValueError(f"side is 'near' or 'far', not {side!r}")
        self.cut.append(side)

    # -- the far side ---------------------------------------------------------------

    def in_far(self, fn: Callable[[], T]) -> T:
        """``fn()`` run in the far namespace: the sockets it makes live there."""
        def run() -> T:
            if _libc().setns(self.far_fd, netns.CLONE_NEWNET) != 0:
                raise Unavailable(f"setns: {os.strerror(ctypes.get_errno())}")
            return fn()

        return _in_thread(run)

    def socket(self, *, far: bool = False) -> socket.socket:
        """A non-blocking TCP socket of the near (or far) namespace, closed by ``close``."""
        def make() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            return sock

        sock = self.in_far(make) if far else make()
        self.owned.append(sock)
        return sock

    def capture(self, *, far: bool = False) -> SegmentCapture:
        """Every TCP segment the near (far) side sends on its veth, open; closed by ``close``."""
        cap = SegmentCapture(self.far_if if far else self.near_if, every_port=True)
        if far:
            self.in_far(cap.open)
        else:
            cap.open()
        self.owned.append(cap)
        return cap

    def diag(self, *, far: bool = False) -> DiagObserver:
        """A sock_diag handle that sees the near (far) namespace's sockets."""
        handle = self.in_far(DiagObserver) if far else DiagObserver()
        self.owned.append(handle)
        return handle

    def sysctl(self, name: str, *, far: bool = False) -> int | None:
        """An integer sysctl as the near (far) namespace has it."""
        return self.in_far(lambda: sysctl.read_int(name)) if far else sysctl.read_int(name)

    def far_namespace(self) -> str:
        """The far namespace's id (``net:[...]``), as ``/proc/*/ns/net`` links name it."""
        return os.readlink(self._far_path())

    def _far_path(self) -> str:
        return f"/proc/{os.getpid()}/fd/{self.far_fd}"

    def _wait_running(self, timeout: float = 10.0) -> None:
        """Until both ends carry traffic. A link set up has no carrier and a ``noop`` qdisc,
        which drops everything, until the kernel's linkwatch work activates it (up to a
        second later, more on a busy machine): a SYN sent before that is lost, and a
        connection whose SYN was retransmitted starts with a 3 s RTO instead of 200 ms."""
        deadline = time.monotonic() + timeout
        while True:
            shown = [self._ip("link", "show", "dev", name, far=far)
                     for name, far in ((self.near_if, False), (self.far_if, True))]
            if all("state UP" in text and "qdisc noop" not in text for text in shown):
                return
            if time.monotonic() > deadline:
                raise Unavailable(f"the veth pair did not come up in {timeout} s: {shown}")
            time.sleep(0.01)

    def _ip(self, *args: str, far: bool = False) -> str:
        argv = ["ip", *args]
        if far:
            argv = ["nsenter", f"--net={self._far_path()}", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, argv, done.stdout, done.stderr)
        return done.stdout
