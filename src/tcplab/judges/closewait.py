"""Judges of CLOSE_WAIT leaks and of the tools that find them: C18, C19, C20, C21, C24, C39,
C40.

States are kernel state names (``CLOSE_WAIT``), ``None`` for an end the kernel no longer
reports (gone), ``CLOSED`` for a socket the kernel dropped while a process still holds its
fd (a reset). Kernel facts the rules rely on:

* CLOSE_WAIT has no timer of its own: only the application's close() (or a keepalive the
  application enabled, claims C22/C23) ends it (net/ipv4/tcp_input.c, ``tcp_fin``: the FIN
  moves ESTABLISHED to CLOSE_WAIT and arms nothing).
* An orphaned FIN_WAIT2 (its process called close()) lives ``tcp_fin_time()``: the socket's
  TCP_LINGER2 if set, else ``net.ipv4.tcp_fin_timeout`` (60 s by default), then vanishes
  (include/net/tcp.h ``tcp_fin_time``; net/ipv4/tcp.c ``tcp_close``). A FIN_WAIT2 whose
  process only called shutdown() keeps its fd and has no such timer.
* A socket is released when the last reference to its open file goes (``sock_close`` from
  ``__fput``): a socket shared by several processes (fork, SCM_RIGHTS) outlives each of
  them but the last.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tcplab.judges import Judgement, judge, path_text
from tcplab.verdict import Verdict

C, P, R = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED
CW, FW2, TW = "CLOSE_WAIT", "FIN_WAIT2", "TIME_WAIT"


def _s(value: float | None, none: str = "never measured") -> str:
    return none if value is None else f"{value:.1f} s"


# -- C18 ------------------------------------------------------------------------------------

#: How long CLOSE_WAIT must be seen to stay, with no timer, for "it persists" to count.
MIN_PERSIST_S = 1.0


@dataclass(frozen=True)
class PassiveCloseWait:
    """One connection the client closes while the server's application does nothing."""

    #: each end's observed states, in order (None: gone)
    closer_path: tuple[str | None, ...]
    passive_path: tuple[str | None, ...]
    #: how long the passive end was seen to stay in CLOSE_WAIT while its app did nothing
    held_s: float | None
    #: the kernel timer on it meanwhile ("off": nothing in the kernel will end it)
    timer: str | None
    #: where the application's close() took it (LAST_ACK, or None: gone at once)
    after_close: str | None
    #: it left CLOSE_WAIT once the application called close()
    ended_by_close: bool


@judge("C18", C, R)
def c18(m: PassiveCloseWait) -> Judgement:
    """CLOSE_WAIT on the passive side only, held with no timer until the app's close()."""
    passive = CW in m.passive_path and CW not in m.closer_path
    persists = m.held_s is not None and m.held_s >= MIN_PERSIST_S and m.timer == "off"
    fixed = m.ended_by_close and m.after_close in ("LAST_ACK", None)
    return Judgement(
        C if passive and persists and fixed else R,
        f"the closer went {path_text(m.closer_path)}, the passive end "
        f"{path_text(m.passive_path)}; CLOSE_WAIT stayed {_s(m.held_s)} while the application "
        f"did nothing (kernel timer: {m.timer or 'not read'}; at least {MIN_PERSIST_S:g} s "
        f"with no timer counts as persisting), and the application's close() "
        f"{'ended it: ' + (m.after_close or 'gone') if m.ended_by_close else 'did not end it'}",
    )


# -- C19 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeakPath:
    """One way a handler's read ends, and what its socket is once it returns without close()."""

    #: the path: "end of file", "request cut short", "reset" ...
    path: str
    #: what the read gave the code: "EOF", an errno name, an exception name
    read: str
    #: the socket's state after the handler returned (CLOSED: dropped by the kernel, fd open)
    state: str | None
    #: the process still holds the fd
    held: bool


@dataclass(frozen=True)
class ReturnWithoutClose:
    """Handlers that return without close() on each path, and the same paths fixed."""

    buggy: tuple[LeakPath, ...]
    #: the fixed handler (close() on every path): states left behind (None: gone)
    fixed: tuple[LeakPath, ...] = ()
    #: the tools that listed the leaked CLOSE_WAIT sockets (leak check, watch), with counts
    found_by: tuple[str, ...] = field(default=())


