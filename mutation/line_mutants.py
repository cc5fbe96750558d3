"""Line mutation testing of the code that runs outside the test process.

mutmut traces which tests reach a function inside the pytest process; two files run in
processes of their own and so need this tool instead: ``cloud_init/boot.sh`` (bash, run
by the boot sandbox; no Python tool reads it) and ``cloud_init/idle_agent.py`` (run by the
idle sandbox as ``python3 -IS``). ``--file boot`` or ``--file agent`` picks one.

Each mutant changes one line. For the boot script: ``|| fail`` becomes ``|| true``,
``-eq`` becomes ``-ne``, a ``return 1`` goes, a function's body is skipped, a hand list
(``HAND``) for lines no rule sees. For the agent (by token, so never inside a string): a
comparison turned (``>=``/``>``, ``<``/``<=``, ``==``/``!=``), ``and``/``or`` swapped, a
``not`` dropped, a number +1, ``True``/``False`` swapped (``return True`` too), ``+``/``-``
swapped, a one-line ``raise`` made ``pass``, an ``if``/``while`` condition made ``True`` or
``False``. A mutant that does not parse (``bash -n``, ``compile``) is dropped.

Cheap, because each mutant runs only the tests that can see it. First, one traced run
of the file's tests (``FILES[...].tests``, with the unmutated file: it is also the
baseline, and must pass) records which lines each test executed: the sandboxes' scripts
get a DEBUG trap (bash) or a line tracer (Python) writing the executed line numbers,
mapped back to the source (the shipped copies drop comments). Then a mutant of line L
runs the tests that executed L (or, when none did, as for a continuation line or a
here-document, those that executed any line of L's function), plus the tests that ran
no line (they read the file: shellcheck, the size, the rendering), fastest first, with
``-x``, one process each, ``-j`` at a time. The trace is kept in ``.line-mutants/``
(ignored by git) while the file, the tests and the sandboxes are unchanged.

    .venv/bin/python mutation/line_mutants.py --file boot --list        # the mutants, numbered
    .venv/bin/python mutation/line_mutants.py --file boot -j 2          # all, two at a time
    .venv/bin/python mutation/line_mutants.py --file agent --only 3,17  # just those
    .venv/bin/python mutation/line_mutants.py --file agent --json out.json --threshold 95

A mutant is *killed* when a test fails (or its tests exceed the time limit: a hang),
*survives* when all pass, and has *no tests* when no test ran its line (it counts as
survived). Exit 1 below ``--threshold`` % killed, 2 when the unmutated file fails.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import hashlib
import io
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tokenize
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The environment variable naming the directory of a traced run (the pytest plugin below).
TRACE_ENV = "LINE_MUTANTS_TRACE"


# --- the boot script's mutants ----------------------------------------------------------------

#: (name, pattern, replacement): each match in a line is one mutant (re.sub, count=1 at
#: that match). Applied to code lines only (not comments, not here-document bodies).
BASH_RULES = (
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
    outcome: str  # killed, timeout, survived, no tests
    seconds: float
    detail: str
    tests: int = 0

    @property
    def killed(self) -> bool:
        return self.outcome in ("killed", "timeout")


class Collector:
    """Numbered, de-duplicated mutants of one text (a mutant equal to the line is none)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.made: list[Mutant] = []
        self._seen: set[tuple[int, str]] = set()

    def add(self, index: int, rule: str, mutated: str) -> None:
        if mutated != self.lines[index] and (index, mutated) not in self._seen:
            self._seen.add((index, mutated))
            self.made.append(Mutant(len(self.made) + 1, index + 1, rule, self.lines[index], mutated))


def bash_code_lines(lines: list[str]) -> list[bool]:
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


def bash_functions(lines: list[str]) -> list[tuple[int, int, str]]:
    """(first, last) 0-based line of each top-level ``name() {`` ... ``}`` function, and its name."""
    found = []
    for index, text in enumerate(lines):
        match = re.match(r"^(\w+)\(\) \{$", text)
        if match:
            end = next((j for j in range(index + 1, len(lines)) if lines[j] == "}"), len(lines) - 1)
            found.append((index, end, match.group(1)))
    return found


