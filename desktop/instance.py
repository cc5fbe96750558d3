"""The EC2 instance: the desktop itself, whose root volume holds the person's work."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Mapping, Optional

import pulumi
import pulumi_aws as aws

import cloud_init
from desktop.boot_files import BootFiles
from desktop.capacity import CAPACITY_BLOCK, SPOT, Capacity
from desktop.cost_tag import with_cost_tag
from desktop.config import SETTINGS_BY_FIELD, ConfigError, DesktopArgs, Problem
from desktop.dcv_password import DcvPassword
from desktop.efa import Efa
from desktop.identity import Identity
from desktop.image import Image, is_of_architecture, other_architecture
from desktop.instance_tags import IDLE_BLOCKED_HOURS, IDLE_STOP_MINUTES, KEEP_AWAKE_UNTIL, capacity_block_end_tag
from desktop.lustre import Lustre
from desktop.naming import child
from desktop.partition import Partition
from desktop.storage import Storage
from desktop.user_data_change import warn_when_restarted

# Inputs whose change would make the provider replace the instance, and so delete
# its root volume. They are ignored for changes, so that the preview shows the
# instance's own value, and a config that differs from it stops `pulumi up` there
# with a ConfigError: nothing half-moves (the mount target and the user data follow
# the config). Moving on purpose is `pulumi up --replace <instance URN>`: for a targeted
# replacement the engine checks the program's own values, not the ignored old ones
# (pulumi/pulumi pkg/resource/deploy/step_generator.go, isTargetedReplace), and the
# replacement's preview outputs are those values, so this check lets it through.
# Each: (the provider's property, the instance attribute, the DesktopArgs field).
# keyName: the provider reads an instance without a key pair as "" (its key_name is
# Optional, Computed and ForceNew): adding one replaces the instance, dropping it does not.
# ebsOptimized: ForceNew in the provider's schema (terraform-provider-aws
# internal/service/ec2/ec2_instance.go), although EC2 itself can change it on a stopped instance.
KEPT_ON_CHANGE = (
    ("subnetId", "subnet_id", "subnet_id"),
    ("keyName", "key_name", "key_name"),
    ("associatePublicIpAddress", "associate_public_ip_address", "public_ip"),
    ("ebsOptimized", "ebs_optimized", "ebs_optimized"),
)

# The provider reads associatePublicIpAddress back from the primary network interface's
# public IP association (terraform-provider-aws resourceInstanceFlatten:
# `primaryNetworkInterface.Association != nil`). Only a running instance has one: a
# stopped desktop reads as "no public IP" whatever it was created with, so the value is
# compared only while the instance runs.
READ_ONLY_WHILE_RUNNING = frozenset({"public_ip"})

# The keep-awake tag is set from the laptop (CreateTags), so `pulumi up` must leave it
# alone, with and without --refresh. The dot form is the one the Terraform bridge matches
# against the property paths it walks (doIgnoreChanges); tagsAll too, because the
# provider computes tags_all from tags and would otherwise plan the tag's removal from it.
KEEP_AWAKE_IGNORED = (f"tags.{KEEP_AWAKE_UNTIL}", f"tagsAll.{KEEP_AWAKE_UNTIL}")

# Two more choices only a new instance can change, kept the same way but read differently:
# whether the primary interface is an EFA (the instance's tag EFA_TAG, set only on an EFA
# desktop: none means none), and the market type (`capacity-block` in a Capacity Block,
# `spot` on Spot): instance_market_options is ForceNew in the provider's schema
# (terraform-provider-aws ec2_instance.go), so `spot` and `spotMaxPrice` are kept too.
# The interface is a resource of its own, so the instance also keeps its primary interface.
#
# What the provider reads back as instance_market_options decides what the kept value is on
# the next `pulumi up`: for a Spot instance the Spot request (market type spot, its options);
# for a Capacity Block instance, before terraform-provider-aws PR 48701, nothing at all (the
# perpetual diff that PR fixed). So the market is taken from the options, else from the
# instance's lifecycle (EC2's InstanceLifecycle: "spot", "capacity-block", or none on demand),
# which every provider version reads: a block desktop is never taken for an on-demand one.
EFA_TAG = "Efa"
KEPT_ALSO = ("primaryNetworkInterface", "instanceMarketOptions", f'tags["{EFA_TAG}"]')


def desktop_instance(
    name: str,
    args: DesktopArgs,
    *,
    image: Image,
    identity: Identity,
    security_group_id: pulumi.Output[str],
    storage: Storage,
    dcv_password: DcvPassword,
    partition: Partition,
    parent: pulumi.Resource,
    lustre: Optional[Lustre] = None,
    efa: Optional[Efa] = None,
    capacity: Capacity = Capacity(None, False),
    root_volume_tags: Optional[pulumi.Input[Mapping[str, str]]] = None,
    boot_files: Optional[BootFiles] = None,
    cost_tag: Optional[pulumi.Input[Mapping[str, str]]] = None,
) -> aws.ec2.Instance:
    """The desktop instance, with the boot user data and IMDSv2 required.

    With ``efa`` its primary interface is the EFA; with ``capacity`` it runs in that
    reservation; with ``lustre`` the boot mounts that file system. ``root_volume_tags`` go
    on the root volume; adding or changing them later tags the volume in place
    (CreateTags/DeleteTags), without a stop or a replacement. With ``boot_files`` the boot
    installs the files of that parameter (the idle agent); the user data carries its name,
    from which the boot derives the SageMaker defaults' parameter beside it.
    """
    fsx = (lustre.dns_name, lustre.mount_name) if lustre else ("", "")
    # The password parameter's name reaches the boot, never its value; the boot files'
    # parameter too, only its name (see desktop/boot_files.py on why no hash of the value).
    user_data = pulumi.Output.all(
        partition.region, partition.dns_suffix, storage.file_system_id,
        identity.role.arn, security_group_id, dcv_password.parameter.name, args.subnet_id, *fsx,
        boot_files.parameter.name if boot_files else "",
    ).apply(lambda v: cloud_init.render(
        region=v[0], dns_suffix=v[1], efs_file_system_id=v[2], efs_mount_path=args.efs_mount_path,
        role_arn=v[3], security_group_id=v[4], subnet_id=v[6], dcv_password_parameter=v[5],
        fsx_dns_name=v[7], fsx_mount_name=v[8], fsx_mount_path=args.fsx_mount_path if lustre else "",
        efa="true" if efa else "false", boot_files_parameter=v[9],
    ))
    # gzip: half the size or less, so the boot has room to grow within EC2's 16 KiB;
    # cloud-init decompresses it itself.
    user_data_base64 = user_data.apply(cloud_init.encode)
    ignore = [prop for prop, *_ in KEPT_ON_CHANGE] + list(KEEP_AWAKE_IGNORED) + list(KEPT_ALSO)
    if image.from_ssm:
        ignore.append("ami")
    if efa:
        network = dict(primary_network_interface=aws.ec2.InstancePrimaryNetworkInterfaceArgs(
            network_interface_id=efa.interface.id))
    else:
        network = dict(subnet_id=args.subnet_id, vpc_security_group_ids=[security_group_id],
                       associate_public_ip_address=args.public_ip)
    tags = {
        "Name": f"{name}-deep-learning-ubuntu-desktop",
        IDLE_STOP_MINUTES: str(args.idle_stop_minutes),
        IDLE_BLOCKED_HOURS: str(args.idle_blocked_hours),
        **({EFA_TAG: "true"} if efa else {}),
        # The agent holds the stop inside a paid block, until 10 minutes before EC2 terminates it.
        **capacity_block_end_tag(capacity.end_date if capacity.capacity_block else None),
    }
    tags = with_cost_tag(tags, cost_tag)
    depends_on = [dcv_password.grant] + ([storage.mount_target] if storage.mount_target else [])
    if lustre:
        depends_on.append(lustre.file_system)  # the boot mounts it
    if boot_files:
        # The boot reads the parameters: them and the grants first (IAM may take a while).
        depends_on += boot_files.resources
    desktop = child(
        name, "instance", parent,
        ignore_changes=ignore,
        # The boot mounts EFS (and FSx): let the new mount target exist first. It reads
        # the DCV password: let the grant exist first (IAM may take a while to apply it).
        depends_on=depends_on,
    )
    instance = aws.ec2.Instance(
        desktop.name,
        ami=image.ami_id,
        instance_type=args.instance_type,
        ebs_optimized=args.ebs_optimized,
        iam_instance_profile=identity.profile.name,
        key_name=args.key_name,
        **network,
        **capacity.instance_arguments(),
        root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
            volume_size=args.ebs_volume_size,
            volume_type=args.ebs_volume_type,
            encrypted=True,
            # EC2 terminates the instances of a Capacity Block when the block ends: the
            # root volume, with the person's work, then stays (delete it yourself).
            delete_on_termination=not capacity.capacity_block,
            # Not ForceNew in the provider: a change only re-tags the volume.
            tags=root_volume_tags,
        ),
        metadata_options=aws.ec2.InstanceMetadataOptionsArgs(
            http_endpoint="enabled",
            http_tokens="required",
            # 2 hops so containers on the desktop (docker is on the DLAMI) reach IMDSv2.
            http_put_response_hop_limit=2,
            # The idle agent reads its policy and the keep-awake deadline from the tags.
            instance_metadata_tags="enabled",
        ),
        # The idle agent powers the machine off: that must stop it (root volume kept), never
        # terminate it.
        instance_initiated_shutdown_behavior="stop",
        user_data_base64=user_data_base64,
        # A changed user data stops and starts the instance; it never replaces it.
        user_data_replace_on_change=False,
        tags=tags,
        opts=desktop.opts,
    )
    _check_kept_values(instance, args, image, capacity)
    warn_when_restarted(instance, user_data_base64)
    return instance


def _check_kept_values(instance: aws.ec2.Instance, args: DesktopArgs, image: Image, capacity: Capacity) -> None:
    """Stop at the preview when config asks for a value the instance keeps (KEPT_ON_CHANGE, KEPT_ALSO)."""
    always = [kept for kept in KEPT_ON_CHANGE if kept[2] not in READ_ONLY_WHILE_RUNNING]
    # The wanted values may be outputs of other resources (a subnet the program creates).
    wanted = pulumi.Output.all(*[getattr(args, field) for *_, field in always])
    pulumi.Output.all(instance.urn, instance.tags, instance.instance_market_options, wanted,
                      instance.instance_lifecycle,
                      *[getattr(instance, attribute) for _, attribute, _ in always]).apply(
        lambda v: _refuse_differences(v[0], always, v[5:], v[3], args, instance=instance,
                                      also=_kept_also(v[1], v[2], args, capacity, lifecycle=v[4])))
    # Apart, so that the checks above never wait for the instance state to be known.
    while_running = [kept for kept in KEPT_ON_CHANGE if kept[2] in READ_ONLY_WHILE_RUNNING]
    pulumi.Output.all(instance.urn, instance.instance_state,
                      *[getattr(instance, attribute) for _, attribute, _ in while_running]).apply(
        lambda v: _refuse_differences(v[0], while_running, v[2:], [getattr(args, f) for *_, f in while_running],
                                      args, state=v[1], instance=instance))
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


def _market_type(options, lifecycle: Optional[str] = None) -> Optional[str]:
    """The market type of the instance's market options, else of its lifecycle; None (or EC2's
    empty answer) is on demand."""
    if isinstance(options, dict):
        kept = options.get("marketType") or options.get("market_type")
    else:
        kept = getattr(options, "market_type", None)
    if kept:
        return kept
    return lifecycle if lifecycle in (CAPACITY_BLOCK, SPOT) else None


def _max_price(options) -> Optional[str]:
    """The Spot options' max price the instance keeps ("" or None: not known)."""
    spot = (options.get("spotOptions") or options.get("spot_options")) if isinstance(options, dict) else \
        getattr(options, "spot_options", None)
    if isinstance(spot, dict):
        return spot.get("maxPrice") or spot.get("max_price") or None
    return getattr(spot, "max_price", None) or None


