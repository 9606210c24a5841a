"""``tcplab doctor`` reports the host's real values and changes nothing.

Every watched tunable must appear with the value read here, independently, from
``/proc/sys`` (or as absent when this kernel lacks it), and no file under
``/proc/sys/net`` may differ after the doctor ran. Files that change on their own (a
counter such as ``nf_conntrack_count``) are found by taking two snapshots first.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tcplab import doctor as doctor_module
from tcplab.kernel.diag import SockDiag
from tcplab.kernel.observer import DiagObserver
from tcplab.kernel.sysctl import WATCHED
from tcplab.states import TcpState

ROOT = Path(__file__).resolve().parents[1]
NET = Path("/proc/sys/net")


def snapshot() -> dict[str, str]:
    values: dict[str, str] = {}
    for directory, _dirs, files in os.walk(NET):
        for name in files:
            path = os.path.join(directory, name)
            try:
                with open(path) as f:
                    values[path] = f.read()
            except OSError:  # write-only (route/flush) or refused
                continue
    return values


def independent(name: str) -> str | None:
    path = Path("/proc/sys") / name.replace(".", "/")
    return " ".join(path.read_text().split()) if path.exists() else None


def doctor(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "tcplab", "doctor", *args], cwd=cwd, env=env,
                          text=True, capture_output=True, timeout=60, check=False)


def test_doctor_reports_real_values_and_writes_nothing(tmp_path: Path) -> None:
    first, second = snapshot(), snapshot()
    volatile = {p for p in first.keys() | second.keys() if first.get(p) != second.get(p)}
    proc = doctor("--json", "--results", str(tmp_path / "none"), cwd=ROOT)
    after = snapshot()
    assert proc.returncode == 0, proc.stderr
    changed = sorted(p for p in after.keys() | second.keys()
                     if p not in volatile and after.get(p) != second.get(p))
    assert changed == []

    report = json.loads(proc.stdout)
    tunables = {t["name"]: t for t in report["tunables"]}
    assert list(tunables) == list(WATCHED)
    for name in WATCHED:
        row = tunables[name]
        assert row["value"] == independent(name), name
        assert row["present"] is (row["value"] is not None)
        assert row["does"] and row["basis"] and row["advice"], name
    if independent("net.ipv4.tcp_tw_recycle") is None:
        assert "4.12" in tunables["net.ipv4.tcp_tw_recycle"]["advice"]
    assert set(report["sockets"]) == {s.value for s in TcpState}
    assert all(isinstance(n, int) and n >= 0 for n in report["sockets"].values())


def test_doctor_prints_every_tunable(tmp_path: Path) -> None:
    proc = doctor("--results", str(tmp_path / "none"), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    for name in WATCHED:
        assert f"{name} = " in proc.stdout


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="old-duplicates runs in a private netns: needs root")
def test_doctor_cites_the_verdicts_measured_in_the_newest_run(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    ran = subprocess.run([sys.executable, "-m", "tcplab", "run", "old-duplicates", "--results",
                          str(tmp_path)], cwd=ROOT, env=env, text=True, capture_output=True,
                         timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
    (results_file,) = tmp_path.glob("*/results.json")
    results = json.loads(results_file.read_text())
    row = next(r for r in results["ledger"] if r["claim"] == "C13")
    assert row["status"] == "judged"

    proc = doctor("--json", "--results", str(tmp_path), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["run_id"] == results["run_id"]
    reuse = next(t for t in report["tunables"] if t["name"] == "net.ipv4.tcp_tw_reuse")
    assert reuse["basis"] == f"measured in run {results['run_id']}"
    assert [m["claim"] for m in reuse["measured"]] == ["C13"]
    assert reuse["measured"][0]["verdict"] == row["verdict"]
    assert f"C13 {row['verdict']} (old-duplicates)" in reuse["does"]


def test_socket_counts_go_through_the_observer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The doctor counts sockets through ``DiagObserver`` (the lab's observer), and counts
    what a sock_diag dump of both families lists: the same as before it went through it."""
    with socket.create_server(("127.0.0.1", 0)), SockDiag() as diag:
        counts = doctor_module.socket_counts()
        listed = [r.state.value for r in diag.dump()]
    assert set(counts) == {s.value for s in TcpState}
    # other processes open and close sockets meanwhile: both readings see this listener
    assert counts[TcpState.LISTEN.value] >= 1 and listed.count(TcpState.LISTEN.value) >= 1

    asked: list[str] = []

    class Fake(DiagObserver):
        def census(self, **kwargs: object) -> list[tuple[TcpState, int]]:
            asked.append("census")
            return [(TcpState.CLOSE_WAIT, 7), (TcpState.CLOSE_WAIT, 8), (TcpState.LISTEN, 9)]

    monkeypatch.setattr(doctor_module, "DiagObserver", Fake)
    counts = doctor_module.socket_counts()
    assert asked == ["census"]
    assert counts[TcpState.CLOSE_WAIT.value] == 2 and counts[TcpState.LISTEN.value] == 1


def test_no_module_but_the_observer_opens_sock_diag() -> None:
    """Every sock_diag reader in src goes through ``tcplab.kernel.observer`` (issue 10: the
    direct ``SockDiag()`` uses)."""
    src = ROOT / "src" / "tcplab"
    direct = sorted(str(p.relative_to(src)) for p in src.rglob("*.py")
                    if "SockDiag(" in p.read_text())
    assert direct == ["kernel/observer.py"], direct