def bash_mutants(text: str) -> list[Mutant]:
    """Every mutant of the script ``text``: the rules, the emptied functions, the hand list."""
    lines = text.split("\n")
    code = bash_code_lines(lines)
    made = Collector(lines)
    for index, line in enumerate(lines):
        if not code[index]:
            continue
        for rule, pattern, replacement in BASH_RULES:
            for match in re.finditer(pattern, line, re.M):
                made.add(index, rule, line[:match.start()] + match.expand(replacement) + line[match.end():])
    for index, _end, name in bash_functions(lines):
        if name != "main":
            made.add(index, f"empty-function:{name}", lines[index] + " return 0;")
    for pattern, old, new, why in HAND:
        for index, line in enumerate(lines):
            if re.search(pattern, line) and old in line:
                made.add(index, f"hand:{why}", line.replace(old, new, 1))
    return made.made


def bash_parses(text: str) -> bool:
    return subprocess.run(["bash", "-n"], input=text, text=True, capture_output=True).returncode == 0


# --- the idle agent's mutants ------------------------------------------------------------------

#: Operator tokens and what each becomes.
PY_OPERATORS = {
    ">=": (">",), ">": (">=",), "<=": ("<",), "<": ("<=",), "==": ("!=",), "!=": ("==",),
    "+": ("-",), "-": ("+",), "+=": ("-=",), "-=": ("+=",),
}
PY_NAMES = {"and": "or", "or": "and", "True": "False", "False": "True"}


def python_mutants(text: str) -> list[Mutant]:
    """Every mutant of the Python source ``text`` (tokens, so nothing inside a string)."""
    lines = text.split("\n")
    made = Collector(lines)
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        (row, start), (end_row, end) = token.start, token.end
        if row != end_row:
            continue
        line, index = lines[row - 1], row - 1
        before, after = line[:start], line[end:]
        if token.type == tokenize.OP and token.string in PY_OPERATORS:
            for new in PY_OPERATORS[token.string]:
                made.add(index, f"{token.string} -> {new}", before + new + after)
        elif token.type == tokenize.NAME and token.string in PY_NAMES:
            made.add(index, f"{token.string} -> {PY_NAMES[token.string]}", before + PY_NAMES[token.string] + after)
        elif token.type == tokenize.NAME and token.string == "not":
            made.add(index, "not dropped", before + after.lstrip(" "))
        elif token.type == tokenize.NUMBER:
            try:
                value = int(token.string.replace("_", ""), 0)
            except ValueError:
                try:
                    value = float(token.string.replace("_", ""))
                except ValueError:
                    continue
            made.add(index, "number + 1", before + repr(value + 1) + after)
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.If, ast.While)) and node.test.lineno == node.test.end_lineno:
            test, index = node.test, node.test.lineno - 1
            if isinstance(test, ast.Constant):
                continue
            line = lines[index]
            # col_offset counts UTF-8 bytes; the agent is ASCII, and a wrong cut would not parse.
            for constant in ("True", "False"):
                made.add(index, f"condition -> {constant}",
                         line[:test.col_offset] + constant + line[test.end_col_offset:])
        elif isinstance(node, ast.Raise) and node.lineno == node.end_lineno:
            line = lines[node.lineno - 1]
            made.add(node.lineno - 1, "raise dropped",
                     line[:node.col_offset] + "pass" + line[node.end_col_offset:])
    made.made.sort(key=lambda m: (m.line, m.number))
    for number, mutant in enumerate(made.made, 1):
        mutant.number = number
    return made.made


def python_parses(text: str) -> bool:
    try:
        compile(text, "mutant", "exec")
    except SyntaxError:
        return False
    return True


