"""``tcplab export`` against ``tcplab watch --once --json`` on the same sockets.

A child process (named ``cwholder``, with a secret on its command line) holds CLOSE_WAIT
and ESTABLISHED sockets of one port; every scrape is parsed with prometheus_client's own
OpenMetrics parser, and, when the Debian package ``prometheus`` is installed, a real
Prometheus server scrapes the exporter and is asked for CLOSE_WAIT by process.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

PROMETHEUS = shutil.which("prometheus")
SECRET = "--password=hunter2"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

HOLDER = textwrap.dedent('''
    import socket, sys
    with open("/proc/self/comm", "w") as f:
        f.write("cwholder")
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    port = listener.getsockname()[1]
    keep = [listener]
    for i in range(12):
        client = socket.create_connection(("127.0.0.1", port))
        server, _ = listener.accept()
        if i < 7:
            client.close()  # the peer closed: server end in CLOSE_WAIT, never closed
            keep.append(server)
        else:
            keep += [client, server]  # ESTABLISHED, both ends held
    print(port, flush=True)
    sys.stdin.read()
''')


@pytest.fixture
def holder() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The child holding 7 CLOSE_WAIT and 10 ESTABLISHED sockets of its port, and the port."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, SECRET], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        deadline = time.monotonic() + 5  # the FINs are processed just after close()
        while watch(port)["states"].get("CLOSE_WAIT") != 7 and time.monotonic() < deadline:
            time.sleep(0.01)
        yield proc, port
    finally:
        proc.communicate("", timeout=10)


def watch(port: int) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "tcplab", "watch", "--once", "--json",
                           "--port", str(port)], capture_output=True, text=True, timeout=60,
                          check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture
def exporter(holder: tuple[subprocess.Popen[str], int]) -> Iterator[str]:
    """``tcplab export`` on a free loopback port, filtered to the holder's port: its URL."""
    _, port = holder
    proc = subprocess.Popen([sys.executable, "-m", "tcplab", "export", "--listen",
                             "127.0.0.1:0", "--port", str(port)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("tcplab export: serving http://127.0.0.1:"), line
        yield line.split()[3]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Sample name -> (sorted labels) -> value, through prometheus_client's parser."""
    request = urllib.request.Request(url, headers={"Accept": OPENMETRICS})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        body = response.read().decode()
    assert SECRET not in body and "hunter2" not in body
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(body):  # type: ignore[no-untyped-call]
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def by(samples: dict[tuple[tuple[str, str], ...], float], **fixed: str) -> dict[str, int]:
    """Nonzero samples matching ``fixed`` labels, keyed by their state."""
    out = {}
    for labels, value in samples.items():
        named = dict(labels)
        if all(named.get(k) == v for k, v in fixed.items()) and value:
            out[named["state"]] = int(value)
    return out


def test_a_scrape_says_what_watch_says(holder: tuple[subprocess.Popen[str], int],
                                       exporter: str) -> None:
    proc, port = holder
    first = scrape(exporter)
    seen = watch(port)
    assert by(first["tcplab_sockets"]) == {k: v for k, v in seen["states"].items() if v}
    owner = next(o for o in seen["owners"] if o["pid"] == proc.pid)
    assert owner["states"] == {"ESTABLISHED": 10, "CLOSE_WAIT": 7, "LISTEN": 1}
    assert by(first["tcplab_process_sockets"], pid=str(proc.pid), process="cwholder") \
        == owner["states"]
    assert by(first["tcplab_unowned_sockets"], reason="no_owner") == seen["no_owner"]["states"]
    assert first["tcplab_tcp_max_tw_buckets"][()] > 0
    assert (("counter", "TcpExt.ListenOverflows"),) in first["tcplab_netstat_total"]
    # the oldest CLOSE_WAIT is dated from the first scrape: it ages from one to the next
    age = first["tcplab_close_wait_oldest_seconds"][(("pid", str(proc.pid)),
                                                     ("process", "cwholder"))]
    time.sleep(0.3)
    later = scrape(exporter)["tcplab_close_wait_oldest_seconds"]
    assert later[(("pid", str(proc.pid)), ("process", "cwholder"))] >= age + 0.25


def test_top_caps_processes_and_sums_the_rest_as_other(
        holder: tuple[subprocess.Popen[str], int]) -> None:
    proc, port = holder
    mine = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        done = subprocess.run([sys.executable, "-m", "tcplab", "export", "--once", "--top", "1",
                               "--port", str(port)], capture_output=True, text=True,
                              timeout=60, check=True)
    finally:
        for sock in mine:
            sock.close()
    samples: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(done.stdout):  # type: ignore[no-untyped-call]
        if family.name == "tcplab_process_sockets":
            samples = {tuple(sorted(s.labels.items())): s.value for s in family.samples}
    assert by(samples, process="cwholder")["CLOSE_WAIT"] == 7
    assert by(samples, pid="other", process="other") == {"ESTABLISHED": 3}
    assert {dict(labels)["pid"] for labels in samples} == {str(proc.pid), "other"}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--listen", "9977"), "expected HOST:PORT"),
        (("--listen", "127.0.0.1:70000"), "expected HOST:PORT"),
        (("--listen", "no-such-host.invalid:9977"), "unknown host"),
        (("--port", "0"), "--port 0 is not a TCP port"),
        (("--pid", "999999999"), "--pid 999999999: no such process"),
        (("--top", "0"), "'0' is not a whole number of 1 or more"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], needle: str) -> None:
    done = subprocess.run([sys.executable, "-m", "tcplab", "export", *args], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert needle in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_busy_address_is_one_line_and_exit_2() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "tcplab", "export", "--listen",
                               f"127.0.0.1:{port}"], capture_output=True, text=True,
                              timeout=60, check=False)
    assert done.returncode == 2
    assert "cannot listen" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            answer: dict[str, Any] = json.loads(response.read())
    except OSError:  # not listening yet
        return []
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


@pytest.mark.skipif(PROMETHEUS is None,
                    reason="needs the prometheus server (Debian: apt-get install prometheus)")
def test_a_real_prometheus_finds_close_wait_by_process(
        holder: tuple[subprocess.Popen[str], int], exporter: str) -> None:
    assert PROMETHEUS is not None
    proc, port = holder
    target = urllib.parse.urlsplit(exporter).netloc
    listen = f"127.0.0.1:{_free_port()}"
    with tempfile.TemporaryDirectory(prefix="tcplab-prometheus-") as tmp:
        config = Path(tmp, "prometheus.yml")
        config.write_text(textwrap.dedent(f"""\
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: tcplab
                static_configs:
                  - targets: ["{target}"]
            """))
        server = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
             f"--web.listen-address={listen}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            expr = 'sum by (pid, process) (tcplab_process_sockets{state="CLOSE_WAIT"})'
            deadline = time.monotonic() + 60
            result: list[dict[str, Any]] = []
            while not result and time.monotonic() < deadline:
                assert server.poll() is None, "prometheus exited"
                time.sleep(0.2)
                result = _query(f"http://{listen}", expr)
        finally:
            server.terminate()
            server.wait(timeout=30)
    seen = watch(port)
    expected = {(str(o["pid"]), o["states"]["CLOSE_WAIT"]) for o in seen["owners"]
                if o["states"].get("CLOSE_WAIT")}
    assert expected == {(str(proc.pid), 7)}
    got = {(r["metric"]["pid"], int(float(r["value"][1]))) for r in result}
    assert got == expected
    assert {r["metric"]["process"] for r in result} == {"cwholder"}
