"""A small NETLINK_SOCK_DIAG (inet_diag) client, on the standard library alone.

This is what ``ss`` uses. It needs no privilege for TCP sockets, sees every socket of the
network namespace it was opened in (TIME_WAIT and request sockets included, which belong
to no process), and lets the kernel do the filtering:

* ``lookup`` asks for one exact four-tuple: the kernel hashes it and answers with one
  message, so the cost does not grow with the number of sockets.
* ``dump`` walks the tables, but the state mask and a port filter (inet_diag bytecode) are
  applied in the kernel, so only matching sockets are copied to us.

Structures and constants: ``include/uapi/linux/inet_diag.h`` and ``sock_diag.h``.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TypeVar

from tcplab.kernel.model import Address, FourTuple, SocketRecord, Timer, TimerKind
from tcplab.states import (
    ALL_KERNEL_STATES_MASK,
    KERNEL_STATE_NUMBERS,
    TcpState,
    from_kernel,
    kernel_mask,
)

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
INET_DIAG_REQ_BYTECODE = 1
INET_DIAG_BC_JMP = 1
INET_DIAG_BC_S_EQ = 11
INET_DIAG_BC_D_EQ = 12
INET_DIAG_NOCOOKIE = 0xFFFFFFFF

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
# inet_diag_req_v2: family, protocol, ext, pad, states; then inet_diag_sockid.
_REQ_V2 = struct.Struct("=BBBxI")
# inet_diag_sockid: sport, dport (big endian), src[16], dst[16], if, cookie[2].
_SOCKID = struct.Struct("!HH16s16s")
_SOCKID_TAIL = struct.Struct("=III")
# inet_diag_msg: family, state, timer, retrans, sockid (48 bytes), expires, rqueue, wqueue, uid, inode.
_MSG_HEAD = struct.Struct("=BBBB")
_MSG_TAIL = struct.Struct("=IIIII")
_MSG_LEN = _MSG_HEAD.size + 48 + _MSG_TAIL.size
_RTATTR = struct.Struct("=HH")
_BC_OP = struct.Struct("=BBH")

_RECV_BUFFER = 1 << 20
_INODE = struct.Struct("=I")
_INODE_OFFSET = _MSG_HEAD.size + 48 + 16  # after expires, rqueue, wqueue, uid

T = TypeVar("T")


def _pack_sockid(local: Address | None, remote: Address | None, family: int) -> bytes:
    def raw(addr: Address | None) -> bytes:
        if addr is None:
            return bytes(16)
        return socket.inet_pton(family, addr.host).ljust(16, b"\0")

    sport = local.port if local else 0
    dport = remote.port if remote else 0
    return _SOCKID.pack(sport, dport, raw(local), raw(remote)) + _SOCKID_TAIL.pack(
        0, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE
    )


def port_bytecode(port: int) -> bytes:
    """inet_diag bytecode: accept a socket whose local or remote port is ``port``.

    Each comparison op ``{code, yes, no}`` is followed by an op carrying the port in ``no``.
    The kernel moves ``yes`` bytes forward on a match and ``no`` bytes otherwise; landing
    exactly on the end accepts, jumping 4 bytes past it rejects (``inet_diag_bc_run``). Its
    audit only accepts ``no`` targets reachable through the chain of ``yes`` moves, so an OR
    is written as ``ss`` writes it: ``A; JMP to the end; B``.
    """
    return b"".join(
        (
            _BC_OP.pack(INET_DIAG_BC_S_EQ, 8, 12),  # local port: match -> the JMP, else -> B
            _BC_OP.pack(0, 0, port),
            _BC_OP.pack(INET_DIAG_BC_JMP, 4, 12),  # always takes ``no``: the end, accept
            _BC_OP.pack(INET_DIAG_BC_D_EQ, 8, 12),  # remote port: match -> accept, else reject
            _BC_OP.pack(0, 0, port),
        )
    )


class SockDiag:
    """One netlink socket to the kernel's sock_diag, in the caller's network namespace.

    Not thread-safe and not async: each call is one short syscall round trip (tens of
    microseconds for a lookup), cheaper than handing it to a thread.
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
        self._sock.bind((0, 0))
        self._seq = 0
        self._buffer = bytearray(_RECV_BUFFER)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> SockDiag:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- requests --------------------------------------------------------------

    def lookup(self, end: FourTuple) -> SocketRecord | None:
        """The socket with exactly this four-tuple, or None if the kernel has none.

        The kernel's lookup falls back to a listener on the local port when no connection
        matches, so a reply that is not the asked four-tuple counts as none.
        """
        family = end.family
        body = _REQ_V2.pack(family, socket.IPPROTO_TCP, 0, ALL_KERNEL_STATES_MASK) + _pack_sockid(
            end.local, end.remote, family
        )
        try:
            for record in self._request(body, dump=False):
                if record.four_tuple == end:
                    return record
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        return None

    def dump(
        self,
        *,
        states: Iterable[TcpState] | None = None,
        port: int | None = None,
        families: Iterable[int] = (socket.AF_INET, socket.AF_INET6),
    ) -> list[SocketRecord]:
        """Every TCP socket in these states (all if None) with ``port`` at either end (any if None)."""
        mask = ALL_KERNEL_STATES_MASK if states is None else kernel_mask(states)
        records: list[SocketRecord] = []
        for family in families:
            body = _REQ_V2.pack(family, socket.IPPROTO_TCP, 0, mask) + _pack_sockid(None, None, family)
            if port is not None:
                code = port_bytecode(port)
                body += _RTATTR.pack(_RTATTR.size + len(code), INET_DIAG_REQ_BYTECODE) + code
            records.extend(self._request(body, dump=True))
        return records

    def dump_state_inodes(
        self,
        *,
        states: Iterable[TcpState] | None = None,
        port: int | None = None,
        families: Iterable[int] = (socket.AF_INET, socket.AF_INET6),
    ) -> list[tuple[TcpState, int]]:
        """Like ``dump`` (same in-kernel filters), but only each socket's state and inode.

        For counting tens of thousands of sockets once a second (``tcplab watch``):
        decoding two fields instead of building a whole record is several times cheaper.
        Inode 0 means no process holds the socket (TIME_WAIT, orphans, request sockets).
        """
        mask = ALL_KERNEL_STATES_MASK if states is None else kernel_mask(states)
        pairs: list[tuple[TcpState, int]] = []
        for family in families:
            body = _REQ_V2.pack(family, socket.IPPROTO_TCP, 0, mask)
            body += _pack_sockid(None, None, family)
            if port is not None:
                code = port_bytecode(port)
                body += _RTATTR.pack(_RTATTR.size + len(code), INET_DIAG_REQ_BYTECODE) + code
            pairs.extend(self._request_parsed(body, True, _parse_state_inode))
        return pairs

    # -- wire ------------------------------------------------------------------

    def _request(self, body: bytes, *, dump: bool) -> Iterator[SocketRecord]:
        return self._request_parsed(body, dump, _parse)

    def _request_parsed(
        self, body: bytes, dump: bool, parse: Callable[[memoryview, int], T]
    ) -> Iterator[T]:
        self._seq += 1
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, flags, self._seq, 0)
        self._sock.send(header + body)
        return self._replies(self._seq, dump, parse)

    def _replies(
        self, seq: int, dump: bool, parse: Callable[[memoryview, int], T]
    ) -> Iterator[T]:
        buffer = self._buffer
        view = memoryview(buffer)
        records: list[T] = []
        while True:
            size = self._sock.recv_into(buffer)
            offset = 0
            while offset + _NLMSGHDR.size <= size:
                length, kind, _flags, msg_seq, _pid = _NLMSGHDR.unpack_from(buffer, offset)
                if length < _NLMSGHDR.size:
                    raise OSError(errno.EPROTO, "malformed netlink message from sock_diag")
                payload = offset + _NLMSGHDR.size
                if msg_seq == seq:
                    if kind == NLMSG_DONE:
                        return iter(records)
                    if kind == NLMSG_ERROR:
                        (code,) = struct.unpack_from("=i", buffer, payload)
                        if code == 0:
                            return iter(records)
                        raise OSError(-code, f"sock_diag: {errno.errorcode.get(-code, code)}")
                    if kind == SOCK_DIAG_BY_FAMILY:
                        records.append(parse(view, payload))
                offset += (length + 3) & ~3
            if not dump and records:
                return iter(records)


