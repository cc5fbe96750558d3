"""Daily root volume snapshots (DLM) and EFS backups, under Pulumi mocks."""

from __future__ import annotations

import json

import pytest

from conftest import GOOD
from desktop import DeepLearningDesktop
from desktop.commands import offline
from desktop.config import parse

INSTANCE = "aws:ec2/instance:Instance"
POLICY = "aws:dlm/lifecyclePolicy:LifecyclePolicy"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
EFS = "aws:efs/fileSystem:FileSystem"
BACKUP = "aws:efs/backupPolicy:BackupPolicy"


def root_volume_tags(rendering, instance_name="test--instance"):
    return rendering.named(instance_name).inputs["rootBlockDevice"]["tags"]


def test_the_policy_targets_exactly_the_root_volume_tags(rendered):
    r = rendered()
    (policy,) = r.of_type(POLICY)
    details = policy.inputs["policyDetails"]
    tags = root_volume_tags(r)
    assert details["targetTags"] == tags
    assert len(tags) == 1  # DLM targets a volume carrying *any* of the target tags
    assert details["resourceTypes"] == ["VOLUME"]  # volumes: a stopped desktop's too
    assert details["policyType"] == "EBS_SNAPSHOT_MANAGEMENT"
    assert policy.inputs["state"] == "ENABLED"


def test_two_desktops_in_one_account_target_different_volumes():
    args = parse(GOOD).args

    def program():
        for name in ("alice", "bob"):
            DeepLearningDesktop(name, args)

    r = offline.run(program, config={"aws:region": "us-east-1"})
    targets = {p.name: p.inputs["policyDetails"]["targetTags"] for p in r.of_type(POLICY)}
    volumes = {i.name: i.inputs["rootBlockDevice"]["tags"] for i in r.of_type(INSTANCE)}
    assert targets["alice--daily-snapshots"] == volumes["alice--instance"]
    assert targets["bob--daily-snapshots"] == volumes["bob--instance"]
    assert volumes["alice--instance"] != volumes["bob--instance"]
    # No policy's target is on the other desktop's volume.
    for key, value in targets["alice--daily-snapshots"].items():
        assert volumes["bob--instance"].get(key) != value


def test_the_tag_value_is_the_desktop_roles_unique_name(rendered):
    r = rendered()
    (value,) = root_volume_tags(r).values()
    assert value == r.named("test--role").state["name"]
    assert value == r.outputs["DesktopRole"].rsplit("/", 1)[1]


@pytest.mark.parametrize("time, count", [("05:00", 7), ("23:30", 1), ("00:00", 1000)])
def test_schedule_time_interval_and_retention(rendered, time, count):
    r = rendered(snapshotTime=time, snapshotRetainCount=str(count))
    (policy,) = r.of_type(POLICY)
    (schedule,) = policy.inputs["policyDetails"]["schedules"]
    assert schedule["createRule"] == {"interval": 24, "intervalUnit": "HOURS", "times": time}
    assert schedule["retainRule"] == {"count": count}
    assert schedule["copyTags"] is True
    assert schedule["tagsToAdd"]["DesktopSnapshot"] == "daily"


def test_daily_snapshots_record_the_architecture_of_the_instance_type(rendered):
    x86 = rendered()
    arm = rendered(instanceType="g5g.xlarge")
    for r, arch in ((x86, "x86_64"), (arm, "arm64")):
        (policy,) = r.of_type(POLICY)
        (schedule,) = policy.inputs["policyDetails"]["schedules"]
        assert schedule["tagsToAdd"]["DesktopArchitecture"] == arch


@pytest.mark.parametrize("partition, region, suffix", [
    ("aws", "us-west-2", "amazonaws.com"),
    ("aws-cn", "cn-north-1", "amazonaws.com.cn"),
    ("aws-us-gov", "us-gov-west-1", "amazonaws.com"),
])
def test_dlm_role_trust_and_managed_policy_in_every_partition(rendered, partition, region, suffix):
    r = rendered(partition=partition, region=region)
    role = r.named("test--dlm-role")
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    # DLM's principal has no partition suffix, in China too.
    assert statement == {"Effect": "Allow", "Principal": {"Service": "dlm.amazonaws.com"},
                         "Action": "sts:AssumeRole"}
    attachment = r.named("test--dlm-snapshots").inputs
    assert attachment["policyArn"] == f"arn:{partition}:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole"
    assert attachment["role"] == role.state["name"]
    (policy,) = r.of_type(POLICY)
    assert policy.inputs["executionRoleArn"] == role.state["arn"]
    assert policy.inputs["executionRoleArn"].startswith(f"arn:{partition}:iam::")
    # DLM checks at creation that it may use the role: the managed policy is attached first.
    assert r.named("test--dlm-snapshots").urn in policy.dependencies


def test_no_policy_and_no_role_at_zero(rendered):
    r = rendered(snapshotRetainCount="0")
    assert r.of_type(POLICY) == []
    assert [role.name for role in r.of_type(ROLE)] == ["test--role"]
    assert not [a for a in r.of_type(ATTACHMENT) if "DataLifecycle" in a.inputs["policyArn"]]
    # The volume keeps its tag: manual snapshots and restore still find this desktop's own.
    assert root_volume_tags(r) == {"DeepLearningDesktop": r.named("test--role").state["name"]}


def test_the_policy_description_is_one_dlm_accepts(run_main):
    # DLM's description pattern is [0-9A-Za-z _-]+; a stack name may hold dots.
    r = offline.run_program({**{f"deep-learning-desktop:{k}": v for k, v in GOOD.items()},
                             "aws:region": "us-east-1"}, stack="alice.gpu")
    (policy,) = r.of_type(POLICY)
    description = policy.inputs["description"]
    assert description.endswith("alice-gpu")
    assert all(c.isalnum() or c in " _-" for c in description)


# --- EFS backups -------------------------------------------------------------------

def test_a_created_efs_gets_aws_backup(rendered):
    r = rendered()
    (efs,) = r.of_type(EFS)
    (backup,) = r.of_type(BACKUP)
    assert backup.inputs["fileSystemId"] == efs.id == r.outputs["EFSFileSystemId"]
    assert backup.inputs["backupPolicy"] == {"status": "ENABLED"}


def test_no_efs_backup_when_off(rendered):
    r = rendered(efsBackup="false")
    assert r.of_type(EFS) and r.of_type(BACKUP) == []


def test_a_given_efs_is_left_to_its_owner(rendered):
    r = rendered(efsFileSystemId="fs-0123456789abcdef0")
    # Neither a backup policy nor a file system or mount target of ours on someone's EFS.
    assert r.of_type(BACKUP) == [] and r.of_type(EFS) == []
    assert r.of_type("aws:efs/mountTarget:MountTarget") == []
    assert r.outputs["EFSFileSystemId"] == "fs-0123456789abcdef0"
    # The root volume is still snapshotted: the daily policy targets exactly its tags.
    (policy,) = r.of_type(POLICY)
    assert policy.inputs["policyDetails"]["targetTags"] == root_volume_tags(r)
    assert policy.inputs["state"] == "ENABLED"
