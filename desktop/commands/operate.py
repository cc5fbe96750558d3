"""``python -m desktop wait | connect | stop | start``: follow and use the desktop.

The instance comes from ``pulumi stack output --json`` (``DesktopInstanceId``) when
the Pulumi CLI is on PATH, or from ``--instance-id``. The region is chosen as for
``pulumi up`` (see :mod:`desktop.commands.aws`).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import botocore.exceptions

from cloud_init.idle_agent import duration_seconds
from desktop.commands import aws
from desktop.commands.errors import CommandError
from desktop.commands.stack_file import PROJECT_DIR, StackNotFound, read_stack
from desktop.ports import DCV_PORT

USER = "ubuntu"
READY = "ready"
FAILED = "failed"  # the boot script's stage when it gives up: "failed: ..." or "failed during ..."
STAGE_LINE = re.compile(r"deep-learning-desktop: *(?P<stage>[^\r\n]*?)\s*$", re.MULTILINE)
# The kernel's first line on every boot: what precedes the last one is an older boot.
KERNEL_BANNER = re.compile(r"^.*Linux version \S+", re.MULTILINE)
# What the idle agent prints on the console (on changes only), after the boot's stages:
# `idle since <time>`, `busy again (<reason>)`, `stopping after N idle minutes`. They are
# not boot stages: after them the boot's last stage (`ready`) still holds.
IDLE_LINE = re.compile(r"(idle since|busy again|stopping |idle stop (un)?blocked|idle state not saved|spot interruption)")

# Injected by tests, so following a desktop takes no real time.
_monotonic: Callable[[], float] = time.monotonic
_sleep: Callable[[float], None] = time.sleep


# ---------------------------------------------------------------------------
# Durations: the one grammar of the laptop and the desktop (30m, 4h, 1h30m, 1d), which
# lives in the idle agent (it runs on the desktop alone and cannot import from here).

def duration(text: str) -> float:
    """Seconds of a duration such as ``30m``, ``4h``, ``1h30m`` or ``1d``
    (:func:`cloud_init.idle_agent.duration_seconds`); anything else is an argparse error."""
    try:
        return float(duration_seconds(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def poll_interval(text: str) -> float:
    """A ``--poll`` duration: at least 1 second (``0m`` would ask EC2 without a pause)."""
    seconds = duration(text)
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is too short a poll interval; expected at least 1m")
    return seconds


def elapsed(seconds: float) -> str:
    """``12m05s``-style text of a number of seconds."""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


# ---------------------------------------------------------------------------
# Which desktop, in which region.

def _pulumi_outputs(stack: str, project_dir: Path) -> dict:
    """``pulumi stack output --json`` of ``stack``."""
    command = ["pulumi", "stack", "output", "--json", "--stack", stack]
    try:
        done = subprocess.run(command, cwd=project_dir, capture_output=True, text=True, timeout=120,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise CommandError(f"`{shlex.join(command)}` failed: {error}; pass --instance-id instead") from None
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit code {done.returncode}"
        raise CommandError(f"`{shlex.join(command)}` failed: {reason}")
    try:
        outputs = json.loads(done.stdout or "{}")
    except json.JSONDecodeError:
        raise CommandError(f"`{shlex.join(command)}` printed no JSON; pass --instance-id instead") from None
    return outputs if isinstance(outputs, dict) else {}


def instance_id(args: argparse.Namespace) -> str:
    """The desktop's instance id: ``--instance-id``, else the stack's ``DesktopInstanceId``."""
    if args.instance_id:
        return args.instance_id
    if shutil.which("pulumi") is None:
        raise CommandError("which desktop? the Pulumi CLI is not on PATH: pass --instance-id i-... "
                           "(the stack output DesktopInstanceId)")
    outputs = _pulumi_outputs(args.stack, args.project_dir)
    found = outputs.get("DesktopInstanceId")
    if not found:
        raise CommandError(f"stack {args.stack!r} has no output DesktopInstanceId: run `pulumi up` first, "
                           "or pass --instance-id")
    return str(found)


def region_of(args: argparse.Namespace) -> Optional[str]:
    """The stack's ``aws:region`` when its file sets one (a missing file is no error here)."""
    return account_of(args).region


