"""``tcplab watch``: sockets per state and per owning process, refreshed in place.

It replaces ``netstat -n | awk '{++S[$NF]}'`` (counts per state) and ``lsof -i`` (owners)
with one reading that also counts what has no owner (TIME_WAIT, orphans) and marks the
growth of CLOSE_WAIT between refreshes. The logic is in ``tcplab.watch``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from tcplab import watch
from tcplab.errors import EXIT_INTERRUPTED, Unavailable
from tcplab.kernel.observer import DiagObserver
from tcplab.kernel.procfs import FdMemory

NAME = "watch"
HELP = "sockets per state and per owning process, refreshed in place (CLOSE_WAIT growth marked)"

CLEAR = "\x1b[H\x1b[2J"
MIN_INTERVAL = 0.1


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= MIN_INTERVAL:
        raise argparse.ArgumentTypeError(f"{text} s is too short (at least {MIN_INTERVAL} s)")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, metavar="P",
                        help="only sockets with port P at either end")
    parser.add_argument("--pid", type=int, metavar="PID", help="only sockets held by process PID")
    parser.add_argument("--state", action="append", metavar="S",
                        help="only sockets in state S (close-wait, TIME_WAIT...; "
                        "repeat it or separate states by commas)")
    parser.add_argument("--interval", type=_interval, default=1.0, metavar="SECONDS",
                        help="seconds between refreshes (default: %(default)s)")
    parser.add_argument("--once", action="store_true", help="print one snapshot and exit")
    parser.add_argument("--json", action="store_true",
                        help="JSON: one object (with --once) or one line per refresh")


def execute(args: argparse.Namespace) -> int:
    watch_filter = watch.WatchFilter.parse(port=args.port, pid=args.pid, states=args.state)
    tty = sys.stdout.isatty() and not args.json
    previous: watch.Snapshot | None = None
    try:
        observer = DiagObserver()
    except OSError as exc:  # a kernel without sock_diag (CONFIG_INET_DIAG): nothing to watch
        raise Unavailable(f"cannot open sock_diag: {exc.strerror}") from None
    memory = FdMemory()  # owners learnt by a refresh, reused while provably unchanged
    try:
        try:
            while True:
                started = time.monotonic()
                if args.pid is not None and previous is not None and not _alive(args.pid):
                    print(f"tcplab watch: process {args.pid} has exited", file=sys.stderr)
                    return 0
                snap = watch.take(observer, watch_filter, memory=memory)
                if args.json:
                    print(json.dumps(snap.to_json(previous), indent=1 if args.once else None))
                else:
                    every = None if args.once else args.interval
                    text = watch.render(snap, previous, interval=every, color=tty)
                    print((CLEAR if tty else "") + text + ("" if tty or args.once else "\n"))
                sys.stdout.flush()
                if args.once:
                    return 0
                previous = snap
                time.sleep(max(0.0, args.interval - (time.monotonic() - started)))
        except KeyboardInterrupt:  # the normal way to stop, and still an interrupt (exit 130)
            return EXIT_INTERRUPTED
    finally:
        memory.close()
        observer.close()


def _alive(pid: int) -> bool:
    return os.path.isdir(f"/proc/{pid}")
