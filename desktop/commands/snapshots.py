"""``python -m desktop snapshot | snapshots | restore | image-from-snapshot``: copies of the
root volume, and the ways back.

Every snapshot of a desktop carries the root volume's :data:`~desktop.backup.VOLUME_TAG`
(the daily ones copy it from the volume, the manual ones here copy it too), so the
desktop's snapshots are found by that tag, and a snapshot without this desktop's value is
never restored onto it.

- ``snapshot``: a snapshot of the root volume now, followed until it completes.
- ``snapshots``: the desktop's snapshots, daily and manual, newest first.
- ``restore``: the root volume back to one of them, in place (EC2's replace-root-volume
  task: the instance keeps its id, addresses and Pulumi state), after a confirmation.
  A snapshot of the current volume is taken first, so a restore can itself be undone.
- ``image-from-snapshot``: an AMI from a kept snapshot, for a new stack's ``amiId``
  (the way back after ``pulumi destroy``).
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
from pathlib import Path
from typing import Optional

import botocore.exceptions

from desktop.backup import ARCHITECTURE_TAG, DAILY, KIND_TAG, NOTE_TAG, VOLUME_TAG
from desktop.commands import aws, operate
from desktop.commands.errors import CommandError
from desktop.commands.stack_file import PROJECT_DIR
from desktop.commands.target import region_of

MANUAL = "manual"
BEFORE_RESTORE = "before-restore"
BOOT_MODE_TAG = "DesktopBootMode"
ROOT_DEVICE_TAG = "DesktopRootDevice"
DEFAULT_ROOT_DEVICE = "/dev/sda1"  # the Ubuntu Deep Learning AMIs' root device
NOTE_MAX = 256  # a tag value's limit
TASK_DONE = ("succeeded", "failed", "failed-detached")


# ---------------------------------------------------------------------------
# The desktop's root volume and its tag.

def _tags(resource: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def _own_tags(resource: dict) -> dict[str, str]:
    """Tags a person or a program may copy: not AWS's own ``aws:`` ones."""
    return {k: v for k, v in _tags(resource).items() if not k.startswith("aws:")}


class RootVolume:
    """The desktop's instance, its root volume and the volume's desktop tag."""

    def __init__(self, target: operate.Desktop):
        self.target = target
        self.instance = target.describe()
        root = self.instance.get("RootDeviceName")
        ids = [m["Ebs"]["VolumeId"] for m in self.instance.get("BlockDeviceMappings", [])
               if m.get("DeviceName") == root and m.get("Ebs")]
        if not ids:
            raise CommandError(f"instance {target.instance_id} has no EBS root volume attached")
        self.volume = target.ec2().describe_volumes(VolumeIds=ids[:1])["Volumes"][0]
        self.tags = _own_tags(self.volume)
        self.desktop = self.tags.get(VOLUME_TAG)
        if not self.desktop:
            raise CommandError(
                f"the root volume {self.volume['VolumeId']} of {target.instance_id} has no {VOLUME_TAG} tag: "
                "run `pulumi up` once with this version of the program (it tags the volume in place, "
                "without a restart)")

    @property
    def volume_id(self) -> str:
        return self.volume["VolumeId"]

    def snapshot_tags(self, kind: str, note: str) -> dict[str, str]:
        """The volume's tags (as the daily snapshots copy them) plus what this snapshot is."""
        tags = {**self.tags, KIND_TAG: kind}
        if self.instance.get("Architecture"):
            tags[ARCHITECTURE_TAG] = self.instance["Architecture"]
        boot_mode = self.instance.get("CurrentInstanceBootMode") or self.instance.get("BootMode")
        if boot_mode:
            tags[BOOT_MODE_TAG] = boot_mode
        tags[ROOT_DEVICE_TAG] = self.instance.get("RootDeviceName") or DEFAULT_ROOT_DEVICE
        if note:
            tags[NOTE_TAG] = note
        else:
            tags.pop(NOTE_TAG, None)
        return tags


