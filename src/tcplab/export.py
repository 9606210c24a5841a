"""Socket-state metrics for Prometheus (issue 14): what ``tcplab watch`` counts, per scrape.

node_exporter's tcpstat counts sockets per state only; the question a CLOSE_WAIT leak raises
(claims C18, C24: which process holds them, and since when) needs them per owning process.
Each scrape is one ``watch.take`` (one way to count: the same sock_diag tally and
``/proc/*/fd`` scan as ``tcplab watch``, the fds of processes that provably did not change
them since the last scrape taken from memory: ``procfs.FdMemory``), turned into metric
families:

* ``tcplab_sockets{state}``: sockets per state (every state, zeros included);
* ``tcplab_process_sockets{state,pid,process}``: per owning process, the top N processes
  (most CLOSE_WAIT first, as ``watch`` ranks them) and one ``other`` series for the rest, so
  the number of series stays bounded however many processes there are. ``process`` is the
  kernel's short name (``/proc/PID/comm``), never the command line, whose arguments can
  hold secrets. A socket shared by several processes counts under each, as in ``watch``;
* ``tcplab_unowned_sockets{state,reason}``: TIME_WAIT, orphans and request sockets
  (``no_owner``), and sockets whose holder this process may not see (``not_visible``);
* ``tcplab_close_wait_oldest_seconds{pid,process}``: how long the oldest CLOSE_WAIT socket
  of each process has been seen (first seen by this exporter: a socket already there when
  it started counts from then);
* ``tcplab_time_wait_sockets`` (the whole namespace, whatever the filters) against
  ``tcplab_tcp_max_tw_buckets`` (claim C30: beyond it the kernel destroys TIME_WAIT sockets
  and counts TcpExt.TCPTimeWaitOverflow; ``inet_twsk_alloc`` in net/ipv4/inet_timewait_sock.c);
* ``tcplab_netstat_total{counter}``: the kernel counters the claims' scenarios read
  (``/proc/net/netstat`` and ``/proc/net/snmp``, this network namespace's).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from tcplab import watch
from tcplab.kernel.observer import DiagObserver
from tcplab.kernel.procfs import FdMemory, netstat_counters
from tcplab.states import TcpState

#: The kernel counters exported: those the scenarios and judges read (ListenOverflows and
#: ListenDrops for C32/C33, TCPTimeWaitOverflow for C30, the aborts for C22/C25/C34/C36...).
COUNTERS: tuple[str, ...] = (
    "TcpExt.TCPTimeWaitOverflow", "TcpExt.ListenOverflows", "TcpExt.ListenDrops",
    "TcpExt.TCPAbortOnTimeout", "TcpExt.TCPAbortOnClose", "TcpExt.TCPAbortOnData",
    "TcpExt.TCPAbortOnLinger", "TcpExt.TCPAbortOnMemory", "TcpExt.TCPKeepAlive",
    "TcpExt.SyncookiesSent", "TcpExt.SyncookiesRecv", "TcpExt.SyncookiesFailed",
    "TcpExt.TCPReqQFullDrop", "TcpExt.TCPReqQFullDoCookies", "TcpExt.EmbryonicRsts",
    "Tcp.ActiveOpens", "Tcp.PassiveOpens", "Tcp.AttemptFails", "Tcp.EstabResets",
    "Tcp.OutRsts", "Tcp.RetransSegs",
)
TOP = 20
OTHER = "other"
MAX_TW_BUCKETS = "/proc/sys/net/ipv4/tcp_max_tw_buckets"


def process_name(pid: int) -> str:
    """The kernel's name of the process (``comm``, 15 bytes at most), never its arguments."""
    try:
        with open(f"/proc/{pid}/comm", errors="replace") as f:
            return f.read().strip() or "?"
    except OSError:
        return "?"


def _max_tw_buckets() -> int | None:
    try:
        with open(MAX_TW_BUCKETS) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


