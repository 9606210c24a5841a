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
import operator
import socket
import struct
from collections import Counter
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

#: Room for any datagram: the kernel fills one skb per dump step, of at most 32 KiB
#: (``netlink_recvmsg`` caps ``max_recvmsg_len``, net/netlink/af_netlink.c).
_RECV_BUFFER = 1 << 16


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
            records: list[SocketRecord] = []
            self._request(body, dump=False, out=records)
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
            self._request(_dump_body(family, states, port, bound), dump=True, out=records)
        return records

    def census(
        self,
        *,
        states: Iterable[TcpState] | None = None,
        port: int | None = None,
        families: Iterable[int] = (socket.AF_INET, socket.AF_INET6),
        bound: bool = False,
    ) -> list[tuple[TcpState, int]]:
        """Like ``dump`` (the same request, the same sockets), but each socket as its state
        and inode only (inode 0: no process holds it); see ``tally``, which this lists."""
        counted = self.tally(states=states, port=port, families=families, bound=bound)
        return [(state, 0) for state, n in counted.unowned.items() for _ in range(n)] + [
            (state, inode) for state, inodes in counted.owned.items() for inode in inodes]

    def tally(
        self,
        *,
        states: Iterable[TcpState] | None = None,
        port: int | None = None,
        families: Iterable[int] = (socket.AF_INET, socket.AF_INET6),
        bound: bool = False,
    ) -> Tally:
        """The sockets ``dump`` would give, counted: those no process holds (inode 0:
        TIME_WAIT, request sockets, orphans) only per state, in bulk; the others as their
        inodes per state, which is what finding their owners needs. No record, no object
        per socket but its inode: for counting tens of thousands of sockets once a second
        (``tcplab watch``)."""
        counts = [0] * 256  # by the kernel's state number (one byte)
        inodes: list[list[int]] = [[] for _ in range(256)]
        for family in families:
            self._request(_dump_body(family, states, port, bound), dump=True, out=inodes,
                          counts=counts)
        unowned: Counter[TcpState] = Counter()
        owned: dict[TcpState, list[int]] = {}
        for number, n in enumerate(counts):
            if n:
                unowned[_STATE_LIST[number] or from_kernel(number)] += n
            if inodes[number]:
                owned[_STATE_LIST[number] or from_kernel(number)] = inodes[number]
        return Tally(unowned, owned)

    # -- wire ------------------------------------------------------------------

    def _send(self, body: bytes, dump: bool) -> int:
        self._seq += 1
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, flags, self._seq, 0)
        self._sock.send(header + body)
        return self._seq

    def _request(self, body: bytes, *, dump: bool, out: list[Any],
                 counts: list[int] | None = None) -> None:
        """Send one request and read its replies into ``out``: records, or with ``counts``
        (a tally) the owned sockets' inodes into ``out[state number]`` while the others
        are counted."""
        seq = self._send(body, dump)
        if not dump or not gc.isenabled():
            self._replies(seq, dump, out, counts)
            return
        # A dump allocates a few objects per socket, all acyclic: CPython's cyclic collector
        # would run every 700 allocations for nothing and, in a large heap, walk all of it
        # (tens of ms, at random, in a 20,000-socket dump). It is paused for the loop and
        # resumed after; nothing it could free is made meanwhile.
        gc.disable()
        try:
            self._replies(seq, dump, out, counts)
        finally:
            gc.enable()

    def _replies(self, seq: int, dump: bool, out: list[Any], counts: list[int] | None) -> None:
        # The hot loop of a dump (50,000 sockets: 50,000 turns), written for speed. Each
        # datagram (up to 32 KiB: the kernel's cap on one dump skb) is copied once; each
        # message is read by ONE unpack (``_READ``: its netlink header, and its state and
        # inode), then either counted, listed as an inode of its state, or made into a
        # record that holds its 72 bytes and decodes the rest on first use (``DiagRecord``).
        # Attribute look-ups are hoisted into locals.
        sock, buffer = self._sock, self._buffer
        view = memoryview(buffer)
        read, head = _READ.unpack_from, _NLMSGHDR.unpack_from
        append = out.append
        state_of = _STATE_LIST
        # With ``counts`` (a tally), ``out`` holds one list of inodes per state number.
        per_state = [inodes.append for inodes in out] if counts is not None else []
        lazy = FAST_CONSTRUCTION
        parse = RecordParser.parse
        new, put = _new, _set
        record_type = DiagRecord
        whole = _READ.size
        while True:
            size = sock.recv_into(buffer)
            data = view[:size].tobytes()
            offset = 0
            limit = size - whole
            while offset <= limit:
                length, kind, _flags, msg_seq, state, inode = read(data, offset)
                if kind == SOCK_DIAG_BY_FAMILY and msg_seq == seq and length >= whole:
                    if counts is not None:
                        if inode:
                            per_state[state](inode)
                        else:
                            counts[state] += 1
                    elif lazy:
                        record = new(record_type)
                        put(record, "__dict__", {"state": state_of[state] or from_kernel(state),
                                                 "inode": inode,
                                                 "_raw": data[offset + 16 : offset + whole]})
                        append(record)
                    else:
                        append(parse(data[offset + 16 : offset + whole]))
                elif msg_seq == seq and self._final(data, offset, length, kind):
                    return
                offset += (length + 3) & ~3
            # What is left is shorter than a socket's message: the end of the dump
            # (NLMSG_DONE), an error or an acknowledgement.
            while offset + _NLMSGHDR.size <= size:
                length, kind, _flags, msg_seq, _pid = head(data, offset)
                if msg_seq == seq and self._final(data, offset, length, kind):
                    return
                offset += (length + 3) & ~3
            if not dump and out:
                return

    @staticmethod
    def _final(data: bytes, offset: int, length: int, kind: int) -> bool:
        """Whether this message of our request ends it (NLMSG_DONE, an ack); raises the
        error an NLMSG_ERROR carries, and EPROTO for a message too short to be one."""
        if length < _NLMSGHDR.size or kind == SOCK_DIAG_BY_FAMILY:
            raise OSError(errno.EPROTO, "malformed netlink message from sock_diag")
        if kind == NLMSG_DONE:
            return True
        if kind == NLMSG_ERROR:
            _raise_unless_ack(data, offset + _NLMSGHDR.size)
            return True
        return False


