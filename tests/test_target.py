"""Which desktop: ``pulumi stack output`` asked in the project, where Pulumi finds the stack."""

from __future__ import annotations

import stat

import pytest

from desktop.commands import target


def test_pulumi_stack_output_runs_in_the_project_directory(tmp_path, monkeypatch):
    # Pulumi finds the project (Pulumi.yaml) and its stacks in its working directory: asked
    # anywhere else, it answers "no Pulumi.yaml project file found".
    bin_dir, project = tmp_path / "bin", tmp_path / "project"
    bin_dir.mkdir()
    project.mkdir()
    script = bin_dir / "pulumi"
    script.write_text(f"#!/bin/sh\necho \"$PWD $*\" > '{tmp_path / 'asked'}'\n"
                      "printf '%s\\n' '{\"DesktopInstanceId\": \"i-0123456789abcdef0\"}'\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.chdir(tmp_path)
    assert target._pulumi_outputs("alice", project) == {"DesktopInstanceId": "i-0123456789abcdef0"}
    assert (tmp_path / "asked").read_text() == f"{project} stack output --json --stack alice\n"


@pytest.mark.parametrize("subcommand,words", [
    ("start", ("--wait",)), ("wait", ()), ("connect", ()), ("connect", ("--ssm",)), ("shell", ()),
    ("keep-awake", ("off",)), ("snapshot", ()), ("snapshots", ()), ("restore", ("--snapshot", "snap-0123456789abcdef0")),
])
def test_a_desktop_named_by_instance_id_is_named_so_in_every_hint(subcommand, words):
    """Without the Pulumi CLI a person names the desktop with --instance-id: a printed
    command without it would fail with "which desktop?" when pasted."""
    import argparse
    import shlex

    from desktop.commands.cli import build_parser
    from desktop.commands.target import Desktop

    given = argparse.Namespace(stack="alice", project_dir=None, instance_id="i-0123456789abcdef0")
    argv = shlex.split(Desktop(aws=None, instance_id="i-0123456789abcdef0", args=given).hint(subcommand, *words))
    parsed = build_parser().parse_args(argv[3:])
    assert (parsed.command, parsed.instance_id, parsed.stack) == (subcommand, "i-0123456789abcdef0", "alice")
    # Named by the stack, the hint needs no id: the stack's outputs give it.
    by_stack = argparse.Namespace(stack="alice", project_dir=None, instance_id=None)
    argv = shlex.split(Desktop(aws=None, instance_id="i-0123456789abcdef0", args=by_stack).hint(subcommand, *words))
    assert "--instance-id" not in argv