def _tag_list(tags: dict[str, str]) -> list[dict]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _note(text: Optional[str]) -> str:
    note = " ".join((text or "").split())
    if len(note) > NOTE_MAX:
        raise CommandError(f"--note is {len(note)} characters long; a tag holds at most {NOTE_MAX}")
    return note


# ---------------------------------------------------------------------------
# snapshot

def take_snapshot(root: RootVolume, kind: str, note: str, timeout: float, poll: float, out) -> tuple[str, int]:
    """Snapshot the root volume, tagged like the daily ones; follow it. Returns (id, exit code)."""
    ec2 = root.target.ec2()
    description = f"deep-learning-desktop {root.desktop}: {kind}" + (f": {note}" if note else "")
    snapshot = ec2.create_snapshot(
        VolumeId=root.volume_id,
        Description=description[:255],
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": _tag_list(root.snapshot_tags(kind, note))}],
    )
    snapshot_id = snapshot["SnapshotId"]
    print(f"snapshot {snapshot_id} of {root.volume_id} ({root.volume.get('Size', '?')} GiB) started", file=out,
          flush=True)
    return snapshot_id, follow_snapshot(ec2, snapshot_id, timeout, poll, out)


def follow_snapshot(ec2, snapshot_id: str, timeout: float, poll: float, out) -> int:
    """Print the snapshot's progress until it completes (0), fails or times out (1)."""
    start = operate._monotonic()
    shown = None
    while True:
        now = operate._monotonic() - start
        snapshot = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
        state, progress = snapshot.get("State"), snapshot.get("Progress") or "0%"
        line = f"{state} {progress}"
        if line != shown:
            print(f"[{operate.elapsed(now):>7}] snapshot {snapshot_id}: {line}", file=out, flush=True)
            shown = line
        if state == "completed":
            print(f"snapshot {snapshot_id} completed after {operate.elapsed(now)}", file=out)
            return 0
        if state in ("error", "recoverable"):
            print(f"snapshot {snapshot_id} failed: {snapshot.get('StateMessage', state)}", file=out)
            return 1
        if now >= timeout:
            print(f"timed out after {operate.elapsed(now)}; snapshot {snapshot_id} is {line} and goes on by "
                  "itself: `python -m desktop snapshots` shows it", file=out)
            return 1
        operate._sleep(max(0.0, min(poll, timeout - now)))


def _snapshot(args: argparse.Namespace) -> int:
    target = operate.desktop(args)
    note = _note(args.note)
    with aws.errors():
        root = RootVolume(target)
        _, code = take_snapshot(root, MANUAL, note, args.timeout, args.poll, sys.stdout)
    return code


# ---------------------------------------------------------------------------
# snapshots

def desktop_snapshots(ec2, desktop: str) -> list[dict]:
    """Every snapshot of the account carrying the desktop's tag, newest first."""
    found = []
    for page in ec2.get_paginator("describe_snapshots").paginate(
            OwnerIds=["self"], Filters=[{"Name": f"tag:{VOLUME_TAG}", "Values": [desktop]}]):
        found += page["Snapshots"]
    return sorted(found, key=lambda s: s["StartTime"], reverse=True)


def _when(snapshot: dict) -> str:
    start = snapshot["StartTime"]
    if isinstance(start, datetime.datetime):
        start = start.astimezone(datetime.timezone.utc)
        return start.strftime("%Y-%m-%d %H:%M UTC")
    return str(start)


def _size(snapshot: dict) -> str:
    full = snapshot.get("FullSnapshotSizeInBytes")
    if full:
        return f"{full / 2**30:.1f} GiB data"
    return f"{snapshot.get('VolumeSize', '?')} GiB volume"


def _kind(snapshot: dict) -> str:
    tags = _tags(snapshot)
    if tags.get(KIND_TAG):
        return tags[KIND_TAG]
    return DAILY if "aws:dlm:lifecycle-policy-id" in tags else MANUAL