def _kept_also(tags: Optional[dict], market_options, args: DesktopArgs, capacity: Capacity,
               lifecycle: Optional[str] = None) -> list:
    """(field, wanted, the desktop's own, what it means) of the choices KEPT_ALSO keeps."""
    has_efa = (tags or {}).get(EFA_TAG) == "true"
    kept_market = _market_type(market_options, lifecycle)
    where = {None: "on demand or in an On-Demand Capacity Reservation", CAPACITY_BLOCK: "in a Capacity Block",
             SPOT: "on Spot"}
    in_block = kept_market == CAPACITY_BLOCK
    on_spot = kept_market == SPOT
    replaced = ("the provider replaces the instance for any change of its market options "
                "(instance_market_options)")
    kept = [
        ("efa", args.efa, has_efa, f"the desktop's own {str(has_efa).lower()!r} (its primary interface "
                                   f"{'is' if has_efa else 'is not'} an EFA)"),
        ("capacity_reservation_id", capacity.capacity_block, in_block,
         f"a reservation like the desktop's own: it runs {where.get(kept_market, kept_market)}, and moving "
         f"{'out of' if in_block else 'into'} a Capacity Block (EC2's market type capacity-block)"),
        ("spot", args.spot, on_spot,
         f"the desktop's own {str(on_spot).lower()!r} (it runs {where.get(kept_market, kept_market)}): "
         f"{replaced}"),
    ]
    kept_price = _max_price(market_options) if on_spot else None
    if on_spot and args.spot and args.spot_max_price is not None and kept_price is not None \
            and _differs(kept_price, args.spot_max_price):
        # EC2 gives the price with six decimals ("0.450000"): compared as numbers. Unset in the
        # config, the request's price is EC2's own default, which says nothing: not compared.
        kept.append(("spot_max_price", args.spot_max_price, kept_price,
                     f"the desktop's own {kept_price!r}: {replaced}"))
    return kept


