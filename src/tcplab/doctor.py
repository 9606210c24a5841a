"""A read-only audit of this host's TCP tunables, against what they really do.

For each tunable the articles talk about (``kernel.sysctl.WATCHED``) the doctor reads the
current value from ``/proc/sys`` (saying plainly when this kernel has no such file), then
says what the setting does here: from the verdicts of the newest results file's ledger
when a scenario measured the related claims, and otherwise from facts stated with their
source (the kernel's ``Documentation/networking/ip-sysctl.rst`` for Linux 6.18, or the
kernel source named). It adds advice computed from the value, and counts the host's TCP
sockets per state through sock_diag.

Nothing is written: the doctor only opens ``/proc/sys`` for reading and sends sock_diag
dump requests, which change no state in the kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tcplab.kernel import sysctl
from tcplab.kernel.observer import DiagObserver
from tcplab.states import TcpState

IP_SYSCTL = "Documentation/networking/ip-sysctl.rst (Linux 6.18)"

Advice = Callable[[str], str]


def _ints(value: str) -> list[int]:
    return [int(x) for x in value.split() if x.lstrip("-").isdigit()]


def _int(value: str) -> int | None:
    numbers = _ints(value)
    return numbers[0] if len(numbers) == 1 else None


def _fin_timeout(value: str) -> str:
    n = _int(value)
    tail = ("it will not shorten TIME_WAIT, which stays 60 s (TCP_TIMEWAIT_LEN, compiled in); "
            "fix FIN_WAIT2 pile-ups by making peers close, and TIME_WAIT ones by closing on the "
            "client side or keeping connections alive")
    if n is not None and n < 60:
        return f"lowered to {n} s: orphaned FIN_WAIT2 sockets go sooner; " + tail
    return "default-like; " + tail


def _tw_reuse(value: str) -> str:
    return {
        "0": "TIME_WAIT ports are never reused for outgoing connections: 2 (the default) is safe "
             "for loopback; 1 only helps clients, and needs tcp_timestamps on",
        "1": "outgoing connections may take over a TIME_WAIT four-tuple (older than "
             "tcp_tw_reuse_delay) when timestamps prove it safe; it never helps a server's "
             "accepted connections",
        "2": "the default: reuse only for loopback connections; set 1 only if a client host "
             "really runs out of ports to the same destination",
    }.get(value, f"unexpected value {value}: the kernel documents 0, 1 and 2")


def _tw_reuse_delay(value: str) -> str:
    return f"a TIME_WAIT socket becomes reusable (when tcp_tw_reuse allows) after {value} ms; " \
        "keep it at or above the peer's timestamp clock tick (default 1000)"


def _max_tw_buckets(value: str) -> str:
    return (f"up to {value} TIME_WAIT sockets; beyond that, closing sockets skip TIME_WAIT "
            "(counted in TcpExt.TCPTimeWaitOverflow) — raise it rather than lower it")


def _keepalive_time(value: str) -> str:
    return (f"idle {value} s before the first probe, for sockets that set SO_KEEPALIVE only "
            "(TCP_KEEPIDLE overrides it per socket); it does not touch TIME_WAIT or FIN_WAIT2")


def _keepalive_intvl(value: str) -> str:
    return f"{value} s between unanswered probes (TCP_KEEPINTVL per socket)"


def _keepalive_probes(value: str) -> str:
    time = sysctl.read_int("net.ipv4.tcp_keepalive_time")
    intvl = sysctl.read_int("net.ipv4.tcp_keepalive_intvl")
    n = _int(value)
    if time is not None and intvl is not None and n is not None:
        return (f"{n} unanswered probes drop the connection: a dead peer goes "
                f"{time} + {n} x {intvl} = {time + n * intvl} s after the last traffic "
                "(only on sockets with SO_KEEPALIVE)")
    return f"{value} unanswered probes drop the connection (TCP_KEEPCNT per socket)"


def _port_range(value: str) -> str:
    numbers = _ints(value)
    if len(numbers) != 2:
        return f"unexpected value {value!r}"
    lo, hi = numbers
    size = hi - lo + 1
    note = " (the kernel default, 32768-60999)" if (lo, hi) == (32768, 60999) else ""
    return (f"{size} ephemeral ports{note}; the limit is per destination address and port, "
            "so only a client talking to one server runs out; widen it on such clients")


def _syncookies(value: str) -> str:
    return {
        "0": "no SYN cookies: a full SYN queue drops new SYNs; 1 (the default) is recommended",
        "1": "the default: cookies only when a listener's SYN queue overflows",
        "2": "cookies for every SYN, even without overflow: TCP options such as window scaling "
             "are lost; meant for testing",
    }.get(value, f"unexpected value {value}")


def _max_syn_backlog(value: str) -> str:
    return (f"{value}; per listener. The SYN queue is also bounded by the listen() backlog "
            "(capped by somaxconn); with syncookies=0 new SYNs from unproven peers are dropped "
            "once 3/4 of this is used (tcp_conn_request in net/ipv4/tcp_input.c)")


def _somaxconn(value: str) -> str:
    return (f"listen() backlogs above {value} are silently cut to {value}; raise the "
            "application's backlog first, this only caps it")


def _timestamps(value: str) -> str:
    return {
        "0": "timestamps off: tcp_tw_reuse cannot reuse anything and PAWS is off; "
             "turn them back on",
        "1": "the default: timestamps with a random offset per connection; tcp_tw_reuse "
             "relies on them",
        "2": "timestamps without random offsets (leaks uptime); 1 is preferred",
    }.get(value, f"unexpected value {value}")


def _abort_on_overflow(value: str) -> str:
    if value == "0":
        return ("the default: a full accept queue drops the handshake's last ACK, and the "
                "client retries")
    return "a full accept queue answers with RST: clients see resets during bursts; keep 0"


def _orphan_retries(value: str) -> str:
    if value == "0":
        return ("the default (0 = 8 retransmissions); lower it only on a loaded server with "
                "many orphans")
    return f"{value} retransmissions for connections we closed before they are killed"


@dataclass(frozen=True)
class Tunable:
    """A sysctl, the claims that speak about it, documented facts and advice for a value."""

    name: str
    claims: tuple[str, ...]
    #: What it does, in our words, when no measured verdict says more.
    fact: str
    source: str
    advice: Advice
    #: Said when this kernel has no such sysctl.
    absent: str = "this kernel has no such sysctl"


TUNABLES: tuple[Tunable, ...] = (
    Tunable("net.ipv4.tcp_fin_timeout", ("C26", "C27", "C25"),
            "how long an orphaned connection (closed by its application) may stay in FIN_WAIT2 "
            "before the kernel drops it; default 60 s. It is not the TIME_WAIT length: TIME_WAIT "
            "is fixed at 60 s (TCP_TIMEWAIT_LEN, include/net/tcp.h)",
            IP_SYSCTL, _fin_timeout),
    Tunable("net.ipv4.tcp_tw_reuse", ("C28", "C13"),
            "0 off, 1 on, 2 loopback only (the default): lets a new outgoing connection take a "
            "TIME_WAIT socket's four-tuple when it is safe from the protocol's point of view. It "
            "governs the kernel's own port choice only: a socket bound to the port beforehand "
            "(SO_REUSEADDR) takes a TIME_WAIT over whenever timestamps were on, whatever this "
            "says (tcp_twsk_unique)",
            IP_SYSCTL + "; tcp_twsk_unique in net/ipv4/tcp_ipv4.c", _tw_reuse),
    Tunable("net.ipv4.tcp_tw_reuse_delay", ("K08", "C28"),
            "milliseconds before a TIME_WAIT socket may be reused, when reuse is on; default 1000",
            IP_SYSCTL, _tw_reuse_delay,
            absent="this kernel predates tcp_tw_reuse_delay (a fixed 1 s delay applies)"),
    Tunable("net.ipv4.tcp_tw_recycle", ("C29",),
            "removed from Linux in 4.12: it broke clients behind NAT; nothing replaces it",
            "Linux 4.12 release (net: tcp: remove tcp_tw_recycle)",
            lambda value: "present: this is not a mainline kernel of 4.12 or later",
            absent="absent: tcp_tw_recycle was removed in Linux 4.12; advice that sets it "
                   "fails here (no such file under /proc/sys)"),
    Tunable("net.ipv4.tcp_max_tw_buckets", ("C30",),
            "the most TIME_WAIT sockets held at once; past it, a closing socket gets no TIME_WAIT "
            "at all. The default is half the established hash table, not a fixed 180000",
            IP_SYSCTL + "; tcp_sk_init in net/ipv4/tcp_ipv4.c", _max_tw_buckets),
    Tunable("net.ipv4.tcp_keepalive_time", ("C34", "C35", "C23"),
            "idle seconds before the first keepalive probe, for sockets with SO_KEEPALIVE; "
            "default 7200", IP_SYSCTL, _keepalive_time),
    Tunable("net.ipv4.tcp_keepalive_intvl", ("C34", "C35"),
            "seconds between keepalive probes; default 75", IP_SYSCTL, _keepalive_intvl),
    Tunable("net.ipv4.tcp_keepalive_probes", ("C34", "C35"),
            "unanswered probes before the connection is dropped; default 9 (about 11 minutes "
            "of probing at 75 s)", IP_SYSCTL, _keepalive_probes),
    Tunable("net.ipv4.ip_local_port_range", ("C31", "C16"),
            "the ephemeral ports picked for outgoing connections; default 32768 60999",
            IP_SYSCTL, _port_range),
    Tunable("net.ipv4.tcp_syncookies", ("C32",),
            "send SYN cookies when a listener's SYN queue overflows (1, the default), never (0) "
            "or always (2)", IP_SYSCTL, _syncookies),
    Tunable("net.ipv4.tcp_max_syn_backlog", ("C33",),
            "per-listener limit of connection requests still waiting for the handshake's last "
            "ACK (SYN_RECV); the default grows with memory, at least 128",
            IP_SYSCTL, _max_syn_backlog),
    Tunable("net.ipv4.tcp_timestamps", ("C28", "C13"),
            "RFC 1323 timestamps: 1 (default) with a random offset per connection, 2 without, "
            "0 off", IP_SYSCTL, _timestamps),
    Tunable("net.ipv4.tcp_abort_on_overflow", ("K05", "C16"),
            "reset connections a too-slow listener cannot accept, instead of letting them "
            "retry; default off", IP_SYSCTL, _abort_on_overflow),
    Tunable("net.ipv4.tcp_orphan_retries", ("K04", "C25"),
            "retransmissions of a connection we closed before it is killed; default 0, which "
            "the kernel reads as 8",
            IP_SYSCTL, _orphan_retries),
    Tunable("net.core.somaxconn", ("K06", "C33", "C16"),
            "the cap on every listen() backlog; default 4096 (128 before Linux 5.4)",
            IP_SYSCTL, _somaxconn),
    Tunable("net.ipv4.tcp_syn_retries", ("K01",),
            "retransmissions of an unanswered SYN before connect() fails; default 6",
            IP_SYSCTL, lambda value: f"{value} SYN retransmissions before connect() gives up"),
    Tunable("net.ipv4.tcp_synack_retries", ("K02",),
            "retransmissions of a half-open connection's SYN-ACK; default 5",
            IP_SYSCTL, lambda value: f"{value} SYN-ACK retransmissions before a request is dropped"),
    Tunable("net.ipv4.tcp_retries2", ("K03",),
            "how long unacknowledged data is retransmitted before the connection is killed "
            "(default 15: about 15 minutes); TCP_USER_TIMEOUT sets it per socket",
            IP_SYSCTL, lambda value: f"{value}: bounds how long a vanished peer holds a connection"),
    Tunable("net.ipv4.tcp_rfc1337", ("K09",),
            "1: a TIME_WAIT socket ignores resets; 0 (default): a reset ends it early",
            IP_SYSCTL, lambda value: "TIME_WAIT survives resets" if value == "1"
            else "a reset ends a TIME_WAIT early (the default)"),
)


@dataclass(frozen=True)
class Finding:
    """One tunable on this host: its value, what it does here and on what grounds, advice."""

    name: str
    value: str | None
    does: str
    #: "measured in run <id>" or the documentation the fact comes from.
    basis: str
    measured: list[dict[str, str]]
    advice: str
    claims: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "present": self.value is not None,
                "does": self.does, "basis": self.basis, "measured": self.measured,
                "advice": self.advice, "claims": list(self.claims)}


def examine(tunable: Tunable, ledger_rows: Sequence[Mapping[str, Any]],
            run_id: str | None) -> Finding:
    """What ``tunable`` is and does on this host; ``ledger_rows`` are a results file's ledger."""
    value = sysctl.read(tunable.name)
    judged = {row["claim"]: row for row in ledger_rows
              if row.get("status") == "judged" and row.get("verdict")}
    measured = [
        {"claim": c, "verdict": str(judged[c]["verdict"]),
         "scenarios": ", ".join(judged[c].get("scenarios", [])),
         "evidence": str(judged[c]["evidence"])}
        for c in tunable.claims if c in judged
    ]
    if measured:
        does = "; ".join(f"{m['claim']} {m['verdict']} ({m['scenarios']}): {m['evidence']}"
                         for m in measured)
        basis = f"measured in run {run_id}" if run_id else "measured"
        if tunable.fact:
            does += f". Documented: {tunable.fact}"
    else:
        does, basis = tunable.fact, tunable.source
    advice = tunable.absent if value is None else tunable.advice(value)
    return Finding(tunable.name, value, does, basis, measured, advice, tunable.claims)


