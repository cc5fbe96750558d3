"""`plan` shows the snapshot policy, the EFS backups, and what stays after `pulumi destroy`."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import GOOD, ROOT
from desktop.commands.cli import main


@pytest.fixture
def project(tmp_path, monkeypatch):
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "__main__.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    monkeypatch.setattr("desktop.commands.stack_file.PROJECT_DIR", tmp_path)
    monkeypatch.setattr("desktop.commands.offline.MAIN", tmp_path / "__main__.py")
    return tmp_path


def plan(project, capsys, **keys) -> str:
    body = "config:\n  aws:region: eu-west-1\n" + "".join(
        f"  deep-learning-desktop:{k}: {json.dumps(v)}\n" for k, v in {**GOOD, **keys}.items())
    (project / "Pulumi.t.yaml").write_text(body)
    assert main(["plan", "--stack", "t"]) == 0
    return capsys.readouterr().out


def after_destroy(out: str) -> list[str]:
    section = out[out.index("After `pulumi destroy`"):].splitlines()[1:]
    return [line.strip() for line in section if line.startswith("  ")]


def test_plan_shows_the_daily_snapshots_and_the_efs_backups(project, capsys):
    out = plan(project, capsys, snapshotTime="22:15", snapshotRetainCount=14)
    policy = out[out.index("t--daily-snapshots  ("):]
    assert ("snapshots the volume tagged {'DeepLearningDesktop': '<generated name of t--role, known after deploy>'} "
            "every 24 hours at 22:15 UTC, keeps the last 14") in policy
    assert "runs as <generated name of t--dlm-role, known after deploy>" in policy
    assert "tags {'DeepLearningDesktop': '<generated name of t--role" in out[out.index("t--instance  ("):]
    assert "AWS Backup's automatic daily backups ENABLED for t--efs" in out
    lines = after_destroy(out)
    assert lines[0].startswith("t--efs: the EFS file system stays") and "$0.30 per GB-month" in lines[0]
    assert "us-east-1" in lines[0]
    assert lines[1].startswith("t--efs-backup: destroy turns the automatic backups off") and "35 days" in lines[1]
    assert lines[2].startswith("the last 14 daily root volume snapshots and your `python -m desktop snapshot`")
    assert "$0.05 per GB-month" in lines[2] and "incremental" in lines[2]


def test_plan_without_daily_snapshots_or_created_efs(project, capsys):
    out = plan(project, capsys, snapshotRetainCount=0, efsFileSystemId="fs-0123456789abcdef0")
    assert "LifecyclePolicy" not in out and "BackupPolicy" not in out
    lines = after_destroy(out)
    assert lines[0] == "the given EFS file system fs-0123456789abcdef0 is yours: the program never touched it"
    assert lines[1].startswith("your `python -m desktop snapshot` snapshots of the root volume stay")
    assert len(lines) == 2


def test_plan_without_efs_backups(project, capsys):
    out = plan(project, capsys, efsBackup=False)
    assert "BackupPolicy" not in out
    assert not any(line.startswith("t--efs-backup") for line in after_destroy(out))
