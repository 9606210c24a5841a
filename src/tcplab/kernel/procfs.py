"""What /proc and psutil know that sock_diag doesn't: which process holds a socket, the
SNMP/netstat counters, and sockets that only a file descriptor still holds.

sock_diag gives each socket's inode; a process holds it if one of its ``/proc/PID/fd``
links reads ``socket:[INODE]``. TIME_WAIT and request sockets have inode 0: no owner.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, replace
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

    The one fd scanner of tcplab (owners of records, leak checks, ``tcplab watch``, which
    scans through an ``FdMemory`` to skip processes that provably did not change). Each fd
    directory is opened once and its links read relative to it (``readlinkat``), which is
    what the scan costs at tens of thousands of fds (about 3 us a link). Processes that
    vanish or that we may not inspect are skipped: ownership is best effort for other
    users' processes, exact for our own.
    """
    found: dict[int, list[tuple[int, int]]] = {}
    for pid in _pids(pids):
        held = _scan(pid)
        if held:
            _collect(found, pid, held, inodes)
    return found


def _pids(pids: Iterable[int] | None) -> list[int]:
    return list(pids) if pids is not None else [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _collect(found: dict[int, list[tuple[int, int]]], pid: int, held: list[tuple[int, int]],
             inodes: Container[int] | None) -> None:
    for inode, fd in held:
        if inodes is None or inode in inodes:
            found.setdefault(inode, []).append((pid, fd))


def _scan(pid: int) -> list[tuple[int, int]] | None:
    """The ``(inode, fd)`` of every socket fd of ``pid``; None if its fds cannot be read."""
    try:
        dir_fd = os.open(f"/proc/{pid}/fd", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    held: list[tuple[int, int]] = []
    readlink = os.readlink
    try:
        for name in os.listdir(dir_fd):
            try:
                target = readlink(name, dir_fd=dir_fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                held.append((int(target[8:-1]), int(name)))
    except OSError:
        return None
    finally:
        os.close(dir_fd)
    return held


def _cpu_clock(pid: int) -> int:
    """The clock id of a process's CPU time (``MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)``,
    include/linux/posix-timers.h), what ``clock_getcpuclockid(3)`` returns: readable for any
    process we can see, no privilege needed (``lookup_task`` in kernel/time/posix-cpu-timers.c)."""
    return ((~pid) << 3) | 2


@cache
def tick_seconds() -> float | None:
    """The longest time a running thread's CPU time may go unaccounted (one scheduler tick,
    ``CONFIG_HZ`` from /proc/config.gz, 100 Hz if unknown: the lowest the kernel offers);
    None when some CPU runs without a periodic tick (``nohz_full``), where a lone busy
    thread is accounted only about once a second and ``FdMemory`` proves nothing."""
    try:
        with open("/sys/devices/system/cpu/nohz_full") as f:
            if f.read().strip() not in ("", "(null)"):
                return None
    except OSError:
        pass
    hz = 100
    try:
        import zlib

        with open("/proc/config.gz", "rb") as f:  # one read and one inflate: well under 1 ms
            config = zlib.decompress(f.read(), wbits=31)
        start = config.index(b"\nCONFIG_HZ=") + len(b"\nCONFIG_HZ=")
        hz = int(config[start:config.index(b"\n", start)])
    except (OSError, ValueError, zlib.error):
        pass
    return 1.0 / hz


@dataclass
class _Known:
    pidfd: int
    cpu_ns: int
    held: list[tuple[int, int]]
    #: inode -> pid for each socket it holds: merged into ``Holders`` in C (``dict.update``).
    by_inode: dict[int, int]


@dataclass
class Holders:
    """Which process holds each socket inode: ``owner`` names one holder of every inode,
    ``shared`` lists every holder (each once) of the inodes that several processes hold
    (after a fork, a listener is in the parent and each child)."""

    owner: dict[int, int]
    shared: dict[int, list[int]]

    def of(self, inode: int) -> list[int]:
        """The pids holding ``inode`` (none: no visible process holds it)."""
        many = self.shared.get(inode)
        if many is not None:
            return many
        pid = self.owner.get(inode)
        return [] if pid is None else [pid]


class FdMemory:
    """``socket_fds`` that remembers each process's socket fds and scans again only the
    processes that may have changed them: ``tcplab watch`` refreshes, where most processes
    holding tens of thousands of sockets sleep between two refreshes.

    The proof that a process's fd table did not change: its CPU time (all its threads',
    in ns, through its process CPU clock) is the same as when its fds were read. Only the
    process's own threads change its fd table (open, accept, close, dup, exec; a passed fd
    is installed by the receiving thread, io_uring workers are threads of the process), and
    any run of a thread adds to its CPU time. The kernel adds a running thread's time at each
    switch and each scheduler tick (``update_curr``), so the reading must be taken at least
    one tick after the reading it is checked against (the sock_diag census, ``since``): then
    a thread that ran before it has been accounted. The process is held by a pidfd, so a
    reused pid is a new process, never the remembered one.

    What this does not prove: a process that shares its fd table with another process
    without being its thread (``clone(CLONE_FILES)`` without ``CLONE_THREAD``, which no
    common runtime does) may see it changed by the other; and on a CPU without a periodic
    tick (``nohz_full``) nothing is reused (``tick_seconds``).
    """

    #: Processes remembered at most (one pidfd each): beyond it the others are scanned.
    LIMIT = 512

    def __init__(self) -> None:
        self._known: dict[int, _Known] = {}
        #: Processes whose fds the last reading scanned, and those it took from memory.
        self.scanned = 0
        self.reused = 0

    def close(self) -> None:
        for known in self._known.values():
            os.close(known.pidfd)
        self._known.clear()

    def __enter__(self) -> FdMemory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def socket_fds(self, pids: Iterable[int] | None = None,
                   inodes: Container[int] | None = None, *,
                   since: float) -> dict[int, list[tuple[int, int]]]:
        """What ``socket_fds(pids, inodes)`` returns, reading again only the fds of processes
        that may have changed them since they were read. ``since``: ``time.monotonic()``
        when the reading these fds must agree with ended (the census of the sockets to
        attribute); this waits until one scheduler tick after it if it must."""
        found: dict[int, list[tuple[int, int]]] = {}
        for pid, known in self._refresh(pids, since):
            _collect(found, pid, known.held, inodes)
        return found

    def holders(self, pids: Iterable[int] | None = None, *, since: float) -> Holders:
        """The same reading as ``socket_fds`` (every socket of ``pids``, all if None), as
        the holders of each inode: what counting per process needs, merged in bulk."""
        owner: dict[int, int] = {}
        shared: dict[int, list[int]] = {}
        for pid, known in self._refresh(pids, since):
            by_inode = known.by_inode
            if owner:
                for inode in owner.keys() & by_inode.keys():  # held by an earlier one too
                    many = shared.setdefault(inode, [owner[inode]])
                    if pid not in many:
                        many.append(pid)
            owner.update(by_inode)
        return Holders(owner, shared)

    def _refresh(self, pids: Iterable[int] | None, since: float) -> list[tuple[int, _Known]]:
        """Every process of ``pids`` whose fds could be read, with them: from memory where
        provably unchanged, else scanned now."""
        tick = tick_seconds()
        wanted = _pids(pids)
        read: list[tuple[int, _Known]] = []
        self.scanned = self.reused = 0
        alive = set(wanted)
        for pid in [p for p in self._known if p not in alive or tick is None]:
            os.close(self._known.pop(pid).pidfd)
        later = []
        for pid in wanted:  # new processes first: they are scanned whatever the clock says
            if pid in self._known:
                later.append(pid)
            else:
                self._read(pid, read, remember=tick is not None)
        if later and tick is not None:
            wait = since + 1.5 * tick - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        for pid in later:
            known = self._known[pid]
            same = False
            try:
                same = time.clock_gettime_ns(_cpu_clock(pid)) == known.cpu_ns
                signal.pidfd_send_signal(known.pidfd, 0)  # still the process we read
            except PermissionError:  # another user's: it exists, the clock was its own
                pass
            except OSError:  # gone, or its pid now someone else's
                same = False
            if same:
                self.reused += 1
                read.append((pid, known))
            else:
                os.close(self._known.pop(pid).pidfd)
                self._read(pid, read, remember=True)
        return read

    def _read(self, pid: int, read: list[tuple[int, _Known]], *, remember: bool) -> None:
        """Scan ``pid`` into ``read`` and, with ``remember``, keep it with its CPU time read
        before the scan (a change during the scan shows as a later CPU time)."""
        self.scanned += 1
        pidfd = -1
        cpu_ns = 0
        if remember and len(self._known) < self.LIMIT:
            try:
                pidfd = os.pidfd_open(pid)
                cpu_ns = time.clock_gettime_ns(_cpu_clock(pid))
            except OSError:
                if pidfd >= 0:
                    os.close(pidfd)
                pidfd = -1
        held = _scan(pid)
        if held is None:
            if pidfd >= 0:
                os.close(pidfd)
            return
        known = _Known(pidfd, cpu_ns, held, dict.fromkeys([inode for inode, _fd in held], pid))
        read.append((pid, known))
        if pidfd >= 0:
            try:
                signal.pidfd_send_signal(pidfd, 0)  # the scan read the process we hold
            except PermissionError:
                pass
            except OSError:
                os.close(pidfd)
                return
            self._known[pid] = known


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