def python_functions(lines: list[str]) -> list[tuple[int, int, str]]:
    """(first, last) 0-based line and name of every function (nested ones too)."""
    return [(node.lineno - 1, node.end_lineno - 1, node.name) for node in ast.walk(ast.parse("\n".join(lines)))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


@dataclass(frozen=True)
class Target:
    path: str
    tests: tuple[str, ...]
    make: object = field(compare=False)
    parses: object = field(compare=False)
    functions: object = field(compare=False)


FILES = {
    # The test files that run the boot script (the sandbox) or read it (shellcheck, the
    # rendered user data).
    "boot": Target("cloud_init/boot.sh", (
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
        "tests/test_boot_hardening.py",
        # Only its boots: its other tests run the SageMaker SDK (seconds), which reads no
        # line of the boot and would otherwise run for every mutant.
        "tests/test_sagemaker_config.py::test_the_boot_writes_the_stacks_file_rewrites_it_and_leaves_a_persons_own_alone",
        "tests/test_sagemaker_config.py::test_a_boot_that_cannot_read_the_defaults_keeps_the_previous_file_and_says_so",
        "tests/test_sagemaker_config.py::test_a_boot_waits_for_the_grant_and_reads_only_this_desktops_parameter",
    ), bash_mutants, bash_parses, bash_functions),
    # The agent's own tests (its sandbox), and those that boot it in or read it.
    "agent": Target("cloud_init/idle_agent.py", (
        "tests/test_idle_agent.py",
        "tests/test_boot_files.py",
        "tests/test_idle_boot.py",
        # The duration grammar, which the laptop's commands import from the agent.
        "tests/test_durations.py",
    ), python_mutants, python_parses, python_functions),
}


# --- the traced run: a pytest plugin (``-p line_mutants``) ---------------------------------------

def align(source: str, shipped: str) -> dict[int, int]:
    """1-based line of ``shipped`` -> line of ``source``, for a copy that only dropped
    comment-only and blank lines, stripped indentation and added lines of its own (the
    rendered values at the top of the boot script)."""
    src = source.split("\n")
    mapping, at = {}, 0
    for number, line in enumerate(shipped.split("\n"), 1):
        probe = at
        while probe < len(src) and src[probe].strip() != line.strip() and (
                not src[probe].strip() or src[probe].lstrip().startswith("#")):
            probe += 1
        if probe < len(src) and src[probe].strip() == line.strip():
            mapping[number] = probe + 1
            at = probe + 1
    return mapping


class _Tracer:
    """In a traced run: instruments the sandboxes' copies and records each test's lines."""

    def __init__(self, directory: Path, target: str) -> None:
        self.directory = directory
        self.target = target
        self.source = (Path.cwd() / FILES[target].path).read_text()
        self.maps: dict[Path, dict[int, int]] = {}
        self.tests: dict[str, dict] = {}
        self.count = 0

    def hits_file(self, shipped: str) -> Path:
        self.count += 1
        path = self.directory / f"hits.{os.getpid()}.{self.count}"
        self.maps[path] = align(self.source, shipped)
        return path

    def bash(self, script: str) -> str:
        path = self.hits_file(script)
        # Only the script's own lines: the boot sandbox's stub functions (defined in a file of
        # their own, run in the script's shell) are traced too, with their file's line numbers.
        trap = f"; set -T; trap '[[ \"${{BASH_SOURCE[0]}}\" != \"$0\" ]] || printf \"%s\\n\" \"$LINENO\" >>{path}' DEBUG"
        return re.sub(r"^set -euo pipefail$", lambda m: m.group(0) + trap, script, count=1, flags=re.M)

    def python(self, program: str) -> str:
        path = self.hits_file(program)
        tracer = (
            f"import sys as _mt_s;_mt_h=set();_mt_o=open({str(path)!r},'a');"
            "_mt_l=lambda f,e,a:(e=='line' and f.f_lineno not in _mt_h and (_mt_h.add(f.f_lineno) or "
            "_mt_o.write('%d\\n'%f.f_lineno) and _mt_o.flush()),_mt_l)[1];"
            "_mt_s.settrace(lambda f,e,a:_mt_l if f.f_code.co_filename==__file__ else None);"
            "_mt_s._getframe().f_trace=_mt_l;"
        )
        # On the first import line, so no line number moves.
        return re.sub(r"^import ", lambda m: tracer + m.group(0), program, count=1, flags=re.M)

    def patch(self) -> None:
        if self.target == "boot" and "boot_sandbox" in sys.modules:
            sandbox = sys.modules["boot_sandbox"].Sandbox
            script = sandbox.script
            sandbox.script = lambda this, **overrides: self.bash(script(this, **overrides))
        if self.target == "agent" and "idle_sandbox" in sys.modules:
            module = sys.modules["idle_sandbox"]
            shipped = module.shipped
            module.shipped = lambda name: self.python(shipped(name)) if name == "idle_agent.py" else shipped(name)

    def collect(self) -> set[int]:
        lines = set()
        for path, mapping in list(self.maps.items()):
            if path.exists():
                for text in path.read_text().split():
                    if text.isdigit() and int(text) in mapping:
                        lines.add(mapping[int(text)])
                path.unlink()
        self.maps.clear()
        return lines


_tracer: _Tracer | None = None


def pytest_configure(config) -> None:
    global _tracer
    # Under xdist the controller only relays the workers' reports: the workers trace.
    controller = config.getoption("numprocesses", None) and not hasattr(config, "workerinput")
    if os.environ.get(TRACE_ENV) and not controller:
        directory, target = os.environ[TRACE_ENV].rsplit(":", 1)
        _tracer = _Tracer(Path(directory), target)


def pytest_collection_finish(session) -> None:
    if _tracer:
        _tracer.patch()


def pytest_runtest_logstart(nodeid, location) -> None:
    if _tracer:
        _tracer.collect()
        _tracer.tests[nodeid] = {"started": time.monotonic(), "lines": [], "passed": True}


def pytest_runtest_logreport(report) -> None:
    if _tracer and report.nodeid in _tracer.tests and report.failed:
        _tracer.tests[report.nodeid]["passed"] = False


def pytest_runtest_logfinish(nodeid, location) -> None:
    if _tracer and nodeid in _tracer.tests:
        record = _tracer.tests[nodeid]
        record["seconds"] = time.monotonic() - record.pop("started")
        record["lines"] = sorted(_tracer.collect())


def pytest_sessionfinish(session) -> None:
    if _tracer:
        name = os.environ.get("PYTEST_XDIST_WORKER", "main")
        (_tracer.directory / f"trace.{name}.json").write_text(json.dumps(_tracer.tests))


# --- running ------------------------------------------------------------------------------------

def copy_project(work: Path) -> Path:
    """A copy of the project to mutate (no .git, no caches; the venv is shared)."""
    target = work / "project"
    shutil.copytree(ROOT, target, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", ".hypothesis", "mutants", ".mutmut-cache", "html", ".pytest_cache",
        ".line-mutants"))
    return target


