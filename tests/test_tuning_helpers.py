"""The tuning scenarios' helper modules (scenarios/_*.py): filters, raw parsing, defaults.

The socket filters are checked against the real kernel on loopback (no root needed): a
deaf socket must not receive, and a SYN-only listener must never complete a handshake.
"""

from __future__ import annotations

import fcntl
import importlib
import os
import socket
import struct
import sys
import termios
import time
from pathlib import Path
from types import ModuleType

import pytest

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
if str(SCENARIOS) not in sys.path:
    sys.path.append(str(SCENARIOS))


def helper(name: str) -> ModuleType:
    return importlib.import_module(name)


def test_flag_names() -> None:
    raw = helper("_rawtcp")
    assert raw.flag_names(raw.FIN | raw.ACK) == "FIN|ACK"
    assert raw.flag_names(raw.RST) == "RST"
    assert raw.flag_names(0) == "none"


def test_parse_segment() -> None:
    raw = helper("_rawtcp")
    tcp = struct.pack("!HHIIBBHHH", 1234, 80, 1000, 2000, 5 << 4, raw.FIN | raw.ACK, 512, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + 3, 0, 0, 64, 6, 0,
                     socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.2"))
    segment = raw._parse(ip + tcp + b"abc")
    assert (segment.sport, segment.dport, segment.seq, segment.ack) == (1234, 80, 1000, 2000)
    assert segment.payload == 3 and segment.dst == "127.0.0.2"
    assert raw._parse(b"\x60" + bytes(60)) is None  # IPv6: not ours


def _pair() -> tuple[socket.socket, socket.socket, socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    return listener, client, server


def test_deaf_socket_receives_nothing() -> None:
    filters = helper("_filters")
    listener, client, server = _pair()
    with listener, client, server:
        filters.deafen(server)
        client.sendall(b"hello")
        server.setblocking(False)
        # Held, polled: for 0.2 s nothing is readable, and the bytes stay unacknowledged in
        # the client's send queue (dropped by the filter, not merely late).
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            with pytest.raises(BlockingIOError):
                server.recv(10)
            assert _outq(client) == len(b"hello")
            time.sleep(0.02)


def _outq(sock: socket.socket) -> int:
    """Bytes in ``sock``'s send queue, unsent or unacknowledged (SIOCOUTQ)."""
    return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0])


def test_syn_only_listener_never_completes_a_handshake() -> None:
    filters = helper("_filters")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        filters.accept_only_syns(listener)
        with socket.create_connection(listener.getsockname(), timeout=1):
            listener.setblocking(False)
            deadline = time.monotonic() + 0.2
            while time.monotonic() < deadline:  # held, polled: the final ACK was dropped
                with pytest.raises(BlockingIOError):
                    listener.accept()
                time.sleep(0.02)


def test_syns_only_from_one_address_lets_the_others_complete() -> None:
    filters = helper("_filters")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        filters.accept_only_syns_from(listener, "127.0.0.1")
        with socket.create_connection(listener.getsockname(), timeout=1,
                                      source_address=("127.0.0.2", 0)):
            listener.settimeout(1)
            accepted, peer = listener.accept()  # from 127.0.0.2: completed
            accepted.close()
            assert peer[0] == "127.0.0.2"
        with socket.create_connection(listener.getsockname(), timeout=1):  # from 127.0.0.1
            listener.setblocking(False)
            deadline = time.monotonic() + 0.2
            while time.monotonic() < deadline:  # held, polled: its final ACK was dropped
                with pytest.raises(BlockingIOError):
                    listener.accept()
                time.sleep(0.02)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="unshare --net needs root")
async def test_fresh_netns_defaults() -> None:
    defaults = helper("_defaults")
    values = await defaults.fresh_netns_ints("net.ipv4.tcp_keepalive_probes",
                                             "net.ipv4.tcp_syncookies")
    assert values["net.ipv4.tcp_keepalive_probes"] > 0
    assert values["net.ipv4.tcp_syncookies"] in (0, 1, 2)