def examine_all(ledger_rows: Sequence[Mapping[str, Any]] = (),
                run_id: str | None = None) -> list[Finding]:
    """Every watched tunable, in ``WATCHED`` order (those without a note last)."""
    known = {t.name: t for t in TUNABLES}
    out = []
    for name in sysctl.WATCHED:
        tunable = known.get(name) or Tunable(name, (), "no notes on this tunable yet", "-",
                                             lambda value: "")
        out.append(examine(tunable, ledger_rows, run_id))
    return out


def socket_counts() -> dict[str, int]:
    """TCP sockets of this network namespace per state (IPv4 and IPv6), through sock_diag;
    empty if this kernel answers no sock_diag dump (the audit goes on without counts)."""
    counts = {state.value: 0 for state in TcpState}
    try:
        with DiagObserver() as observer:  # a census: the states of the sockets a dump lists
            for state, _inode in observer.census():
                counts[state.value] = counts.get(state.value, 0) + 1
    except OSError:
        return {}
    return counts


def socket_hints(counts: Mapping[str, int]) -> list[str]:
    """What the per-state counts suggest (CLOSE_WAIT above all: it is always an application bug)."""
    if not counts:
        return ["no socket counts: this kernel answered no sock_diag dump (CONFIG_INET_DIAG?)"]
    hints = []
    close_wait = counts.get(TcpState.CLOSE_WAIT.value, 0)
    if close_wait:
        hints.append(
            f"{close_wait} socket(s) in CLOSE_WAIT: their peers closed and the owning application "
            "never called close() (C18); `ss -tnp state close-wait` names the process; the fix is "
            "in its code, no sysctl clears them")
    time_wait = counts.get(TcpState.TIME_WAIT.value, 0)
    if time_wait:
        hints.append(
            f"{time_wait} socket(s) in TIME_WAIT: normal on the side that closes first; each "
            "lasts 60 s and holds only its four-tuple")
    fin_wait2 = counts.get(TcpState.FIN_WAIT2.value, 0)
    if fin_wait2:
        hints.append(
            f"{fin_wait2} socket(s) in FIN_WAIT2: waiting for a peer's FIN; orphaned ones are "
            "dropped after tcp_fin_timeout")
    return hints
