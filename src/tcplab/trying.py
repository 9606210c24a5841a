"""``tcplab try``: what a set of ``net.*`` settings changes, measured in private namespaces.

An operator's sysctl.conf (or ``KEY=VALUE`` arguments) is parsed and checked here, then each
*measure* that concerns one of its keys runs twice, at the same time, in two fresh network
namespaces (``tcplab.isolated``): once with every tried setting applied, once with none (this
kernel's namespace defaults). The host's ``/proc/sys`` is never written: the only writes happen
after ``unshare(CLONE_NEWNET)``, in a child that dies with its namespace.

Why measures of their own and not the scenarios: a scenario pins its sysctls to short values
it relies on (fin-wait2-timeout sets ``tcp_fin_timeout`` = 3, asserts it as a precondition and
bounds its waits by it), so it cannot run with an operator's value. A measure reads what the
kernel does with whatever value it finds, and names the claims and scenario that judge the same
mechanism, so the operator can read the verdicts there. Which key goes to which measure is the
explicit table ``MEASURES``; a key in no measure is reported as "not measured", never skipped.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcplab.errors import UsageError
from tcplab.expect import reaches, within
from tcplab.kernel import sysctl
from tcplab.kernel.model import SocketRecord, TimerKind
from tcplab.kernel.packets import deafen
from tcplab.lab import Lab
from tcplab.ports import active_close
from tcplab.states import TcpState as S

#: A measured figure that differs by more than this (seconds: absolute + relative) "changed".
TOLERANCE_S, TOLERANCE_REL = 0.5, 0.05
#: Seconds a lifetime is waited beyond the value that should end it (polling, scheduling).
SLACK_S = 3.0
#: Seconds a run needs beyond its waits (namespace, interpreter, connections).
OVERHEAD_S = 3.0

_LINE = re.compile(r"^\s*-?\s*([A-Za-z0-9_./-]+)\s*=\s*(.*?)\s*$")


# -- what the operator asked ------------------------------------------------------------------


def parse_line(text: str, where: str) -> tuple[str, str] | None:
    """``key = value`` (sysctl.conf spacing, ``/`` or ``.`` separators, a leading ``-``) as
    (dotted key, value); None for a blank or comment line; ``UsageError`` for anything else,
    including a key outside ``net.*`` (tcplab writes only per-namespace sysctls)."""
    stripped = text.strip()
    if not stripped or stripped[0] in "#;":
        return None
    match = _LINE.match(stripped)
    if match is None or not match.group(2):
        raise UsageError(f"{where}: not a `key = value` line: {stripped!r}")
    key = match.group(1).strip("/").replace("/", ".")
    if not key.startswith("net."):
        raise UsageError(f"{where}: {key} is not a net.* setting; tcplab try applies only "
                         "per-namespace net.* sysctls")
    return key, " ".join(match.group(2).strip("\"'").split())


def parse(arguments: Sequence[str]) -> dict[str, str]:
    """The settings of ``arguments`` (KEY=VALUE items and sysctl.conf files, in order; a later
    value of a key wins, as with ``sysctl -p``)."""
    settings: dict[str, str] = {}
    for argument in arguments:
        path = Path(argument)
        if "=" not in argument and path.is_file():
            lines = [(f"{argument}:{n}", line)
                     for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)]
        elif "=" not in argument:
            raise UsageError(f"{argument}: neither a file nor KEY=VALUE")
        else:
            lines = [(repr(argument), argument)]
        for where, line in lines:
            parsed = parse_line(line, where)
            if parsed is not None:
                settings[parsed[0]] = parsed[1]
    if not settings:
        raise UsageError("no setting to try (give KEY=VALUE or a sysctl.conf file)")
    return settings


# -- the measures -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One measured field of a probe's result, phrased for an operator."""

    name: str  # the key in the probe's result
    #: "an orphaned FIN_WAIT2 {adv}lasts": adv is "now " or "still ", then the figure follows
    phrase: str
    keys: tuple[str, ...]  # the settings this figure reports on
    unit: str = "s"

    @property
    def label(self) -> str:
        return self.phrase.format(adv="")