def _snapshots(args: argparse.Namespace) -> int:
    target = operate.desktop(args)
    with aws.errors():
        root = RootVolume(target)
        found = desktop_snapshots(target.ec2(), root.desktop)
    if not found:
        print(f"no snapshots of desktop {root.desktop} yet: the daily one runs at snapshotTime (UTC), "
              f"or take one now with `{target.hint('snapshot')}`")
        return 0
    print(f"snapshots of desktop {root.desktop} ({target.instance_id}, root volume {root.volume_id}), newest first:")
    rows = [(s["SnapshotId"], _when(s), _size(s), _kind(s),
             s.get("State", "?") + ("" if s.get("State") == "completed" else f" {s.get('Progress', '')}"),
             _tags(s).get(NOTE_TAG, "")) for s in found]
    header = ("SNAPSHOT", "DATE", "SIZE", "KIND", "STATE", "NOTE")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    for row in [header, *rows]:
        print("  " + "  ".join(str(v).ljust(w) for v, w in zip(row, widths)) + "  " + row[5])
    print(f"{len(found)} snapshot{'' if len(found) == 1 else 's'}. Restore one in place: `{target.hint('restore', '--snapshot', 'snap-...')}`")
    return 0


# ---------------------------------------------------------------------------
# restore

def describe_snapshot(ec2, snapshot_id: str, region: str) -> dict:
    try:
        return ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
    except botocore.exceptions.ClientError as error:
        if aws.code(error).startswith("InvalidSnapshot"):
            raise CommandError(f"snapshot {snapshot_id} does not exist in {region} (or is not yours): "
                               "`python -m desktop snapshots` lists this desktop's") from None
        raise


def replace_root_client(target: operate.Desktop):
    """The EC2 client that runs the replace-root-volume task (the tests stub this one:
    moto does not implement CreateReplaceRootVolumeTask)."""
    return target.ec2()


def confirm(question: str) -> bool:
    """Ask on the terminal; without one (a script, CI) the answer is no."""
    if not sys.stdin or not sys.stdin.isatty():
        return False
    try:
        answer = input(question)
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def restore(target: operate.Desktop, snapshot_id: str, yes: bool, timeout: float, poll: float, out) -> int:
    ec2 = target.ec2()
    root = RootVolume(target)
    snapshot = describe_snapshot(ec2, snapshot_id, target.aws.region)
    theirs = _tags(snapshot).get(VOLUME_TAG)
    if theirs != root.desktop:
        whose = f"desktop {theirs}" if theirs else f"no desktop (it has no {VOLUME_TAG} tag)"
        raise CommandError(f"snapshot {snapshot_id} belongs to {whose}, not to this desktop ({root.desktop}): "
                           f"refusing to put it on this desktop's root volume. `{target.hint('snapshots')}` "
                           "lists this desktop's own")
    if snapshot.get("State") != "completed":
        raise CommandError(f"snapshot {snapshot_id} is {snapshot.get('State')} "
                           f"({snapshot.get('Progress', '?')}): wait until it is completed")
    state = root.instance["State"]["Name"]
    if state != "running":
        raise CommandError(f"instance {target.instance_id} is {state}: EC2 replaces the root volume of a "
                           f"running instance only; start it first (`{target.hint('start', '--wait')}`)")
    note = _tags(snapshot).get(NOTE_TAG)
    print(f"Restore desktop {root.desktop} ({target.instance_id}) to snapshot {snapshot_id} of {_when(snapshot)}"
          f"{f' ({note})' if note else ''}.\n"
          f"What will be lost: every change made on the root volume {root.volume_id} after {_when(snapshot)} "
          "(your home directory outside EFS, installed packages, settings), and unsaved work in open programs: "
          "the desktop restarts.\n"
          "What stays: EFS and your S3 bucket; the instance's id and addresses.\n"
          "Before the replacement, a snapshot of the current root volume is taken "
          f"(kind {BEFORE_RESTORE}), so the changes since then can be had back.", file=out, flush=True)
    if not yes and not confirm(f"Replace the root volume with {snapshot_id}? [y/N] "):
        raise CommandError("not restored: no confirmation (answer y on a terminal, or pass --yes in scripts)")
    safety, code = take_snapshot(root, BEFORE_RESTORE, f"before restore to {snapshot_id}", timeout, poll, out)
    if code != 0:
        print(f"not restored: the snapshot of the current volume ({safety}) did not complete", file=out)
        return code
    tasks = replace_root_client(target)
    task = tasks.create_replace_root_volume_task(
        InstanceId=target.instance_id,
        SnapshotId=snapshot_id,
        # The old volume's data is in the snapshot just taken; a detached volume would
        # keep costing and keep the desktop's tag.
        DeleteReplacedRootVolume=True,
        TagSpecifications=[{"ResourceType": "replace-root-volume-task",
                            "Tags": [{"Key": VOLUME_TAG, "Value": root.desktop}]}],
    )["ReplaceRootVolumeTask"]
    task_id = task["ReplaceRootVolumeTaskId"]
    print(f"replace-root-volume task {task_id} started", file=out, flush=True)
    code = _follow_task(tasks, task_id, timeout, poll, out)
    if code == 0:
        _retag_new_root(target, root, out)
        print(f"desktop {target.instance_id} is restored to {snapshot_id}; the previous state is snapshot {safety}. "
              f"Follow the boot with `{target.hint('wait')}`", file=out)
    return code