def account_of(args: argparse.Namespace) -> aws.AccountSettings:
    """The stack's account settings (region, profile, assumed roles) when its file exists;
    without a file, boto3's own (``--instance-id`` with AWS_PROFILE, AWS_REGION)."""
    try:
        other = read_stack(args.stack, args.project_dir).other
    except StackNotFound:
        return aws.AccountSettings()
    return aws.AccountSettings.from_stack(other)


class Desktop(NamedTuple):
    """The instance and the AWS session that reaches it."""

    aws: aws.Aws
    instance_id: str

    def ec2(self):
        return self.aws.client("ec2")

    def describe(self) -> dict:
        try:
            reservations = self.ec2().describe_instances(InstanceIds=[self.instance_id])["Reservations"]
        except botocore.exceptions.ClientError as error:
            if aws.code(error).startswith("InvalidInstanceID"):
                raise CommandError(f"instance {self.instance_id} does not exist in {self.aws.region}: check "
                                   "--instance-id, --stack and the region") from None
            raise
        instances = [i for r in reservations for i in r["Instances"]]
        if not instances:
            raise CommandError(f"instance {self.instance_id} does not exist in {self.aws.region}")
        return instances[0]


def desktop(args: argparse.Namespace) -> Desktop:
    """The desktop of ``args`` (``--stack``/``--instance-id``) on the stack's account."""
    settings = account_of(args)
    with aws.errors():
        return Desktop(aws.Aws(settings=settings), instance_id(args))


def running(target: Desktop) -> dict:
    """The instance's description; a :class:`CommandError` unless it is running."""
    with aws.errors():
        instance = target.describe()
    state = instance["State"]["Name"]
    if state != "running":
        raise CommandError(f"instance {target.instance_id} is {state}: start it first "
                           "(`python -m desktop start --wait`)")
    return instance


# ---------------------------------------------------------------------------
# wait

def boot_stage(console: str) -> Optional[str]:
    """The last ``deep-learning-desktop: <stage>`` of the current boot, if any.

    Lines before the kernel's last banner belong to an earlier boot (the setup
    reboot, or the boot before a stop): a ``ready`` there says nothing about now.
    """
    banners = list(KERNEL_BANNER.finditer(console))
    current = console[banners[-1].end():] if banners else console
    stages = _stages(current)
    if stages:
        return stages[-1]
    return "rebooting" if _stages(console) else None


def _stages(console: str) -> list[str]:
    """The boot stages printed on ``console``, the idle agent's lines left out."""
    return [m.group("stage") for m in STAGE_LINE.finditer(console)
            if m.group("stage") and not IDLE_LINE.match(m.group("stage"))]


def idle_lines(console: str) -> list[str]:
    """The idle agent's lines on ``console`` (``idle since ...``, ``busy again ...``,
    ``stopping after ...``), oldest first, across boots."""
    return [m.group("stage") for m in STAGE_LINE.finditer(console) if IDLE_LINE.match(m.group("stage"))]


def console_output(ec2, instance_id: str) -> str:
    """The instance's serial console text (EC2 returns it base64-encoded)."""
    try:
        response = ec2.get_console_output(InstanceId=instance_id, Latest=True)
    except botocore.exceptions.ClientError as error:
        if aws.code(error) not in ("UnsupportedOperation", "InvalidParameterCombination"):
            raise
        response = ec2.get_console_output(InstanceId=instance_id)  # only Nitro has the latest output
    encoded = response.get("Output") or ""
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return encoded  # already text (some emulators decode it for you)


