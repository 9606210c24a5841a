"""Classic BPF socket filters that make one TCP socket deaf, without touching any device.

``SO_ATTACH_FILTER`` on a TCP socket runs the program on every segment the kernel is about
to hand to that socket (``tcp_filter`` in ``tcp_v4_rcv``, before any TCP processing): a
segment the filter refuses is discarded as if it had been lost on the wire. This kernel has
no netem and no drop action for tc, and taking ``lo`` down silences a whole namespace, so a
filter on the *receiving* socket is the deterministic way to lose exactly the segments a
scenario wants lost:

* ``deaf``: every segment is dropped: the socket behaves like a host that vanished (its
  keepalive probes and resets never arrive).
* ``syn_only``: on a listener, only segments with SYN pass; the ACK that completes a
  handshake is dropped, so request sockets stay in SYN_RECV as behind a SYN flood.
* ``syns_only_from``: the same for one source address only; clients from any other
  address complete their handshakes (the legitimate clients during a flood).

On a TCP socket the program sees the segment from the TCP header on (offset 13: flags);
the IP header is reached through the kernel's ``SKF_NET_OFF`` negative offset.
"""

from __future__ import annotations

import ctypes
import socket
import struct

SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
SO_DETACH_FILTER = getattr(socket, "SO_DETACH_FILTER", 27)

_LD_B_ABS = 0x30  # BPF_LD | BPF_B | BPF_ABS
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_SKF_NET_OFF = -0x100000  # linux/filter.h: offsets from the network header
_IP_SADDR = (_SKF_NET_OFF + 12) & 0xFFFFFFFF
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
_ACCEPT = 0xFFFFFFFF
_DROP = 0
TCP_SYN = 0x02

Insn = tuple[int, int, int, int]

DEAF: tuple[Insn, ...] = ((_RET_K, 0, 0, _DROP),)
SYN_ONLY: tuple[Insn, ...] = (
    (_LD_B_ABS, 0, 0, 13),  # the TCP flags byte
    (_JSET_K, 0, 1, TCP_SYN),  # SYN set: next insn (accept), else skip it (drop)
    (_RET_K, 0, 0, _ACCEPT),
    (_RET_K, 0, 0, _DROP),
)


def attach(sock: socket.socket, program: tuple[Insn, ...]) -> None:
    """Attach a classic BPF ``program`` to ``sock`` (the kernel copies it)."""
    code = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def deafen(sock: socket.socket) -> None:
    """From now on ``sock`` receives nothing: a peer that is gone without a word."""
    attach(sock, DEAF)


def accept_only_syns(listener: socket.socket) -> None:
    """Handshakes on ``listener`` never complete: the final ACKs are dropped."""
    attach(listener, SYN_ONLY)


def syns_only_from(source: str) -> tuple[Insn, ...]:
    """A program dropping every segment from IPv4 ``source`` except SYNs."""
    address = int.from_bytes(socket.inet_aton(source), "big")
    return (
        (_LD_B_ABS, 0, 0, 13),  # the TCP flags byte
        (_JSET_K, 2, 0, TCP_SYN),  # SYN: accept
        (_LD_W_ABS, 0, 0, _IP_SADDR),  # the IP source address
        (_JEQ_K, 1, 0, address),  # from ``source``: drop
        (_RET_K, 0, 0, _ACCEPT),
        (_RET_K, 0, 0, _DROP),
    )


def accept_only_syns_from(listener: socket.socket, source: str) -> None:
    """Handshakes from ``source`` never complete on ``listener``; others do."""
    attach(listener, syns_only_from(source))
