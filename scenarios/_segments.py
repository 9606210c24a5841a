"""Closing many connections in one way each, and reading from the captured segments how
every close went (segments scenario, C04).

The connections are plain blocking sockets on loopback in the scenario's private namespace
(hundreds in a second); a ``packets.Tap`` sees every segment once, as it is sent. The passive
side is always the server; the client closes first. The ways differ only in what the
server's application does after the FIN, which is what decides on Linux whether its FIN can
carry the ACK: on a FIN the kernel delays its ACK (``tcp_fin`` enters pingpong mode,
net/ipv4/tcp_input.c; the delayed-ACK timer waits ``ato``: a few ms on a connection that
never received data, 40 ms (TCP_ATO_MIN) once it did, at most TCP_DELACK_MAX = 200 ms,
include/net/tcp.h), and a FIN sent before that timer fires carries the ACK.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable

import trio

from _shortconn import REQUEST, RESPONSE
from tcplab import TcpState
from tcplab.judges.segments import CloseWay
from tcplab.kernel.observer import DiagObserver
from tcplab.kernel.packets import Segment, Tap, TcpFlags

ACK, FIN, SYN = TcpFlags.ACK, TcpFlags.FIN, TcpFlags.SYN
#: the work the server does before closing in the ``work`` way: longer than TCP_DELACK_MAX
WORK_S = 0.25

Pair = tuple[socket.socket, socket.socket]


def pair(listener: socket.socket) -> Pair:
    client = socket.create_connection(listener.getsockname(), timeout=5)
    server, _ = listener.accept()
    server.settimeout(5)
    return client, server


def drain(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def at_once(client: socket.socket, server: socket.socket) -> None:
    """The client closes; the server reads end-of-file and closes at once."""
    client.close()
    drain(server)
    server.close()


def shutdown_at_once(client: socket.socket, server: socket.socket) -> None:
    """Both use shutdown(SHUT_WR) instead of close(), the server as soon as it reads EOF."""
    client.shutdown(socket.SHUT_WR)
    drain(server)
    server.shutdown(socket.SHUT_WR)
    drain(client)
    client.close()
    server.close()


def reply_then_close(client: socket.socket, server: socket.socket) -> None:
    """The client sends a request and its FIN; the server still has its reply to send,
    sends it, then closes (the article's reason: the passive side may still have data)."""
    client.sendall(REQUEST)
    client.shutdown(socket.SHUT_WR)
    if drain(server) != REQUEST:
        raise RuntimeError("request torn on loopback")
    server.sendall(RESPONSE)
    server.close()
    drain(client)
    client.close()


async def one_by_one(listener: socket.socket, tap: Tap,
                     way: Callable[[socket.socket, socket.socket], None],
                     n: int) -> list[int]:
    """``n`` connections closed ``way``, one after another; their client ports."""
    ports = []
    for _ in range(n):
        client, server = pair(listener)
        ports.append(client.getsockname()[1])
        way(client, server)
        tap.segments()  # keep the packet socket's queue short
        await trio.lowlevel.checkpoint()
    return ports


async def after_work(listener: socket.socket, n: int) -> list[int]:
    """``n`` connections at once: every client closes, the server works ``WORK_S`` (for all
    of them at once, to keep the run short), then reads end-of-file and closes each."""
    pairs = [pair(listener) for _ in range(n)]
    ports = [client.getsockname()[1] for client, _ in pairs]
    for client, _ in pairs:
        client.close()
    await trio.sleep(WORK_S)  # the application's work: the workload, not a wait for the kernel
    for _, server in pairs:
        drain(server)
        server.close()
    return ports


def classify(way: str, ports: Iterable[int], segments: list[Segment],
             server_port: int) -> tuple[CloseWay, int, int]:
    """How each connection (by client port) closed; and of their handshakes, how many were
    captured and how many were exactly SYN, SYN|ACK, ACK."""
    by_port: dict[int, list[Segment]] = {}
    for s in segments:
        sport, dport = s.src.port, s.dst.port
        key = sport if dport == server_port else dport if sport == server_port else None
        if key is not None:
            by_port.setdefault(key, []).append(s)
    apart = together = handshakes = three = 0
    ports = list(ports)
    for port in ports:
        segs = by_port.get(port, [])
        if segs:
            handshakes += 1
            shape = [(s.src.port == server_port, s.flags & (SYN | ACK | FIN), s.payload)
                     for s in segs[:3]]
            three += shape == [(False, SYN, 0), (True, SYN | ACK, 0), (False, ACK, 0)]
        fin = next((s for s in segs if s.src.port == port and FIN in s.flags), None)
        if fin is None:
            continue
        end = (fin.seq + fin.payload + 1) & 0xFFFFFFFF
        answer = next((s for s in segs[segs.index(fin) + 1:] if s.src.port == server_port
                       and ACK in s.flags and s.ack == end), None)
        if answer is not None:
            together += FIN in answer.flags
            apart += FIN not in answer.flags
    return CloseWay(way, len(ports), apart, together), handshakes, three


def settled(port: int) -> bool:
    """Every connection on ``port`` finished closing: only TIME_WAIT (and the listener) left."""
    with DiagObserver() as observer:
        return all(r.state in (TcpState.TIME_WAIT, TcpState.LISTEN)
                   for r in observer.snapshot(port=port))