def status_checks(ec2, instance_id: str) -> str:
    """``ok`` when both status checks passed, else their states, e.g. ``initializing``."""
    statuses = ec2.describe_instance_status(InstanceIds=[instance_id], IncludeAllInstances=True)["InstanceStatuses"]
    if not statuses:
        return "not reported yet"
    system = statuses[0].get("SystemStatus", {}).get("Status", "?")
    instance = statuses[0].get("InstanceStatus", {}).get("Status", "?")
    if system == instance == "ok":
        return "ok"
    return instance if system in ("ok", instance) else f"system {system}, instance {instance}"


def follow(target: Desktop, timeout: float, poll: float, out=None, stale_console: Optional[str] = None) -> int:
    """Follow the desktop until it is ready (0), or its boot fails or ``timeout`` seconds pass (1).

    ``stale_console`` is the console text from before a start: until EC2 shows a newer one,
    its lines (the previous boot's ``ready`` among them) say nothing about this boot.
    """
    out = out or sys.stdout
    ec2, iid = target.ec2(), target.instance_id
    start = _monotonic()
    shown = None
    stage = None
    while True:
        now = _monotonic() - start
        state = target.describe()["State"]["Name"]
        if state in ("stopping", "stopped", "shutting-down", "terminated"):
            raise CommandError(f"instance {iid} is {state}: it will not become ready"
                               + (" (start it: `python -m desktop start --wait`)" if state in ("stopping", "stopped")
                                  else ""))
        checks = status_checks(ec2, iid) if state == "running" else None
        if state == "running":
            console = console_output(ec2, iid)
            if stale_console is None or console != stale_console:
                stale_console = None
                stage = boot_stage(console) or stage
        line = f"instance {state}"
        if checks:
            line += f", status checks {'passed' if checks == 'ok' else checks}"
        if stage:
            line += f", boot stage: {stage}"
        if line != shown:
            print(f"[{elapsed(now):>7}] {line}", file=out, flush=True)
            shown = line
        if stage and stage.startswith(FAILED):
            print(f"the boot failed after {elapsed(now)}: {stage}. Details: `ssh {USER}@<host> "
                  "sudo cat /var/log/deep-learning-desktop.log`, or the console: "
                  f"`aws ec2 get-console-output --instance-id {iid} --latest --output text "
                  f"--region {target.aws.region}`", file=out)
            return 1
        if checks == "ok" and stage == READY:
            print(f"desktop {iid} is ready after {elapsed(now)}: `python -m desktop connect`", file=out)
            return 0
        if now >= timeout:
            print(f"timed out after {elapsed(now)}; last stage seen: {stage or 'none'} ({line}). "
                  f"See the console: `aws ec2 get-console-output --instance-id {iid} --latest --output text "
                  f"--region {target.aws.region}`", file=out)
            return 1
        _sleep(max(0.0, min(poll, timeout - now)))


def _wait(args: argparse.Namespace) -> int:
    target = desktop(args)
    with aws.errors():
        return follow(target, args.timeout, args.poll)


# ---------------------------------------------------------------------------
# connect

def dcv_file(host: str, port: int = DCV_PORT, user: str = USER, transport: str = "websocket") -> str:
    """A DCV connection file (``.dcv``) for the native client, as the DCV user guide documents it."""
    return "\n".join([
        "[version]",
        "format=1.0",
        "",
        "[connect]",
        f"host={host}",
        f"port={port}",
        f"user={user}",
        "sessionid=console",  # the automatic console session the boot configures
        f"transport={transport}",
        "proxytype=SYSTEM",
        # The server's certificate is self-signed: let the client ask instead of refusing.
        "certificatevalidationpolicy=ask-user",
        "",
        "[options]",
        "promptreconnect=true",
        "",
    ])


