"""``python -m desktop plan``: what ``pulumi up`` would create, rendered offline.

The real ``__main__.py`` runs under Pulumi mocks (:mod:`desktop.commands.offline`) with the
stack's config, so the plan is the program's own doing, not a description of it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import time
from pathlib import Path
from typing import Any, Optional

import cloud_init
from cloud_init import boot_files
from desktop.commands import offline
from desktop import backup, partition, prices, sagemaker_config
from desktop.boot_files import SAGEMAKER_CONFIG_LEAF
from desktop.commands.offline import Registration, Rendering
from desktop.commands.errors import CommandError
from desktop.commands.stack_file import read_stack, stack_path
from desktop.instance_tags import IDLE_STOP_MINUTES

AFTER_DEPLOY = "known after deploy"
#: What a plan shows instead of a secret (the DCV password, in an output or an input).
SECRET = "[secret]"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="show what `pulumi up` would create, offline (no AWS account, no Pulumi CLI)",
        description="Render the real Pulumi program under mocks with the stack's config and print "
        "the resources, their key settings, the outputs and the warnings. Values AWS only "
        f"chooses at deploy time are shown as <..., {AFTER_DEPLOY}>.",
    )
    parser.add_argument("--stack", default="dev", metavar="NAME",
                        help="stack whose Pulumi.<NAME>.yaml to use (default: dev)")
    parser.add_argument("--project-dir", type=Path, default=None, metavar="DIR",
                        help="directory of Pulumi.yaml and the stack files (default: this project)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="also write user-data.mime, cloud-config.yaml, boot-script.sh and plan.json to DIR")
    parser.set_defaults(run=run)


def render(stack_name: str = "dev", project_dir: Optional[Path] = None) -> tuple[Rendering, str]:
    """Render the stack offline; returns the rendering and the region used."""
    stack = read_stack(stack_name, project_dir)
    stack.parse()  # the program's own validation, plus unknown keys in the stack file
    region = stack.region or "us-east-1"
    mocks = offline.AccountMocks(placeholders=True, region=region, partition=partition.of_region(region))
    config = {**stack.other, **{f"{offline.PROJECT}:{k}": v for k, v in stack.raw.items()}}
    return offline.run_program(config, stack=stack_name, mocks=mocks), region


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    if args.out is not None:
        _check_out(args.out)  # before the rendering: a wrong --out shows in a second
    rendering, region = render(args.stack, args.project_dir)
    print(f"Offline rendering of stack {args.stack!r} ({stack_path(args.stack, args.project_dir).name}, "
          f"region {region}), made without AWS and without the Pulumi CLI.")
    print(f"Values that only exist after deploy are shown as <..., {AFTER_DEPLOY}>.\n")
    print(access_line(read_stack(args.stack, args.project_dir).parse().args) + "\n")
    print("\n".join(tree_lines(rendering)))
    print("\nOutputs:")
    width = max(len(k) for k in rendering.outputs)
    for key, value in shown_outputs(rendering).items():
        print(f"  {key:<{width}}  {value if value != '' else '(none)'}")
    print("\nWarnings:" if rendering.warnings else "\nWarnings: none")
    for warning in rendering.warnings:
        print(f"  ! {warning}")
    stopped = stopped_items(read_stack(args.stack, args.project_dir).parse().args)
    print(f"\nWhile stopped it still costs {prices.summary(stopped)}:")
    for item in stopped:
        print(f"  {item.text()}")
    print("\nAfter `pulumi destroy` (everything else goes):")
    for line in after_destroy(rendering):
        print(f"  {line}")
    if args.out is not None:
        try:
            written = write_out(rendering, args.out)
        except OSError as error:
            raise CommandError(f"--out {str(args.out)!r}: cannot write {error.filename or args.out} "
                               f"({error.strerror or error}); expected a directory you may write to") from None
        for path in written:
            print(f"wrote {path}")
    print(f"\n{len(rendering.registrations)} resources, {len(rendering.outputs)} outputs, "
          f"rendered in {time.monotonic() - started:.1f} s.")
    return 0


def stopped_items(args) -> list:
    """What the desktop of ``args`` costs per month while stopped (desktop/prices.py's table)."""
    return prices.stopped_monthly(
        volume_size=args.ebs_volume_size, volume_type=args.ebs_volume_type,
        snapshot_retain_count=args.snapshot_retain_count, efs_created=args.efs_file_system_id is None,
        fsx_capacity=args.fsx_storage_capacity if args.fsx_lustre else 0, fsx_type=args.fsx_deployment_type)


def access_line(args) -> str:
    """How the desktop is reached: ports open to accessCidr, or Session Manager only."""
    if args.security_group_id:
        return (f"Access: as the given security group {args.security_group_id} admits; "
                "Session Manager (no port needed) too.")
    if args.session_manager_only:
        return ("Access: Session Manager only: no port open to any address "
                "(`python -m desktop connect --ssm`, `python -m desktop shell`).")
    return (f"Access: SSH (22) and DCV (8443) open from {args.access_cidr}; "
            "Session Manager (no port needed) too.")


def shown_outputs(rendering: Rendering) -> dict[str, Any]:
    """The outputs as `pulumi stack output` shows them: secrets hidden."""
    return {key: SECRET if key in rendering.secret_outputs else value for key, value in rendering.outputs.items()}


def _shown_inputs(reg: Registration) -> dict[str, Any]:
    return {key: SECRET if key in reg.secret_inputs else value for key, value in reg.inputs.items()}


# ---------------------------------------------------------------------------
# The tree.

def tree_lines(rendering: Rendering) -> list[str]:
    """Resources as a tree by parent, each with the settings a reviewer checks."""
    by_parent: dict[str, list[Registration]] = {}
    for reg in sorted(rendering.registrations, key=_reading_order):
        by_parent.setdefault(reg.parent, []).append(reg)
    urns = {reg.urn for reg in rendering.registrations}
    ids = {reg.id: reg.name for reg in rendering.registrations if reg.id}
    lines = [f"Resources ({len(rendering.registrations)}):"]

    def walk(reg: Registration, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└─ " if last else "├─ ")
        lines.append(f"{prefix}{branch}{reg.name}  ({reg.type})")
        child_prefix = prefix + ("" if top else ("   " if last else "│  "))
        children = by_parent.get(reg.urn, [])
        for detail in details(reg, ids):
            lines.append(f"{child_prefix}{'│  ' if children else '   '}  {detail}")
        for i, child in enumerate(children):
            walk(child, child_prefix, i == len(children) - 1, False)

    roots = [reg for reg in rendering.registrations if reg.parent not in urns]
    for root in roots:
        walk(root, "", True, True)
    return lines


def details(reg: Registration, ids: dict[str, str]) -> list[str]:
    i = reg.inputs
    kind = reg.type.split(":")[-1]
    out: list[str] = []
    if kind in ("SecurityGroupIngressRule", "SecurityGroupEgressRule"):
        direction, word = ("ingress", "from") if kind.startswith("SecurityGroupIngress") else ("egress", "to")
        protocol = "all traffic" if i.get("ipProtocol") == "-1" else i.get("ipProtocol")
        low, high = (None if i.get(k) is None else int(i[k]) for k in ("fromPort", "toPort"))
        ports = "" if low is None else (f" port {low}" if low == high else f" ports {low}-{high}")
        peer = i.get("cidrIpv4") or _peer(i.get("referencedSecurityGroupId"), ids, reg)
        out.append(f"{direction} {protocol}{ports} {word} {peer} ({i.get('description', '')}) "
                   f"in {_name(i.get('securityGroupId'), ids)}")
    elif kind == "SecurityGroup":
        out.append(f"vpc {i.get('vpcId')}, tags {i.get('tags')}")
    elif kind == "FileSystem":
        out.append(f"encrypted {i.get('encrypted')}, performance mode {i.get('performanceMode')}, tags {i.get('tags')}")
    elif kind == "LustreFileSystem":
        out += _lustre(i, ids)
    elif kind == "DataRepositoryAssociation":
        events = {way: ", ".join(i.get("s3", {}).get(f"auto{way}Policy", {}).get("events", [])) or "nothing"
                  for way in ("Import", "Export")}
        out.append(f"links {i.get('fileSystemPath')} to {i.get('dataRepositoryPath')}: imports {events['Import']} "
                   f"objects, exports {events['Export']} files; deleting it deletes no file "
                   f"(deleteDataInFilesystem {i.get('deleteDataInFilesystem')})")
    elif kind == "NetworkInterface":
        out.append(f"interface type {i.get('interfaceType', 'interface')}, subnet {i.get('subnetId')}, "
                   f"security groups {[_name(g, ids) for g in i.get('securityGroups', [])]}")
    elif kind == "Eip":
        out.append(f"Elastic IP of {_name(i.get('networkInterface'), ids)}, the desktop's public address")
    elif kind == "MountTarget":
        out.append(f"subnet {i.get('subnetId')}, security groups {[_name(g, ids) for g in i.get('securityGroups', [])]}")
    elif kind == "Role":
        trust = json.loads(i["assumeRolePolicy"])
        principals = [p for s in trust["Statement"] for p in _as_list(s["Principal"]["Service"])]
        out.append(f"trusted by {', '.join(principals)}")
    elif kind == "RolePolicyAttachment":
        out.append(f"managed policy {i.get('policyArn')}")
    elif kind == "RolePolicy":
        out.append(f"inline policy {i.get('name')!r}:")
        for statement in json.loads(i["policy"])["Statement"]:
            # A Deny may name what it spares (NotResource) rather than what it covers.
            on = (f"on {', '.join(_as_list(statement['Resource']))}" if "Resource" in statement
                  else f"on all but {', '.join(_as_list(statement['NotResource']))}")
            when = f" when {json.dumps(statement['Condition'])}" if "Condition" in statement else ""
            out.append(f"  {statement['Effect'].lower()} {', '.join(_as_list(statement['Action']))} {on}{when}")
    elif kind == "InstanceProfile":
        out.append(f"role {i.get('role')}")
    elif kind == "RandomPassword":
        out.append(f"{i.get('length'):.0f} characters (letters, digits, {i.get('overrideSpecial')}), "
                   f"value {SECRET}")
    elif kind == "Parameter" and _is_sagemaker_config(i):
        out += _sagemaker_config(i)
    elif kind == "Parameter" and i.get("type") == "String":
        out += _boot_files(i)
    elif kind == "Parameter":
        out.append(f"{i.get('type')} {i.get('name')}, value {SECRET}")
    elif kind == "LifecyclePolicy":
        details_ = i.get("policyDetails", {})
        for schedule in details_.get("schedules", []):
            create, retain = schedule.get("createRule", {}), schedule.get("retainRule", {})
            out.append(f"snapshots the {', '.join(r.lower() for r in details_.get('resourceTypes', []))} tagged "
                       f"{details_.get('targetTags')} every {create.get('interval'):.0f} "
                       f"{str(create.get('intervalUnit', '')).lower()} at {create.get('times')} UTC, "
                       f"keeps the last {retain.get('count'):.0f}")
            out.append(f"snapshots copy the volume's tags: {schedule.get('copyTags')}, and get "
                       f"{schedule.get('tagsToAdd')}")
        out.append(f"{i.get('state', '').lower()}, runs as {_name_of_arn(i.get('executionRoleArn'))}")
    elif kind == "BackupPolicy":
        out.append(f"AWS Backup's automatic daily backups {i.get('backupPolicy', {}).get('status')} "
                   f"for {_name(i.get('fileSystemId'), ids)}")
    elif kind == "Instance":
        root = i.get("rootBlockDevice", {})
        meta = i.get("metadataOptions", {})
        out += [
            f"type {i.get('instanceType')}, EBS-optimized {i.get('ebsOptimized')}, key pair {i.get('keyName') or '(none)'}",
            f"AMI {i.get('ami')}",
            f"root volume {root.get('volumeSize'):.0f} GiB {root.get('volumeType')}, encrypted "
            f"{root.get('encrypted')}, deleted on termination {root.get('deleteOnTermination')}, "
            f"tags {root.get('tags', {})}",
            f"IMDS tokens {meta.get('httpTokens')} (IMDSv2), hop limit {meta.get('httpPutResponseHopLimit'):.0f}, "
            f"tags in instance metadata {meta.get('instanceMetadataTags', 'disabled')}",
            _idle_policy(i),
            _instance_network(i, ids),
            _capacity(i),
            _user_data_size(i.get("userDataBase64", "")),
            f"tags {i.get('tags')}",
        ]
    if reg.retain_on_delete:
        out.append("kept on destroy and on replacement (retain_on_delete)")
    if reg.delete_before_replace:
        out.append("a replacement deletes it before creating the new one (delete_before_replace)")
    tag_paths = ("tags.", "tagsAll.")
    kept = [path for path in reg.ignore_changes if not path.startswith(tag_paths)]
    outside = sorted({path.split(".", 1)[1] for path in reg.ignore_changes if path.startswith(tag_paths)})
    if kept:
        out.append(f"changes ignored, so they never replace it: {', '.join(kept)}")
    if outside:
        out.append(f"tags set outside Pulumi, which pulumi up leaves as they are: {', '.join(outside)}")
    return out


def _plain(value: Any) -> Any:
    """A value the provider's SDK wrapped as a secret (every parameter value), unwrapped:
    the boot files are no secret, and a reviewer should see them."""
    return value.get("value") if isinstance(value, dict) else value


def _boot_files(i: dict) -> list[str]:
    """The boot files' parameter: its tier, the payload's size, the files it carries."""
    value = _plain(i.get("value")) or ""
    tier = boot_files.tier(value)
    cost = "free" if tier == "Standard" else "$0.05 a month"
    files = ", ".join(f"{name} ({mode:04o}, {len(text.encode()):,} bytes)"
                      for name, (mode, text) in boot_files.unpack(value).items())
    return [
        f"String {i.get('name')}, tier {i.get('tier')}: {tier} for a value of {len(value):,} characters "
        f"(Standard holds {boot_files.STANDARD_LIMIT:,}, Advanced {boot_files.ADVANCED_LIMIT:,}), {cost}",
        f"the files the boot installs, as base64 of a tar.gz: {files}",
    ]


def _is_sagemaker_config(i: dict) -> bool:
    return i.get("type") == "String" and str(i.get("name", "")).endswith(f"/{SAGEMAKER_CONFIG_LEAF}")


def _sagemaker_config(i: dict) -> list[str]:
    """The SageMaker SDK's defaults file's parameter: its tier, size and where the boot writes it."""
    value = _plain(i.get("value")) or ""
    return [f"String {i.get('name')}, tier {i.get('tier')}, {len(value):,} characters "
            f"(Standard holds {boot_files.STANDARD_LIMIT:,}), free",
            f"the SageMaker SDK's defaults file (YAML), which the boot writes to {sagemaker_config.PATH}"]


def _idle_policy(inputs: dict) -> str:
    """The idle policy the instance's tag gives its agent, and what a poweroff does."""
    minutes = (inputs.get("tags") or {}).get(IDLE_STOP_MINUTES)
    shutdown = inputs.get("instanceInitiatedShutdownBehavior", "stop")
    if minutes is None:
        policy = "no idle policy"
    elif minutes == "0":
        policy = "never stops itself (idleStopMinutes 0)"
    else:
        policy = f"stops itself after {minutes} idle minutes"
    return f"idle: {policy}; a shutdown from inside {shutdown}s it"  # stops, or terminates


def _lustre(i: dict, ids: dict[str, str]) -> list[str]:
    out = [f"{i.get('deploymentType')} {i.get('storageCapacity'):.0f} GiB in subnet {i.get('subnetIds')}, security "
           f"groups {[_name(g, ids) for g in i.get('securityGroupIds', [])]}"
           + (f", {i['perUnitStorageThroughput']:.0f} MB/s per TiB" if i.get("perUnitStorageThroughput") else "")]
    if i.get("importPath"):
        out.append(f"linked to {i['importPath']}: new, changed and deleted objects appear in it "
                   f"({i.get('autoImportPolicy')}); files written on it reach {i.get('exportPath')} only when "
                   "exported (`lfs hsm_archive`; SCRATCH_2 has no automatic export)")
    else:
        out.append("linked to the bucket by the data repository association below")
    out.append("kept on destroy because it may hold files not (yet) in the bucket; delete it yourself with "
               "`aws fsx delete-file-system --file-system-id fs-...` once they are")
    return out


def _instance_network(i: dict, ids: dict[str, str]) -> str:
    primary = i.get("primaryNetworkInterface")
    if primary:
        return f"primary interface {_name(primary.get('networkInterfaceId'), ids)} (its subnet, security groups " \
               "and public address are the interface's)"
    return (f"subnet {i.get('subnetId')}, public IP {i.get('associatePublicIpAddress')}, "
            f"security groups {[_name(g, ids) for g in i.get('vpcSecurityGroupIds', [])]}")


def _capacity(i: dict) -> str:
    spec = i.get("capacityReservationSpecification") or {}
    target = (spec.get("capacityReservationTarget") or {}).get("capacityReservationId")
    if not target:
        return f"capacity reservation: none (preference {spec.get('capacityReservationPreference', 'open')})"
    market = (i.get("instanceMarketOptions") or {}).get("marketType")
    if market == "capacity-block":
        return (f"capacity reservation {target}, a Capacity Block (market type capacity-block): EC2 ends the "
                "instance when the block ends, and the root volume then stays")
    return (f"capacity reservation {target}, as an On-Demand Capacity Reservation (no Capacity Block of that id "
            "was found; offline none is known, `pulumi up` asks EC2)")


def _user_data_size(encoded: str) -> str:
    if AFTER_DEPLOY in encoded:
        return "user data known after deploy"
    compressed = len(base64.b64decode(encoded))
    raw = len(cloud_init.decode(encoded).encode())
    return (f"user data {raw:,} bytes, {compressed:,} gzip-compressed (EC2's limit {cloud_init.USER_DATA_LIMIT:,}, "
            f"this project's goal {cloud_init.SIZE_GOAL:,})")


# The architecture picture's order: network, storage, identity, instance.
_ORDER = ("SecurityGroup", "SecurityGroupIngressRule", "SecurityGroupEgressRule", "FileSystem", "MountTarget",
          "LustreFileSystem", "DataRepositoryAssociation", "BackupPolicy",
          "Role", "RolePolicyAttachment", "RolePolicy", "InstanceProfile", "RandomPassword", "Parameter",
          "NetworkInterface", "Eip", "Instance", "LifecyclePolicy")


def _reading_order(reg: Registration) -> tuple:
    kind = reg.type.split(":")[-1]
    rank = _ORDER.index(kind) if kind in _ORDER else -1
    storage = reg.type.startswith(("aws:efs/", "aws:fsx/")) or "-efs-" in reg.name or "-fsx-" in reg.name
    return (2 if rank >= _ORDER.index("Role") else 1 if storage else 0, rank, reg.name)


def after_destroy(rendering: Rendering) -> list[str]:
    """What `pulumi destroy` leaves in the account, and what it costs per month."""
    prices = f"list prices of {backup.PRICE_REGION}; other regions differ"
    lines = []
    for efs in rendering.of_type("aws:efs/fileSystem:FileSystem"):
        lines.append(f"{efs.name}: the EFS file system stays with your files (retain_on_delete), "
                     f"${backup.EFS_STANDARD_GB_MONTH:.2f} per GB-month stored (EFS Standard, {prices})")
    for policy in rendering.of_type("aws:efs/backupPolicy:BackupPolicy"):
        lines.append(f"{policy.name}: destroy turns the automatic backups off; the recovery points already made "
                     f"stay in AWS Backup up to {backup.EFS_BACKUP_RETENTION_DAYS} days (the default plan), "
                     "billed per GB-month by AWS Backup")
    for fsx in rendering.of_type("aws:fsx/lustreFileSystem:LustreFileSystem"):
        lines.append(f"{fsx.name}: the FSx for Lustre file system stays (retain_on_delete: it may hold files not yet "
                     "in the bucket) and is billed per hour until you delete it "
                     "(`aws fsx delete-file-system --file-system-id fs-...`)")
    given = rendering.outputs.get("EFSFileSystemId")
    if not rendering.of_type("aws:efs/fileSystem:FileSystem") and given:
        lines.append(f"the given EFS file system {given} is yours: the program never touched it")
    counts = [schedule["retainRule"]["count"] for policy in rendering.of_type(
        "aws:dlm/lifecyclePolicy:LifecyclePolicy") for schedule in policy.inputs["policyDetails"]["schedules"]]
    kept = "your `python -m desktop snapshot` snapshots of the root volume"
    if counts:
        kept = f"the last {max(counts):.0f} daily root volume snapshots and {kept}"
    lines.append(f"{kept} stay: deleting the lifecycle policy does not delete its snapshots, and each is a way back "
                 f"(`python -m desktop image-from-snapshot`); ${backup.SNAPSHOT_GB_MONTH:.2f} per GB-month of "
                 f"snapshot data (EBS snapshots, standard tier, {prices}). Snapshots are incremental: the first "
                 "holds the volume's used blocks, each later one only the blocks changed since. Delete one with "
                 "`aws ec2 delete-snapshot --snapshot-id snap-...`")
    return lines


def _name_of_arn(arn: Optional[str]) -> str:
    return str(arn).rsplit("/", 1)[-1] if arn else "?"


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _name(resource_id: Optional[str], ids: dict[str, str]) -> str:
    if resource_id in ids:
        return ids[resource_id]
    return str(resource_id)


def _peer(group_id: Optional[str], ids: dict[str, str], reg: Registration) -> str:
    if group_id == reg.inputs.get("securityGroupId"):
        return "the group itself"
    return f"the group {_name(group_id, ids)}"


# ---------------------------------------------------------------------------
# Files for review or diffing in CI.

def _check_out(directory: Path) -> None:
    """``--out`` names a directory (made when missing) this user may write to."""
    expected = "expected a directory (made when missing) you may write to"
    if directory.exists() and not directory.is_dir():
        raise CommandError(f"--out {str(directory)!r} is an existing file, not a directory; {expected}")
    existing = next((p for p in (directory, *directory.absolute().parents) if p.exists()), None)
    if existing is not None and (not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK)):
        raise CommandError(f"--out {str(directory)!r}: {existing} is not writable; {expected}")


def write_out(rendering: Rendering, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    (instance,) = rendering.of_type("aws:ec2/instance:Instance")
    user_data = cloud_init.decode(instance.inputs["userDataBase64"])
    cloud_config, script = cloud_init.split_parts(user_data)
    for name, text in (("user-data.mime", user_data), ("cloud-config.yaml", cloud_config),
                       ("boot-script.sh", script), ("plan.json", json.dumps(plan_document(rendering), indent=2,
                                                                             default=str) + "\n")):
        path = directory / name
        path.write_text(text)
        written.append(path)
    # The files the boot installs, as the boot files' parameter carries them, and the
    # SageMaker SDK's defaults file as its own parameter does.
    for parameter in rendering.of_type("aws:ssm/parameter:Parameter"):
        if _is_sagemaker_config(parameter.inputs):
            path = directory / "sagemaker-config.yaml"
            path.write_text(_plain(parameter.inputs["value"]))
            written.append(path)
            continue
        if parameter.inputs.get("type") != "String":
            continue
        for name, (mode, text) in boot_files.unpack(_plain(parameter.inputs["value"])).items():
            path = directory / "boot-files" / name
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
            path.chmod(mode)
            written.append(path)
    return written


def plan_document(rendering: Rendering) -> dict:
    return {
        "resources": [
            {
                "type": reg.type, "name": reg.name, "parent": reg.parent,
                "retainOnDelete": reg.retain_on_delete, "deleteBeforeReplace": reg.delete_before_replace,
                "ignoreChanges": reg.ignore_changes,
                "inputs": {k: v for k, v in _shown_inputs(reg).items() if k != "userDataBase64"},
            }
            for reg in rendering.registrations
        ],
        "outputs": shown_outputs(rendering),
        "warnings": rendering.warnings,
    }