@dataclass(frozen=True)
class Measure:
    """A probe (an async function of this module, run in a fresh namespace) and its figures."""

    probe: str
    figures: tuple[Figure, ...]
    #: the scenario that judges the same mechanism, and its claims (see `tcplab claims`)
    scenario: str
    claims: tuple[str, ...]
    #: the settings whose values decide how long the probe must wait to see everything
    waits_on: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for f in self.figures for k in f.keys))

    def needed(self, values: Mapping[str, str | None], tried: Sequence[str]) -> float:
        """Seconds the probe must wait to see every lifetime end with these values; 0 when
        none of the ``tried`` keys is one that lifetimes depend on (nothing to wait for)."""
        if not set(self.waits_on) & set(tried):
            return 0.0
        ints = {k: _int(values.get(k)) for k in self.waits_on}
        if self.probe == "fin_timeout":
            return max(ints[FIN] or 60, 60) + SLACK_S
        if self.probe == "keepalive":
            return 1 + (ints[INTVL] or 75) * (ints[PROBES] or 9) + SLACK_S
        return 0.0


FIN = "net.ipv4.tcp_fin_timeout"
TIME, INTVL, PROBES = (f"net.ipv4.tcp_keepalive_{k}" for k in ("time", "intvl", "probes"))

MEASURES: tuple[Measure, ...] = (
    Measure("fin_timeout", (
        Figure("fin_wait2_timer_s", "an orphaned FIN_WAIT2's timer {adv}starts at", (FIN,)),
        Figure("fin_wait2_life_s", "an orphaned FIN_WAIT2 {adv}lasts", (FIN,)),
        Figure("time_wait_timer_s", "TIME_WAIT's timer {adv}starts at", (FIN,)),
        Figure("time_wait_life_s", "TIME_WAIT {adv}lasts", (FIN,)),
    ), "fin-wait2-timeout", ("C25", "C26", "C27"), waits_on=(FIN,)),
    Measure("keepalive", (
        Figure("first_probe_s", "an idle SO_KEEPALIVE socket's first probe is {adv}due after",
               (TIME,)),
        Figure("probe_gap_s", "unanswered probes are {adv}spaced", (INTVL,)),
        Figure("probes_sent", "a dead peer {adv}gets probes before the drop:", (PROBES,),
               unit=""),
        Figure("dead_after_s", "a dead peer (idle 1 s by TCP_KEEPIDLE) is {adv}dropped after",
               (INTVL, PROBES)),
    ), "keepalive-sysctls", ("C34", "C35"), waits_on=(INTVL, PROBES)),
)


def measures_for(keys: Sequence[str]) -> list[Measure]:
    return [m for m in MEASURES if set(m.keys) & set(keys)]


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


# -- probes: run in a child, in a fresh namespace with the settings applied -------------------


async def check(lab: Lab, settings: dict[str, str],
                also: Sequence[str] = ()) -> dict[str, dict[str, str | None]]:
    """Probe: for each setting, its namespace default (None: no such sysctl in a fresh
    namespace) and the kernel's refusal of the tried value, if any (written in this private
    namespace only); for each name in ``also``, its default only."""
    out: dict[str, dict[str, str | None]] = {k: {"default": sysctl.read(k), "error": None}
                                             for k in also}
    for name, value in settings.items():
        default, error = sysctl.read(name), None
        if default is not None:
            try:
                sysctl.path_of(name).write_text(f"{value}\n")
            except OSError as exc:
                error = exc.strerror or str(exc)
        out[name] = {"default": default, "error": error}
    return out


async def _gone_after(lab: Lab, end: Any, start: float, wait: float) -> float | None:
    """Seconds from ``start`` until ``end`` is gone (or CLOSED), or None at ``start + wait``."""
    def ended() -> bool:
        record = end.observe_all()
        return record is None or record.state is S.CLOSED
    went = await within(ended, timeout=max(0.0, start + wait - lab.clock()))
    return None if went is None else round(lab.clock() - start, 2)


def _timer(record: SocketRecord, *kinds: TimerKind) -> float | None:
    return round(record.timer.remaining, 2) if record.timer.kind in kinds else None


async def fin_timeout(lab: Lab, wait: float) -> dict[str, Any]:
    """Probe: an orphan (closed while its peer keeps CLOSE_WAIT) and a plain active close:
    the timer each gets on entering FIN_WAIT2 / TIME_WAIT, and how long each lasts (waited up
    to ``wait`` seconds; None: still there). The orphaned FIN_WAIT2's timer is a keepalive timer
    or, when the fin timeout is 60 s or less, a timewait socket's (tcp_close in net/ipv4/tcp.c)."""
    orphan = await lab.connect()
    start = lab.clock()
    await orphan.client.close()
    entered = await reaches(orphan.client, S.FIN_WAIT2)
    await reaches(orphan.server, S.CLOSE_WAIT)
    plain = await lab.connect()
    tw = await active_close(plain)
    tw_start = lab.clock()
    if tw.state is not S.TIME_WAIT:
        raise RuntimeError(f"no TIME_WAIT after an active close: {tw.state.value}")
    orphan_life = await _gone_after(lab, orphan.client, start, wait)
    tw_life = await _gone_after(lab, plain.client, tw_start, wait)
    return {"fin_wait2_timer_s": _timer(entered, TimerKind.KEEPALIVE, TimerKind.TIMEWAIT),
            "fin_wait2_life_s": orphan_life,
            "time_wait_timer_s": _timer(tw, TimerKind.TIMEWAIT), "time_wait_life_s": tw_life,
            "waited_s": wait}