def _differs(kept: str, wanted: str) -> bool:
    try:
        return Decimal(kept) != Decimal(wanted)
    except InvalidOperation:
        return kept != wanted


def _refuse_differences(urn: str, checked: list, actual_values: list, wanted_values: list, args: DesktopArgs,
                        state: Optional[str] = None, instance: Optional[aws.ec2.Instance] = None,
                        also: list = ()) -> None:
    """A ConfigError for each of the ``checked`` KEPT_ON_CHANGE entries whose wanted value
    (``wanted_values``, the config's, resolved) differs from what the instance has
    (``actual_values``, in the same order), and for each of the ``also`` choices (see
    :func:`_kept_also`)."""
    problems = []
    for (_, _, field), actual, wanted in zip(checked, actual_values, wanted_values):
        if field in READ_ONLY_WHILE_RUNNING and state is not None and state != "running":
            # Not readable now: a stopped desktop reads as "no public IP" whatever it has. No
            # error on a value it cannot show, and no silent pass either (a matching "false"
            # proves nothing): say so; the next `pulumi up` while it runs compares it.
            pulumi.log.info(
                f"the desktop is {state}: its {SETTINGS_BY_FIELD[field].key} setting can only be compared with "
                f"the config ({str(wanted).lower()}) while it runs; a `pulumi up` while it runs checks it", instance)
            continue
        # None: not known yet (a new desktop). With EFA the Elastic IP gives the public
        # address: no new instance for that.
        if actual is None or actual == wanted or (field == "public_ip" and args.efa):
            continue
        if field == "key_name":
            problem = _key_pair_change(urn, actual, wanted, instance)
        else:
            problem = Problem(
                SETTINGS_BY_FIELD[field].key, wanted,
                f"the desktop's own {actual!r}: changing it needs a new instance, and the root volume with "
                f"your work would go with the old one. Set it back, or {_move(urn)}",
            )
        if problem:
            problems.append(problem)
    for field, wanted, actual, meaning in also:
        if field == "spot_max_price" or actual != wanted:
            problems.append(Problem(
                SETTINGS_BY_FIELD[field].key, getattr(args, field),
                f"{meaning}: changing it needs a new instance, and the root volume with your work would go "
                f"with the old one. Set it back, or {_move(urn)}"))
    if problems:
        raise ConfigError(problems)


