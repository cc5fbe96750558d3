"""``preflight`` says whether a given EFS file system has automatic backups (moto's
DescribeBackupPolicy), and leaves a created one to ``efsBackup``."""

from __future__ import annotations

import pytest

from desktop.commands.cli import main
from tests.moto_account import aws_env, client, seed_good_account, write_stack  # noqa: F401


@pytest.fixture
def account(aws_env):
    return seed_good_account()


def preflight(tmp_path, capsys, config):
    stack = write_stack(tmp_path, config)
    code = main(["preflight", "--stack", stack, "--project-dir", str(tmp_path)])
    out = capsys.readouterr().out
    return code, [ln for ln in out.splitlines() if "automatic backups" in ln]


def test_a_given_efs_with_backups_passes(account, tmp_path, capsys):
    code, lines = preflight(tmp_path, capsys, account.config)
    assert code == 0
    assert lines == [f"PASS  EFS file system {account.efs_id} has automatic backups (AWS Backup: daily, "
                     "kept 35 days by the default plan)"]


def test_a_given_efs_without_backups_warns_and_says_how(account, tmp_path, capsys):
    bare = client("efs").create_file_system(CreationToken="no-backups", Encrypted=True)["FileSystemId"]
    target = client("efs").describe_mount_targets(FileSystemId=account.efs_id)["MountTargets"][0]
    groups = client("efs").describe_mount_target_security_groups(MountTargetId=target["MountTargetId"])
    client("efs").create_mount_target(FileSystemId=bare, SubnetId=account.subnet_id,
                                      SecurityGroups=groups["SecurityGroups"])
    code, (line,) = preflight(tmp_path, capsys, {**account.config, "efsFileSystemId": bare})
    assert code == 0  # the desktop works without: a warning, not a failure
    assert line.startswith(f"WARN  EFS file system {bare} has no automatic backups")
    assert f"aws efs put-backup-policy --file-system-id {bare} --backup-policy Status=ENABLED" in line


def test_a_created_efs_is_not_checked(account, tmp_path, capsys):
    code, lines = preflight(tmp_path, capsys, {**account.config, "efsFileSystemId": None})
    assert code == 0 and lines == []


def test_a_missing_efs_is_reported_once(account, tmp_path, capsys):
    code, lines = preflight(tmp_path, capsys, {**account.config, "efsFileSystemId": "fs-0123456789abcdef0"})
    assert code == 1 and lines == []  # check_efs says it does not exist
