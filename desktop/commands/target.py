"""Which desktop a command acts on, and the AWS session that reaches it: ``--stack``,
``--instance-id`` and ``--project-dir``, shared by the commands that use a desktop
(``wait``, ``connect``, ``shell``, ``keep-awake``, ``snapshot``, ``bake``, ...).

The instance comes from ``pulumi stack output --json`` (``DesktopInstanceId``) when
the Pulumi CLI is on PATH, or from ``--instance-id``. The region is chosen as for
``pulumi up`` (see :mod:`desktop.commands.aws`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple, Optional

import botocore.exceptions

from desktop.commands import aws
from desktop.commands.errors import CommandError
from desktop.commands.stack_file import PROJECT_DIR, StackNotFound, read_stack

USER = "ubuntu"


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
    without a file, boto3's own (``--instance-id`` with AWS_PROFILE, AWS_REGION). A stack file
    that exists but cannot be read is an error, never a silent fallback to another region; a
    missing one is an error unless ``--instance-id`` names the desktop."""
    try:
        other = read_stack(args.stack, args.project_dir).other
    except StackNotFound:
        if hasattr(args, "instance_id") and not args.instance_id:
            raise
        return aws.AccountSettings()
    return aws.AccountSettings.from_stack(other)


class Desktop(NamedTuple):
    """The instance and the AWS session that reaches it."""

    aws: aws.Aws
    instance_id: str
    args: argparse.Namespace  # the command's --stack, --instance-id and --project-dir, for hints

    def hint(self, subcommand: str, *words: str) -> str:
        """A ``python -m desktop`` command on this desktop, to paste (see :mod:`desktop.commands.hints`)."""
        from desktop.commands import hints

        # A person who named the desktop by --instance-id (no Pulumi CLI here) needs it in
        # what they paste, or the command cannot tell which desktop.
        if getattr(self.args, "instance_id", None):
            words = (*words, "--instance-id", self.instance_id)
        return hints.for_args(self.args, subcommand, *words)

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
        return Desktop(aws.Aws(settings=settings), instance_id(args), args)


def running(target: Desktop) -> dict:
    """The instance's description; a :class:`CommandError` unless it is running."""
    with aws.errors():
        instance = target.describe()
    state = instance["State"]["Name"]
    if state != "running":
        raise CommandError(f"instance {target.instance_id} is {state}: start it first "
                           f"(`{target.hint('start', '--wait')}`)")
    return instance



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
