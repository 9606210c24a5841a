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

import dataclasses
import errno
import gc
import socket
import struct
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from tcplab.kernel.model import Address, FourTuple, SocketRecord, Timer, TimerKind
from tcplab.states import (
    ALL_KERNEL_STATES_MASK,
    CONNECTION_STATES_MASK,
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
# inet_diag_msg: family, state, timer, retrans, sockid (48 bytes), expires, rqueue, wqueue,
# uid, inode: 72 bytes, read by ``RecordParser`` alone.
_MSG_LEN = 72
_RTATTR = struct.Struct("=HH")
_BC_OP = struct.Struct("=BBH")

_RECV_BUFFER = 1 << 20


def _pack_sockid(
    local: Address | None, remote: Address | None, family: int, interface: int = 0
) -> bytes:
    def raw(addr: Address | None) -> bytes:
        if addr is None:
            return bytes(16)
        return socket.inet_pton(family, addr.host).ljust(16, b"\0")

    sport = local.port if local else 0
    dport = remote.port if remote else 0
    return _SOCKID.pack(sport, dport, raw(local), raw(remote)) + _SOCKID_TAIL.pack(
        interface, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE
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


def dump_mask(states: Iterable[TcpState] | None, *, bound: bool = False) -> int:
    """The ``idiag_states`` mask of a dump: ``states`` (every state if None), without the
    bound sockets that never listened nor connected (``TCP_BOUND_INACTIVE``, folded into
    CLOSED) unless ``bound``. So a dump filtered by state is always a subset of the
    unfiltered dump with the same ``bound``: asking for CLOSED does not bring them in."""
    mask = ALL_KERNEL_STATES_MASK if states is None else kernel_mask(states)
    return mask if bound else mask & CONNECTION_STATES_MASK


def _dump_body(
    family: int, states: Iterable[TcpState] | None, port: int | None, bound: bool = False
) -> bytes:
    """A dump request of one family: the state mask (``dump_mask``) and, with ``port``, the
    bytecode that makes the kernel keep only sockets with it at either end."""
    mask = dump_mask(states, bound=bound)
    body = _REQ_V2.pack(family, socket.IPPROTO_TCP, 0, mask) + _pack_sockid(None, None, family)
    if port is not None:
        code = port_bytecode(port)
        body += _RTATTR.pack(_RTATTR.size + len(code), INET_DIAG_REQ_BYTECODE) + code
    return body


class SockDiag:
    """One netlink socket to the kernel's sock_diag, in the caller's network namespace.

    Not thread-safe and not async: each call is one short syscall round trip (tens of
    microseconds for a lookup), cheaper than handing it to a thread.
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
        try:
            self._sock.bind((0, 0))
        except OSError:
            self._sock.close()
            raise
        self._seq = 0
        self._buffer = bytearray(_RECV_BUFFER)
        self._parser = RecordParser()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> SockDiag:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- requests --------------------------------------------------------------

    def lookup(self, end: FourTuple, *, interface: int = 0) -> SocketRecord | None:
        """The socket with exactly this four-tuple, or None if the kernel has none.

        The kernel's lookup falls back to a listener on the local port when no connection
        matches, so a reply that is not the asked four-tuple counts as none.
        ``interface``: the index of the device the socket is bound to (SO_BINDTODEVICE;
        ``procfs.bound_interface`` reads it from the fd). The kernel's lookup matches a
        device-bound socket only when asked with its device (``inet_match`` ->
        ``inet_sk_bound_dev_eq`` in include/net/inet_hashtables.h), while an unbound
        socket matches whatever the interface, so passing it never hides a socket.
        """
        family = end.family
        body = _REQ_V2.pack(family, socket.IPPROTO_TCP, 0, ALL_KERNEL_STATES_MASK) + _pack_sockid(
            end.local, end.remote, family, interface
        )
        try:
            records: list[SocketRecord] = self._request(body, dump=False)
            for record in records:
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
        bound: bool = False,
    ) -> list[SocketRecord]:
        """Every TCP socket in these states with ``port`` at either end (any if None).

        Bound sockets that never listened or connected (kernel state BOUND_INACTIVE,
        reported as CLOSED) are left out, as ``ss -ta`` leaves them out, unless ``bound``:
        asking for them makes the kernel walk its bind hash too. See ``dump_mask``.
        """
        records: list[SocketRecord] = []
        for family in families:
            records.extend(self._request(_dump_body(family, states, port, bound), dump=True))
        return records

    def census(
        self,
        *,
        states: Iterable[TcpState] | None = None,
        port: int | None = None,
        families: Iterable[int] = (socket.AF_INET, socket.AF_INET6),
        bound: bool = False,
    ) -> list[tuple[TcpState, int]]:
        """Like ``dump`` (the same request, the same sockets), but each socket read only as
        its state and inode (``RecordParser.state_and_inode``): for counting tens of
        thousands of sockets once a second (``tcplab watch``), where building every record
        costs several times more than the kernel's walk. Inode 0: no process holds it."""
        pairs: list[tuple[TcpState, int]] = []
        for family in families:
            body = _dump_body(family, states, port, bound)
            pairs.extend(self._request(body, dump=True, census=True))
        return pairs

    # -- wire ------------------------------------------------------------------

    def _send(self, body: bytes, dump: bool) -> int:
        self._seq += 1
        self._parser.trim()
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, flags, self._seq, 0)
        self._sock.send(header + body)
        return self._seq

    def _request(self, body: bytes, *, dump: bool, census: bool = False) -> list[Any]:
        """The replies to one request: records, or with ``census`` (state, inode) pairs."""
        seq = self._send(body, dump)
        if not dump or not gc.isenabled():
            return self._replies(seq, dump, census)
        # A dump allocates a few objects per socket, all acyclic (records, four-tuples,
        # timers): CPython's cyclic collector would run every 700 allocations for nothing
        # and, in a large heap, walk all of it (tens of ms, at random, in a 20,000-socket
        # dump). It is paused for the loop and resumed after; nothing it could free is
        # made meanwhile.
        gc.disable()
        try:
            return self._replies(seq, dump, census)
        finally:
            gc.enable()

    def _replies(self, seq: int, dump: bool, census: bool) -> list[Any]:
        # The hot loop of a dump (20,000 sockets: 20,000 turns), written for speed: one copy
        # of each datagram, the parser's memo of records by their raw bytes consulted here
        # (``RecordParser.__call__``, inlined), the header unpacked in place, and attribute
        # look-ups hoisted into locals. ``census``: each message read by
        # ``RecordParser.state_and_inode`` instead.
        sock, buffer, parser = self._sock, self._buffer, self._parser
        view = memoryview(buffer)
        remember, recall, parse = parser.records.__setitem__, parser.records.get, parser.parse
        state_and_inode = parser.state_and_inode
        header = _NLMSGHDR.unpack_from
        replies: list[Any] = []
        append = replies.append
        while True:
            size = sock.recv_into(buffer)
            data = view[:size].tobytes()
            offset = 0
            while offset + _NLMSGHDR.size <= size:
                length, kind, _flags, msg_seq, _pid = header(data, offset)
                if length < _NLMSGHDR.size:
                    raise OSError(errno.EPROTO, "malformed netlink message from sock_diag")
                payload = offset + _NLMSGHDR.size
                if msg_seq == seq:
                    if kind == SOCK_DIAG_BY_FAMILY:
                        raw = data[payload : payload + _MSG_LEN]
                        if census:
                            append(state_and_inode(raw))
                        else:
                            record = recall(raw)
                            if record is None:
                                record = parse(raw)
                                if raw[2] == 0:  # no timer running: these bytes will repeat
                                    remember(raw, record)
                            append(record)
                    elif kind == NLMSG_DONE:
                        return replies
                    elif kind == NLMSG_ERROR:
                        _raise_unless_ack(data, payload)
                        return replies
                offset += (length + 3) & ~3
            if not dump and replies:
                return replies


def _raise_unless_ack(data: bytes | bytearray, payload: int) -> None:
    """An NLMSG_ERROR with code 0 is an acknowledgement; any other code is the error."""
    (code,) = struct.unpack_from("=i", data, payload)
    if code != 0:
        raise OSError(-code, f"sock_diag: {errno.errorcode.get(-code, code)}")

_new = object.__new__
_set = object.__setattr__
#: inet_diag_msg without its sockid; and the head of the sockid, ports byte-swapped (they
#: are big endian, read as native: ``_port`` swaps them back).
_FIELDS = struct.Struct("=BBBB48xIIIII")
_SOCKID_RAW = struct.Struct("=4xHH16s16s")
_TIMER_OFF = Timer(TimerKind.OFF, 0.0, 0)
_STATE_OF = dict(KERNEL_STATE_NUMBERS)
_TIMER_OF = {number: TimerKind.from_kernel(number) for number in range(5)}
assert _FIELDS.size == _MSG_LEN
_FAST_FIELDS = {
    SocketRecord: ("state", "four_tuple", "inode", "uid", "timer", "recv_q", "send_q", "owners",
                   "fd_only"),
    FourTuple: ("local", "remote"),
    Timer: ("kind", "remaining", "fired"),
    Address: ("host", "port"),
}
#: The parser fills an instance's ``__dict__`` directly, skipping the frozen dataclasses'
#: ``__init__`` (a third of a dump's time), only while the classes are plain (no
#: ``__post_init__``, no slots) with exactly these fields; otherwise it calls the ordinary
#: constructors. tests/test_diag.py checks both ways give equal records.
FAST_CONSTRUCTION = all(
    tuple(f.name for f in dataclasses.fields(cls)) == names
    and not hasattr(cls, "__post_init__")
    and not hasattr(cls, "__slots__")
    for cls, names in _FAST_FIELDS.items()
)
#: Entries kept by each memo of a ``RecordParser`` before it starts afresh (about 1 KiB each).
CACHE_LIMIT = 1 << 16


class RecordParser:
    """The one reading of an ``inet_diag_msg`` (72 bytes): into a ``SocketRecord``
    (``parse``), or, for a census, into its state and inode only (``state_and_inode``), both
    through the one layout ``_FIELDS`` and the one state table.

    Calling it returns the record for a message's bytes, through memos that make a repeated
    dump cheap, each bounded by ``CACHE_LIMIT`` entries:

    ``records``: a record is a pure function of its 72 bytes (the socket cookie makes them
    unique per socket) and records are immutable, so the same bytes in a later reply are the
    same record. Only records with no timer running are kept: a timer's ``expires`` changes
    every millisecond, so those bytes never repeat.
    ``tuples``: the four-tuple, by the 48 bytes of ``inet_diag_sockid`` (ports, addresses,
    interface, cookie): what a TIME_WAIT socket's record is rebuilt around on every dump.
    ``addresses``: an address and port, by family and raw bytes (a listener's address is on
    every connection it accepted, at both ends).
    """

    def __init__(self) -> None:
        self.records: dict[bytes, SocketRecord] = {}
        self.tuples: dict[bytes, FourTuple] = {}
        self.addresses: dict[tuple[int, bytes, int], Address] = {}

    def __call__(self, raw: bytes) -> SocketRecord:
        """The record for these bytes, from the memo or parsed (``SockDiag`` inlines this)."""
        record = self.records.get(raw)
        if record is None:
            record = self.parse(raw)
            if raw[2] == 0:  # no timer running: these bytes will repeat
                self.records[raw] = record
        return record

    def trim(self) -> None:
        """Start afresh where a memo outgrew its bound (called before each request)."""
        tables: list[dict[Any, Any]] = [self.records, self.tuples, self.addresses]
        for table in tables:
            if len(table) > CACHE_LIMIT:
                table.clear()

    def parse(self, raw: bytes) -> SocketRecord:
        """Decode one message (not memoized; ``raw`` holds at least 72 bytes).

        An unknown state number raises ValueError (``from_kernel``): a kernel newer than
        tcplab; an unknown timer number reads as no timer, as ``ss`` prints it.
        """
        family, state, timer, retrans, expires, rqueue, wqueue, uid, inode = _FIELDS.unpack_from(raw)
        sockid = raw[4:52]
        four_tuple = self.tuples.get(sockid)
        if four_tuple is None:
            four_tuple = self.tuples[sockid] = self._four_tuple(family, raw)
        tcp_state = _STATE_OF.get(state) or from_kernel(state)
        if timer == 0 and retrans == 0:
            timing = _TIMER_OFF
        else:
            kind = _TIMER_OF.get(timer, TimerKind.OFF)
            remaining = expires / 1000.0 if kind is not TimerKind.OFF else 0.0
            if FAST_CONSTRUCTION:
                timing = _new(Timer)
                _set(timing, "__dict__", {"kind": kind, "remaining": remaining, "fired": retrans})
            else:
                timing = Timer(kind, remaining, retrans)
        if not FAST_CONSTRUCTION:
            return SocketRecord(state=tcp_state, four_tuple=four_tuple, inode=inode, uid=uid,
                                timer=timing, recv_q=rqueue, send_q=wqueue)
        record = _new(SocketRecord)
        _set(record, "__dict__", {
            "state": tcp_state, "four_tuple": four_tuple, "inode": inode, "uid": uid,
            "timer": timing, "recv_q": rqueue, "send_q": wqueue, "owners": (), "fd_only": False,
        })
        return record

    @staticmethod
    def state_and_inode(raw: bytes) -> tuple[TcpState, int]:
        """Only the state and the inode of one message, read through the same layout and
        state table as ``parse`` (what a count per state and owner needs, at a tenth of
        a record's cost: no four-tuple, timer or record is made)."""
        _family, state, _timer, _retrans, _expires, _rq, _wq, _uid, inode = _FIELDS.unpack_from(raw)
        return _STATE_OF.get(state) or from_kernel(state), inode

    def _four_tuple(self, family: int, raw: bytes) -> FourTuple:
        sport, dport, src, dst = _SOCKID_RAW.unpack_from(raw)
        local, remote = self._address(family, src, sport), self._address(family, dst, dport)
        if not FAST_CONSTRUCTION:
            return FourTuple(local, remote)
        four_tuple = _new(FourTuple)
        _set(four_tuple, "__dict__", {"local": local, "remote": remote})
        return four_tuple

    def _address(self, family: int, raw: bytes, swapped_port: int) -> Address:
        key = (family, raw, swapped_port)
        address = self.addresses.get(key)
        if address is None:
            host = socket.inet_ntop(family, raw[:4] if family == socket.AF_INET else raw)
            port = ((swapped_port & 0xFF) << 8) | (swapped_port >> 8)
            if FAST_CONSTRUCTION:
                address = _new(Address)
                _set(address, "__dict__", {"host": host, "port": port})
            else:
                address = Address(host, port)
            self.addresses[key] = address
        return address
