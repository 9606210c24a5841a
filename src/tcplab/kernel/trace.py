"""The kernel's own record of TCP state changes and resets, from a tracefs instance of ours.

Snapshots (sock_diag) can miss a state that lasts microseconds; the tracepoint
``sock:inet_sock_set_state`` cannot: the kernel calls it on every ``tcp_set_state``. We read it
(with ``tcp:tcp_send_reset``, ``tcp:tcp_receive_reset``, ``tcp:tcp_retransmit_skb`` and
``tcp:tcp_retransmit_synack``) from a tracefs *instance* — a private ring buffer with its own
event switches and filters — so several scenarios can trace at once without touching the
global buffer or each other.

Rules of this file:

* The instance is named ``tcplab-<pid>-<n>``. It is removed when the recorder closes,
  however the scenario ends; an instance whose pid is dead (the process was SIGKILLed) is
  swept by the next recorder that starts.
* Events are filtered *in the kernel* by port (``sport == P || dport == P``): the filter grows
  as the lab opens listeners, so the ring buffer holds only this scenario's sockets.
  ``tcp_send_reset`` reports its addresses as sockaddrs that a filter cannot match on; it
  is left unfiltered (resets are rare) and filtered here.
* Timestamps are the kernel's, on the ``mono`` trace clock: the same CLOCK_MONOTONIC as
  ``time.monotonic()``, so events line up with the lab's snapshots.
* Entering TIME_WAIT is reported as a move to CLOSE (the full socket is replaced by a
  timewait socket, which has no tracepoint). This module reports what the kernel said; the
  recording (``tcplab.recording``) relabels such moves after asking sock_diag.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from tcplab.kernel.source import SourceUnavailable
from tcplab.states import TcpState

TRACEFS = Path("/sys/kernel/tracing")
PREFIX = "tcplab-"

#: event -> True if it has ``sport``/``dport`` fields a kernel filter can use.
EVENTS: dict[str, bool] = {
    "sock/inet_sock_set_state": True,
    "tcp/tcp_receive_reset": True,
    "tcp/tcp_retransmit_skb": True,
    "tcp/tcp_retransmit_synack": True,
    "tcp/tcp_send_reset": False,
}

#: What our names for the events are, in timelines and reports.
KINDS = {
    "inet_sock_set_state": "state",
    "tcp_send_reset": "reset-sent",
    "tcp_receive_reset": "reset-received",
    "tcp_retransmit_skb": "retransmit",
    "tcp_retransmit_synack": "retransmit-synack",
}

_counter = itertools.count()
#: A filter longer than this is not written (a filter file takes at most a page); the events
#: are then filtered by ``read``.
MAX_FILTER_CHARS = 3000
_LINE = re.compile(r"^\s*(?P<task>.+?)\s+\[(?P<cpu>\d+)\]\s+\S+\s+(?P<ts>\d+\.\d+):\s+(?P<event>\w+):\s+(?P<rest>.*)$")
_FIELD = re.compile(r"(\w+)=(\S+)")


class TraceUnavailable(SourceUnavailable):
    """tracefs cannot be used here (not root, not mounted and not mountable, no such events)."""


def _kernel_state(name: str) -> TcpState | None:
    """``TCP_FIN_WAIT1`` -> FIN_WAIT1; ``TCP_CLOSE`` -> CLOSED; unknown -> None."""
    key = name.removeprefix("TCP_")
    if key == "NEW_SYN_RECV":
        return TcpState.SYN_RECV
    try:
        return TcpState.parse(key)
    except ValueError:
        return None


def _port(endpoint: str) -> int:
    """``127.0.0.1:5000`` or ``[::1]:5000`` -> 5000; anything else -> 0."""
    head, _, tail = endpoint.rpartition(":")
    return int(tail) if head and tail.isdigit() else 0


@dataclass(frozen=True)
class TraceEvent:
    """One tracepoint hit: the socket's local (``sport``) and remote (``dport``) ports.

    ``old``/``new`` are set for state changes (``new`` CLOSED covers entering TIME_WAIT,
    see the module docstring); ``state`` is the socket's state for resets and retransmits.
    """

    t: float  # CLOCK_MONOTONIC seconds, the kernel's timestamp
    kind: str  # "state", "reset-sent", "reset-received", "retransmit", "retransmit-synack"
    sport: int
    dport: int
    old: TcpState | None = None
    new: TcpState | None = None
    state: TcpState | None = None
    detail: str = ""

    def describe(self) -> str:
        if self.kind == "state":
            return f"{self.old} -> {self.new}"
        what = {"reset-sent": "sent RST", "reset-received": "received RST",
                "retransmit": "retransmitted a segment",
                "retransmit-synack": "retransmitted SYN,ACK"}.get(self.kind, self.kind)
        return what + (f" in {self.state}" if self.state else "") + (f" ({self.detail})" if self.detail else "")

    def to_json(self) -> dict[str, Any]:
        return {"t_mono": round(self.t, 6), "kind": self.kind, "sport": self.sport,
                "dport": self.dport, "old": self.old.value if self.old else None,
                "new": self.new.value if self.new else None,
                "state": self.state.value if self.state else None, "detail": self.detail}


def parse_line(line: str) -> TraceEvent | None:
    """One line of ``trace_pipe`` (default event formats) -> an event, or None if not ours."""
    match = _LINE.match(line)
    if match is None:
        return None
    kind = KINDS.get(match["event"])
    if kind is None:
        return None
    fields = dict(_FIELD.findall(match["rest"]))
    t = float(match["ts"])
    if kind == "reset-sent":
        # src/dest are the *packet's*: for a reset sent from a socket, src is its local end.
        return TraceEvent(t, kind, _port(fields.get("src", "")), _port(fields.get("dest", "")),
                          state=_kernel_state(fields.get("state", "")), detail=fields.get("reason", ""))
    sport, dport = int(fields.get("sport", 0)), int(fields.get("dport", 0))
    if kind == "state":
        return TraceEvent(t, kind, sport, dport, old=_kernel_state(fields.get("oldstate", "")),
                          new=_kernel_state(fields.get("newstate", "")))
    detail = f"err={fields['err']}" if fields.get("err", "0") != "0" else ""
    return TraceEvent(t, kind, sport, dport, state=_kernel_state(fields.get("state", "")), detail=detail)


def port_filter(ports: Iterable[int]) -> str:
    """The tracefs filter keeping events of sockets on any of ``ports`` (nothing if none)."""
    terms = [f"sport == {p} || dport == {p}" for p in sorted(set(ports))]
    return " || ".join(terms) if terms else "sport == 0 && dport == 0"


def tracefs_root(*, mount: bool = True) -> Path:
    """Where tracefs is mounted; mount it at /sys/kernel/tracing if it is not (root only)."""
    if (TRACEFS / "instances").is_dir():
        return TRACEFS
    if os.geteuid() != 0:
        raise TraceUnavailable("tracefs is not mounted and mounting it needs root")
    if not mount:
        raise TraceUnavailable(f"tracefs is not mounted at {TRACEFS}")
    proc = subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not (TRACEFS / "instances").is_dir():
        raise TraceUnavailable(f"cannot mount tracefs: {proc.stderr.strip() or proc.returncode}")
    return TRACEFS


def available() -> str | None:
    """Why tcplab cannot trace here, or None if it can (root and tracefs, mounted if needed)."""
    if os.geteuid() != 0:
        return "tracing needs root (tracefs)"
    try:
        root = tracefs_root()
    except TraceUnavailable as exc:
        return str(exc)
    missing = [e for e in EVENTS if not (root / "events" / e).is_dir()]
    return f"this kernel lacks the tracepoints {', '.join(missing)}" if missing else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def instances(root: Path = TRACEFS) -> list[str]:
    """Names of tcplab's tracefs instances that exist now."""
    base = root / "instances"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.name.startswith(PREFIX))


