"""Which desktop: ``pulumi stack output`` asked in the project, where Pulumi finds the stack."""

from __future__ import annotations

import stat

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
