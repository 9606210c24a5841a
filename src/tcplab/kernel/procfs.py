"""What /proc and psutil know that sock_diag doesn't: which process holds a socket, the
SNMP/netstat counters, and sockets that only a file descriptor still holds.

sock_diag gives each socket's inode; a process holds it if one of its ``/proc/PID/fd``
links reads ``socket:[INODE]``. TIME_WAIT and request sockets have inode 0: no owner.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Container, Iterable, Mapping
from dataclasses import replace
from functools import cache

from tcplab.kernel.model import Address, FourTuple, Owner, SocketRecord
from tcplab.states import TcpState, from_kernel

TCP_INFO = getattr(socket, "TCP_INFO", 11)
SO_BINDTOIFINDEX = getattr(socket, "SO_BINDTOIFINDEX", 62)  # include/uapi/asm-generic/socket.h


def socket_fds(
    pids: Iterable[int] | None = None, inodes: Container[int] | None = None
) -> dict[int, list[tuple[int, int]]]:
    """Map socket inode -> the ``(pid, fd)`` pairs holding it, in one scan of ``/proc/*/fd``
    (or of ``pids``' fd directories); only the inodes in ``inodes``, if given.

    The one fd scanner of tcplab (owners of records, leak checks, ``tcplab watch``). Each fd
    directory is opened once and its links read relative to it (``readlinkat``), which is
    what the scan costs at tens of thousands of fds. Processes that vanish or that we may
    not inspect are skipped: ownership is best effort for other users' processes, exact for
    our own.
    """
    found: dict[int, list[tuple[int, int]]] = {}
    candidates = list(pids) if pids is not None else [int(p) for p in os.listdir("/proc") if p.isdigit()]
    for pid in candidates:
        try:
            dir_fd = os.open(f"/proc/{pid}/fd", os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            for name in os.listdir(dir_fd):
                try:
                    target = os.readlink(name, dir_fd=dir_fd)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inode = int(target[8:-1])
                    if inodes is None or inode in inodes:
                        found.setdefault(inode, []).append((pid, int(name)))
        except OSError:
            continue
        finally:
            os.close(dir_fd)
    return found


def socket_inodes(
    pids: Iterable[int] | None = None, inodes: Container[int] | None = None
) -> dict[int, list[Owner]]:
    """``socket_fds`` with each holder as an ``Owner`` (its pid, fd and process name)."""
    names: dict[int, str] = {}
    owners: dict[int, list[Owner]] = {}
    for inode, holders in socket_fds(pids, inodes).items():
        for pid, fd in holders:
            name = names.get(pid)
            if name is None:
                name = names[pid] = _process_name(pid)
            owners.setdefault(inode, []).append(Owner(pid, fd, name))
    return owners


def _process_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def with_owners(records: Iterable[SocketRecord], pids: Iterable[int] | None = None) -> list[SocketRecord]:
    """The same records, each with the processes that hold it (inode 0: none)."""
    records = list(records)
    if not any(r.inode for r in records):
        return records
    owners = socket_inodes(pids, {r.inode for r in records if r.inode})
    return [replace(r, owners=tuple(owners.get(r.inode, ()))) if r.inode else r for r in records]


def bound_interface(sock: socket.socket) -> int:
    """The index of the device ``sock`` is bound to (SO_BINDTODEVICE), 0 if none: what an
    exact sock_diag lookup of a device-bound socket must send (``SockDiag.lookup``).

    Read with SO_BINDTOIFINDEX (Linux 5.0, ``sk_getsockopt`` in net/core/sock.c), which
    gives the index itself; a closed fd (or an older kernel) reads as 0.
    """
    try:
        return int(sock.getsockopt(socket.SOL_SOCKET, SO_BINDTOIFINDEX))
    except OSError:
        return 0


def tcp_info_state(sock: socket.socket) -> TcpState:
    """The state of a socket we hold, from getsockopt(TCP_INFO): it works even after the
    kernel dropped the socket from its tables (a reset), when no table lists it any more."""
    raw = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 8)
    return from_kernel(raw[0])


def fd_only_record(sock: socket.socket, end: FourTuple) -> SocketRecord:
    """A record for a socket we hold whose four-tuple the kernel tables no longer list."""
    return SocketRecord(
        state=tcp_info_state(sock),
        four_tuple=end,
        inode=os.fstat(sock.fileno()).st_ino,
        owners=(Owner(os.getpid(), sock.fileno(), _process_name(os.getpid())),),
        fd_only=True,
    )


def is_tcp_fd(pid: int, fd: int) -> bool:
    """Whether ``/proc/PID/fd/FD`` is a TCP (v4 or v6) socket.

    The protocol of a socket fd is in its ``system.sockprotoname`` extended attribute, so a
    TCP socket is told from a UNIX, UDP or netlink one without holding or wrapping it.
    """
    try:
        name = os.getxattr(f"/proc/{pid}/fd/{fd}", "system.sockprotoname")
    except OSError:  # closed meanwhile, not a socket, or a process we may not inspect
        return False
    return name.rstrip(b"\0") in (b"TCP", b"TCPv6")


def netstat_counters() -> dict[str, int]:
    """``/proc/net/snmp`` and ``/proc/net/netstat`` as ``{"TcpExt.ListenOverflows": n, ...}``.

    These are per network namespace, like ``nstat -az`` shows them.
    """
    counters: dict[str, int] = {}
    for path in ("/proc/net/snmp", "/proc/net/netstat"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for header, values in zip(lines[::2], lines[1::2], strict=False):
            prefix, names = header.split(":", 1)
            _, numbers = values.split(":", 1)
            for name, number in zip(names.split(), numbers.split(), strict=False):
                try:
                    counters[f"{prefix}.{name}"] = int(number)
                except ValueError:
                    continue
    return counters


def counter_delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """The counters that changed between two readings, with their increase."""
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


@cache
def _psutil_states() -> dict[str, TcpState]:
    """psutil's state names -> ours. psutil is imported here, on first use, not with this
    module: ``tcplab watch`` needs the fd scan above but not psutil's few milliseconds."""
    import psutil

    return {
        psutil.CONN_ESTABLISHED: TcpState.ESTABLISHED,
        psutil.CONN_SYN_SENT: TcpState.SYN_SENT,
        psutil.CONN_SYN_RECV: TcpState.SYN_RECV,
        psutil.CONN_FIN_WAIT1: TcpState.FIN_WAIT1,
        psutil.CONN_FIN_WAIT2: TcpState.FIN_WAIT2,
        psutil.CONN_TIME_WAIT: TcpState.TIME_WAIT,
        psutil.CONN_CLOSE: TcpState.CLOSED,
        psutil.CONN_CLOSE_WAIT: TcpState.CLOSE_WAIT,
        psutil.CONN_LAST_ACK: TcpState.LAST_ACK,
        psutil.CONN_LISTEN: TcpState.LISTEN,
        psutil.CONN_CLOSING: TcpState.CLOSING,
    }


def psutil_records() -> list[SocketRecord]:
    """Every TCP socket as psutil sees it (/proc/net/tcp{,6} plus every /proc/*/fd).

    psutil gives no timers, queues or inode, but it is an independent reading of the same
    tables, and it names owners itself: tcplab's second backend and cross-check.
    """
    import psutil

    states = _psutil_states()
    records = []
    for conn in psutil.net_connections(kind="tcp"):
        if not conn.laddr:
            continue
        remote = (Address(conn.raddr.ip, conn.raddr.port) if conn.raddr
                  else Address.wildcard(conn.family))
        owners = (Owner(conn.pid, conn.fd),) if conn.pid is not None and conn.fd >= 0 else ()
        records.append(
            SocketRecord(
                state=states.get(conn.status, TcpState.CLOSED),
                four_tuple=FourTuple(Address(conn.laddr.ip, conn.laddr.port), remote),
                owners=owners,
            )
        )
    return records


