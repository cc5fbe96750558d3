"""The EC2 instance: the desktop itself, whose root volume holds the person's work."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

import cloud_init
from desktop.config import SETTINGS_BY_FIELD, DesktopArgs
from desktop.identity import Identity, Partition
from desktop.image import Image
from desktop.storage import Storage

# Inputs whose change would make the provider replace the instance, and so delete
# its root volume. The instance keeps its current value and the program warns
# instead; `pulumi up --replace <urn>` moves it on purpose.
# Each: (the provider's property, the instance attribute, the DesktopArgs field).
KEPT_ON_CHANGE = (
    ("subnetId", "subnet_id", "subnet_id"),
    ("keyName", "key_name", "key_name"),
    ("associatePublicIpAddress", "associate_public_ip_address", "public_ip"),
)


def desktop_instance(
    name: str,
    args: DesktopArgs,
    *,
    image: Image,
    identity: Identity,
    security_group_id: pulumi.Output[str],
    storage: Storage,
    partition: Partition,
    parent: pulumi.Resource,
) -> aws.ec2.Instance:
    """The desktop instance, with the boot user data and IMDSv2 required."""
    user_data = pulumi.Output.all(
        partition.region, partition.dns_suffix, storage.file_system_id,
        identity.role.arn, security_group_id,
    ).apply(lambda v: cloud_init.render(
        region=v[0], dns_suffix=v[1], efs_file_system_id=v[2], efs_mount_path=args.efs_mount_path,
        role_arn=v[3], security_group_id=v[4], subnet_id=args.subnet_id,
    ))
    ignore = [prop for prop, *_ in KEPT_ON_CHANGE]
    if image.from_ssm:
        ignore.append("ami")
    instance = aws.ec2.Instance(
        f"{name}-instance",
        ami=image.ami_id,
        instance_type=args.instance_type,
        ebs_optimized=args.ebs_optimized,
        iam_instance_profile=identity.profile.name,
        key_name=args.key_name,
        subnet_id=args.subnet_id,
        vpc_security_group_ids=[security_group_id],
        associate_public_ip_address=args.public_ip,
        root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
            volume_size=args.ebs_volume_size,
            volume_type=args.ebs_volume_type,
            encrypted=True,
            delete_on_termination=True,
        ),
        metadata_options=aws.ec2.InstanceMetadataOptionsArgs(
            http_endpoint="enabled",
            http_tokens="required",
            # 2 hops so containers on the desktop (docker is on the DLAMI) reach IMDSv2.
            http_put_response_hop_limit=2,
        ),
        user_data=user_data,
        # A changed user data stops and starts the instance; it never replaces it.
        user_data_replace_on_change=False,
        tags={"Name": f"{name}-deep-learning-ubuntu-desktop"},
        opts=pulumi.ResourceOptions(
            parent=parent,
            ignore_changes=ignore,
            # Boot mounts EFS: let the new mount target exist first.
            depends_on=[storage.mount_target] if storage.mount_target else [],
        ),
    )
    _warn_on_kept_values(instance, args, image)
    return instance


def _warn_on_kept_values(instance: aws.ec2.Instance, args: DesktopArgs, image: Image) -> None:
    """Say when config asks for a value the instance keeps (see KEPT_ON_CHANGE)."""
    for _, attribute, field in KEPT_ON_CHANGE:
        key, wanted = SETTINGS_BY_FIELD[field].key, getattr(args, field)
        getattr(instance, attribute).apply(
            lambda actual, key=key, wanted=wanted: _warn_if_differs(key, actual, wanted, instance)
        )
    if image.from_ssm:
        pulumi.Output.all(instance.ami, image.ami_id).apply(lambda v: _note_newer_ami(*v, instance))


def _note_newer_ami(kept: str, newest: str, instance: aws.ec2.Instance) -> None:
    if kept and newest and kept != newest:
        pulumi.log.info(
            f"a newer Deep Learning AMI ({newest}) is published; the desktop keeps {kept}. To move to it, "
            f"`pulumi config set amiId {newest}` (this replaces the instance and deletes its root "
            "volume: copy your work to EFS or S3 first).",
            instance,
        )


def _warn_if_differs(key: str, actual, wanted, instance: aws.ec2.Instance) -> None:
    if actual is None or actual == wanted:
        return
    pulumi.log.warn(
        f"{key} is {wanted!r} in the config but the desktop has {actual!r}; it keeps {actual!r}, because "
        "changing it would replace the instance and delete its root volume. To do it anyway, save "
        "your work to EFS or S3 and run `pulumi up --replace <instance URN>`.",
        instance,
    )
