"""Checks of where the files live: the S3 bucket, a given EFS file system, its mount
target and its backups."""

from __future__ import annotations

import ipaddress
from typing import Iterable

import botocore.exceptions

from desktop.commands import aws
from desktop.commands.preflight.lookups import Account
from desktop.commands.preflight.result import FAIL, PASS, WARN, Result
from desktop.commands.preflight.network import admits
from desktop.ports import NFS_PORT


def check_bucket(account: Account) -> Iterable[Result]:
    bucket, region = account.args.s3_bucket, account.aws.region
    try:
        response = account.aws.client("s3").head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as error:
        status = str(error.response.get("Error", {}).get("Code", ""))
        if status in ("404", "NoSuchBucket", "NotFound"):
            yield Result(FAIL, f"S3 bucket {bucket!r} does not exist: create it "
                               f"(`aws s3 mb s3://{bucket} --region {region}`) or set s3Bucket")
            return
        if status in ("403", "AccessDenied"):
            yield Result(FAIL, f"S3 bucket {bucket!r} exists but is not reachable with these credentials (403): "
                               "it belongs to another account or your identity may not list it; "
                               "pick a bucket of this account")
            return
        raise
    # botocore reads it from the x-amz-bucket-region header.
    bucket_region = response.get("BucketRegion")
    if bucket_region and bucket_region != region:
        yield Result(WARN, f"S3 bucket {bucket!r} is in {bucket_region}, the desktop in {region}: "
                           "transfers cross regions (slower, billed); a bucket in the same region is better")
        return
    yield Result(PASS, f"S3 bucket {bucket!r} exists and is reachable")


def check_efs(account: Account) -> Iterable[Result]:
    args = account.args
    fs_id = args.efs_file_system_id
    if not fs_id:
        return
    efs = account.aws.client("efs")
    try:
        system = efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0]
    except botocore.exceptions.ClientError as error:
        if aws.code(error) != "FileSystemNotFound":
            raise
        yield Result(FAIL, f"EFS file system {fs_id} does not exist in {account.aws.region}: "
                           "set efsFileSystemId, or unset it to have one created")
        return
    if system.get("LifeCycleState", "available") != "available":
        yield Result(FAIL, f"EFS file system {fs_id} is {system['LifeCycleState']}, not available")
        return
    subnet = account.subnet()
    if subnet is None:
        return  # reported by check_network
    zone = subnet["AvailabilityZone"]
    targets = efs.describe_mount_targets(FileSystemId=fs_id)["MountTargets"]
    other_vpcs = {t.get("VpcId") for t in targets if t.get("VpcId") and t.get("VpcId") != subnet["VpcId"]}
    if other_vpcs:
        yield Result(FAIL, f"EFS file system {fs_id} has its mount targets in {', '.join(sorted(other_vpcs))}, "
                           f"not in {subnet['VpcId']}: use a file system of the desktop's VPC, or unset "
                           "efsFileSystemId to have one created")
        return
    in_zone = [t for t in targets if t.get("AvailabilityZoneName") == zone]
    if not in_zone:
        yield Result(FAIL, f"EFS file system {fs_id} has no mount target in {zone} (the zone of "
                           f"{subnet['SubnetId']}): create one (`aws efs create-mount-target --file-system-id "
                           f"{fs_id} --subnet-id {subnet['SubnetId']} --security-groups SG_ALLOWING_NFS`)")
        return
    target = in_zone[0]["MountTargetId"]
    yield Result(PASS, f"EFS file system {fs_id} has mount target {target} in {zone}")
    yield from _check_nfs_admitted(account, target, subnet)


def _check_nfs_admitted(account: Account, target: str, subnet: dict) -> Iterable[Result]:
    """The given EFS's mount target must admit NFS from the desktop: from a given desktop
    group, or from a range holding the subnet (a group this program creates does not
    exist yet, so no rule can name it)."""
    groups = account.aws.client("efs").describe_mount_target_security_groups(
        MountTargetId=target).get("SecurityGroups") or []
    described = account.ec2().describe_security_groups(GroupIds=groups)["SecurityGroups"] if groups else []
    permissions = [permission for group in described for permission in group.get("IpPermissions", [])]
    desktop_group = account.args.security_group_id
    subnet_range = ipaddress.IPv4Network(subnet["CidrBlock"])
    if admits(permissions, "tcp", NFS_PORT, subnet_range, group=desktop_group):
        yield Result(PASS, f"mount target {target} admits NFS (TCP {NFS_PORT}) from the desktop")
        return
    if desktop_group:
        source, option = desktop_group, f"--source-group {desktop_group}"
    else:
        source, option = f"the subnet {subnet_range}", f"--cidr {subnet_range}"
    yield Result(WARN, f"mount target {target} (security groups {', '.join(groups) or 'none'}) admits no NFS "
                       f"(TCP {NFS_PORT}) from {source}: EFS will not mount; add `aws ec2 "
                       f"authorize-security-group-ingress --group-id {groups[0] if groups else 'SG'} "
                       f"--protocol tcp --port {NFS_PORT} {option}`, or unset efsFileSystemId to have one created")


def check_efs_backup(account: Account) -> Iterable[Result]:
    """Whether a given EFS file system has AWS Backup's automatic backups. The file system
    is its owner's: the program never changes it, so this only says how things are."""
    fs_id = account.args.efs_file_system_id
    if not fs_id:
        return  # a created one gets backups from efsBackup
    efs = account.aws.client("efs")
    try:
        efs.describe_file_systems(FileSystemId=fs_id)
        status = efs.describe_backup_policy(FileSystemId=fs_id)["BackupPolicy"]["Status"]
    except botocore.exceptions.ClientError as error:
        if aws.code(error) == "FileSystemNotFound":
            return  # reported by check_efs
        if aws.code(error) != "PolicyNotFound":  # never set: no automatic backups
            raise
        status = "DISABLED"
    if status in ("ENABLED", "ENABLING"):
        yield Result(PASS, f"EFS file system {fs_id} has automatic backups (AWS Backup: daily, kept 35 days by "
                           "the default plan)")
        return
    yield Result(WARN, f"EFS file system {fs_id} has no automatic backups (its backup policy is {status}): "
                       "it is yours, so this program leaves it as it is; to turn them on, `aws efs "
                       f"put-backup-policy --file-system-id {fs_id} --backup-policy Status=ENABLED`")
