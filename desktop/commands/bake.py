"""``python -m desktop bake``: an AMI of a ready desktop, so the next desktop installs nothing.

EC2 CreateImage with ``NoReboot=False``: EC2 shuts the running desktop down cleanly, takes
the snapshot and starts it again, so every file system in the image is consistent (with
``NoReboot=True`` a file half-written by apt, DCV or the person's own work could be
copied torn). That restart ends whatever runs on the desktop, so ``bake`` asks first, as
``restore`` does (``--yes`` for scripts; without a terminal the answer is no), and names
what the laptop can tell is running: the idle agent's last console line of this boot
(``busy again (dcv 1 connected; gpu 85%)``, ``idle since ...``). Who is connected at this
very minute is not readable from the laptop, and the question says so. ``--no-reboot``
images the running desktop without a restart, and says the file systems may be
inconsistent. A stopped desktop is imaged as it is, without a start or a question. The image and its
snapshots carry the project, the stack, the source instance and AMI, the DCV version (the
boot prints ``deep-learning-desktop: dcv <version>`` on the console at every boot) and
the date. A desktop started from the image recognises itself as a new instance and
resets what belonged to the old one (see ``cloud_init/boot.sh``).
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
import time
from typing import Callable, Optional

from desktop.commands import aws, operate
from desktop.commands.errors import CommandError
from desktop.commands.snapshots import confirm
from desktop.settings import PROJECT

DCV_LINE = re.compile(r"deep-learning-desktop: dcv (?P<version>[^\s]+)\s*$", re.MULTILINE)
# EC2's rule for image names: 3-128 characters of letters, digits and ( ) [ ] . / - ' @ _ and spaces.
IMAGE_NAME = re.compile(r"[A-Za-z0-9()\[\] ./\-'@_]{3,128}")
UNKNOWN = "unknown"

# Injected by tests, so following an image takes no real time.
_monotonic: Callable[[], float] = time.monotonic
_sleep: Callable[[float], None] = time.sleep
_now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.timezone.utc)


def dcv_version(console: str) -> str:
    """The DCV server version the boot last printed on the console, or ``unknown``."""
    found = DCV_LINE.findall(console)
    return found[-1] if found else UNKNOWN


def default_name(stack: str, when: datetime.datetime) -> str:
    """``deep-learning-desktop-<stack>-<UTC date and time>``: unique per second, sorts by date."""
    return f"{PROJECT}-{stack}-{when:%Y%m%d-%H%M%S}"


def image_tags(*, stack: str, instance: dict, dcv: str, when: datetime.datetime, name: str) -> list[dict]:
    """What the image and its snapshots are tagged with."""
    return [
        {"Key": "Name", "Value": name},
        {"Key": "Project", "Value": PROJECT},
        {"Key": "Stack", "Value": stack},
        {"Key": "SourceInstance", "Value": instance["InstanceId"]},
        {"Key": "SourceAmi", "Value": instance.get("ImageId", UNKNOWN)},
        {"Key": "DcvVersion", "Value": dcv},
        {"Key": "BakedAt", "Value": when.strftime("%Y-%m-%dT%H:%M:%SZ")},
    ]


def _ready_or_refuse(target: operate.Desktop, instance: dict, force: bool) -> str:
    """The console text; refuses (CommandError) a desktop whose boot is not ``ready``."""
    state = instance["State"]["Name"]
    if state not in ("running", "stopped"):
        raise CommandError(f"instance {target.instance_id} is {state}: bake a running or stopped desktop")
    console = operate.console_output(target.ec2(), target.instance_id)
    stage = operate.boot_stage(console)
    if stage != operate.READY and not force:
        raise CommandError(
            f"desktop {target.instance_id} is not ready (boot stage: {stage or 'none seen'}): an image of it "
            f"would carry a half-done setup. Wait for it (`{target.hint('wait')}`), or bake it anyway with --force")
    return console


def last_agent_line(console: str) -> Optional[str]:
    """The idle agent's last console line of the current boot (after the kernel's last
    banner), or None: a line from an earlier boot says nothing about now."""
    lines = operate.idle_lines(operate.current_boot(console))
    return lines[-1] if lines else None


def restart_warning(instance_id: str, console: str) -> str:
    """What the restart for the image interrupts, as far as the laptop can tell."""
    said = last_agent_line(console)
    if said is None:
        now = ("unknown: the idle agent has printed nothing on the console since this boot began "
               "(it prints only when the desktop turns idle or busy)")
    else:
        now = (f"the idle agent last said \"{said}\" (it prints only when the desktop turns idle or busy, "
               "so who is connected at this minute is not readable from here)")
    return (f"EC2 restarts desktop {instance_id} for the image (a clean shutdown, the snapshot, a start: "
            "minutes). The restart interrupts everything running on it: connected DCV clients, SSH and "
            "Session Manager sessions drop, GPU jobs and training runs end, unsaved work in open programs "
            f"is lost.\nWhat is running now: {now}.\n"
            "To image it without a restart, pass --no-reboot (the file systems in the image may then be "
            "inconsistent).")


NO_REBOOT_WARNING = ("--no-reboot: the desktop keeps running; files being written while EC2 copies the disk "
                     "(apt, DCV, your own work) may be copied half-written, so the file systems in the image "
                     "may be inconsistent")


def follow(ec2, image_id: str, timeout: float, poll: float, out=None) -> int:
    """Print the image's progress until it is ``available`` (0), ``failed`` or ``timeout`` passes (1)."""
    out = out or sys.stdout
    start = _monotonic()
    shown = None
    while True:
        now = _monotonic() - start
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
        image = images[0] if images else {"State": "pending"}
        state = image["State"]
        line = f"image {image_id} {state}"
        progress = _snapshot_progress(ec2, image)
        if progress and state == "pending":
            line += f", snapshot {progress}"
        if line != shown:
            print(f"[{operate.elapsed(now):>7}] {line}", file=out, flush=True)
            shown = line
        if state == "available":
            return 0
        if state in ("failed", "error", "invalid", "deregistered"):
            reason = image.get("StateReason", {}).get("Message", "no reason given")
            print(f"the image failed: {reason}", file=out)
            return 1
        if now >= timeout:
            print(f"timed out after {operate.elapsed(now)}; the image is still {state}. It goes on in AWS: "
                  f"`aws ec2 describe-images --image-ids {image_id}`", file=out)
            return 1
        _sleep(max(0.0, min(poll, timeout - now)))


