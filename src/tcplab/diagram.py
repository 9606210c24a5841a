"""Sequence diagrams of one connection, drawn from its recorded evidence.

Two lanes, client and server. Captured segments are arrows labelled with their flags;
the kernel's traced transitions are notes on the lane of the end that moved (snapshots
stand in when the run had no trace). The same steps are written as Mermaid (for Markdown:
GitHub renders it) and as inline SVG (for the HTML report: no library, no script).

Long transfers would make diagrams of hundreds of arrows: runs of identical segments in
one direction fold into one arrow (``×N``), and a very long diagram keeps its beginning
and end with the number of steps left out in between.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

LANES = ("client", "server")
MAX_STEPS = 64
LEGEND = ("arrows: segments as they left their sender on lo (seq/ack relative to each side's "
          "SYN); notes: the kernel's own state changes (tracepoint), or sock_diag snapshots "
          "when the run had no trace; times in ms from the first step")


@dataclass
class Step:
    """One row of a diagram: an arrow (``lane`` is the sender), a note, or a divider."""

    t: float
    kind: str  # "arrow", "note", "divider"
    lane: str  # "client", "server" ("" for a divider)
    label: str
    detail: str = ""
    style: str = ""  # "syn", "fin", "rst", "data", "ack", "state", "reset", "retransmit", "seen"
    count: int = 1


def _arrow_style(flags: set[str], length: int) -> str:
    if "RST" in flags:
        return "rst"
    if "SYN" in flags:
        return "syn"
    if "FIN" in flags:
        return "fin"
    return "data" if length else "ack"


def steps(connection: Mapping[str, Any], *, closed_at: float | None = None) -> list[Step]:
    """The rows of one connection's diagram, from a results file's ``connections`` item."""
    items = connection.get("timeline", [])
    traced = {it["end"] for it in items if it.get("source") == "trace" and it.get("kind") == "state"}
    out: list[Step] = []
    last_seen: dict[str, str] = {}
    for it in items:
        t, end, source = float(it["t"]), it["end"], it.get("source")
        if end not in LANES:  # a third end in the timeline (a listener, a bound socket): no lane
            continue
        if source == "capture" and it.get("kind", "segment") == "segment":
            flags = set(str(it["flags"]).split(","))
            detail = f"seq {it['seq']}" + (f", ack {it['ack']}" if it.get("ack") is not None else "")
            label = it["flags"] + (f" len={it['len']}" if it.get("len") else "")
            step = Step(t, "arrow", end, label, detail, _arrow_style(flags, int(it.get("len", 0))))
            prev = out[-1] if out else None
            if (prev and prev.kind == "arrow" and prev.lane == end and prev.style == step.style
                    and prev.label.split(" ")[0] == it["flags"] and step.style in ("data", "ack")):
                prev.count += 1
                prev.detail = f"{prev.count} segments, last {detail}"
                continue
            out.append(step)
        elif source in ("trace", "capture"):  # a capture "state": a timewait socket's substate
            kind = it.get("kind")
            if kind == "state":
                new = it.get("new") or "?"
                style = "state"
                out.append(Step(t, "note", end, new, it.get("text", ""), style))
            elif kind == "reset-received":
                out.append(Step(t, "note", end, "RST received", it.get("text", ""), "reset"))
            elif kind in ("retransmit", "retransmit-synack"):
                out.append(Step(t, "note", end, "retransmission", it.get("text", ""), "retransmit"))
        elif source == "snapshot" and end not in traced:
            sock = it.get("socket")
            state = "gone" if sock is None else sock["state"]
            if last_seen.get(end) != state:
                last_seen[end] = state
                out.append(Step(t, "note", end, f"seen {state}", "sock_diag snapshot", "seen"))
    if closed_at is not None:
        index = next((i for i, s in enumerate(out) if s.t > closed_at), None)
        if index is not None:
            out.insert(index, Step(closed_at, "divider", "", "scenario ends: the lab closes the rest"))
    if len(out) > MAX_STEPS:
        head, tail = out[: MAX_STEPS // 2], out[-(MAX_STEPS // 2 - 1):]
        left = len(out) - len(head) - len(tail)
        out = [*head, Step(tail[0].t, "divider", "", f"… {left} steps left out …"), *tail]
    return out


def lane_name(connection: Mapping[str, Any], lane: str) -> str:
    """``client``/``server``, or what the connection calls that end (an adopted socket)."""
    return str(connection.get("lanes", {}).get(lane) or lane)


def _label(step: Step) -> str:
    return step.label + (f" ×{step.count}" if step.count > 1 else "")


# -- Mermaid ----------------------------------------------------------------------------

def _mermaid_text(text: str) -> str:
    """Mermaid treats ``;`` and ``#`` specially in messages; keep to plain words."""
    return text.replace(";", ",").replace("#", "no. ").replace("\n", " ")


def mermaid(connection: Mapping[str, Any], *, closed_at: float | None = None) -> str:
    """A Mermaid ``sequenceDiagram`` of one connection (without the code fence)."""
    lines = ["sequenceDiagram"] + [
        f"    participant {short} as {_mermaid_text(lane_name(connection, lane))} "
        f"{connection.get(lane, '').split(' -> ')[0]}"
        for short, lane in (("C", "client"), ("S", "server"))]
    lane = {"client": "C", "server": "S"}
    for step in steps(connection, closed_at=closed_at):
        if step.kind == "arrow":
            src, dst = lane[step.lane], lane["server" if step.lane == "client" else "client"]
            arrow = "-x" if step.style == "rst" else "->>"
            text = _label(step) + (f" ({step.detail})" if step.detail else "")
            lines.append(f"    {src}{arrow}{dst}: {_mermaid_text(text)}")
        elif step.kind == "note":
            lines.append(f"    Note over {lane[step.lane]}: {_mermaid_text(step.label)}")
        else:
            lines.append(f"    Note over C,S: {_mermaid_text(step.label)}")
    if len(lines) == 3:
        lines.append("    Note over C,S: nothing recorded")
    return "\n".join(lines)