class SocketCollector(Collector):
    """One ``watch.take`` per scrape (scrapes may come from several threads: one at a time).

    The collector keeps, across scrapes, only when each (pid, inode) in CLOSE_WAIT was first
    seen; entries whose socket has gone are dropped at the next scrape.
    """

    def __init__(self, observer: DiagObserver, watch_filter: watch.WatchFilter,
                 top: int = TOP) -> None:
        self.observer = observer
        self.filter = watch_filter
        self.top = top
        self._lock = threading.Lock()
        self._first_seen: dict[tuple[int, int], float] = {}
        #: the fds of processes read by earlier scrapes, reused while provably unchanged
        self.memory = FdMemory()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            started = time.perf_counter()
            snap = watch.take(self.observer, self.filter, keep=frozenset({TcpState.CLOSE_WAIT}),
                              memory=self.memory)
            ages = self._close_wait_ages(snap)
            time_wait = self._time_wait(snap)
            families = list(self._families(snap, ages, time_wait))
            read = GaugeMetricFamily("tcplab_scrape_seconds",
                                     "Seconds this scrape took to read the kernel's sockets")
            read.add_metric([], time.perf_counter() - started)
        yield from families
        yield read

    def _close_wait_ages(self, snap: watch.Snapshot) -> dict[watch.Process, float]:
        """Each process's oldest CLOSE_WAIT age, in seconds since this exporter first saw it."""
        now = time.monotonic()
        seen: dict[tuple[int, int], float] = {}
        ages: dict[watch.Process, float] = {}
        for process, inodes in snap.kept.items():
            oldest = now
            for inode in inodes:
                key = (process.pid, inode)
                first = seen[key] = self._first_seen.get(key, now)
                oldest = min(oldest, first)
            ages[process] = now - oldest
        self._first_seen = seen
        return ages

    def _time_wait(self, snap: watch.Snapshot) -> int:
        """TIME_WAIT sockets of the whole namespace: what tcp_max_tw_buckets caps."""
        if self.filter == watch.WatchFilter():
            return snap.states[TcpState.TIME_WAIT]
        return self.observer.tally(states=[TcpState.TIME_WAIT]).unowned[TcpState.TIME_WAIT]

    def _families(self, snap: watch.Snapshot, ages: dict[watch.Process, float],
                  time_wait: int) -> Iterable[Metric]:
        shown = [s for s in watch.STATE_ORDER
                 if self.filter.states is None or s in self.filter.states]
        states = GaugeMetricFamily("tcplab_sockets", "TCP sockets per state", labels=["state"])
        for state in shown:
            states.add_metric([state.value], snap.states[state])
        yield states

        ranked = snap.sorted_owners()
        top, rest = ranked[:self.top], ranked[self.top:]
        per_process = GaugeMetricFamily(
            "tcplab_process_sockets",
            f"TCP sockets per state and owning process (top {self.top}, the rest as other)",
            labels=["state", "pid", "process"])
        oldest = GaugeMetricFamily(
            "tcplab_close_wait_oldest_seconds",
            "Age of the oldest CLOSE_WAIT socket of each process, since tcplab first saw it",
            labels=["pid", "process"])
        for process, counts in top:
            labels = [str(process.pid), process_name(process.pid)]
            for state in shown:
                if counts[state]:
                    per_process.add_metric([state.value, *labels], counts[state])
            if process in ages:
                oldest.add_metric(labels, round(ages[process], 3))
        if rest:
            others: Counter[TcpState] = Counter()
            for _, counts in rest:
                others.update(counts)
            for state in shown:
                if others[state]:
                    per_process.add_metric([state.value, OTHER, OTHER], others[state])
            rest_ages = [ages[p] for p, _ in rest if p in ages]
            if rest_ages:
                oldest.add_metric([OTHER, OTHER], round(max(rest_ages), 3))
        yield per_process
        yield oldest

        unowned = GaugeMetricFamily(
            "tcplab_unowned_sockets",
            "TCP sockets without a visible owner: no_owner (TIME_WAIT, orphans, requests) or "
            "not_visible (held by a process this exporter may not inspect)",
            labels=["state", "reason"])
        for reason, counter in (("no_owner", snap.no_owner), ("not_visible", snap.not_found)):
            for state in shown:
                if counter[state]:
                    unowned.add_metric([state.value, reason], counter[state])
        yield unowned

        yield GaugeMetricFamily("tcplab_time_wait_sockets",
                                "TIME_WAIT sockets of the network namespace, whatever the filters",
                                value=time_wait)
        buckets = _max_tw_buckets()
        if buckets is not None:
            yield GaugeMetricFamily("tcplab_tcp_max_tw_buckets",
                                    "net.ipv4.tcp_max_tw_buckets: TIME_WAIT sockets beyond it "
                                    "are not created (TcpExt.TCPTimeWaitOverflow)",
                                    value=buckets)
        counters = CounterMetricFamily(
            "tcplab_netstat", "Kernel TCP counters (/proc/net/netstat, /proc/net/snmp)",
            labels=["counter"])
        values = netstat_counters()
        for name in COUNTERS:
            if name in values:
                counters.add_metric([name], values[name])
        yield counters


def registry(observer: DiagObserver, watch_filter: watch.WatchFilter,
             top: int = TOP) -> CollectorRegistry:
    """A registry holding only tcplab's collector (no process or Python metrics)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SocketCollector(observer, watch_filter, top))
    return reg
