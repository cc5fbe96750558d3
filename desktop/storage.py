"""EFS: a new encrypted file system kept on destroy, with its mount target, or the given one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import pulumi
import pulumi_aws as aws

from desktop.config import DesktopArgs
from desktop.cost_tag import with_cost_tag
from desktop.naming import child
from desktop.ports import NFS_PORT


@dataclass(frozen=True)
class Storage:
    """The file system the desktop mounts, and what must exist before it boots."""

    file_system_id: pulumi.Output[str]
    mount_target: Optional[aws.efs.MountTarget]


def file_system(
    name: str, args: DesktopArgs, desktop_security_group_id: pulumi.Input[str], parent: pulumi.Resource,
    cost_tag: Optional[pulumi.Input[Mapping[str, str]]] = None,
) -> Storage:
    """``efsFileSystemId`` (its mount target is the owner's), or a new file system and mount target."""
    if args.efs_file_system_id is not None:
        return Storage(pulumi.Output.from_input(args.efs_file_system_id), None)
    # The user's data outlives the stack: `pulumi destroy`, a replacement, or
    # switching to a given file system leaves it in the account (the sample's
    # DeletionPolicy: Retain).
    files = child(name, "efs", parent, retain_on_delete=True)
    efs = aws.efs.FileSystem(
        files.name,
        encrypted=True,
        performance_mode="generalPurpose",
        tags=with_cost_tag({"Name": name}, cost_tag),
        opts=files.opts,
    )
    group = child(name, "efs-sg", parent)
    nfs_group = aws.ec2.SecurityGroup(
        group.name,
        vpc_id=args.vpc_id,
        description="EFS mount target: NFS from the deep learning desktop",
        tags={"Name": f"{name}-efs"},
        opts=group.opts,
    )
    nfs = child(name, "efs-nfs", parent)
    aws.vpc.SecurityGroupIngressRule(
        nfs.name,
        security_group_id=nfs_group.id,
        referenced_security_group_id=desktop_security_group_id,
        ip_protocol="tcp",
        from_port=NFS_PORT,
        to_port=NFS_PORT,
        description="NFS from the desktop",
        opts=nfs.opts,
    )
    # EFS allows one mount target per zone: a new one in the same zone can only
    # be created once the old one is gone.
    target = child(name, "efs-mount-target", parent, delete_before_replace=True)
    mount_target = aws.efs.MountTarget(
        target.name,
        file_system_id=efs.id,
        subnet_id=args.subnet_id,
        security_groups=[nfs_group.id],
        opts=target.opts,
    )
    return Storage(efs.id, mount_target)
