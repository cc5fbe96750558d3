"""EFS: a new encrypted file system kept on destroy, with its mount target, or the given one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from desktop.config import DesktopArgs
from desktop.ports import NFS_PORT


@dataclass(frozen=True)
class Storage:
    """The file system the desktop mounts, and what must exist before it boots."""

    file_system_id: pulumi.Output[str]
    mount_target: Optional[aws.efs.MountTarget]


def file_system(
    name: str, args: DesktopArgs, desktop_security_group_id: pulumi.Input[str], parent: pulumi.Resource
) -> Storage:
    """``efsFileSystemId`` (its mount target is the owner's), or a new file system and mount target."""
    if args.efs_file_system_id:
        return Storage(pulumi.Output.from_input(args.efs_file_system_id), None)
    opts = pulumi.ResourceOptions(parent=parent)
    efs = aws.efs.FileSystem(
        f"{name}-efs",
        encrypted=True,
        performance_mode="generalPurpose",
        tags={"Name": name},
        # The user's data outlives the stack: `pulumi destroy`, a replacement, or
        # switching to a given file system leaves it in the account (the sample's
        # DeletionPolicy: Retain).
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(retain_on_delete=True)),
    )
    nfs_group = aws.ec2.SecurityGroup(
        f"{name}-efs-sg",
        vpc_id=args.vpc_id,
        description="EFS mount target: NFS from the deep learning desktop",
        tags={"Name": f"{name}-efs"},
        opts=opts,
    )
    aws.vpc.SecurityGroupIngressRule(
        f"{name}-efs-nfs",
        security_group_id=nfs_group.id,
        referenced_security_group_id=desktop_security_group_id,
        ip_protocol="tcp",
        from_port=NFS_PORT,
        to_port=NFS_PORT,
        description="NFS from the desktop",
        opts=opts,
    )
    mount_target = aws.efs.MountTarget(
        f"{name}-efs-mount-target",
        file_system_id=efs.id,
        subnet_id=args.subnet_id,
        security_groups=[nfs_group.id],
        # EFS allows one mount target per zone: a new one in the same zone can only
        # be created once the old one is gone.
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(delete_before_replace=True)),
    )
    return Storage(efs.id, mount_target)