def _move(urn: str) -> str:
    return (f"to move on purpose copy your work to EFS or S3, then `pulumi up --replace '{urn}'` (its preview "
            f"shows the new instance; `pulumi destroy --target '{urn}'` and `pulumi up` do the same in two steps)")


def _key_pair_change(urn: str, actual: str, wanted, instance: aws.ec2.Instance):
    """A keyName that differs from the desktop's own ("" = created without one): adding or
    changing a key pair needs a new instance (a Problem); dropping it keeps the instance
    and its key, which is worth a warning only."""
    key = SETTINGS_BY_FIELD["key_name"].key
    if actual == "" and wanted is None:
        return None
    if actual == "":
        return Problem(
            key, wanted,
            "no key pair, as the desktop was created: adding one needs a new instance, and the root volume "
            "with your work would go with the old one. Unset keyName and open a shell through Session "
            f"Manager (`python -m desktop shell`), or {_move(urn)}",
        )
    if wanted is None:
        pulumi.log.warn(
            f"keyName is empty, but the desktop keeps the key pair {actual!r} it was created with (taking it "
            "away needs a new instance); remove its line from ~ubuntu/.ssh/authorized_keys on the desktop to "
            "shut it out", instance)
        return None
    return Problem(
        key, wanted,
        f"the desktop's own {actual!r}: changing it needs a new instance, and the root volume with your work "
        f"would go with the old one. Set it back, or {_move(urn)}",
    )
