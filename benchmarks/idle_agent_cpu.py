"""Benchmark (not a test): the CPU time of one idle agent run on this machine.

Runs the agent as the boot ships it in the sandbox of tests/idle_sandbox.py (fake /proc,
stub dcv and nvidia-smi, a local IMDS), many times, and reads the CPU time of the
finished child processes with resource.getrusage(RUSAGE_CHILDREN). The stubs are bash
scripts; their own cost is measured apart and taken off, so the figure is the agent's.
On a desktop, the real dcv and nvidia-smi add their own CPU to each run.

    .venv/bin/python benchmarks/idle_agent_cpu.py [RUNS]
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from idle_sandbox import Desktop, Imds  # noqa: E402

GOAL_MS = 50


def children_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def per_run_ms(runs: int, command: list[str], env: dict[str, str]) -> float:
    before = children_cpu_ms()
    for _ in range(runs):
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (children_cpu_ms() - before) / runs


def main(runs: int = 200) -> None:
    imds = Imds()
    with tempfile.TemporaryDirectory() as scratch:
        box = Desktop(Path(scratch), imds=imds, gpu=True, policy="30")
        env = box.env()
        agent = [sys.executable, "-IS", str(box.agent)]
        box.advance(60)
        subprocess.run(agent, env=env, check=True, capture_output=True)  # warm the page cache
        total = per_run_ms(runs, agent, env)
        stubs = per_run_ms(runs, [str(box.bin / "dcv"), "describe-session", "console", "--json"], env)
        stubs += per_run_ms(runs, [str(box.bin / "nvidia-smi"), "--query-gpu=utilization.gpu"], env)
        bare = per_run_ms(runs, [sys.executable, "-IS", "-c", "pass"], env)
    imds.close()
    agent_ms = total - stubs
    print(f"one idle agent run, mean of {runs}: {total:.1f} ms CPU with the stub dcv and nvidia-smi, "
          f"{agent_ms:.1f} ms for the agent itself (the stubs: {stubs:.1f} ms; "
          f"a bare `python3 -IS -c pass`: {bare:.1f} ms); goal < {GOAL_MS} ms")
    print(f"a day of runs (1,440): {agent_ms * 1440 / 1000:.1f} s of CPU")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