@judge("C19", C, P, R)
def c19(m: ReturnWithoutClose) -> Judgement:
    """Returning without close() on EOF or on an error leaves CLOSE_WAIT.

    Partly when an error path leaves the fd on a socket that is no longer in CLOSE_WAIT
    (a reset: the kernel dropped it, so CLOSE_WAIT counts never show that leak)."""
    def text(p: LeakPath) -> str:
        return f"{p.path} (read: {p.read}) -> {p.state or 'gone'}{', fd held' if p.held else ''}"

    eof = [p for p in m.buggy if p.read == "EOF"]
    errors = [p for p in m.buggy if p.read != "EOF"]
    leaks_cw = [p for p in m.buggy if p.state == CW and p.held]
    eof_ok = bool(eof) and all(p in leaks_cw for p in eof)
    fixed_cw = [p for p in m.fixed if p.state == CW]
    other = [p for p in errors if p not in leaks_cw]
    verdict = R if not eof_ok or fixed_cw else P if other else C
    found = f"; found by {', '.join(m.found_by)}" if m.found_by else ""
    after = "; ".join(f"{p.path} -> {p.state or 'gone'}" for p in m.fixed)
    fixed = (f"; with close() on every path: {after}"
             if m.fixed else "")
    tail = (f"; an error path left no CLOSE_WAIT ({', '.join(p.path for p in other)}): the "
            "kernel had already dropped the socket, the leak is an fd that CLOSE_WAIT counts "
            "never show" if other and verdict is P else "")
    return Judgement(verdict, f"without close(): {'; '.join(text(p) for p in m.buggy) or 'no path run'}"
                              f"{found}{fixed}{tail}")


# -- C20 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeakPair:
    """The leaking end's CLOSE_WAIT and its peer's FIN_WAIT2: how long each half lasts."""

    #: the closer was in FIN_WAIT2 while the leaking end was in CLOSE_WAIT
    pair_seen: bool
    #: a closer that called close() (orphan): its FIN_WAIT2 lifetime as set on it
    #: (TCP_LINGER2; None: the default, tcp_fin_timeout), the timer left just after, and how
    #: long its FIN_WAIT2 lasted (None: still there when the watch ended)
    orphan_linger_s: float | None
    orphan_timer_s: float | None
    orphan_lasted_s: float | None
    #: the leaking end was still in CLOSE_WAIT when the watch ended, and how long that was
    close_wait_stayed: bool
    watched_s: float | None
    #: a closer that only half-closed (shutdown, fd kept): FIN_WAIT2 timer (None: none) and
    #: whether its pair was still there when the watch ended
    half_timer_s: float | None
    half_pair_stayed: bool
    #: net.ipv4.tcp_fin_timeout here (what an orphan gets without TCP_LINGER2)
    tcp_fin_timeout_s: int | None


@judge("C20", C, P, R)
def c20(m: LeakPair) -> Judgement:
    """The leak shows as FIN_WAIT2 facing CLOSE_WAIT, for as long as the leak lasts.

    Partly when the orphaned FIN_WAIT2 ended while the CLOSE_WAIT stayed: the pair lasts
    only the peer's FIN_WAIT2 lifetime (tcp_fin_timeout) unless the peer merely half-closed."""
    orphan_ended = m.orphan_lasted_s is not None and m.close_wait_stayed
    verdict = R if not m.pair_seen else P if orphan_ended else C
    orphan = (f"ended after {m.orphan_lasted_s:.1f} s" if m.orphan_lasted_s is not None
              else "was still there")
    return Judgement(
        verdict,
        f"the FIN_WAIT2/CLOSE_WAIT pair was {'seen' if m.pair_seen else 'not seen'}; over "
        f"{_s(m.watched_s)} the orphaned FIN_WAIT2 of a peer that called close() {orphan} "
        f"(lifetime set {_s(m.orphan_linger_s, 'none')}, timer {_s(m.orphan_timer_s, 'none')}; "
        f"tcp_fin_timeout={m.tcp_fin_timeout_s} s for sockets without one) while the CLOSE_WAIT "
        f"{'stayed' if m.close_wait_stayed else 'did not stay'}; a peer that only half-closed "
        f"had {'no timer' if m.half_timer_s is None else f'a {m.half_timer_s:.1f} s timer'} and "
        f"its pair {'stayed' if m.half_pair_stayed else 'did not stay'}",
    )


# -- C21 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolLeak:
    """A client pool whose streamed responses are never closed, against a server with a
    keep-alive timeout; then the fixes."""

    pool_size: int
    #: pooled sockets in CLOSE_WAIT once the server's timeout closed them, and their Recv-Q
    close_wait: int
    recv_q: tuple[int, ...]
    #: a new request failed waiting for the pool: while they were still ESTABLISHED, and
    #: once they were CLOSE_WAIT (None: not tried); how long it waited the second time
    dry_before: bool | None
    dry_in_close_wait: bool | None
    waited_s: float | None
    #: closing the responses released the sockets and the next request succeeded
    freed_by_closing: bool
    #: a client that reads and closes its responses: idle pooled sockets that went
    #: CLOSE_WAIT on the server's timeout, and requests that failed on reusing the pool
    tidy_close_wait: int = 0
    tidy_failed: int = 0