def _follow_task(tasks, task_id: str, timeout: float, poll: float, out) -> int:
    start = operate._monotonic()
    shown = None
    while True:
        now = operate._monotonic() - start
        task = tasks.describe_replace_root_volume_tasks(ReplaceRootVolumeTaskIds=[task_id])["ReplaceRootVolumeTasks"][0]
        state = task["TaskState"]
        if state != shown:
            print(f"[{operate.elapsed(now):>7}] task {task_id}: {state}", file=out, flush=True)
            shown = state
        if state == "succeeded":
            return 0
        if state in TASK_DONE:
            print(f"the replacement {state}: the original root volume is "
                  f"{'still attached' if state == 'failed' else 'detached'}; see `aws ec2 "
                  f"describe-replace-root-volume-tasks --replace-root-volume-task-ids {task_id}`", file=out)
            return 1
        if now >= timeout:
            print(f"timed out after {operate.elapsed(now)}; task {task_id} is {state} and goes on by itself",
                  file=out)
            return 1
        operate._sleep(max(0.0, min(poll, timeout - now)))


def _retag_new_root(target: operate.Desktop, old: RootVolume, out) -> None:
    """The replacement volume must carry the desktop's tag, or the daily snapshots stop.
    (`pulumi up` would put it back too: the provider reads the volume's tags.)"""
    instance = target.describe()
    root = instance.get("RootDeviceName")
    ids = [m["Ebs"]["VolumeId"] for m in instance.get("BlockDeviceMappings", [])
           if m.get("DeviceName") == root and m.get("Ebs")]
    if not ids:
        return
    volume = target.ec2().describe_volumes(VolumeIds=ids[:1])["Volumes"][0]
    missing = {k: v for k, v in old.tags.items() if _own_tags(volume).get(k) != v}
    if missing:
        target.ec2().create_tags(Resources=[volume["VolumeId"]], Tags=_tag_list(missing))
        print(f"tagged the new root volume {volume['VolumeId']} like the old one ({', '.join(missing)})", file=out)


def _restore(args: argparse.Namespace) -> int:
    target = operate.desktop(args)
    with aws.errors():
        return restore(target, args.snapshot, args.yes, args.timeout, args.poll, sys.stdout)


# ---------------------------------------------------------------------------
# image-from-snapshot

ARCHITECTURES = ("x86_64", "arm64")
BOOT_MODES = ("legacy-bios", "uefi", "uefi-preferred")


def _source_instance(ec2, snapshot: dict) -> Optional[dict]:
    """The instance the snapshot's volume is attached to, while both still exist."""
    try:
        volumes = ec2.describe_volumes(VolumeIds=[snapshot["VolumeId"]])["Volumes"]
    except botocore.exceptions.ClientError as error:
        if aws.code(error).startswith("InvalidVolume"):
            return None
        raise
    attached = [a["InstanceId"] for v in volumes for a in v.get("Attachments", []) if a.get("InstanceId")]
    if not attached:
        return None
    reservations = ec2.describe_instances(InstanceIds=attached[:1])["Reservations"]
    return reservations[0]["Instances"][0] if reservations else None


