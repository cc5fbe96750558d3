"""How long `python -m desktop plan` takes, as a person runs it (a benchmark, not a test).

    .venv/bin/python benchmarks/plan_time.py [--runs N] [--budget SECONDS]

Prints each run's wall-clock time and the median; exits 1 when the median exceeds
the budget (5 s by default), so it can be run by hand or by a scheduled job on a
quiet machine. The test suite does not time anything: a loaded machine would make
such a test fail with nothing broken.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def time_plan() -> float:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "desktop", "plan"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"plan failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--budget", type=float, default=5.0, help="seconds the median may take")
    options = parser.parse_args(argv)
    times = []
    for run in range(1, options.runs + 1):
        times.append(time_plan())
        print(f"run {run}: {times[-1]:.2f} s")
    median = statistics.median(times)
    print(f"median {median:.2f} s (budget {options.budget:.1f} s)")
    return 0 if median <= options.budget else 1


if __name__ == "__main__":
    sys.exit(main())
