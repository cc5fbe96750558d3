"""`python -m desktop plan`: the offline rendering a newcomer sees first."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import cloud_init
from conftest import GOOD, ROOT
from desktop import config
from desktop.commands import offline
from desktop.commands.cli import main


def write_stack(directory, name="t", **keys):
    merged = {**GOOD, **keys}
    body = "config:\n  aws:region: eu-west-1\n" + "".join(
        f"  deep-learning-desktop:{k}: {json.dumps(v)}\n" for k, v in merged.items())
    (directory / f"Pulumi.{name}.yaml").write_text(body)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of the project to add stack files to."""
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "__main__.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    monkeypatch.setattr("desktop.commands.stack_file.PROJECT_DIR", tmp_path)
    monkeypatch.setattr("desktop.commands.offline.MAIN", tmp_path / "__main__.py")
    return tmp_path


def test_plan_of_the_dev_stack_lists_every_resource_and_output(capsys):
    assert main(["plan"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("Offline rendering of stack 'dev'")
    assert "without AWS" in out.splitlines()[0]
    rendering, _ = __import__("desktop.commands.plan", fromlist=["render"]).render("dev")
    for reg in rendering.registrations:
        assert f"{reg.name}  ({reg.type})" in out
    for key in rendering.outputs:
        assert f"  {key} " in out
    assert "ingress tcp port 22 from 203.0.113.7/32 (SSH) in dev--sg" in out
    assert "ingress tcp port 8443 from 203.0.113.7/32 (DCV) in dev--sg" in out
    assert "ingress all traffic from the group itself (All traffic within the group" in out
    # The DCV password's parameter: its name (where the boot reads it), never its value.
    assert re.search(r"\n[│ ]+SecureString /deep-learning-desktop/[^\n]+/dcv-password, value \[secret\]\n", out)
    assert "kept on destroy" in out and "IMDS tokens required" in out
    # The tag the daily snapshot policy targets, on the root volume (the role's name, made at deploy).
    assert ("root volume 200 GiB gp3, encrypted True, deleted on termination True, "
            "tags {'DeepLearningDesktop': '<generated name of dev--role, known after deploy>'}") in out
    mount_target = out[out.index("dev--efs-mount-target  ("):out.index("dev--role  (")]
    assert "deletes it before creating the new one" in mount_target
    assert "<instance id, known after deploy>" in out
    assert "Warnings: none" in out


def test_plan_with_given_group_and_efs_shows_neither_created(project, capsys):
    write_stack(project, securityGroupId="sg-0fedcba9876543210", efsFileSystemId="fs-0123456789abcdef0")
    assert main(["plan", "--stack", "t"]) == 0
    out = capsys.readouterr().out
    assert "aws:ec2/securityGroup:SecurityGroup" not in out
    assert "aws:efs/fileSystem:FileSystem" not in out and "aws:efs/mountTarget:MountTarget" not in out
    assert output_line(out, "DesktopSecurityGroup") == "sg-0fedcba9876543210"
    assert output_line(out, "EFSFileSystemId") == "fs-0123456789abcdef0"


def output_line(out: str, key: str) -> str:
    (line,) = [line for line in out.split("Outputs:")[1].splitlines() if line.split()[:1] == [key]]
    return line.split(None, 1)[1]


def test_plan_shows_the_programs_warnings(project, capsys):
    write_stack(project, accessCidr="0.0.0.0/0")
    assert main(["plan", "--stack", "t"]) == 0
    out = capsys.readouterr().out
    assert "\nWarnings:\n  ! accessCidr is 0.0.0.0/0" in out


def test_plan_of_a_stack_in_another_project_dir(tmp_path, capsys):
    # Only --project-dir holds the stack: every part of the plan reads it from there.
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    write_stack(tmp_path, "elsewhere", fsxLustre="true")
    assert main(["plan", "--stack", "elsewhere", "--project-dir", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "While stopped it still costs" in out and "After `pulumi destroy`" in out
    # What the boot mounts is only known after deploy: the plan says so rather than make up a name.
    assert "\nFSX_DNS_NAME='<FSx DNS name, known after deploy>'\n" in (tmp_path / "out" / "boot-script.sh").read_text()


def test_plan_help_names_the_files_out_writes(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # argparse would break "boot-script.sh" at its hyphen
    with pytest.raises(SystemExit) as exit_:
        main(["plan", "--help"])
    assert exit_.value.code == 0
    assert "also write user-data.mime, cloud-config.yaml, boot-script.sh and plan.json to DIR" in \
        capsys.readouterr().out


def test_bad_config_exits_2_naming_each_key(project, capsys):
    write_stack(project, ebsVolumeSize="50", s3Bucket="")
    assert main(["plan", "--stack", "t"]) == 2
    err = capsys.readouterr().err
    assert "ebsVolumeSize: '50'" in err and "s3Bucket: not set" in err
    assert "Traceback" not in err


def test_unknown_stack_exits_2(project, capsys):
    assert main(["plan", "--stack", "nope"]) == 2
    assert "pulumi stack init nope" in capsys.readouterr().err


def test_out_writes_user_data_that_parses_back(tmp_path, capsys):
    assert main(["plan", "--out", str(tmp_path)]) == 0
    user_data = (tmp_path / "user-data.mime").read_text()
    cloud_config, script = cloud_init.split_parts(user_data)
    assert (tmp_path / "cloud-config.yaml").read_text() == cloud_config
    assert (tmp_path / "boot-script.sh").read_text() == script
    assert cloud_config.startswith("#cloud-config") and script.startswith("#!")
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert {r["type"] for r in plan["resources"]} >= {"aws:ec2/instance:Instance", "aws:efs/fileSystem:FileSystem"}
    (efs,) = [r for r in plan["resources"] if r["type"] == "aws:efs/fileSystem:FileSystem"]
    assert efs["retainOnDelete"] is True
    assert set(plan["outputs"]) >= {"DesktopInstanceId", "DesktopRole", "DesktopSecurityGroup", "EFSFileSystemId"}
    assert plan["warnings"] == []


def test_plan_command_runs_as_a_person_runs_it():
    # How fast it is, is benchmarks/plan_time.py's business, not a test's.
    done = subprocess.run([sys.executable, "-m", "desktop", "plan"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "Offline rendering" in done.stdout


def test_plan_piped_into_head_stops_quietly():
    # `python -m desktop plan | head` closes the pipe early: no traceback on stderr.
    # Here the reading end is closed before the plan starts, so every write fails.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "desktop", "plan"], cwd=ROOT, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert done.stderr == "" and done.returncode == 1


def test_china_region_renders_china_arns(project, capsys):
    (project / "Pulumi.cn.yaml").write_text((project / "Pulumi.dev.yaml").read_text().replace(
        "aws:region: us-east-1", "aws:region: cn-northwest-1"))
    assert main(["plan", "--stack", "cn"]) == 0
    out = capsys.readouterr().out
    assert "arn:aws-cn:s3:::dcv-license.cn-northwest-1/*" in out and "arn:aws:" not in out


def test_readme_quick_start_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [block.strip() for block in re.findall(r"```\n(.*?)```", quick_start, re.S)]
    assert len(commands) == 2
    assert commands[0].endswith("-m desktop plan") and commands[1] == "bash tests/run"
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    for command in commands:
        assert command in ci_lines


def test_the_configuration_page_has_a_row_for_every_key():
    reference = (ROOT / "docs" / "configuration.md").read_text()
    for setting in config.SETTINGS:
        default = config.default(setting.key)
        shown = ("required" if default is dataclasses.MISSING else "empty" if default is None
                 else f"`{str(default).lower() if isinstance(default, bool) else default}`")
        row = f"| `{setting.key}` | {setting.sample} | {shown} | {setting.expected} | {setting.description} |"
        assert row in reference, row


@pytest.mark.parametrize("instance_type,arch", [
    ("g5g.xlarge", ["arm64"]), ("c7gn.large", ["arm64"]), ("a1.large", ["arm64"]),
    ("g6e.xlarge", ["x86_64", "i386"]), ("g4dn.xlarge", ["x86_64", "i386"]), ("gr6.4xlarge", ["x86_64", "i386"]),
])
def test_offline_account_answers_graviton_types_as_arm64(instance_type, arch):
    assert offline._architectures(instance_type) == arch
