"""Mutation testing of ``cloud_init/boot.sh``, which no Python mutation tool reads.

Each mutant changes one line of the boot script (``|| fail`` becomes ``|| true``, ``-eq``
becomes ``-ne``, a ``return 1`` goes, a function's body is skipped, ...). The mutants come
from rules applied to every line outside the here-documents, plus a hand list (``HAND``)
for lines whose meaning no rule sees. For each mutant the boot tests (the test files that
run or read boot.sh, ``BOOT_TESTS``) run against a copy of the project holding the mutated
script; the mutant is *killed* when a test fails, and *survives* when all pass. A survivor
is a line that can break with every test green: add a test, or argue why the change is
harmless (equivalent) in ``docs/development.md``.

    .venv/bin/python mutation/boot_mutants.py --list          # the mutants, numbered
    .venv/bin/python mutation/boot_mutants.py -j 2            # run them all, 2 at a time
    .venv/bin/python mutation/boot_mutants.py --only 3,17     # just those
    .venv/bin/python mutation/boot_mutants.py --threshold 95  # exit 1 below 95% killed

Before the mutants, the unmutated script must pass the same tests (else exit 2). Each
worker has its own copy of the project (``--work``, a temporary directory by default),
so the checkout is never changed. The results are also written as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOOT = Path("cloud_init/boot.sh")

#: The test files that run the boot script (the sandbox) or read it (shellcheck, the
#: rendered user data); the fast ones first, so a killed mutant is seen early (-x).
BOOT_TESTS = (
    "tests/test_user_data_format.py",
    "tests/test_cloud_init_render.py",
    "tests/test_dcv_signature.py",
    "tests/test_app_store.py",
    "tests/test_boot_files.py",
    "tests/test_dcv_password_boot.py",
    "tests/test_idle_boot.py",
    "tests/test_boot_fsx_efa.py",
    "tests/test_boot_script.py",
    "tests/test_boot_sturdy.py",
)

#: (name, pattern, replacement): each match in a line is one mutant (re.sub, count=1 at
#: that match). Applied to code lines only (not comments, not here-document bodies).
RULES = (
    ("fail-ignored", r"\|\| fail\b.*$", "|| true"),
    ("return-1-ignored", r"\|\| return 1\b", "|| true"),
    ("return-1-dropped", r"^(\s*)return 1$", r"\1:"),
    ("exit-1-is-0", r"\bexit 1\b", "exit 0"),
    ("eq-ne", r" -eq ", " -ne "),
    ("ne-eq", r" -ne ", " -eq "),
    ("lt-ge", r" -lt ", " -ge "),
    ("gt-le", r" -gt ", " -le "),
    ("ge-lt", r" -ge ", " -lt "),
    ("le-gt", r" -le ", " -gt "),
    ("str-eq-ne", r" == ", " != "),
    ("str-ne-eq", r" != ", " == "),
    ("arith-lt-le", r"(\(\([^)]*?) < ", r"\1 <= "),
    ("arith-ge-gt", r"(\(\([^)]*?) >= ", r"\1 > "),
    ("n-z", r"\[\[ -n ", "[[ -z "),
    ("z-n", r"\[\[ -z ", "[[ -n "),
    ("f-not", r"\[\[ -f ", "[[ ! -f "),
    ("negation-dropped", r"\bif ! ", "if "),
    ("test-negation-dropped", r"\[\[ ! ", "[[ "),
    ("and-or", r" && (?=return|continue|break)", " || "),
    ("chown-h-dropped", r"\bchown -h ", "chown "),
    ("nofail-dropped", r",nofail\b", ""),
    ("mode-600-644", r"\b600\b", "644"),
    ("mode-700-755", r"\b700\b", "755"),
    ("errexit-dropped", r"^set -euo pipefail$", "set -uo pipefail"),
)

#: Hand-made mutants: (line pattern, old, new, why). The line pattern picks the line(s).
HAND = (
    (r"verify_deb \"\$1\" \|\| fail", "verify_deb \"$1\" || fail", "true || fail", "skip the DCV signature check"),
    (r"WaylandEnable=false", "WaylandEnable=false", "WaylandEnable=true", "Wayland on: DCV's console session breaks"),
    (r"authentication = \"system\"", "\"system\"", "\"none\"", "DCV without authentication"),
    (r"create-session = true", "true", "false", "no automatic console session"),
    (r"^\s*owner = \"ubuntu\"", "ubuntu", "root", "the console session owned by root"),
)


@dataclass
class Mutant:
    number: int
    line: int  # 1-based
    rule: str
    original: str
    mutated: str


@dataclass
class Result:
    mutant: Mutant
    killed: bool
    seconds: float
    detail: str


def code_lines(lines: list[str]) -> list[bool]:
    """True for each line that is shell code: not a comment, not inside a here-document."""
    code, heredoc = [], None
    for text in lines:
        if heredoc is not None:
            code.append(False)
            if text.strip() == heredoc:
                heredoc = None
            continue
        stripped = text.strip()
        code.append(bool(stripped) and not stripped.startswith("#"))
        found = re.search(r"<<-?\s*'?\"?(\w+)'?\"?\s*$", text)
        if found and "<<<" not in text:
            heredoc = found.group(1)
    return code


def function_bodies(lines: list[str]) -> list[tuple[int, str]]:
    """(index of the opening line, name) of each ``name() {`` function but ``main``."""
    found = []
    for index, text in enumerate(lines):
        match = re.match(r"^(\w+)\(\) \{$", text)
        if match and match.group(1) != "main":
            found.append((index, match.group(1)))
    return found


def mutants(text: str) -> list[Mutant]:
    """Every mutant of the script ``text``: the rules, the emptied functions, the hand list."""
    lines = text.split("\n")
    code = code_lines(lines)
    made: list[Mutant] = []

    def add(index: int, rule: str, mutated: str) -> None:
        if mutated != lines[index] and not any(m.line == index + 1 and m.mutated == mutated for m in made):
            made.append(Mutant(len(made) + 1, index + 1, rule, lines[index], mutated))

    for index, line in enumerate(lines):
        if not code[index]:
            continue
        for rule, pattern, replacement in RULES:
            for match in re.finditer(pattern, line, re.M):
                mutated = line[:match.start()] + match.expand(replacement) + line[match.end():]
                add(index, rule, mutated)
    for index, name in function_bodies(lines):
        add(index, f"empty-function:{name}", lines[index] + " return 0;")
    for pattern, old, new, why in HAND:
        for index, line in enumerate(lines):
            if re.search(pattern, line) and old in line:
                add(index, f"hand:{why}", line.replace(old, new, 1))
    return made


def apply(text: str, mutant: Mutant) -> str:
    lines = text.split("\n")
    assert lines[mutant.line - 1] == mutant.original, "the script changed since the mutants were listed"
    lines[mutant.line - 1] = mutant.mutated
    return "\n".join(lines)


def copy_project(work: Path) -> Path:
    """A copy of the project to mutate (no .git, no caches; the venv is shared)."""
    target = work / "project"
    shutil.copytree(ROOT, target, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", ".hypothesis", "mutants", ".mutmut-cache", "html", ".pytest_cache"))
    return target


def run_tests(project: Path, tests: tuple[str, ...], timeout: float) -> tuple[bool, str]:
    """Run the boot tests in ``project``: (all passed, the last lines of a failure)."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "-x", "-q",
               "--no-header", "-o", "addopts=", "--timeout", "120", *tests]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_XDIST_AUTO_NUM_WORKERS", None)
    try:
        done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"the tests took more than {timeout:.0f} s (a hang counts as killed)"
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    if done.returncode == 0:
        return True, ""
    if done.returncode not in (1,):
        return False, f"pytest exit {done.returncode}: " + " | ".join(done.stdout.splitlines()[-3:])
    return False, failed[0] if failed else done.stdout.splitlines()[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--only", help="comma-separated mutant numbers (from --list) to run")
    parser.add_argument("-j", "--workers", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--threshold", type=float, default=95.0, help="exit 1 below this %% killed (default 95)")
    parser.add_argument("--tests", nargs="+", default=list(BOOT_TESTS), help="the test files to run per mutant")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for one mutant's tests (default 900)")
    parser.add_argument("--work", type=Path, help="where the project copies go (default: a temporary directory)")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the unmutated run (when it was just seen passing)")
    args = parser.parse_args(argv)

    text = (ROOT / BOOT).read_text()
    every = mutants(text)
    chosen = every
    if args.only:
        wanted = {int(n) for n in args.only.split(",")}
        chosen = [m for m in every if m.number in wanted]
    if args.list:
        for m in chosen:
            print(f"{m.number:4} line {m.line:4} {m.rule}\n       - {m.original.strip()}\n       + {m.mutated.strip()}")
        print(f"{len(chosen)} mutants of {BOOT}")
        return 0

    work = Path(tempfile.mkdtemp(prefix="boot-mutants-", dir=args.work))
    tests = tuple(args.tests)
    workers = max(1, args.workers)
    try:
        projects = [copy_project(work / f"worker{n}") for n in range(workers)]
        started = time.monotonic()
        ok, detail = (True, "") if args.no_baseline else run_tests(projects[0], tests, args.timeout)
        if not ok:
            print(f"the unmutated boot script fails its tests: {detail}", file=sys.stderr)
            return 2
        print(f"baseline: the boot tests pass in {time.monotonic() - started:.0f} s; "
              f"{len(chosen)} mutants, {workers} at a time", flush=True)
        free = list(projects)
        results: list[Result] = []

        def one(mutant: Mutant) -> Result:
            project = free.pop()
            try:
                (project / BOOT).write_text(apply(text, mutant))
                begun = time.monotonic()
                passed, why = run_tests(project, tests, args.timeout)
                return Result(mutant, not passed, time.monotonic() - begun, why)
            finally:
                (project / BOOT).write_text(text)
                free.append(project)

        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for result in pool.map(one, chosen):
                results.append(result)
                m = result.mutant
                print(f"{'killed  ' if result.killed else 'SURVIVED'} #{m.number:<4} line {m.line:<4} {m.rule}: "
                      f"{m.mutated.strip()[:90]}  ({result.seconds:.0f} s)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    killed = sum(r.killed for r in results)
    score = 100.0 * killed / len(results) if results else 100.0
    survivors = [r.mutant for r in results if not r.killed]
    print(f"\n{killed} of {len(results)} mutants killed: {score:.1f}% (threshold {args.threshold:g}%)")
    for m in survivors:
        print(f"  survived #{m.number} line {m.line} ({m.rule}):\n    - {m.original.strip()}\n    + {m.mutated.strip()}")
    if args.json:
        args.json.write_text(json.dumps({"score": score, "killed": killed, "total": len(results),
                                         "results": [asdict(r) for r in results]}, indent=1))
    return 0 if score >= args.threshold else 1


if __name__ == "__main__":
    sys.exit(main())
