"""The stack config keys: one table with each key's field, type, rule and description.

Defaults are not here: they are :class:`desktop.config.DesktopArgs`'s field defaults,
the one place they live. ``Pulumi.yaml`` and the README's table repeat them, and
tests keep all three equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from desktop import rules

PROJECT = "deep-learning-desktop"


@dataclass(frozen=True)
class Setting:
    """One stack config key: where it comes from, what it must look like."""

    key: str
    field: str
    sample: str  # the CloudFormation sample parameter it replaces, or "(new)"
    kind: str  # "string", "boolean" or "integer"
    expected: str
    check: Callable[[Any], bool]
    description: str


def _setting(key: str, field: str, sample: str, kind: str, rule: rules.Rule, description: str) -> Setting:
    expected, check = rule
    return Setting(key, field, sample, kind, expected, check, description)


#: The values of sagemakerAccess: our own least-privilege policy (desktop/sagemaker_policy.py),
#: the sample's managed policy, or no SageMaker. The desktop's boundary (desktop/identity.py)
#: applies to all three.
SAGEMAKER_ACCESS = ("scoped", "full", "none")

MOUNT_PATH_RULE = (
    f"a path under /home/ubuntu/, /mnt/ or /data/, or /fsx or under it, of at most {rules.MOUNT_PATH_MAX} "
    "characters (letters, digits and . _ - @ + = , : ~), without spaces, '..', '//', a trailing '/' "
    "or a hidden directory (a name starting with '.'), e.g. /home/ubuntu/efs", rules.valid_mount_path)

# Order is the order of the README table: the sample's parameters, then ours.
SETTINGS: tuple[Setting, ...] = (
    _setting("s3Bucket", "s3_bucket", "S3Bucket", "string",
             ("a valid S3 bucket name: 3-63 characters of lowercase letters, digits, dots and hyphens, "
              "starting and ending with a letter or digit", rules.valid_bucket),
             "S3 bucket the desktop may read, write and delete in."),
    _setting("amiId", "ami_id", "DeepLearningAMIUbuntu", "string", rules.aws_id("ami"),
             "Deep Learning AMI id; overrides the SSM lookup. Changing it replaces the instance."),
    _setting("amiSsmParameter", "ami_ssm_parameter", "(new)", "string",
             ("an SSM parameter name starting with '/', letters, digits and _ . - /", rules.valid_ssm_name),
             "Public SSM parameter naming the AMI; its architecture segment follows the instance type."),
    _setting("vpcId", "vpc_id", "DesktopVpcId", "string", rules.aws_id("vpc"), "VPC of the desktop."),
    _setting("subnetId", "subnet_id", "DesktopVpcSubnetId", "string", rules.aws_id("subnet"),
             "Subnet of the desktop (and of the new EFS mount target)."),
    _setting("publicIp", "public_ip", "DesktopHasPublicIpAddress", "boolean", rules.boolean(),
             "Give the desktop a public IP address."),
    _setting("ebsVolumeSize", "ebs_volume_size", "EbsVolumeSize", "integer", rules.whole_number(200, 16384, "GiB"),
             "Root volume size in GiB."),
    _setting("ebsVolumeType", "ebs_volume_type", "EbsVolumeType", "string", rules.one_of("gp2", "gp3"),
             "Root volume type."),
    _setting("efsFileSystemId", "efs_file_system_id", "EFSFileSystemId", "string", rules.aws_id("fs"),
             "Existing EFS file system (with a mount target in the subnet's zone); empty = create one."),
    _setting("efsMountPath", "efs_mount_path", "EFSMountPath", "string", MOUNT_PATH_RULE,
             "Where EFS is mounted on the desktop."),
    _setting("securityGroupId", "security_group_id", "DesktopSecurityGroupId", "string", rules.aws_id("sg"),
             "Existing security group for the desktop; empty = create one."),
    _setting("keyName", "key_name", "KeyName", "string",
             ("an EC2 key pair name of 1-255 letters, digits, '.', '_' or '-' (no space or other "
              "punctuation; import the key again under such a name if yours has them)", rules.valid_key_name),
             "EC2 key pair for SSH as ubuntu; empty = no key pair (a shell through Session Manager)."),
    _setting("instanceType", "instance_type", "DesktopInstanceType", "string",
             ("an EC2 instance type of the form family.size, e.g. g4dn.xlarge", rules.valid_instance_type),
             "EC2 instance type; any type EC2 offers."),
    _setting("accessCidr", "access_cidr", "DesktopAccessCIDR", "string",
             ("an IPv4 CIDR such as 203.0.113.7/32", rules.valid_cidr),
             "IPv4 range allowed to reach SSH (22) and DCV (8443); empty = no open port (Session Manager only)."),
    _setting("ebsOptimized", "ebs_optimized", "EBSOptimized", "boolean", rules.boolean(),
             "EBS-optimized instance."),
    _setting("idleStopMinutes", "idle_stop_minutes", "(new)", "integer",
             rules.whole_number(10, 1440, zero_means="never stop"),
             "Stop the desktop after this many idle minutes (no DCV, SSH or Session Manager session, GPU, CPU, "
             "iowait, network, disk I/O or keep-awake)."),
    _setting("idleBlockedHours", "idle_blocked_hours", "(new)", "integer",
             rules.whole_number(1, 168, "hours", zero_means="never"),
             "Stop the desktop after this many hours in which only an unreadable probe kept it up and every "
             "readable signal was idle."),
    _setting("snapshotRetainCount", "snapshot_retain_count", "(new)", "integer",
             rules.whole_number(1, 1000, zero_means="no daily snapshots"),
             "Daily snapshots of the root volume kept (Data Lifecycle Manager)."),
    _setting("snapshotTime", "snapshot_time", "(new)", "string",
             ("a UTC time of day HH:MM, e.g. 05:00", rules.valid_time_of_day),
             "UTC time of the daily root volume snapshot."),
    _setting("efsBackup", "efs_backup", "(new)", "boolean", rules.boolean(),
             "AWS Backup's daily backups for the EFS file system the program creates."),
    _setting("fsxLustre", "fsx_lustre", "(new)", "boolean", rules.boolean(),
             "An FSx for Lustre file system linked to the S3 bucket."),
    _setting("fsxStorageCapacity", "fsx_storage_capacity", "(new)", "integer",
             ("1200, or a multiple of 2400, GiB (what SCRATCH_2 and PERSISTENT_2 accept)",
              lambda v: isinstance(v, int) and not isinstance(v, bool) and (v == 1200 or (v > 0 and v % 2400 == 0))),
             "FSx for Lustre storage capacity in GiB."),
    _setting("fsxDeploymentType", "fsx_deployment_type", "(new)", "string",
             rules.one_of("SCRATCH_2", "PERSISTENT_2"), "FSx for Lustre deployment type."),
    _setting("fsxMountPath", "fsx_mount_path", "(new)", "string", MOUNT_PATH_RULE,
             "Where FSx for Lustre is mounted on the desktop (not equal to or nested with efsMountPath)."),
    _setting("capacityReservationId", "capacity_reservation_id", "(new)", "string",
             rules.aws_id("cr"),
             "Capacity reservation or Capacity Block for ML the instance runs in; empty = none."),
    _setting("efa", "efa", "(new)", "boolean", rules.boolean(),
             "Elastic Fabric Adapter as the primary network interface (types that support it)."),
    _setting("spot", "spot", "(new)", "boolean", rules.boolean(),
             "Run on Spot: a persistent request whose interruption stops the desktop (disk kept). "
             "Changing it replaces the instance."),
    _setting("spotMaxPrice", "spot_max_price", "(new)", "string",
             ("a positive decimal amount of USD per hour, e.g. 0.45", rules.valid_price),
             "Highest Spot price per hour in USD (only with spot); empty = up to the on-demand price."),
    _setting("budgetMonthlyUsd", "budget_monthly_usd", "(new)", "integer",
             rules.whole_number(1, 1000000, "USD", zero_means="no budget"),
             "Monthly AWS Budgets limit in USD for this desktop's cost (with budgetEmail); 0 = no budget."),
    _setting("budgetEmail", "budget_email", "(new)", "string",
             ("one e-mail address, e.g. me@example.com", rules.valid_email),
             "Who the budget e-mails at 80% of the forecast and 100% of the actual (with budgetMonthlyUsd)."),
    _setting("sagemakerAccess", "sagemaker_access", "(new)", "string", rules.one_of(*SAGEMAKER_ACCESS),
             "SageMaker from the desktop: scoped (jobs, models and endpoints as the desktop's own role), "
             "full (AWS's AmazonSageMakerFullAccess, as the sample) or none (no SageMaker at all)."),
)

SETTINGS_BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}
SETTINGS_BY_FIELD: dict[str, Setting] = {s.field: s for s in SETTINGS}