def _raise_unless_ack(data: bytes | bytearray, payload: int) -> None:
    """An NLMSG_ERROR with code 0 is an acknowledgement; any other code is the error."""
    (code,) = struct.unpack_from("=i", data, payload)
    if code != 0:
        raise OSError(-code, f"sock_diag: {errno.errorcode.get(-code, code)}")


@dataclasses.dataclass
class Tally:
    """A dump counted (``SockDiag.tally``): the sockets no process holds, per state; the
    inodes of the others, per state."""

    unowned: Counter[TcpState]
    owned: dict[TcpState, list[int]]


_new = object.__new__
_set = object.__setattr__
#: inet_diag_msg (72 bytes): family, state, timer, retrans, the sockid (skipped here: read
#: by ``_SOCKID_RAW``), expires, rqueue, wqueue, uid, inode.
_FIELDS = struct.Struct("=BBBB48xIIIII")
#: The head of the sockid, ports byte-swapped (they are big endian, read as native).
_SOCKID_RAW = struct.Struct("=4xHH16s16s")
#: What the reply loop reads of every message in one unpack: the netlink header (length,
#: type, flags, sequence; the port id skipped), then of the inet_diag_msg after it the
#: state (its byte 1) and the inode (its last 4 bytes), at ``_FIELDS``' offsets
#: (``_STATE_INODE``).
_STATE_INODE = struct.Struct("=xB66xI")
_READ = struct.Struct("=IHHI4x" + _STATE_INODE.format[1:])
assert _FIELDS.size == _MSG_LEN and _READ.size == _NLMSGHDR.size + _MSG_LEN
_TIMER_OFF = Timer(TimerKind.OFF, 0.0, 0)
#: The kernel's state numbers (one byte) -> ours; None where the kernel has none.
_STATE_LIST: list[TcpState | None] = [None] * 256
for _number, _state in KERNEL_STATE_NUMBERS.items():
    _STATE_LIST[_number] = _state
_TIMER_OF = {number: TimerKind.from_kernel(number) for number in range(5)}
_FAST_FIELDS = {
    SocketRecord: ("state", "four_tuple", "inode", "uid", "timer", "recv_q", "send_q", "owners",
                   "fd_only"),
    FourTuple: ("local", "remote"),
    Timer: ("kind", "remaining", "fired"),
    Address: ("host", "port"),
}
#: The parser fills an instance's ``__dict__`` directly, skipping the frozen dataclasses'
#: ``__init__``, and lets a record decode most of its fields on first use (``DiagRecord``),
#: only while the classes are plain (no ``__post_init__``, no slots) with exactly these
#: fields; otherwise it builds each record whole with the ordinary constructors.
#: tests/test_diag.py checks both ways give equal records.
FAST_CONSTRUCTION = all(
    tuple(f.name for f in dataclasses.fields(cls)) == names
    and not hasattr(cls, "__post_init__")
    and not hasattr(cls, "__slots__")
    for cls, names in _FAST_FIELDS.items()
)