def sweep_stale(root: Path = TRACEFS) -> list[str]:
    """Remove tcplab instances whose process is dead (a SIGKILLed run); return their names."""
    removed = []
    for name in instances(root):
        pid_text = name.removeprefix(PREFIX).split("-", 1)[0]
        if not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            _remove_instance(root / "instances" / name)
            removed.append(name)
    return removed


def sweep_quietly() -> None:
    """``sweep_stale`` when tracefs is mounted and we may write it; never raises, never mounts."""
    if os.geteuid() == 0 and (TRACEFS / "instances").is_dir():
        with contextlib.suppress(OSError):
            sweep_stale(TRACEFS)


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _remove_instance(path: Path) -> None:
    """Turn the events off and rmdir the instance (a busy instance raises EBUSY)."""
    for event in EVENTS:
        with contextlib.suppress(OSError):
            _write(path / "events" / event / "enable", "0")
    os.rmdir(path)


class TransitionRecorder:
    """A tracefs instance recording this process's scenario sockets; see the module docstring.

    ``open()`` creates it (events on, filter matching nothing); ``watch_port`` widens the
    filter; ``read()`` drains what the kernel buffered so far (never blocks); ``close()``
    removes the instance. Use it as a context manager.
    """

    name = "trace"  # as an evidence source (``tcplab.kernel.source.Source``)

    def __init__(self, root: Path | None = None, *, buffer_kb: int = 512) -> None:
        self.root = root
        self.buffer_kb = buffer_kb
        self.instance = f"{PREFIX}{os.getpid()}-{next(_counter)}"  # its tracefs name
        self.path: Path | None = None
        self.ports: set[int] = set()
        self._fd = -1
        self._partial = b""
        self.dropped_lines = 0

    def open(self) -> TransitionRecorder:
        root = self.root or tracefs_root()
        sweep_stale(root)
        path = root / "instances" / self.instance
        self.path = path  # first: an interrupt right after mkdir still finds it to remove
        try:
            os.mkdir(path)
        except OSError as exc:
            self.path = None
            raise TraceUnavailable(f"cannot create tracefs instance {path}: {exc.strerror}") from None
        try:
            _write(path / "trace_clock", "mono")
            _write(path / "buffer_size_kb", str(self.buffer_kb))
            for event in EVENTS:
                if not (path / "events" / event).is_dir():
                    raise TraceUnavailable(f"this kernel has no tracepoint {event}")
            self._apply_filters()
            for event in EVENTS:
                _write(path / "events" / event / "enable", "1")
            self._fd = os.open(path / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self) -> TransitionRecorder:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def fileno(self) -> int:
        return self._fd

    def _apply_filters(self) -> None:
        assert self.path is not None
        expression = port_filter(self.ports)
        if len(expression) > MAX_FILTER_CHARS:
            expression = "0"  # clears the filter: too many ports; read() filters them here
        for event, filterable in EVENTS.items():
            if filterable:
                _write(self.path / "events" / event / "filter", expression)

    def watch_port(self, port: int) -> None:
        """Record events of sockets on ``port`` from now on (applied in the kernel at once)."""
        if port in self.ports or self.path is None:
            return
        self.ports.add(port)
        self._apply_filters()

    def read(self) -> list[TraceEvent]:
        """Every event the kernel buffered since the last read, oldest first; never blocks."""
        if self._fd < 0:
            return []
        chunks = []
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EINTR):
                    break
                raise
            if not chunk:
                break
            chunks.append(chunk)
        data = self._partial + b"".join(chunks)
        lines = data.split(b"\n")
        self._partial = lines.pop()
        events = []
        for raw in lines:
            event = parse_line(raw.decode(errors="replace"))
            if event is None:
                continue
            if not self.ports & {event.sport, event.dport}:
                continue  # tcp_send_reset is unfiltered in the kernel, and so is everything
                # when the ports outgrow a filter (see the module docstring)
            events.append(event)
        return events

    def close(self) -> None:
        """Close the pipe and remove the instance; safe to call twice."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self.path is not None:
            path, self.path = self.path, None
            with contextlib.suppress(FileNotFoundError):
                _remove_instance(path)
