"""``python -m tests.benchmarks``: start-up, then the observer benchmark (see bench_observer.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_observer import main

raise SystemExit(main())
