"""mutation/line_mutants.py runs, for each mutant, only the tests listed for its file: a
test file that boots the script or runs the agent and is missing from that list leaves
every line it guards unscored (the boot hardening tests were, until this test)."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tool():
    spec = importlib.util.spec_from_file_location("line_mutants_under_test", ROOT / "mutation" / "line_mutants.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _tests_using(fixture: str, constructor: str, module: str) -> set[str]:
    """Node ids (file::function) of the tests that call the sandbox's constructor, or take
    its fixture in a file that imports the sandbox's module."""
    found = set()
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        text = path.read_text()
        tree = ast.parse(text)
        imports = any(isinstance(node, ast.ImportFrom) and node.module == module for node in tree.body)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                calls = module in text and any(
                    isinstance(n, ast.Call) and getattr(n.func, "id", None) == constructor for n in ast.walk(node))
                if calls or (fixture in [arg.arg for arg in node.args.args] and (imports or fixture == "sandbox")):
                    found.add(f"tests/{path.name}::{node.name}")
    return found


def _listed(target) -> set[str]:
    return set(target.tests)


def _covered(node_id: str, listed: set[str]) -> bool:
    return node_id in listed or node_id.split("::")[0] in listed


def test_every_test_that_boots_the_script_is_in_the_boot_list():
    listed = _listed(_tool().FILES["boot"])
    missing = sorted(n for n in _tests_using("sandbox", "Sandbox", "boot_sandbox") if not _covered(n, listed))
    assert missing == []


def test_every_test_that_runs_the_agent_in_its_sandbox_is_in_the_agent_list():
    listed = _listed(_tool().FILES["agent"])
    # The agent's own sandbox; one boot test runs the file the boot installed (not the
    # shipped text the tool traces), so it cannot select by line and is left out.
    users = _tests_using("desktop", "Desktop", "idle_sandbox") - {
        "tests/test_boot_sturdy.py::test_a_setup_that_always_fails_still_has_the_idle_agent_running"}
    missing = sorted(n for n in users if not _covered(n, listed))
    assert missing == []


def test_every_listed_test_exists():
    tool = _tool()
    for target in tool.FILES.values():
        for entry in target.tests:
            path, _, name = entry.partition("::")
            assert (ROOT / path).is_file(), entry
            if name:
                assert f"def {name}(" in (ROOT / path).read_text(), entry
