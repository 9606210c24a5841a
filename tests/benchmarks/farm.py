"""A farm of real loopback TCP sockets for the benchmark: the "other" sockets a lookup or a
dump has to cope with.

Sockets are plain blocking stdlib sockets (no trio): the farm is scaffolding, built as fast
as the kernel allows, not the thing measured. Its mix resembles a busy server's table:

* a few listeners (each with many accepted connections: their local address repeats);
* ESTABLISHED pairs (client and accepted server end, two fds each);
* half-closed pairs: the client closed (an orphan in FIN_WAIT2, no fd) and the server never
  did (CLOSE_WAIT, one fd);
* TIME_WAIT sockets: both ends closed, client first; nothing holds an fd.

Sockets without an fd (TIME_WAIT, orphans) let the farm exceed the per-process fd limit
(``RLIMIT_NOFILE``, which only CAP_SYS_RESOURCE could raise): the mix is shifted towards
them when fds are short, and ``Farm.counts`` says what was built.
"""

from __future__ import annotations

import resource
import socket
from collections import Counter
from dataclasses import dataclass, field

#: Connections per listener, and per connect()/accept() batch (well under somaxconn).
PER_LISTENER = 1000
BATCH = 500
#: fds kept free for the interpreter, psutil, subprocesses, the diag socket...
FD_RESERVE = 300


def raise_fd_limit() -> int:
    """Raise the soft fd limit to the hard one; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


@dataclass
class Plan:
    """How many sockets of each kind to build for ``total`` other sockets."""

    listeners: int
    established_pairs: int
    half_closed_pairs: int
    time_wait: int

    @property
    def total(self) -> int:
        return self.listeners + 2 * self.established_pairs + 2 * self.half_closed_pairs + self.time_wait

    @property
    def fds(self) -> int:
        return self.listeners + 2 * self.established_pairs + self.half_closed_pairs

    @classmethod
    def for_total(cls, total: int, fd_budget: int) -> Plan:
        """About 20% TIME_WAIT, 5% half-closed pairs, one listener per thousand sockets, the
        rest ESTABLISHED pairs; more TIME_WAIT if the fds would not suffice."""
        if total <= 0:
            return cls(0, 0, 0, 0)
        listeners = max(1, total // 1000)
        half = total // 40
        time_wait = total // 5
        rest = total - listeners - 2 * half - time_wait
        established = rest // 2
        time_wait += rest - 2 * established  # odd one out
        plan = cls(listeners, established, half, time_wait)
        while plan.fds > fd_budget and plan.established_pairs > 0:
            cut = min(plan.established_pairs, (plan.fds - fd_budget + 1) // 2)
            plan.established_pairs -= cut
            plan.time_wait += 2 * cut
        return plan


@dataclass
class Farm:
    """The sockets of one plan; ``close()`` closes every fd it holds."""

    host: str
    plan: Plan
    sockets: list[socket.socket] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


def _pairs(listener: socket.socket, count: int) -> list[tuple[socket.socket, socket.socket]]:
    """``count`` connections to ``listener``, accepted: (client, server) each."""
    address = listener.getsockname()
    pairs: list[tuple[socket.socket, socket.socket]] = []
    while len(pairs) < count:
        clients = []
        for _ in range(min(BATCH, count - len(pairs))):
            client = socket.socket(listener.family, socket.SOCK_STREAM)
            client.connect(address)
            clients.append(client)
        for client in clients:
            server, _ = listener.accept()
            pairs.append((client, server))
    return pairs


def build(plan: Plan, host: str = "127.0.0.1") -> Farm:
    """Open every socket of ``plan`` on ``host`` (loopback), spread over its listeners."""
    farm = Farm(host, plan)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listeners = []
        for _ in range(plan.listeners):
            listener = socket.socket(family, socket.SOCK_STREAM)
            farm.sockets.append(listener)
            listener.bind((host, 0))
            listener.listen(BATCH + 16)
            listeners.append(listener)
        farm.counts["LISTEN"] += len(listeners)
        if not listeners:
            return farm
        jobs = (
            ["established"] * plan.established_pairs
            + ["half"] * plan.half_closed_pairs
            + ["time_wait"] * plan.time_wait
        )
        # Fill each listener with a slice of the jobs, in order.
        for index in range(0, len(jobs), PER_LISTENER):
            chunk = jobs[index : index + PER_LISTENER]
            listener = listeners[(index // PER_LISTENER) % len(listeners)]
            for kind, (client, server) in zip(chunk, _pairs(listener, len(chunk)), strict=True):
                if kind == "established":
                    farm.sockets += (client, server)
                    farm.counts["ESTABLISHED"] += 2
                elif kind == "half":
                    client.close()  # FIN: the client becomes an orphan in FIN_WAIT2
                    farm.sockets.append(server)  # never closed: CLOSE_WAIT
                    farm.counts["FIN_WAIT2"] += 1
                    farm.counts["CLOSE_WAIT"] += 1
                else:
                    client.close()  # the active closer keeps TIME_WAIT ...
                    server.close()  # ... once the server's FIN arrives
                    farm.counts["TIME_WAIT"] += 1
    except BaseException:
        farm.close()
        raise
    return farm
