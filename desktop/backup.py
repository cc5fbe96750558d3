"""Copies of the person's work: daily root volume snapshots (Data Lifecycle Manager) and
AWS Backup's daily backups of an EFS file system the program creates.

The root volume carries the tag :data:`VOLUME_TAG`, whose value is unique to this desktop
(see :func:`root_volume_tags`); the lifecycle policy targets exactly that tag, so two
desktops in one account never snapshot each other's volumes. Snapshots copy the volume's
tags, so every snapshot of this desktop, daily or manual, carries the same tag: that is
how ``python -m desktop snapshots`` finds them and how ``restore`` refuses a foreign one.

What ``pulumi destroy`` leaves (AWS's documentation, "Delete Amazon Data Lifecycle Manager
policies"): deleting a policy does not delete the snapshots it made; they stay, and cost,
until deleted by hand. The program lets them stay: they are the way back after a destroy.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from desktop.config import DesktopArgs
from desktop.naming import child
from desktop.partition import Partition
from desktop.storage import Storage

#: The root volume tag that names the desktop; its value is the desktop role's name.
VOLUME_TAG = "DeepLearningDesktop"
#: Tags the snapshots get beside the volume's: what made them, the architecture of
#: the volume's instance (what an AMI registered from a snapshot must say), a note.
KIND_TAG = "DesktopSnapshot"
ARCHITECTURE_TAG = "DesktopArchitecture"
NOTE_TAG = "DesktopNote"
DAILY = "daily"

#: DLM's service principal: the same name in aws, aws-cn and aws-us-gov (AWS's China
#: documentation of AWSDataLifecycleManagerDefaultRole trusts ``dlm.amazonaws.com``).
DLM_PRINCIPAL = "dlm.amazonaws.com"
#: The AWS managed policy DLM's own default role for snapshots uses.
DLM_POLICY = "service-role/AWSDataLifecycleManagerServiceRole"
#: The schedule's name: DLM stops managing snapshots of a renamed schedule, so it never changes.
SCHEDULE = "Daily root volume snapshots"
SNAPSHOT_INTERVAL_HOURS = 24

# List prices per GB-month in us-east-1 (N. Virginia), for what stays after `pulumi destroy`.
# EBS snapshots, standard tier: $0.05 (Amazon EBS user guide, "Pricing and billing for
# archiving Amazon EBS snapshots"); incremental, so billed for the blocks they hold.
# EFS Standard storage: $0.30 (aws.amazon.com/efs/pricing).
PRICE_REGION = "us-east-1"
SNAPSHOT_GB_MONTH = 0.05
EFS_STANDARD_GB_MONTH = 0.30
# The default EFS backup plan: daily backups kept 35 days (Amazon EFS user guide,
# "Backing up EFS file systems").
EFS_BACKUP_RETENTION_DAYS = 35


def root_volume_tags(role: aws.iam.Role) -> pulumi.Output[dict]:
    """The root volume's tags: :data:`VOLUME_TAG` set to the desktop role's name.

    IAM role names are unique in an account, and Pulumi gives the role a random suffix
    kept in the stack's state: two desktops in one account, even two stacks of the
    same name on different Pulumi backends, never share the value; a desktop keeps it
    for its whole life.
    """
    return role.name.apply(lambda name: {VOLUME_TAG: name})


def trust_policy() -> dict:
    """Who may assume the snapshot role: Data Lifecycle Manager."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": DLM_PRINCIPAL},
            "Action": "sts:AssumeRole",
        }],
    }


@dataclass(frozen=True)
class Snapshots:
    """The daily snapshot policy and its role (None when ``snapshotRetainCount`` is 0)."""

    policy: Optional[aws.dlm.LifecyclePolicy]
    role: Optional[aws.iam.Role]


def _description(name: str) -> str:
    # DLM accepts only letters, digits, spaces, '_' and '-' in a description.
    return re.sub(r"[^0-9A-Za-z _-]", "-", f"Daily snapshots of the root volume of desktop {name}")[:500]


def daily_snapshots(
    name: str,
    args: DesktopArgs,
    *,
    volume_tags: pulumi.Output[dict],
    architecture: Optional[pulumi.Output[str]],
    partition: Partition,
    parent: pulumi.Resource,
) -> Snapshots:
    """A DLM policy snapshotting the volume tagged ``volume_tags`` every 24 h at
    ``snapshotTime`` UTC, keeping ``snapshotRetainCount``; nothing at 0.

    The policy targets volumes, not instances, so a stopped desktop's volume is
    snapshotted as a running one's.
    """
    if args.snapshot_retain_count == 0:
        return Snapshots(None, None)
    role_child = child(name, "dlm-role", parent)
    role = aws.iam.Role(
        role_child.name,
        description="Data Lifecycle Manager: daily snapshots of a deep learning desktop's root volume",
        assume_role_policy=json.dumps(trust_policy()),
        opts=role_child.opts,
    )
    attachment_child = child(name, "dlm-snapshots", parent)
    attachment = aws.iam.RolePolicyAttachment(
        attachment_child.name,
        role=role.name,
        policy_arn=partition.managed_policy(DLM_POLICY),
        opts=attachment_child.opts,
    )
    # The architecture is known when the AMI follows the instance type (the SSM parameter);
    # with an explicit amiId the snapshots go without it (`image-from-snapshot` then asks).
    tags_to_add = {KIND_TAG: DAILY} if architecture is None else architecture.apply(
        lambda arch: {KIND_TAG: DAILY, ARCHITECTURE_TAG: arch})
    # DLM checks that it may assume the role when the policy is created.
    policy_child = child(name, "daily-snapshots", parent, depends_on=[attachment])
    policy = aws.dlm.LifecyclePolicy(
        policy_child.name,
        description=_description(name),
        execution_role_arn=role.arn,
        state="ENABLED",
        policy_details=aws.dlm.LifecyclePolicyPolicyDetailsArgs(
            policy_type="EBS_SNAPSHOT_MANAGEMENT",
            resource_types=["VOLUME"],
            target_tags=volume_tags,
            schedules=[aws.dlm.LifecyclePolicyPolicyDetailsScheduleArgs(
                name=SCHEDULE,
                create_rule=aws.dlm.LifecyclePolicyPolicyDetailsScheduleCreateRuleArgs(
                    interval=SNAPSHOT_INTERVAL_HOURS,
                    interval_unit="HOURS",
                    times=args.snapshot_time,
                ),
                retain_rule=aws.dlm.LifecyclePolicyPolicyDetailsScheduleRetainRuleArgs(
                    count=args.snapshot_retain_count,
                ),
                copy_tags=True,
                tags_to_add=tags_to_add,
            )],
        ),
        tags={"Name": f"{name}-daily-snapshots"},
        opts=policy_child.opts,
    )
    return Snapshots(policy, role)


def efs_backup(name: str, args: DesktopArgs, storage: Storage,
               parent: pulumi.Resource) -> Optional[aws.efs.BackupPolicy]:
    """AWS Backup's daily backups for the EFS file system the program creates, when
    ``efsBackup`` is true. A given file system belongs to its owner: left as it is."""
    if args.efs_file_system_id or not args.efs_backup:
        return None
    backup = child(name, "efs-backup", parent)
    return aws.efs.BackupPolicy(
        backup.name,
        file_system_id=storage.file_system_id,
        backup_policy=aws.efs.BackupPolicyBackupPolicyArgs(status="ENABLED"),
        opts=backup.opts,
    )