@judge("C21", C, R)
def c21(m: PoolLeak) -> Judgement:
    """Unclosed responses leave the pooled sockets in CLOSE_WAIT and the pool runs dry."""
    holds = (m.pool_size > 0 and m.close_wait == m.pool_size and m.dry_in_close_wait is True
             and m.freed_by_closing)
    dry = {True: "failed waiting for the pool", False: "got a connection", None: "not tried"}
    return Judgement(
        C if holds else R,
        f"{m.close_wait} of {m.pool_size} pooled sockets with unclosed responses went CLOSE_WAIT "
        f"when the server's keep-alive timeout closed them (Recv-Q {list(m.recv_q)}: unread "
        f"body + FIN); a new request then {dry[m.dry_in_close_wait]}"
        f"{f' after {m.waited_s:.2f} s' if m.waited_s is not None else ''} (before the "
        f"timeout, while they were ESTABLISHED: {dry[m.dry_before]}); closing the responses "
        f"{'freed the pool' if m.freed_by_closing else 'did not free the pool'}; a client "
        f"closing its responses had {m.tidy_close_wait} idle pooled sockets in CLOSE_WAIT "
        f"after the timeout and {m.tidy_failed} failed requests on reusing the pool",
    )


# -- C24 ------------------------------------------------------------------------------------

#: The three kinds of owner C24 is tried on.
ONE, THREADS, FORKED = "one process", "threads", "forked child"


@dataclass(frozen=True)
class OwnerKill:
    """CLOSE_WAIT sockets held by one kind of owner; who the /proc/*/fd scan (what lsof
    reads on Linux) names as holding them; what killing the named processes leaves."""

    #: ONE, THREADS or FORKED
    owner: str
    sockets: int
    #: the processes that hold them (the truth: the processes the experiment started;
    #: FORKED: the server first, then the child it started)
    holders: tuple[int, ...]
    #: the pids the scan named as holding every one of the sockets
    named: tuple[int, ...]
    #: threads (tasks) of the first holder that list the sockets in /proc/PID/task/TID/fd
    threads: int
    #: CLOSE_WAIT sockets left after each kill, holders killed in order (index 0: after
    #: killing the first holder, the process a person would kill)
    left_after_kill: tuple[int, ...]


@dataclass(frozen=True)
class KillTheOwner:
    """C24 tried on each kind of owner in the same run."""

    owners: tuple[OwnerKill, ...]


@judge("C24", C, P, R)
def c24(m: KillTheOwner) -> Judgement:
    """The scan names the owner, and killing it releases every CLOSE_WAIT socket it held.

    Tried on a single process, on a multi-threaded one (seed 003's listing, from Linux 2.4,
    most likely shows two LinuxThreads threads: each had its own pid, and a thread killed
    by a signal made the thread manager send that signal to all the others, linuxthreads
    manager.c ``pthread_reap_children``), and on a server whose child inherited the sockets.
    Refuted when killing a single or multi-threaded owner leaves them, or when the scan
    misses a holder; partly when only the inherited copy survives the server's death (the
    article leaves out inherited fds: a socket goes with the last process holding it,
    ``__fput`` -> ``sock_close``)."""
    by = {o.owner: o for o in m.owners}

    def found(o: OwnerKill) -> bool:
        return o.sockets > 0 and sorted(o.named) == sorted(o.holders)

    def freed(o: OwnerKill) -> bool:
        return bool(o.left_after_kill) and o.left_after_kill[0] == 0

    one, threads, forked = by.get(ONE), by.get(THREADS), by.get(FORKED)
    plain = [o for o in (one, threads) if o is not None]
    if len(plain) < 2 or not all(found(o) and freed(o) for o in plain):
        verdict = R
    elif forked is None or (found(forked) and freed(forked)):
        verdict = C
    elif found(forked) and forked.left_after_kill[-1] == 0:
        verdict = P
    else:
        verdict = R

    def text(o: OwnerKill) -> str:
        kills = ", ".join(f"{n} left after {i + 1} kill{'s' if i else ''}"
                          for i, n in enumerate(o.left_after_kill))
        tasks = f" ({o.threads} threads of pid {o.holders[0]} list them)" if (
            o.owner == THREADS and o.holders) else ""
        return (f"{o.owner}: {o.sockets} sockets held by {list(o.holders)}, the scan named "
                f"{list(o.named)}{tasks}; {kills or 'nobody killed'}")

    tried = "; ".join(text(o) for o in m.owners) or "no owner tried"
    tail = ("; the child's inherited copies outlived the server: a socket goes only with "
            "the last process holding it" if verdict is P else
            "; inherited fds not tried" if forked is None and verdict is C else "")
    return Judgement(verdict, tried + tail)


