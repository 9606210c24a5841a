"""``tcplab export``: serve socket-state metrics for Prometheus (OpenMetrics over HTTP).

The metrics and how they are counted are in ``tcplab.export``; this module parses the
command line and serves them with ``prometheus_client``'s own HTTP server, which answers
OpenMetrics to a scraper that asks for it (Prometheus does) and the classic text format
otherwise. It listens on 127.0.0.1 unless told otherwise: the metrics name processes.
"""

from __future__ import annotations

import argparse
import socket
import sys

from tcplab import watch
from tcplab.errors import EXIT_INTERRUPTED, Unavailable, UsageError
from tcplab.kernel.observer import DiagObserver

NAME = "export"
HELP = ("serve sockets per state and per owning process as Prometheus metrics "
        "(OpenMetrics, 127.0.0.1 by default)")

DEFAULT_LISTEN = "127.0.0.1:9977"


def listen_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` (127.0.0.1); port 0 picks a free one."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT (port 0-65535)")
    host = host.removeprefix("[").removesuffix("]") or "127.0.0.1"
    try:
        socket.getaddrinfo(host, int(port_text), type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UsageError(f"--listen {text!r}: unknown host {host!r}") from None
    return host, int(port_text)


def _top(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                        help="address to serve /metrics on (default: %(default)s; "
                        "port 0 picks a free port)")
    parser.add_argument("--port", type=int, metavar="P",
                        help="only sockets with port P at either end")
    parser.add_argument("--pid", type=int, metavar="PID", help="only sockets held by process PID")
    parser.add_argument("--top", type=_top, default=20, metavar="N",
                        help="per-process series for the N processes with the most CLOSE_WAIT "
                        "(then sockets), the rest summed as process=\"other\" "
                        "(default: %(default)s)")
    parser.add_argument("--once", action="store_true",
                        help="print one scrape (OpenMetrics) on stdout and exit")


def execute(args: argparse.Namespace) -> int:
    watch_filter = watch.WatchFilter.parse(port=args.port, pid=args.pid, states=None)
    host, port = listen_address(args.listen)
    # Imported here: prometheus_client is needed by this command only.
    from prometheus_client import start_http_server
    from prometheus_client.openmetrics.exposition import generate_latest

    from tcplab import export

    try:
        observer = DiagObserver()
    except OSError as exc:
        raise Unavailable(f"cannot open sock_diag: {exc.strerror}") from None
    try:
        registry = export.registry(observer, watch_filter, args.top)
        if args.once:
            sys.stdout.write(generate_latest(registry).decode())  # type: ignore[no-untyped-call]
            return 0
        try:
            server, thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise UsageError(f"--listen {args.listen}: cannot listen: "
                             f"{exc.strerror or exc}") from None
        bound_host, bound_port = server.socket.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        print(f"tcplab export: serving http://{shown}:{bound_port}/metrics "
              f"({watch_filter.describe()})", flush=True)
        try:
            thread.join()
        except KeyboardInterrupt:  # the normal way to stop, and still an interrupt (exit 130)
            return EXIT_INTERRUPTED
        finally:
            server.shutdown()
            server.server_close()
        return 0
    finally:
        observer.close()