# -- SVG --------------------------------------------------------------------------------

COLORS = {"syn": "#1f5fbf", "fin": "#7a2fb0", "rst": "#c62828", "data": "#5f6b73",
          "ack": "#222222", "state": "#fff4c2", "reset": "#ffd6d6", "retransmit": "#ffe0b2",
          "seen": "#e8eef5"}
WIDTH, X_TIME, X_CLIENT, X_SERVER = 780, 10, 230, 640
TOP, ROW = 62, 26


def svg(connection: Mapping[str, Any], *, closed_at: float | None = None, title: str = "") -> str:
    """An inline SVG sequence diagram of one connection (see the module docstring)."""
    rows = steps(connection, closed_at=closed_at)
    height = TOP + ROW * max(1, len(rows)) + 20
    x = {"client": X_CLIENT, "server": X_SERVER}
    t0 = rows[0].t if rows else 0.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title or "sequence diagram")}" '
        'font-family="ui-monospace, Menlo, Consolas, monospace" font-size="12">',
        "<defs>" + "".join(
            f'<marker id="arrow-{name}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="11" '
            f'markerHeight="11" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
            f'<path d="M0,0 L10,5 L0,10 z" '
            f'fill="{COLORS[name]}"/></marker>' for name in ("syn", "fin", "rst", "data", "ack"))
        + "</defs>",
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
    ]
    for lane, lx in x.items():
        addr = str(connection.get(lane, "")).split(" -> ")[0]
        name = lane_name(connection, lane)
        parts.append(f'<rect x="{lx - 110}" y="8" width="220" height="38" rx="6" fill="#263238"/>')
        parts.append(f'<text x="{lx}" y="24" text-anchor="middle" fill="#ffffff" '
                     f'font-weight="bold" font-size="13">{escape(name)}</text>')
        parts.append(f'<text x="{lx}" y="39" text-anchor="middle" fill="#cfd8dc">{escape(addr)}</text>')
        parts.append(f'<line x1="{lx}" y1="46" x2="{lx}" y2="{height - 8}" stroke="#90a4ae" '
                     'stroke-dasharray="4 4"/>')
    parts.append(f'<text x="{X_TIME}" y="{TOP - 6}" fill="#78909c" font-size="11">ms</text>')
    for i, step in enumerate(rows):
        y = TOP + ROW * i + ROW // 2
        if step.kind != "divider":
            parts.append(f'<text x="{X_TIME}" y="{y + 4}" fill="#78909c" font-size="11">'
                         f"{(step.t - t0) * 1e3:9.3f}</text>")
        if step.kind == "arrow":
            src, dst = x[step.lane], x["server" if step.lane == "client" else "client"]
            color = COLORS[step.style]
            width = 2.5 if step.style in ("syn", "fin", "rst") else 1.5
            parts.append(f'<line x1="{src}" y1="{y + 4}" x2="{dst}" y2="{y + 4}" stroke="{color}" '
                         f'stroke-width="{width}" marker-end="url(#arrow-{step.style})"/>')
            mid = (src + dst) // 2
            weight = "bold" if step.style in ("syn", "fin", "rst") else "normal"
            parts.append(f'<text x="{mid}" y="{y - 1}" text-anchor="middle" fill="{color}" '
                         f'font-weight="{weight}">{escape(_label(step))}'
                         f'<tspan fill="#78909c" font-weight="normal" font-size="10">'
                         f"  {escape(step.detail)}</tspan></text>")
        elif step.kind == "note":
            lx = x[step.lane]
            w = 14 + 7.4 * len(step.label)
            stroke = "#c62828" if step.style == "reset" else "#b0a060"
            parts.append(f'<rect x="{lx - w / 2:.1f}" y="{y - 8}" width="{w:.1f}" height="19" rx="4" '
                         f'fill="{COLORS[step.style]}" stroke="{stroke}"/>')
            parts.append(f'<text x="{lx}" y="{y + 6}" text-anchor="middle" fill="#212121">'
                         f"<title>{escape(step.detail)}</title>{escape(step.label)}</text>")
        else:
            parts.append(f'<line x1="{X_CLIENT - 110}" y1="{y}" x2="{X_SERVER + 110}" y2="{y}" '
                         'stroke="#b0bec5" stroke-dasharray="2 3"/>')
            parts.append(f'<text x="{(X_CLIENT + X_SERVER) // 2}" y="{y - 3}" text-anchor="middle" '
                         f'fill="#607d8b" font-style="italic" font-size="11">{escape(step.label)}</text>')
    if not rows:
        parts.append(f'<text x="{WIDTH // 2}" y="{TOP + 14}" text-anchor="middle" fill="#607d8b">'
                     "nothing recorded</text>")
    parts.append("</svg>")
    return "\n".join(parts)


def pick(connections: Sequence[Mapping[str, Any]], limit: int = 2) -> list[Mapping[str, Any]]:
    """The connections worth drawing: accepted ones with segments first, at most ``limit``."""
    ranked = sorted(connections, key=lambda c: (not c.get("accepted", True), c.get("segments", 0) == 0))
    return list(ranked[:limit])