def _parse(buffer: memoryview, offset: int) -> SocketRecord:
    family, state, timer, retrans = _MSG_HEAD.unpack_from(buffer, offset)
    sport, dport, src, dst = _SOCKID.unpack_from(buffer, offset + 4)
    expires, rqueue, wqueue, uid, inode = _MSG_TAIL.unpack_from(buffer, offset + 52)
    width = 4 if family == socket.AF_INET else 16
    local = Address(socket.inet_ntop(family, src[:width]), sport)
    remote = Address(socket.inet_ntop(family, dst[:width]), dport)
    kind = TimerKind.from_kernel(timer)
    return SocketRecord(
        state=from_kernel(state),
        four_tuple=FourTuple(local, remote),
        inode=inode,
        uid=uid,
        timer=Timer(kind, expires / 1000.0 if kind is not TimerKind.OFF else 0.0, retrans),
        recv_q=rqueue,
        send_q=wqueue,
    )


#: Kernel state number -> RFC state, as a tuple indexed by the number (the hot path of counting).
_STATE_BY_NUMBER: tuple[TcpState | None, ...] = tuple(
    KERNEL_STATE_NUMBERS.get(n) for n in range(max(KERNEL_STATE_NUMBERS) + 1)
)


def _parse_state_inode(buffer: memoryview, offset: int) -> tuple[TcpState, int]:
    number = buffer[offset + 1]
    state = _STATE_BY_NUMBER[number] if number < len(_STATE_BY_NUMBER) else None
    if state is None:
        state = from_kernel(number)  # raises: a state number this tcplab doesn't know
    inode: int = _INODE.unpack_from(buffer, offset + _INODE_OFFSET)[0]
    return state, inode
