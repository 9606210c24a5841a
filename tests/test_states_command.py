"""``tcplab states``: stretches read from timelines, and the table after a real run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tcplab.holding import HOLDERS, episodes
from tcplab.states import TcpState

ROOT = Path(__file__).resolve().parents[1]


def tcplab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tcplab", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)


def entry(t: float, end: str, state: str | None, source: str = "snapshot") -> dict[str, Any]:
    sock = None if state is None else {"state": state, "recv_q": 0, "send_q": 0,
                                       "timer": {"kind": "off", "remaining_s": 0, "fired": 0}}
    return {"t": t, "end": end, "source": source, "socket": sock}


def test_every_state_has_a_holder() -> None:
    assert set(HOLDERS) == set(TcpState)
    assert all(HOLDERS[s] for s in TcpState)


def test_episodes_measure_each_stretch_and_its_peers() -> None:
    timeline = [
        entry(0.0, "client", "ESTABLISHED"), entry(0.0, "server", "ESTABLISHED"),
        entry(0.1, "server", "CLOSE_WAIT"), entry(0.1, "client", "FIN_WAIT2"),
        entry(1.1, "server", "CLOSE_WAIT", "held"), entry(1.1, "client", "FIN_WAIT2", "held"),
        entry(1.2, "server", None), entry(1.2, "client", "TIME_WAIT"),
        entry(2.2, "client", "TIME_WAIT", "held"),
    ]
    found = {(e.end, e.state.value): e for e in episodes(timeline)}
    close_wait = found[("server", "CLOSE_WAIT")]
    assert round(close_wait.held, 3) == 1.1 and not close_wait.open_ended
    assert close_wait.peers["client"] is not None and close_wait.peers["client"]["state"] == "FIN_WAIT2"
    time_wait = found[("client", "TIME_WAIT")]
    assert time_wait.open_ended and round(time_wait.held, 3) == 1.0
    assert time_wait.peers["server"] is None  # gone by then
    assert ("server", "TIME_WAIT") not in found


def test_missing_results_directory_is_a_usage_error(tmp_path: Path) -> None:
    done = tcplab("states", "--results", str(tmp_path / "none"))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_no_runs_yet_names_the_scenarios_to_run(tmp_path: Path) -> None:
    done = tcplab("states", "--results", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "run `tcplab run closing`" in done.stdout
    assert tcplab("states", "--results", str(tmp_path), "--check").returncode == 1


def test_states_after_a_real_run_shows_all_eleven_held(tmp_path: Path) -> None:
    done = tcplab("run", "all-states", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    shown = tcplab("states", "--results", str(tmp_path), "--check")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    rows = shown.stdout.splitlines()[2:2 + len(TcpState)]
    assert [r.split()[0] for r in rows] == [s.value for s in TcpState]
    data = json.loads(tcplab("states", "--results", str(tmp_path), "--json").stdout)["states"]
    for state in TcpState:
        observed = data[state.value]["observed"]
        assert data[state.value]["scenario"] == "all-states"
        assert observed["socket"]["state"] == state.value
        assert observed["held_s"] >= 0.9, (state, observed)
