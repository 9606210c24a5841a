"""A private network namespace for the current process, with its own sysctls.

The namespace is anonymous: it belongs to this process alone and the kernel destroys it
when the process exits, however it exits (even SIGKILL). Nothing to name, nothing to leak,
nothing to clean up — which is why tcplab runs each namespaced scenario in its own process.
The host's sysctls are never touched: after ``unshare(CLONE_NEWNET)``, ``/proc/sys/net``
opened by this process refers to the new namespace.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
from collections.abc import Mapping

from tcplab.errors import Unavailable
from tcplab.kernel import sysctl

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


#: The namespace ``enter_private_netns`` moved this process into, if it did.
_entered: str | None = None


def private() -> str | None:
    """The id of the private namespace this process runs in, or None (the host's)."""
    return _entered


def _namespace_id() -> str:
    return os.readlink("/proc/self/ns/net")


def enter_private_netns(sysctls: Mapping[str, str | int] | None = None) -> str:
    """Move this (single-threaded) process into a new network namespace, bring its loopback
    up and set ``sysctls`` there. Returns the namespace's id (``net:[...]``).

    Call it before any thread is started: a namespace is per thread, and threads started
    later inherit it.
    """
    not_net = [name for name in sysctls or {} if not name.startswith("net.")]
    if not_net:  # checked before the process moves: a wrong declaration changes nothing
        raise ValueError(f"{', '.join(not_net)}: not per-namespace net.* sysctls; "
                         "tcplab won't write them")
    if os.geteuid() != 0:
        raise Unavailable("a private network namespace needs root (CAP_SYS_ADMIN): run as root")
    host = _namespace_id()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise Unavailable(f"unshare(CLONE_NEWNET) failed: {os.strerror(err)}")
    private = _namespace_id()
    if private == host:  # pragma: no cover - the kernel would have to lie
        raise Unavailable("unshare(CLONE_NEWNET) left us in the host's namespace")
    global _entered
    _entered = private
    _loopback_up()
    for name, value in (sysctls or {}).items():
        try:
            sysctl.path_of(name).write_text(f"{value}\n")
        except FileNotFoundError:
            raise Unavailable(f"this kernel has no sysctl {name}") from None
    return private


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))
