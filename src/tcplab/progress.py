"""Live progress of ``tcplab run``, on stderr, so a long run is never silent.

Two displays, chosen by whether stderr is a terminal:

- ``TerminalProgress``: one line per finished run scrolls by as before, and below it one
  status line, redrawn in place (``\\r`` and erase-to-end-of-line, no cursor tricks a log
  would keep): done/total, time so far, and the runs going with how long each has run,
  longest first.
- ``LogProgress`` (CI, a pipe, ``TERM=dumb``): plain lines only, each one complete: a line
  when a run starts, one when it ends, and a heartbeat every ``HEARTBEAT`` seconds naming
  the runs that have been going that long, so a log that stops growing means a stuck job,
  not a slow scenario.

The runner calls ``started`` and ``finished`` (``runner.Progress``); a daemon thread ticks
the clock between those calls (the runner's trio loop is busy waiting on children, and a
display must not be a reason for it to wake). Every write holds one lock.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from tcplab.scenario import Scenario, ScenarioResult
from tcplab.table import plural

__all__ = ["LogProgress", "Progress", "TerminalProgress", "for_stream", "plural"]

#: Log mode: seconds between "still running" lines, and the age a run needs to be named.
HEARTBEAT = 10.0
#: Terminal mode: seconds between redraws of the status line (its clocks move by 0.5 s).
REFRESH = 0.5
#: How the end of a run is marked, as the lines before progress existed.
MARKS = {"passed": "ok", "failed": "FAIL", "skipped": "skip"}


@dataclass
class _Going:
    label: str
    since: float


class Progress:
    """What both displays share: the runs going, done/total, the lock and the ticking thread."""

    period = REFRESH

    def __init__(self, total: int, stream: TextIO, *, repeat: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.stream, self.repeat, self.clock = total, stream, repeat, clock
        self.began = clock()
        self.done = 0
        self.going: dict[int, _Going] = {}
        self._starts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the runner's hooks (runner.Progress) -------------------------------------------
    def started(self, index: int, scenario: Scenario) -> None:
        with self._lock:
            self._starts[scenario.id] = self._starts.get(scenario.id, 0) + 1
            label = scenario.id
            if self.repeat > 1:  # which repeat: a log can then pair each start with its end
                label += f" #{self._starts[scenario.id]}"
            self.going[index] = _Going(label, self.clock())
            self._on_start(self.going[index])

    def finished(self, index: int, done: int, total: int, result: ScenarioResult) -> None:
        with self._lock:
            going = self.going.pop(index, None)
            self.done, self.total = done, total
            label = going.label if going else result.id
            mark = MARKS.get(result.status, result.status)
            line = f"[{done}/{total}] {mark:<5} {label} ({result.duration:.2f} s)"
            if result.status != "passed" and result.reason:
                line += f": {result.reason.splitlines()[0]}"
            self._on_finish(line)

    # -- the clock ----------------------------------------------------------------------
    def tick(self) -> None:
        """What the clock does between events (called by the thread; tests call it too)."""
        with self._lock:
            self._on_tick()

    def start(self) -> Progress:
        self._thread = threading.Thread(target=self._ticking, name="tcplab-progress", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop ticking and leave the stream as a plain log (no status line left over)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self.period)
        with self._lock:
            self._on_close()

    def __enter__(self) -> Progress:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ticking(self) -> None:
        while not self._stop.wait(self.period):
            self.tick()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed pipe must not take the run down
            pass

    def _ages(self, now: float) -> list[tuple[str, float]]:
        """The runs going and their ages, longest first."""
        return sorted(((g.label, now - g.since) for g in self.going.values()),
                      key=lambda item: -item[1])

    # -- what each display does -----------------------------------------------------------
    def _on_start(self, going: _Going) -> None:
        raise NotImplementedError

    def _on_finish(self, line: str) -> None:
        raise NotImplementedError

    def _on_tick(self) -> None:
        raise NotImplementedError

    def _on_close(self) -> None:
        raise NotImplementedError


class LogProgress(Progress):
    """Whole lines for a log: start, end, and a heartbeat for runs going ``HEARTBEAT`` s."""

    def __init__(self, total: int, stream: TextIO, *, repeat: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(total, stream, repeat=repeat, clock=clock)
        self.last_beat = self.began

    def _on_start(self, going: _Going) -> None:
        self._write(f"[{self.done}/{self.total}] start {going.label}\n")

    def _on_finish(self, line: str) -> None:
        self._write(line + "\n")

    def _on_tick(self) -> None:
        now = self.clock()
        if now - self.last_beat < HEARTBEAT:
            return
        long = [(label, age) for label, age in self._ages(now) if age >= HEARTBEAT]
        if long:
            self.last_beat = now
            runs = ", ".join(f"{label} {age:.0f} s" for label, age in long)
            self._write(f"[{self.done}/{self.total}] still running after "
                        f"{now - self.began:.0f} s: {runs}\n")

    def _on_close(self) -> None:
        pass


class TerminalProgress(Progress):
    """Finished runs scroll by; one status line below them is redrawn in place."""

    ERASE = "\r\x1b[K"

    def __init__(self, total: int, stream: TextIO, *, repeat: int = 1,
                 clock: Callable[[], float] = time.monotonic, width: int | None = None) -> None:
        super().__init__(total, stream, repeat=repeat, clock=clock)
        self.width = width or _columns(stream)
        self.shown = False

    def status(self) -> str:
        """``12/35 done, 8 s | running: close-wait-timeout 6s, half-close 0s``, cut to
        the terminal's width (a wrapped line could not be erased in place)."""
        now = self.clock()
        text = f"{self.done}/{self.total} done, {now - self.began:.0f} s"
        limit = max(20, self.width - 1)
        ages = self._ages(now)
        for shown, (label, age) in enumerate(ages):
            part = (" | running: " if shown == 0 else ", ") + f"{label} {age:.0f}s"
            rest = len(ages) - shown - 1
            more = f", +{rest} more" if rest else ""
            if len(text) + len(part) + len(more) > limit:
                text += f"{' | running:' if shown == 0 else ','} +{len(ages) - shown} more"
                break
            text += part
        return text[:limit]

    def _draw(self) -> None:
        self._write(self.ERASE + self.status())
        self.shown = True

    def _on_start(self, going: _Going) -> None:
        self._draw()

    def _on_finish(self, line: str) -> None:
        self._write(self.ERASE + line + "\n")
        self._draw()

    def _on_tick(self) -> None:
        self._draw()

    def _on_close(self) -> None:
        if self.shown:
            self._write(self.ERASE)
            self.shown = False


def _columns(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        columns = 0
    return columns or 80


def is_terminal(stream: TextIO) -> bool:
    """A terminal that can redraw a line: a TTY whose TERM is not ``dumb``."""
    try:
        tty = stream.isatty()
    except (OSError, ValueError):
        return False
    return tty and os.environ.get("TERM", "") != "dumb"


def for_stream(total: int, *, repeat: int = 1, stream: TextIO | None = None) -> Progress:
    """The display that suits ``stream`` (stderr by default), not yet ticking."""
    out = sys.stderr if stream is None else stream
    if is_terminal(out):
        return TerminalProgress(total, out, repeat=repeat)
    return LogProgress(total, out, repeat=repeat)