async def keepalive(lab: Lab, wait: float) -> dict[str, Any]:
    """Probe: the keepalive timer an idle socket gets when SO_KEEPALIVE is set (the idle time),
    then a peer made deaf (``packets.deafen``: its segments are dropped before TCP) against a
    client idle 1 s by TCP_KEEPIDLE: the timer after the first unanswered probe (the interval),
    the probes sent, and when the kernel drops the connection (waited up to ``wait``)."""
    idle = await lab.connect()
    idle.client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    armed = idle.client.observe()
    dead = await lab.connect()
    deafen(dead.server.sock)
    dead.client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
    start = lab.clock()
    dead.client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    probes = 0

    def seen() -> SocketRecord | None:
        nonlocal probes
        record = dead.client.observe()
        if record is not None and record.timer.kind is TimerKind.KEEPALIVE:
            probes = max(probes, record.timer.fired)
        return record

    def probed() -> SocketRecord | None:
        record = seen()
        return record if probes >= 1 else None
    first = await within(probed, timeout=10.0)
    dropped = None
    if wait > 0:
        went = await within(lambda: _ended(seen()), timeout=max(0.0, start + wait - lab.clock()))
        dropped = None if went is None else round(lab.clock() - start, 2)
    return {"first_probe_s": None if armed is None else _timer(armed, TimerKind.KEEPALIVE),
            "probe_gap_s": None if first is None else _timer(first, TimerKind.KEEPALIVE),
            "probes_sent": probes if dropped is not None else None, "dead_after_s": dropped, "waited_s": wait}


def _ended(record: SocketRecord | None) -> bool:
    return record is None or record.state is S.CLOSED


# -- comparing the two runs -------------------------------------------------------------------


def differs(tried: object, default: object, waited: tuple[float, float]) -> bool | None:
    """Whether a figure changed: numbers beyond the tolerance; a lifetime that ended in one run
    and not within the other's wait. None: neither run saw it end (nothing to compare)."""
    if isinstance(tried, int | float) and isinstance(default, int | float):
        return abs(tried - default) > TOLERANCE_S + TOLERANCE_REL * max(abs(tried), abs(default))
    if tried is None and default is None:
        return None
    number, other_wait = (tried, waited[1]) if default is None else (default, waited[0])
    return not isinstance(number, int | float) or number < other_wait


def show(value: object, unit: str, waited: float) -> str:
    """A figure for people: ``10.0 s``, ``> 120 s`` (still there when the wait ended)."""
    if value is None and waited <= 0:
        return "not waited"
    if value is None:
        return f"> {waited:.0f} s, still there" if unit == "s" else f"?, alive at {waited:.0f} s"
    if isinstance(value, float):
        return f"{value:.1f} {unit}".strip()
    return f"{value} {unit}".strip()


def compare(measure: Measure, key: str, tried: Mapping[str, Any],
            default: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The figures of ``measure`` about ``key``, side by side, each with an operator's phrase."""
    waited = (float(tried.get("waited_s", 0)), float(default.get("waited_s", 0)))
    rows = []
    for figure in measure.figures:
        if key not in figure.keys:
            continue
        a, b = tried.get(figure.name), default.get(figure.name)
        changed = differs(a, b, waited)
        shown_a, shown_b = show(a, figure.unit, waited[0]), show(b, figure.unit, waited[1])
        if changed:
            phrase = f"{figure.phrase.format(adv='now ')} {shown_a} (default {shown_b})"
        elif changed is None:
            phrase = "" if max(waited) <= 0 else f"{figure.label}: neither run saw it end"
        else:
            phrase = f"{figure.phrase.format(adv='still ')} {shown_b}"
        rows.append({"figure": figure.name, "label": figure.label,
                     "tried": a, "default": b, "tried_shown": shown_a,
                     "default_shown": shown_b, "changed": changed, "says": phrase})
    return rows