# -- C39 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeepAliveCloser:
    """An HTTP server's keep-alive timeout closing an idle connection; who holds TIME_WAIT."""

    #: idle connections the server's timeout closed
    idle_closed: int
    #: the client closes its end promptly after the server's FIN
    server_path: tuple[str | None, ...]
    client_path: tuple[str | None, ...]
    server_timewait_s: float | None
    #: contrast: the client closes before the server's timeout
    contrast_client_timewait_s: float | None
    contrast_server_path: tuple[str | None, ...]
    #: the client closes only after the server's orphaned FIN_WAIT2 ran out (its lifetime
    #: set with TCP_LINGER2): the server end's path and TIME_WAIT timer (None: none)
    late_fin_wait2_s: float | None = None
    late_server_path: tuple[str | None, ...] = ()
    late_server_timewait_s: float | None = None


@judge("C39", C, P, R)
def c39(m: KeepAliveCloser) -> Judgement:
    """The server closing idle connections is the active closer and holds the TIME_WAIT.

    Partly when a client that closes its end only after the server's FIN_WAIT2 lifetime
    (tcp_fin_timeout) leaves no TIME_WAIT on the server: the same condition as C20's."""
    server_holds = (m.idle_closed >= 1 and m.server_timewait_s is not None
                    and TW not in m.client_path)
    contrast = m.contrast_client_timewait_s is not None and TW not in m.contrast_server_path
    late_none = bool(m.late_server_path) and m.late_server_timewait_s is None
    verdict = R if not (server_holds and contrast) else P if late_none else C
    late = (f"; a client closing only after the server's {_s(m.late_fin_wait2_s)} FIN_WAIT2 "
            f"lifetime: the server end went {path_text(m.late_server_path)} "
            f"({'TIME_WAIT ' + _s(m.late_server_timewait_s) if m.late_server_timewait_s is not None else 'no TIME_WAIT'})"
            if m.late_server_path else "")
    return Judgement(
        verdict,
        f"the server's keep-alive timeout closed {m.idle_closed} idle connection(s): its end "
        f"went {path_text(m.server_path)} (TIME_WAIT timer {_s(m.server_timewait_s, 'none')}), "
        f"the client's {path_text(m.client_path)}; when the client closed first, the client "
        f"held TIME_WAIT {_s(m.contrast_client_timewait_s, 'no')} and the server went "
        f"{path_text(m.contrast_server_path)}{late}",
    )


# -- C40 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StateTools:
    """The same sockets read by the kernel (sock_diag + /proc/*/fd), ``netstat -n | awk``,
    ``netstat -tanp`` and ``lsof -i``, in a namespace holding only the workload."""

    #: connections per state (LISTEN excluded), from the kernel and from netstat -n | awk
    kernel_counts: dict[str, int]
    netstat_counts: dict[str, int] | None
    #: every socket the kernel had (listeners included), and of those, held by a process
    sockets: int
    owned: int
    #: sockets each tool listed with the kernel's state and owner (netstat: "-" when none)
    lsof_right: int
    lsof_wrong: int
    netstat_right: int
    netstat_wrong: int
    #: states of the sockets lsof -i did not list, with counts
    lsof_missing: dict[str, int]


@judge("C40", C, P, R)
def c40(m: StateTools) -> Judgement:
    """netstat | awk counts per state; netstat -a / lsof -i give each socket's state and owner.

    Partly when the counts are right and every listed socket is right, but sockets no
    process holds (TIME_WAIT, orphans) cannot have an owner: lsof -i leaves them out."""
    counts_ok = m.netstat_counts is not None and m.netstat_counts == m.kernel_counts
    listed_ok = (m.sockets > 0 and m.lsof_wrong == 0 and m.netstat_wrong == 0
                 and m.netstat_right == m.sockets and m.lsof_right == m.owned)
    missing = sum(m.lsof_missing.values())
    verdict = R if not (counts_ok and listed_ok) else P if missing else C
    gaps = ", ".join(f"{n} {s}" for s, n in sorted(m.lsof_missing.items())) or "none"
    return Judgement(
        verdict,
        f"netstat -n | awk counted {m.netstat_counts}, the kernel {m.kernel_counts} "
        f"({'equal' if counts_ok else 'different'}); of {m.sockets} sockets ({m.owned} held "
        f"by a process) netstat -tanp listed {m.netstat_right} with the kernel's state and "
        f"owner ({m.netstat_wrong} wrong), lsof -i {m.lsof_right} ({m.lsof_wrong} wrong); "
        f"not in lsof -i: {gaps}"
        + (" (no process holds them: netstat shows them with no owner)" if verdict is P else ""),
    )