def _snapshot_ids(image: dict) -> list[str]:
    return [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", [])
            if m.get("Ebs", {}).get("SnapshotId")]


def _snapshot_progress(ec2, image: dict) -> Optional[str]:
    ids = _snapshot_ids(image)
    if not ids:
        return None
    snapshots = ec2.describe_snapshots(SnapshotIds=ids)["Snapshots"]
    return ", ".join(s.get("Progress") or "0%" for s in snapshots) or None


def run(args: argparse.Namespace) -> int:
    if args.name is not None and not IMAGE_NAME.fullmatch(args.name):
        raise CommandError(f"--name {args.name!r} is not an image name EC2 accepts: 3-128 letters, digits, "
                           "spaces and ( ) [ ] . / - ' @ _")
    target = operate.desktop(args)
    with aws.errors():
        ec2 = target.ec2()
        instance = target.describe()
        console = _ready_or_refuse(target, instance, args.force)
        when = _now()
        name = args.name or default_name(args.stack, when)
        tags = image_tags(stack=args.stack, instance=instance, dcv=dcv_version(console), when=when, name=name)
        running = instance["State"]["Name"] == "running"
        restart = running and not args.no_reboot
        if restart:
            print(restart_warning(target.instance_id, console), flush=True)
            if not args.yes and not confirm(f"Restart desktop {target.instance_id} and bake it? [y/N] "):
                raise CommandError("not baked: no confirmation (answer y on a terminal, or pass --yes in scripts; "
                                   "--no-reboot images it without a restart)")
        elif running:
            print(NO_REBOOT_WARNING, flush=True)
        image_id = ec2.create_image(
            InstanceId=target.instance_id, Name=name, NoReboot=not restart,
            Description=f"{PROJECT} desktop of stack {args.stack}, baked from {target.instance_id}",
            TagSpecifications=[{"ResourceType": "image", "Tags": tags}],
        )["ImageId"]
        print(f"baking {image_id} ({name}) from {target.instance_id}"
              + (": EC2 restarts the desktop once for consistent file systems (DCV sessions drop)" if restart
                 else ""))
        if args.no_wait:
            print(f"follow it with `aws ec2 describe-images --image-ids {image_id}`; tag its snapshots yourself")
            return _next_steps(image_id)
        code = follow(ec2, image_id, args.timeout, args.poll)
        if code == 0:
            image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
            snapshots = _snapshot_ids(image)
            if snapshots:
                # CreateImage could tag them itself; tagging after works the same everywhere.
                ec2.create_tags(Resources=snapshots, Tags=tags)
            _next_steps(image_id)
        return code


def _next_steps(image_id: str) -> int:
    print(f"for the next desktop: `pulumi config set amiId {image_id}` in its stack, then `pulumi up`; "
          "it boots without installs or a reboot")
    return 0


def register(subparsers) -> None:
    """Add ``bake`` to the ``python -m desktop`` parser."""
    parser = subparsers.add_parser(
        "bake", help="make an AMI of a ready desktop, for desktops that install nothing",
        description="Create an AMI of the stack's desktop (EC2 CreateImage; EC2 restarts a running desktop once "
                    "so the file systems are consistent), tagged with the project, the stack, the source AMI, the "
                    "DCV version and the date; follow it until available, and print the `pulumi config set amiId` "
                    "for the next stack. Refuses a desktop whose boot is not `ready` unless --force. Asks before "
                    "restarting a running desktop (--yes to skip; no terminal means no), or --no-reboot. "
                    + aws.SETTINGS_HELP)
    operate._common(parser)
    parser.add_argument("--name", metavar="IMAGE_NAME",
                        help="the image's name (default: deep-learning-desktop-<stack>-<UTC date-time>)")
    parser.add_argument("--force", action="store_true",
                        help="bake even when the console does not say the desktop is ready")
    parser.add_argument("--no-wait", action="store_true", help="return once EC2 has accepted the request")
    parser.add_argument("--yes", action="store_true",
                        help="restart a running desktop for the image without asking (for scripts)")
    parser.add_argument("--no-reboot", action="store_true",
                        help="image a running desktop without restarting it; its file systems in the image "
                             "may be inconsistent (files half-written while EC2 copies them)")
    operate._waiting(parser, "60m")
    parser.set_defaults(run=run)