def _connect(args: argparse.Namespace) -> int:
    if args.ssm:
        from desktop.commands import ssm

        return ssm.connect(args)
    target = desktop(args)
    instance = running(target)
    public = instance.get("PublicDnsName") or instance.get("PublicIpAddress")
    host = public if public and not args.private else instance.get("PrivateIpAddress")
    if not host:
        raise CommandError(f"instance {target.instance_id} has no address yet: try again in a minute")
    path = args.output or Path(f"{args.stack}-{target.instance_id}.dcv")
    path.write_text(dcv_file(host, transport=args.transport))
    key = instance.get("KeyName")
    print(f"DCV address:     https://{host}:{DCV_PORT}  (a browser, or the DCV client)")
    print(f"DCV connection:  {path}  (open it with the DCV client: `dcvviewer {path}`)")
    # The stack generates the password and the boot sets it: no SSH and no `passwd` needed.
    print(f"DCV login:       {USER}, password: `pulumi stack output DcvPassword --show-secrets "
          f"--stack {args.stack}`")
    if key:
        print(f"SSH:             ssh -i ~/.ssh/{key}.pem {USER}@{host}")
    print(f"Shell:           python -m desktop shell --stack {args.stack}  (Session Manager, no open port)")
    if not public:
        print("The desktop has no public address: connect over your VPN or Direct Connect, or through "
              f"Session Manager: `python -m desktop connect --ssm --stack {args.stack}`.")
    else:
        print(f"Port 8443 not open to you? `python -m desktop connect --ssm --stack {args.stack}` "
              "reaches DCV through Session Manager.")
    return 0


# ---------------------------------------------------------------------------
# stop and start

def _wait_for_state(target: Desktop, wanted: str, timeout: float, poll: float) -> int:
    start = _monotonic()
    while True:
        state = target.describe()["State"]["Name"]
        if state == wanted:
            print(f"instance {target.instance_id} is {wanted} after {elapsed(_monotonic() - start)}")
            return 0
        if _monotonic() - start >= timeout:
            print(f"timed out after {elapsed(_monotonic() - start)}; the instance is {state}")
            return 1
        _sleep(poll)


def _stop(args: argparse.Namespace) -> int:
    target = desktop(args)
    with aws.errors():
        state = target.describe()["State"]["Name"]
        if state in ("stopped", "stopping"):
            print(f"instance {target.instance_id} is already {state}")
        else:
            target.ec2().stop_instances(InstanceIds=[target.instance_id])
            print(f"stopping {target.instance_id}: the root volume and EFS keep your files; "
                  "the public IP changes on the next start")
        if args.wait:
            return _wait_for_state(target, "stopped", args.timeout, args.poll)
    return 0


def _console_or_none(target: Desktop) -> Optional[str]:
    """The console text now, or None when EC2 gives none (it is only a hint)."""
    try:
        return console_output(target.ec2(), target.instance_id)
    except botocore.exceptions.ClientError:
        return None


def _start(args: argparse.Namespace) -> int:
    target = desktop(args)
    with aws.errors():
        state = target.describe()["State"]["Name"]
        before = None
        if state in ("running", "pending"):
            print(f"instance {target.instance_id} is already {state}")
        else:
            before = _console_or_none(target)
            target.ec2().start_instances(InstanceIds=[target.instance_id])
            print(f"starting {target.instance_id}: EFS is mounted again at boot")
        if args.wait:
            return follow(target, args.timeout, args.poll, stale_console=before)
    print("follow it with `python -m desktop wait`, then `python -m desktop connect` (the address changed)")
    return 0


# ---------------------------------------------------------------------------
# The parsers.

def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port; expected 1-65535")
    return int(text)


