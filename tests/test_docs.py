"""The documentation: a short README.md, links that lead somewhere, and commands the CLI knows.

README.md is the front door (at most 300 lines); everything else lives in docs/. Every
relative link of README.md and docs/*.md names a file that exists, and an anchor names a
heading of that file (GitHub's slugs). Every ``python -m desktop ...`` command in a code
block or a code span names a real subcommand and only options that subcommand has, read
from the real parser (``desktop.commands.cli.build_parser``); nothing is run.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

import pytest

from desktop.commands.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 300

# Pages that other branches of issue 19 add, which README.md links already. Each may be
# missing until those branches are merged; once one exists, the test below fails so that
# its name is taken out of this set and its links are checked like every other.


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


# --- reading Markdown ------------------------------------------------------------------

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def split_code(text: str) -> tuple[list[str], list[str]]:
    """The lines outside fenced code blocks, and the lines of the blocks (continuations joined)."""
    prose, code, inside = [], [], False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
            continue
        (code if inside else prose).append(line)
    return prose, "\n".join(code).replace("\\\n", " ").splitlines()


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lowercased, without punctuation, spaces as '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    prose, _ = split_code(page.read_text())
    for line in prose:
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    prose, _ = split_code(page.read_text())
    return [m.group(1) for line in prose for m in LINK.finditer(CODE_SPAN.sub("", line))]


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not ours to check
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        name = linked.relative_to(ROOT).as_posix() if linked.is_relative_to(ROOT) else str(linked)
        if not linked.exists():
            broken.append(f"{page.name}: {target} (no such file)")
            continue
        if anchor and anchor not in anchors(linked):
            broken.append(f"{page.name}: {target} (no heading #{anchor} in {name})")
    return broken


# --- reading commands ------------------------------------------------------------------

PLACEHOLDER = "__placeholder__"
SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")"}


def desktop_commands(text: str) -> list[list[str]]:
    """The words after ``-m desktop`` of every command in a code block or a code span."""
    prose, code = split_code(text)
    lines = code + [span.strip("`") for line in prose for span in CODE_SPAN.findall(line)]
    commands = []
    for line in lines:
        if "-m desktop" not in line:
            continue
        line = re.sub(r"<[^<>\s]+>", PLACEHOLDER, line)
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        try:
            words = list(lexer)
        except ValueError as error:
            commands.append([f"<unparseable: {error}>"])
            continue
        for i in range(len(words) - 1):
            if words[i] == "-m" and words[i + 1] == "desktop":
                rest = []
                for word in words[i + 2:]:
                    if word in SEPARATORS:
                        break
                    rest.append(word)
                commands.append(rest)
    return commands


def options_of(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def command_errors(words: list[str]) -> list[str]:
    """What in ``words`` (after ``python -m desktop``) the CLI would not know."""
    parser = build_parser()
    known = subcommands(parser)
    words = [word.strip("[]") for word in words]
    words = [word for word in words if word]
    if words and words[0].startswith("<unparseable"):
        return words
    if not words or words[0] in (PLACEHOLDER, "...", "…"):  # "python -m desktop ...": the commands
        return []
    if words[0].startswith("-"):
        target, name, flags = parser, "python -m desktop", words
    elif words[0] in known:
        target, name, flags = known[words[0]], words[0], words[1:]
    else:
        return [f"no subcommand {words[0]!r}"]
    allowed = options_of(target)
    return [f"{name} has no option {flag.split('=', 1)[0]}" for flag in flags
            if flag.startswith("-") and len(flag) > 1 and flag.split("=", 1)[0] not in allowed]


# --- the tests -------------------------------------------------------------------------

def test_the_readme_is_at_most_300_lines():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move detail to docs/"


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_the_readme_links_every_docs_page():
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in links(README)}
    own = [page for page in DOCS.glob("*.md") if not page.name.startswith("_")]
    assert own, "docs/ has pages"
    assert sorted(p.name for p in own if p.resolve() not in linked) == []


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_documented_command_parses(page):
    errors = [f"{' '.join(words)}: {error}" for words in desktop_commands(page.read_text())
              for error in command_errors(words)]
    assert errors == []


def test_the_readme_shows_the_everyday_commands():
    named = {words[0] for words in desktop_commands(README.read_text()) if words}
    assert {"init", "preflight", "wait", "connect", "shell", "status", "keep-awake", "stop", "start",
            "snapshot", "snapshots", "restore"} <= named


def test_the_command_check_finds_what_the_cli_does_not_know(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Run `python -m desktop conect --stack a`, then:\n\n```\n"
                    ".venv/bin/python -m desktop wait --stak alice --timeout 30m && \\\n"
                    "  .venv/bin/python -m desktop keep-awake 4h --stack alice --for 2h   # note\n"
                    "python -m desktop bake [--name x] [--nme y]\n```\n")
    found = [error for words in desktop_commands(page.read_text()) for error in command_errors(words)]
    assert sorted(found) == ["bake has no option --nme", "keep-awake has no option --for",
                             "no subcommand 'conect'", "wait has no option --stak"]


def test_the_link_check_finds_missing_files_and_headings(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n\n## `pulumi up` on a stopped desktop\n")
    page = tmp_path / "README.md"
    page.write_text("[ok](docs/a.md#pulumi-up-on-a-stopped-desktop) [self](#readme) "
                    "[gone](docs/b.md) [bad anchor](docs/a.md#nowhere) `[in code](docs/c.md)` "
                    "[web](https://example.com/x)\n\n```\n[in a block](docs/d.md)\n```\n\n# README\n")
    assert broken_links(page) == ["README.md: docs/b.md (no such file)",
                                  "README.md: docs/a.md#nowhere (no heading #nowhere in docs/a.md)"]


def test_the_readme_names_every_system_package_the_tests_install():
    packages = re.findall(r"missing\+=\(([\w.+-]+)\)", (ROOT / "tests" / "run").read_text())
    assert packages, "tests/run installs Debian packages"
    quick_start = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert [p for p in packages if f"`{p}`" not in quick_start] == []
