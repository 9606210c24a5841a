"""``python -m tests.benchmarks``: start-up, then the observer benchmark (see bench_observer.py),
then the leak check's per-test cost (bench_plugin.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_plugin
from bench_observer import main

status = main()
args = sys.argv[1:]
passed = (["--quick"] if "--quick" in args else []) + (
    ["--out", args[args.index("--out") + 1]] if "--out" in args[:-1] else [])
raise SystemExit(status or bench_plugin.main(passed))