def image_from_snapshot(session: aws.Aws, snapshot_id: str, architecture: Optional[str],
                        boot_mode: Optional[str], name: Optional[str], out) -> str:
    """Register an AMI whose root volume is ``snapshot_id``; returns the AMI id."""
    ec2 = session.client("ec2")
    snapshot = describe_snapshot(ec2, snapshot_id, session.region)
    tags = _tags(snapshot)
    desktop = tags.get(VOLUME_TAG)
    if not desktop:
        raise CommandError(f"snapshot {snapshot_id} is not a deep learning desktop's (it has no {VOLUME_TAG} tag): "
                           "`python -m desktop snapshots --stack NAME` lists a desktop's")
    if snapshot.get("State") != "completed":
        raise CommandError(f"snapshot {snapshot_id} is {snapshot.get('State')}: wait until it is completed")
    source = None
    if not architecture and not tags.get(ARCHITECTURE_TAG) or not boot_mode and not tags.get(BOOT_MODE_TAG):
        source = _source_instance(ec2, snapshot)
    architecture = architecture or tags.get(ARCHITECTURE_TAG) or (source or {}).get("Architecture")
    if architecture not in ARCHITECTURES:
        raise CommandError(f"the architecture of snapshot {snapshot_id}'s desktop is not recorded: pass "
                           "--architecture x86_64 (g4dn, g5, p4d, ...) or --architecture arm64 (g5g, ...)")
    boot_mode = (boot_mode or tags.get(BOOT_MODE_TAG)
                 or (source or {}).get("CurrentInstanceBootMode") or (source or {}).get("BootMode"))
    if not boot_mode and architecture == "arm64":
        boot_mode = "uefi"  # Graviton boots UEFI only
    root_device = tags.get(ROOT_DEVICE_TAG) or DEFAULT_ROOT_DEVICE
    when = snapshot["StartTime"].strftime("%Y%m%d-%H%M") if isinstance(snapshot["StartTime"], datetime.datetime) \
        else "snapshot"
    image_name = name or re.sub(r"[^A-Za-z0-9()\[\] ./'@_-]", "-", f"{desktop}-{snapshot_id}-{when}")[:128]
    request = dict(
        Name=image_name,
        Description=f"deep-learning-desktop {desktop}: root volume from {snapshot_id}"[:255],
        Architecture=architecture,
        RootDeviceName=root_device,
        VirtualizationType="hvm",
        EnaSupport=True,  # every GPU type the desktop runs on is a Nitro type with ENA
        BlockDeviceMappings=[{"DeviceName": root_device, "Ebs": {
            "SnapshotId": snapshot_id, "DeleteOnTermination": True, "VolumeType": "gp3"}}],
        TagSpecifications=[{"ResourceType": "image", "Tags": _tag_list({
            VOLUME_TAG: desktop, "DesktopSourceSnapshot": snapshot_id})}],
    )
    if boot_mode:
        request["BootMode"] = boot_mode
    image_id = ec2.register_image(**request)["ImageId"]
    size = snapshot.get("VolumeSize")
    print(f"AMI {image_id} ({image_name}), {architecture}{f', boot mode {boot_mode}' if boot_mode else ''}, "
          f"root volume from {snapshot_id} ({size} GiB)", file=out)
    print("Give it to a new stack (its instance type must be " + ("Graviton, e.g. g5g.xlarge" if architecture == "arm64"
                                                                 else "x86_64, e.g. g4dn.xlarge") + "):", file=out)
    print(f"  pulumi config set amiId {image_id}", file=out)
    if size and size > 200:
        print(f"  pulumi config set ebsVolumeSize {size}    # at least the snapshot's {size} GiB", file=out)
    print("The new desktop boots with that root volume's files; EFS comes back with "
          "`pulumi config set efsFileSystemId fs-...`.", file=out)
    return image_id