def common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--stack``, ``--instance-id`` and ``--project-dir``: which desktop a command acts on."""
    parser.add_argument("--stack", default="dev", metavar="NAME",
                        help="Pulumi stack of the desktop: its outputs name the instance, its "
                             "Pulumi.<NAME>.yaml the region (default: dev)")
    parser.add_argument("--instance-id", metavar="ID",
                        help="the desktop's instance id (the stack output DesktopInstanceId); "
                             "needed when the Pulumi CLI is not on PATH")
    parser.add_argument("--project-dir", type=Path, default=PROJECT_DIR, metavar="DIR",
                        help="directory of Pulumi.yaml and the stack files (default: this project)")


_common = common_arguments


def _waiting(parser: argparse.ArgumentParser, timeout: str) -> None:
    parser.add_argument("--timeout", type=duration, default=duration(timeout), metavar="DURATION",
                        help=f"give up after this long, with exit code 1 (default: {timeout}; e.g. 45m, 1h)")
    # The default is 15 seconds; a person chooses whole minutes (the one duration grammar).
    parser.add_argument("--poll", type=poll_interval, default=15.0, metavar="DURATION",
                        help="time between two looks at the instance (default: 15 seconds; e.g. 1m)")


def register(subparsers) -> None:
    """Add ``wait``, ``connect``, ``stop`` and ``start`` to the ``python -m desktop`` parser."""
    common = aws.SETTINGS_HELP

    wait = subparsers.add_parser(
        "wait", help="follow the desktop until DCV is ready",
        description="Follow the desktop after `pulumi up` or a start: instance running, status checks "
                    "passed, then the boot stages it prints on the serial console (`deep-learning-desktop: "
                    "<stage>`) until `ready`. Prints each change with the elapsed time. Exit 0 when ready, "
                    "1 when the boot reports a failure or on timeout (with the last stage seen). " + common)
    _common(wait)
    _waiting(wait, "30m")
    wait.set_defaults(run=_wait)

    connect = subparsers.add_parser(
        "connect", help="print the DCV address, write a .dcv file; --ssm: reach DCV through Session Manager",
        description="Print the DCV address https://<host>:8443, write a .dcv connection file for the "
                    "native DCV client, and say where the DCV password is (the stack output DcvPassword; "
                    "log in as ubuntu) and how to open a shell. The address is read from EC2, so it is "
                    "right after a stop and start. With --ssm, forward DCV's port through AWS Systems "
                    "Manager Session Manager to https://localhost:<port> instead (no open port needed; "
                    "needs the session-manager-plugin) and keep it open until Ctrl-C. " + common)
    _common(connect)
    connect.add_argument("--output", type=Path, metavar="FILE",
                         help="where to write the .dcv file (default: ./<stack>-<instance id>.dcv)")
    connect.add_argument("--private", action="store_true",
                         help="use the private IP (VPN or Direct Connect) even when there is a public one")
    connect.add_argument("--transport", choices=("websocket", "quic"), default="websocket",
                         help="DCV data transport in the .dcv file: websocket (TCP, default) or quic (UDP 8443); "
                              "--ssm always uses websocket")
    connect.add_argument("--ssm", action="store_true",
                         help="forward DCV through Session Manager to a local port, until Ctrl-C")
    connect.add_argument("--local-port", type=_port, metavar="PORT",
                         help="with --ssm: the local port (default: a free one)")
    connect.set_defaults(run=_connect)

    stop = subparsers.add_parser(
        "stop", help="stop the desktop (files on the root volume and EFS stay)",
        description="Stop the desktop's instance; compute billing stops, the root volume and EFS stay. "
                    "With --wait, return once it is stopped. " + common)
    _common(stop)
    stop.add_argument("--wait", action="store_true", help="return once the instance is stopped")
    _waiting(stop, "15m")
    stop.set_defaults(run=_stop)

    start = subparsers.add_parser(
        "start", help="start the desktop again (EFS comes back by itself)",
        description="Start the desktop's instance; the boot mounts EFS again. With --wait, follow it "
                    "as `wait` does until DCV is ready. The public IP changes: run `connect` again. " + common)
    _common(start)
    start.add_argument("--wait", action="store_true", help="follow the boot until DCV is ready")
    _waiting(start, "30m")
    start.set_defaults(run=_start)