def _decoded(raw: bytes) -> dict[str, Any]:
    """The fields of one message other than its state and inode: its four-tuple, timer,
    queues and uid. An unknown timer number reads as no timer, as ``ss`` prints it."""
    family, _state, timer, retrans, expires, rqueue, wqueue, uid, _inode = _FIELDS.unpack_from(raw)
    sport, dport, src, dst = _SOCKID_RAW.unpack_from(raw)
    size = 4 if family == socket.AF_INET else 16
    local = _address(socket.inet_ntop(family, src[:size]), sport)
    remote = _address(socket.inet_ntop(family, dst[:size]), dport)
    if FAST_CONSTRUCTION:
        four_tuple = _new(FourTuple)
        _set(four_tuple, "__dict__", {"local": local, "remote": remote})
    else:
        four_tuple = FourTuple(local, remote)
    if timer == 0 and retrans == 0:
        timing = _TIMER_OFF
    else:
        kind = _TIMER_OF.get(timer, TimerKind.OFF)
        timing = Timer(kind, expires / 1000.0 if kind is not TimerKind.OFF else 0.0, retrans)
    return {"four_tuple": four_tuple, "uid": uid, "timer": timing, "recv_q": rqueue,
            "send_q": wqueue}


def _address(host: str, swapped_port: int) -> Address:
    port = ((swapped_port & 0xFF) << 8) | (swapped_port >> 8)
    if not FAST_CONSTRUCTION:
        return Address(host, port)
    address = _new(Address)
    _set(address, "__dict__", {"host": host, "port": port})
    return address


class _Decoded:
    """A field of a ``DiagRecord`` decoded from its message on first use: a non-data
    descriptor, so once the value is in the instance's ``__dict__`` (decoded, or given to
    the constructor by ``dataclasses.replace``) it is read from there and this is not
    called again."""

    name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, record: Any, owner: type | None = None) -> Any:
        if record is None:
            return self
        fields = record.__dict__
        fields.update(_decoded(fields["_raw"]))
        return fields[self.name]


_COMPARED = operator.attrgetter(*(f.name for f in dataclasses.fields(SocketRecord) if f.compare))


class DiagRecord(SocketRecord):
    """A ``SocketRecord`` as sock_diag gave it: its state and inode are read with the
    reply, the rest (four-tuple, timer, queues, uid) from the message's 72 bytes, which it
    keeps, on first use, and then kept. Most readers of a large dump look at a few fields
    of a few records (a count per state, one four-tuple), so most records are never
    decoded: the dump costs about what reading the replies costs.

    It is a ``SocketRecord`` in every way that shows: the same fields and values, equal to
    (and hashed like) a plain one with the same fields.
    """

    four_tuple = _Decoded()
    uid = _Decoded()
    timer = _Decoded()
    recv_q = _Decoded()
    send_q = _Decoded()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SocketRecord):
            return bool(_COMPARED(self) == _COMPARED(other))
        return NotImplemented

    __hash__ = SocketRecord.__hash__


class RecordParser:
    """The one reading of an ``inet_diag_msg`` (72 bytes), through the one layout
    (``_FIELDS``, with ``_READ`` its state and inode behind a netlink header, as the reply
    loop reads them) and the one state table: into a ``SocketRecord`` (``parse``), or into
    its state and inode only (``state_and_inode``)."""

    @staticmethod
    def parse(raw: bytes) -> SocketRecord:
        """Decode one message (``raw`` holds exactly its 72 bytes): a ``DiagRecord`` that
        decodes its other fields on first use, or with ``FAST_CONSTRUCTION`` off a plain
        record built whole. An unknown state number raises ValueError (``from_kernel``): a
        kernel newer than tcplab."""
        state, inode = RecordParser.state_and_inode(raw)
        if FAST_CONSTRUCTION:
            record = _new(DiagRecord)
            _set(record, "__dict__", {"state": state, "inode": inode, "_raw": bytes(raw)})
            return record
        return SocketRecord(state=state, inode=inode, **_decoded(raw))

    @staticmethod
    def state_and_inode(raw: bytes) -> tuple[TcpState, int]:
        """Only the state and the inode of one message, read at the offsets the reply loop
        reads them (``_READ``)."""
        state, inode = _STATE_INODE.unpack_from(raw)
        return _STATE_LIST[state] or from_kernel(state), inode