def _image(args: argparse.Namespace) -> int:
    with aws.errors():
        session = aws.Aws(region_of(args))
        image_from_snapshot(session, args.snapshot, args.architecture, args.boot_mode, args.name, sys.stdout)
    return 0


# ---------------------------------------------------------------------------
# The parsers.

def _snapshot_id(text: str) -> str:
    if not re.fullmatch(r"snap-(?:[0-9a-f]{8}|[0-9a-f]{17})", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a snapshot id; expected snap- and 8 or 17 hex digits")
    return text


def register(subparsers) -> None:
    """Add ``snapshot``, ``snapshots``, ``restore`` and ``image-from-snapshot``."""
    common = aws.SETTINGS_HELP

    snapshot = subparsers.add_parser(
        "snapshot", help="snapshot the desktop's root volume now",
        description="Snapshot the desktop's root volume now, tagged like the daily snapshots (so `snapshots` "
                    "lists it and `restore` takes it) plus your note; shows the progress until it completes. "
                    "Exit 1 when it fails or --timeout passes (it then goes on by itself). " + common)
    operate._common(snapshot)
    snapshot.add_argument("--note", metavar="TEXT", help="a note kept on the snapshot, e.g. 'before upgrading CUDA'")
    operate._waiting(snapshot, "2h")
    snapshot.set_defaults(run=_snapshot)

    listing = subparsers.add_parser(
        "snapshots", help="list the desktop's snapshots, newest first",
        description="List the desktop's root volume snapshots, daily and manual, newest first, with date, "
                    "size, kind and note. " + common)
    operate._common(listing)
    listing.set_defaults(run=_snapshots)

    restore_parser = subparsers.add_parser(
        "restore", help="put the desktop's root volume back to one of its snapshots, in place",
        description="Replace the desktop's root volume with one made from SNAPSHOT (EC2's replace-root-volume "
                    "task): the instance keeps its id, addresses and Pulumi state. Says what will be lost and "
                    "asks first (--yes for scripts; without a terminal and without --yes it refuses). A "
                    "snapshot of the current volume is taken before. The instance must be running. Only this "
                    "desktop's own snapshots are accepted. " + common)
    operate._common(restore_parser)
    restore_parser.add_argument("--snapshot", required=True, type=_snapshot_id, metavar="SNAPSHOT",
                                help="snap-... from `python -m desktop snapshots`")
    restore_parser.add_argument("--yes", action="store_true", help="do not ask (for scripts)")
    operate._waiting(restore_parser, "2h")
    restore_parser.set_defaults(run=_restore)

    image = subparsers.add_parser(
        "image-from-snapshot", help="register an AMI from a kept snapshot, for a new stack's amiId",
        description="Register an AMI whose root volume is SNAPSHOT (a desktop's snapshot, kept after `pulumi "
                    "destroy`), with ENA, the architecture and boot mode of the desktop it came from; prints "
                    "the `pulumi config set amiId ...` for a new stack. --stack only chooses the region here. "
                    + common)
    image.add_argument("--snapshot", required=True, type=_snapshot_id, metavar="SNAPSHOT", help="snap-...")
    image.add_argument("--stack", default="dev", metavar="NAME",
                       help="a stack whose Pulumi.<NAME>.yaml names the region (default: dev; a missing file is "
                            "no error)")
    image.add_argument("--project-dir", type=Path, default=PROJECT_DIR, metavar="DIR",
                       help="directory of the stack files (default: this project)")
    image.add_argument("--architecture", choices=ARCHITECTURES,
                       help="when the snapshot does not record it (daily snapshots of a desktop with amiId set)")
    image.add_argument("--boot-mode", choices=BOOT_MODES, help="override the recorded boot mode")
    image.add_argument("--name", metavar="AMI_NAME", help="the AMI's name (default: <desktop>-<snapshot>-<date>)")
    image.set_defaults(run=_image)