def argv_for_pytest(tests: list[str], *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--no-header", "-o", "addopts=",
            *extra, *tests]


def environment(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **extra}
    env.pop("PYTEST_XDIST_AUTO_NUM_WORKERS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "mutation"), env.get("PYTHONPATH")]))
    return env


def trace_key(target: Target, tests: tuple[str, ...], deselect: list[str]) -> str:
    """What the trace depends on: the file, the tests, the sandboxes, the rendering, this tool."""
    digest = hashlib.sha256()
    paths = [ROOT / target.path, Path(__file__), *sorted((ROOT / "tests").glob("*.py")),
             *sorted((ROOT / "cloud_init").glob("*")), *(ROOT / t for t in tests)]
    for path in paths:
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update("\0".join(tests + tuple(deselect)).encode())
    return digest.hexdigest()


def trace(project: Path, name: str, tests: tuple[str, ...], workers: int,
          deselect: list[str]) -> tuple[dict, list[str]]:
    """Run the tests once, traced: ({node id: {lines, seconds, passed}}, the failures)."""
    directory = Path(tempfile.mkdtemp(prefix="trace-", dir=project.parent))
    command = argv_for_pytest(list(tests), "-p", "line_mutants", "-n", str(workers), "--timeout", "300",
                              *(f"--deselect={node}" for node in deselect))
    done = subprocess.run(command, cwd=project, env=environment(**{TRACE_ENV: f"{directory}:{name}"}),
                          capture_output=True, text=True)
    records: dict = {}
    for part in directory.glob("trace.*.json"):
        records.update(json.loads(part.read_text()))
    failures = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    if done.returncode != 0 and not failures:
        failures = done.stdout.splitlines()[-5:] + done.stderr.splitlines()[-5:]
    failures += [f"FAILED {node}" for node, record in records.items()
                 if not record["passed"] and f"FAILED {node}" not in failures]
    return records, failures


def select(mutant: Mutant, records: dict, functions: list[tuple[int, int, str]]) -> list[str]:
    """The tests to run for a mutant: those that ran its line (else its function), then
    those that ran no line of the file (they read it), fastest first."""
    def ran(first: int, last: int) -> set[str]:
        return {node for node, r in records.items() if any(first <= n <= last for n in r["lines"])}

    index = mutant.line - 1
    chosen = set()
    if not mutant.rule.startswith("empty-function"):
        chosen = ran(mutant.line, mutant.line)
    if not chosen:
        enclosing = [(first, last) for first, last, _ in functions if first <= index <= last]
        if enclosing:
            first, last = min(enclosing, key=lambda span: span[1] - span[0])
            chosen = ran(first + 2, last + 1)  # the body, not the definition line
        else:
            chosen = ran(mutant.line - 3, mutant.line + 3)
    chosen |= {node for node, r in records.items() if not r["lines"]}
    return sorted(chosen, key=lambda node: (records[node]["seconds"], node))


def run_mutant(project: Path, target: Target, text: str, mutant: Mutant, tests: list[str],
               records: dict, limit: float | None) -> Result:
    begun = time.monotonic()
    if not tests:
        return Result(mutant, "no tests", 0.0, "no test ran this line", 0)
    budget = limit or 60 + 3 * sum(records[t]["seconds"] for t in tests)
    path = project / target.path
    path.write_text(apply(text, mutant))
    try:
        done = subprocess.run(argv_for_pytest(tests, "-x", "-n", "0", "--timeout", "120"), cwd=project,
                              env=environment(), capture_output=True, text=True, timeout=budget)
    except subprocess.TimeoutExpired:
        return Result(mutant, "timeout", time.monotonic() - begun,
                      f"its tests took more than {budget:.0f} s (a hang)", len(tests))
    finally:
        path.write_text(text)
    seconds = time.monotonic() - begun
    if done.returncode == 0:
        return Result(mutant, "survived", seconds, "", len(tests))
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    detail = failed[0] if failed else f"pytest exit {done.returncode}: " + " | ".join(done.stdout.splitlines()[-3:])
    return Result(mutant, "killed", seconds, detail, len(tests))


def apply(text: str, mutant: Mutant) -> str:
    lines = text.split("\n")
    assert lines[mutant.line - 1] == mutant.original, "the file changed since the mutants were listed"
    lines[mutant.line - 1] = mutant.mutated
    return "\n".join(lines)


def all_mutants(target: Target, text: str) -> tuple[list[Mutant], int]:
    """The mutants that parse, renumbered, and how many did not."""
    made = target.make(text)
    kept = [m for m in made if target.parses(apply(text, m))]
    for number, mutant in enumerate(kept, 1):
        mutant.number = number
    return kept, len(made) - len(kept)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", choices=sorted(FILES), default="boot", help="what to mutate (default boot)")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--only", help="comma-separated mutant numbers (from --list) to run")
    parser.add_argument("-j", "--workers", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--threshold", type=float, default=95.0, help="exit 1 below this %% killed (default 95)")
    parser.add_argument("--tests", nargs="+", help="the test files (default: the file's list in FILES)")
    parser.add_argument("--timeout", type=float,
                        help="seconds for one mutant's tests (default 60 + 3 x their traced time)")
    parser.add_argument("--work", type=Path, help="where the project copies go (default: a temporary directory)")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--deselect", action="append", default=[], metavar="NODE_ID",
                        help="leave out a test that fails without any mutant (say why in the report)")
    parser.add_argument("--retrace", action="store_true", help="trace the tests again even if the file and "
                        "tests are unchanged since the kept trace")
    args = parser.parse_args(argv)

    target = FILES[args.file]
    text = (ROOT / target.path).read_text()
    every, unparsed = all_mutants(target, text)
    chosen = every
    if args.only:
        wanted = {int(n) for n in args.only.split(",")}
        chosen = [m for m in every if m.number in wanted]
    if args.list:
        for m in chosen:
            print(f"{m.number:4} line {m.line:4} {m.rule}\n       - {m.original.strip()}\n       + {m.mutated.strip()}")
        print(f"{len(chosen)} mutants of {target.path} ({unparsed} more did not parse and are left out)")
        return 0

    tests = tuple(args.tests or target.tests)
    workers = max(1, args.workers)
    work = Path(tempfile.mkdtemp(prefix="line-mutants-", dir=args.work))
    started = time.monotonic()
    try:
        projects: queue.Queue[Path] = queue.Queue()
        for n in range(workers):
            projects.put(copy_project(work / f"worker{n}"))
        cache = ROOT / ".line-mutants" / f"{args.file}.trace.json"
        key = trace_key(target, tests, args.deselect)
        kept = json.loads(cache.read_text()) if cache.exists() else {}
        if kept.get("key") == key and not args.retrace:
            records = kept["tests"]
            print(f"trace: kept from {cache.relative_to(ROOT)} ({len(records)} tests)", flush=True)
        else:
            project = projects.get()
            records, failures = trace(project, args.file, tests, workers, args.deselect)
            projects.put(project)
            if failures or not records:
                print(f"the unmutated {target.path} fails its tests (or none ran):", *failures[:10],
                      sep="\n  ", file=sys.stderr)
                return 2
            cache.parent.mkdir(exist_ok=True)
            cache.write_text(json.dumps({"key": key, "tests": records}))
            print(f"trace and baseline: {len(records)} tests pass in {time.monotonic() - started:.0f} s", flush=True)
        functions = target.functions(text.split("\n"))
        plan = [(m, select(m, records, functions)) for m in chosen]
        print(f"{len(chosen)} mutants of {target.path}, {workers} at a time; "
              f"{sum(len(t) for _, t in plan) / max(1, len(plan)):.0f} tests each on average", flush=True)

        # The tests that killed mutants so far go first (a test that catches one broken line
        # tends to catch its neighbours), then the fastest.
        kills: dict[str, int] = {}

        def one(item: tuple[Mutant, list[str]]) -> Result:
            project = projects.get()
            try:
                ordered = sorted(item[1], key=lambda node: (-kills.get(node, 0), records[node]["seconds"], node))
                result = run_mutant(project, target, text, item[0], ordered, records, args.timeout)
                killer = result.detail.split(" ")[1] if result.detail.startswith(("FAILED ", "ERROR ")) else ""
                if killer in records:
                    kills[killer] = kills.get(killer, 0) + 1
                return result
            finally:
                projects.put(project)

        results: list[Result] = []
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for result in pool.map(one, plan):
                results.append(result)
                m = result.mutant
                print(f"{result.outcome:9} #{m.number:<4} line {m.line:<4} {m.rule}: {m.mutated.strip()[:80]}"
                      f"  ({result.tests} tests, {result.seconds:.0f} s)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    elapsed = time.monotonic() - started
    counts = {outcome: sum(r.outcome == outcome for r in results)
              for outcome in ("killed", "timeout", "survived", "no tests")}
    killed = counts["killed"] + counts["timeout"]
    score = 100.0 * killed / len(results) if results else 100.0
    print(f"\n{target.path}: {len(results)} mutants, {counts['killed']} killed, {counts['timeout']} timed out "
          f"(killed), {counts['survived']} survived, {counts['no tests']} with no tests; "
          f"{score:.1f}% killed (threshold {args.threshold:g}%) in {elapsed / 60:.1f} min")
    for r in results:
        if not r.killed:
            m = r.mutant
            print(f"  {r.outcome} #{m.number} line {m.line} ({m.rule}):\n    - {m.original.strip()}\n"
                  f"    + {m.mutated.strip()}")
    if args.json:
        args.json.write_text(json.dumps({
            "file": target.path, "score": score, "total": len(results), **counts, "seconds": elapsed,
            "results": [{**asdict(r), "killed": r.killed} for r in results]}, indent=1))
    return 0 if score >= args.threshold else 1


if __name__ == "__main__":
    sys.exit(main())
