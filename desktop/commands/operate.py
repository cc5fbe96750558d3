"""``python -m desktop wait | connect | stop | start``: follow and use the desktop.

Which desktop (``--stack``, ``--instance-id``, ``--project-dir``) is
:mod:`desktop.commands.target`'s; the names below are kept here for the commands that
use them through this module.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import botocore.exceptions

from cloud_init.idle_agent import duration_seconds
from desktop.commands import aws, console_text, ssm
from desktop.commands.dcv_file import dcv_file
from desktop.commands.errors import CommandError
from desktop.commands.stack_file import stack_name
from desktop.commands.target import USER, Desktop, common_arguments, desktop, running
from desktop.ports import DCV_PORT

READY = "ready"
FAILED = "failed"  # the boot script's stage when it gives up: "failed: ..." or "failed during ..."
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
        raise argparse.ArgumentTypeError(f"{text!r} is too short a poll interval; expected at least 1s")
    return seconds


def elapsed(seconds: float) -> str:
    """``12m05s``-style text of a number of seconds."""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


# ---------------------------------------------------------------------------
# wait

def boot_stage(console: str) -> Optional[str]:
    """The last ``deep-learning-desktop: <stage>`` of the current boot, if any.

    Lines before the kernel's last banner belong to an earlier boot (the setup
    reboot, or the boot before a stop): a ``ready`` there says nothing about now.
    """
    stages = _stages(current_boot(console))
    if stages:
        return stages[-1]
    return "rebooting" if _stages(console) else None


def current_boot(console: str) -> str:
    """The part of ``console`` after the kernel's last banner: what this boot printed."""
    banners = list(KERNEL_BANNER.finditer(console))
    return console[banners[-1].end():] if banners else console


def _stages(console: str) -> list[str]:
    """The boot stages printed on ``console``, the idle agent's lines left out."""
    return [stage for stage in console_text.stages(console) if not IDLE_LINE.match(stage)]


def idle_lines(console: str) -> list[str]:
    """The idle agent's lines on ``console`` (``idle since ...``, ``busy again ...``,
    ``stopping after ...``), oldest first, across boots."""
    return [stage for stage in console_text.stages(console) if IDLE_LINE.match(stage)]


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
                               + (f" (start it: `{target.hint('start', '--wait')}`)"
                                  if state in ("stopping", "stopped") else ""))
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
            print(f"the boot failed after {elapsed(now)}: {stage}. Details: {_where_the_log_is(target)}, "
                  f"or the console: `{_console_command(target)}`", file=out)
            return 1
        if checks == "ok" and stage == READY:
            print(f"desktop {iid} is ready after {elapsed(now)}: `{target.hint('connect')}`", file=out)
            return 0
        if now >= timeout:
            print(f"timed out after {elapsed(now)}; last stage seen: {stage or 'none'} ({line}). See the console: "
                  f"`{_console_command(target)}`", file=out)
            return 1
        _sleep(max(0.0, min(poll, timeout - now)))


LOG = "/var/log/deep-learning-desktop.log"


def _console_command(target: Desktop) -> str:
    """The AWS CLI command that prints the desktop's console (with the stack's profile)."""
    profile = target.aws.settings.profile
    return shlex.join(["aws", "ec2", "get-console-output", "--instance-id", target.instance_id, "--latest",
                       "--output", "text", "--region", target.aws.region, *(["--profile", profile] if profile else [])])


def _where_the_log_is(target: Desktop) -> str:
    """How to read the boot's log: ssh when the desktop has a key pair and a port 22 open to
    some address (its security groups), else a Session Manager shell."""
    shell = f"`{target.hint('shell')}` then `sudo cat {LOG}`"
    try:
        instance = target.describe()
        host = instance.get("PublicDnsName") or instance.get("PublicIpAddress") or instance.get("PrivateIpAddress")
        key = instance.get("KeyName")
        groups = [group["GroupId"] for group in instance.get("SecurityGroups", [])]
        rules = [rule for group in target.ec2().describe_security_groups(GroupIds=groups)["SecurityGroups"]
                 for rule in group.get("IpPermissions", [])] if groups and key and host else []
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
        return shell  # only a hint: the way that needs no open port
    ssh_open = any((rule.get("IpProtocol") == "-1" or (rule.get("IpProtocol") in ("tcp", "6")
                    and rule.get("FromPort", 0) <= 22 <= rule.get("ToPort", 65535)))
                   and (rule.get("IpRanges") or rule.get("Ipv6Ranges") or rule.get("PrefixListIds"))
                   for rule in rules)
    if not ssh_open:
        return shell
    # ~ stays outside the quotes, so that the shell expands it.
    ssh = f"ssh -i ~/.ssh/{shlex.quote(key + '.pem')} {shlex.join([f'{USER}@{host}', 'sudo', 'cat', LOG])}"
    return f"`{ssh}` or {shell}"


def _wait(args: argparse.Namespace) -> int:
    target = desktop(args)
    with aws.errors():
        return follow(target, args.timeout, args.poll)


# ---------------------------------------------------------------------------
# connect

def _connect(args: argparse.Namespace) -> int:
    if args.ssm:
        return ssm.connect(args)
    target = desktop(args)
    instance = running(target)
    public = instance.get("PublicDnsName") or instance.get("PublicIpAddress")
    host = public if public and not args.private else instance.get("PrivateIpAddress")
    if not host:
        raise CommandError(f"instance {target.instance_id} has no address yet: try again in a minute")
    path = args.output or Path(f"{stack_name(args.stack)}-{target.instance_id}.dcv")
    path.write_text(dcv_file(host, transport=args.transport))
    key = instance.get("KeyName")
    print(f"DCV address:     https://{host}:{DCV_PORT}  (a browser, or the DCV client)")
    print(f"DCV connection:  {path}  (open it with the DCV client: `{shlex.join(['dcvviewer', str(path)])}`)")
    # The stack generates the password and the boot sets it: no SSH and no `passwd` needed.
    print(f"DCV login:       {USER}, password: {ssm.password_hint(args.stack)}")
    if key:
        # ~ stays outside the quotes, so that the shell expands it.
        print(f"SSH:             ssh -i ~/.ssh/{shlex.quote(key + '.pem')} {shlex.quote(f'{USER}@{host}')}")
    print(f"Shell:           {target.hint('shell')}  (Session Manager, no open port)")
    if not public:
        print("The desktop has no public address: connect over your VPN or Direct Connect, or through "
              f"Session Manager: `{target.hint('connect', '--ssm')}`.")
    else:
        print(f"Port 8443 not open to you? `{target.hint('connect', '--ssm')}` "
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
        waited = _monotonic() - start
        if waited >= timeout:
            print(f"timed out after {elapsed(waited)}; the instance is {state}")
            return 1
        # The last look falls on the timeout, not up to a poll after it.
        _sleep(min(poll, timeout - waited))


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
    print(f"follow it with `{target.hint('wait')}`, then `{target.hint('connect')}` (the address changed)")
    return 0


# ---------------------------------------------------------------------------
# The parsers.

def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port; expected 1-65535")
    return int(text)


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
