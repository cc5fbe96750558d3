"""The EC2 instance: the desktop itself, whose root volume holds the person's work."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

import cloud_init
from desktop.config import SETTINGS_BY_FIELD, ConfigError, DesktopArgs, Problem
from desktop.identity import Identity
from desktop.image import Image, is_of_architecture, other_architecture
from desktop.naming import child
from desktop.partition import Partition
from desktop.storage import Storage

# Inputs whose change would make the provider replace the instance, and so delete
# its root volume. They are ignored for changes, so that the preview shows the
# instance's own value, and a config that differs from it stops `pulumi up` there
# with a ConfigError: nothing half-moves (the mount target and the user data follow
# the config). Ignored values are kept even by `pulumi up --replace`; moving on
# purpose is `pulumi destroy --target <instance URN>`, then `pulumi up`.
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
        identity.role.arn, security_group_id, args.subnet_id,
    ).apply(lambda v: cloud_init.render(
        region=v[0], dns_suffix=v[1], efs_file_system_id=v[2], efs_mount_path=args.efs_mount_path,
        role_arn=v[3], security_group_id=v[4], subnet_id=v[5],
    ))
    ignore = [prop for prop, *_ in KEPT_ON_CHANGE]
    if image.from_ssm:
        ignore.append("ami")
    desktop = child(
        name, "instance", parent,
        ignore_changes=ignore,
        # Boot mounts EFS: let the new mount target exist first.
        depends_on=[storage.mount_target] if storage.mount_target else [],
    )
    instance = aws.ec2.Instance(
        desktop.name,
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
        # gzip: half the size or less, so the boot has room to grow within EC2's 16 KiB;
        # cloud-init decompresses it itself.
        user_data_base64=user_data.apply(cloud_init.encode),
        # A changed user data stops and starts the instance; it never replaces it.
        user_data_replace_on_change=False,
        tags={"Name": f"{name}-deep-learning-ubuntu-desktop"},
        opts=desktop.opts,
    )
    _check_kept_values(instance, args, image)
    return instance


def _check_kept_values(instance: aws.ec2.Instance, args: DesktopArgs, image: Image) -> None:
    """Stop at the preview when config asks for a value the instance keeps (KEPT_ON_CHANGE)."""
    kept = pulumi.Output.all(*[getattr(instance, attribute) for _, attribute, _ in KEPT_ON_CHANGE])
    # The wanted values may be outputs of other resources (a subnet the program creates).
    wanted = pulumi.Output.all(*[getattr(args, field) for *_, field in KEPT_ON_CHANGE])
    pulumi.Output.all(instance.urn, kept, wanted).apply(lambda v: _refuse_differences(*v))
    if image.from_ssm:
        pulumi.Output.all(instance.ami, image.ami_id, image.architecture).apply(
            lambda v: _check_kept_ami(*v, args.instance_type, instance))


def _check_kept_ami(kept: str, newest: str, architecture, instance_type: str, instance: aws.ec2.Instance):
    """The SSM parameter names another AMI than the one the desktop keeps: either a newer
    one was published (say so), or instanceType moved to the other architecture, which
    the kept AMI cannot run. That is a ConfigError, raised when the preview gives the
    kept AMI, so `pulumi up` stops there, instead of EC2 refusing the change after the
    provider has stopped the instance."""
    if not kept or not newest or kept == newest:
        return None
    move = (f"`pulumi config set amiId {newest}` (this replaces the instance and deletes its root "
            "volume: copy your work to EFS or S3 first)")
    if architecture is None:
        return _note_newer_ami(kept, newest, move, instance)
    other = other_architecture(architecture)

    def say(kept_is_other: bool) -> None:
        if not kept_is_other:
            return _note_newer_ami(kept, newest, move, instance)
        raise ConfigError([Problem(
            SETTINGS_BY_FIELD["instance_type"].key, instance_type,
            f"an {other} type like the desktop's AMI {kept}, which the desktop keeps ({instance_type} is "
            f"{architecture}); or move to the {architecture} AMI: {move}",
        )])

    return is_of_architecture(kept, other, parent=instance).apply(say)


def _note_newer_ami(kept: str, newest: str, move: str, instance: aws.ec2.Instance) -> None:
    pulumi.log.info(
        f"a newer Deep Learning AMI ({newest}) is published; the desktop keeps {kept}. To move to it, {move}.",
        instance,
    )


def _refuse_differences(urn: str, actual_values: list, wanted_values: list) -> None:
    problems = []
    for (_, _, field), actual, wanted in zip(KEPT_ON_CHANGE, actual_values, wanted_values):
        if actual is None or actual == wanted:
            continue
        problems.append(Problem(
            SETTINGS_BY_FIELD[field].key, wanted,
            f"the desktop's own {actual!r}: changing it needs a new instance, and the root volume with your "
            f"work would go with the old one. Set it back, or to move on purpose copy your work to EFS or S3, "
            f"then `pulumi destroy --target '{urn}'` and `pulumi up`",
        ))
    if problems:
        raise ConfigError(problems)
