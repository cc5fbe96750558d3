"""``python -m desktop preflight``: check the AWS account against the stack's config
before ``pulumi up``, so a mistake shows in seconds instead of after a failed launch.

The first line names the account (STS caller identity) and the region it checks. Each
check prints one line, ``PASS``, ``WARN`` or ``FAIL``, saying what to do; an AWS error in
one check (a permission this identity lacks, throttling) is a ``FAIL`` line naming the
operation and the other checks still run. Exit 0 when nothing failed, 1 when something
did; 2 when the checks could not run at all (no or unusable credentials, no region,
unknown stack, bad config).

The checks live in one module per area (:mod:`.account`, :mod:`.network`, :mod:`.storage`,
:mod:`.capacity`); :data:`CHECKS` below is the one list of them, in the order they print.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable, Optional

import botocore.exceptions

from desktop.commands import aws
from desktop.commands.preflight.account import check_ami, check_credentials, check_key_pair
from desktop.commands.preflight.capacity import (
    Quota, check_capacity_reservation, check_cost_tag, check_efa, check_instance_type, check_lustre_client_group,
    check_prices, check_spot, check_vcpu_quota, quota_for)
from desktop.commands.preflight.lookups import Account, Check
from desktop.commands.preflight.network import (
    check_access_cidr, check_internet_route, check_network, check_security_group, check_session_manager_path,
    check_session_manager_plugin, check_vpc_dns)
from desktop.commands.preflight.result import FAIL, PASS, WARN, Result
from desktop.commands.preflight.storage import check_bucket, check_efs, check_efs_backup
from desktop.commands.stack_file import PROJECT_DIR, read_stack

__all__ = ["CHECKS", "FAIL", "PASS", "WARN", "Account", "Check", "Quota", "Result", "preflight", "quota_for",
           "check_capacity_reservation", "register"]

# Every check after check_credentials (which runs first and alone: without an identity
# nothing can be checked), in the order they print, with what it looks at (for the FAIL
# line of a check an AWS error stopped). A new check is one row here.
CHECKS: tuple[tuple[Check, str], ...] = (
    (check_ami, "the AMI"),
    (check_key_pair, "the key pair"),
    (check_bucket, "the S3 bucket"),
    (check_network, "the VPC and subnet"),
    (check_vpc_dns, "the VPC's DNS attributes"),
    (check_internet_route, "the subnet's internet route"),
    (check_session_manager_path, "Session Manager's way in"),
    (check_instance_type, "the instance type"),
    (check_vcpu_quota, "the vCPU quota"),
    (check_efa, "EFA on the instance type"),
    (check_capacity_reservation, "the capacity reservation"),
    (check_spot, "Spot capacity and the Spot vCPU quota"),
    (check_prices, "the prices"),
    (check_cost_tag, "the budget's cost allocation tag"),
    (check_security_group, "the security group"),
    (check_lustre_client_group, "Lustre into the given security group"),
    (check_efs, "the EFS file system"),
    (check_efs_backup, "the EFS file system's backups"),
    (check_access_cidr, "accessCidr"),
    (check_session_manager_plugin, "the Session Manager plugin"),
)


def _stopped(account: Account, topic: str, error: Exception) -> Result:
    """The FAIL line of a check an unexpected AWS error stopped: what was not checked and why."""
    if isinstance(error, botocore.exceptions.ClientError):
        operation = getattr(error, "operation_name", "") or "a request"
        if aws.code(error) in aws.ACCESS_DENIED:
            needed = account.aws.permission(error) or operation
            return Result(FAIL, f"{topic} not checked: access denied to {operation} ({aws.code(error)}): "
                                f"this identity needs {needed}; allow it, or check {topic} yourself")
        if aws.code(error) in aws.THROTTLED:
            return Result(FAIL, f"{topic} not checked: AWS throttled {operation} even after retries; "
                                "run preflight again in a minute")
        return Result(FAIL, f"{topic} not checked: {operation} failed ({aws.message(error)})")
    return Result(FAIL, f"{topic} not checked: {aws.explain(error) or error}")


def _run(check: Check, topic: str, account: Account) -> Iterable[Result]:
    """The results of one check; an AWS error ends it with a FAIL line, not the whole preflight."""
    try:
        yield from check(account)
    except aws.CREDENTIAL_ERRORS:
        raise  # no check can run without credentials: exit 2
    except aws.AWS_FAILURES as error:
        yield _stopped(account, topic, error)


# ---------------------------------------------------------------------------
# The command.

def preflight(stack: str, project_dir: Optional[Path] = None, out=None) -> int:
    """Run every check of ``stack``'s config against the account; 0 when none failed."""
    out = out or sys.stdout
    config = read_stack(stack, project_dir)
    parsed = config.parse()
    account = Account(aws.Aws.for_stack(config.other), parsed.args)
    results: list[Result] = []

    def show(result: Result) -> None:
        results.append(result)
        print(result, file=out, flush=True)

    with aws.errors():
        for result in check_credentials(account):
            show(result)
    for warning in parsed.warnings:
        if warning not in parsed.args.warnings:  # those are check_access_cidr's to say
            show(Result(WARN, warning))
    with aws.errors():
        for check, topic in CHECKS:
            for result in _run(check, topic, account):
                show(result)
    counts = {status: sum(r.status == status for r in results) for status in (PASS, WARN, FAIL)}
    summary = f"{counts[PASS]} passed, {counts[WARN]} warned, {counts[FAIL]} failed"
    if counts[FAIL]:
        print(f"preflight of stack {stack!r}: {summary}; fix the FAIL lines before `pulumi up`", file=out)
        return 1
    print(f"preflight of stack {stack!r}: {summary}; ready for `pulumi up`", file=out)
    return 0


def _command(args: argparse.Namespace) -> int:
    return preflight(args.stack, args.project_dir)


def register(subparsers) -> None:
    """Add ``preflight`` to the ``python -m desktop`` parser."""
    parser = subparsers.add_parser(
        "preflight",
        help="check the AWS account against the stack's config before `pulumi up`",
        description=(
            "Read the stack's config as `pulumi up` does (project defaults plus Pulumi.<stack>.yaml, "
            "same validation) and check the account: first which account and region (STS caller "
            "identity), then the AMI, the key pair, the S3 bucket, the VPC and subnet, the VPC's DNS "
            "attributes (EFS needs them), the subnet's internet route, without a public IP the way "
            "Session Manager gets in (NAT gateway or VPC endpoints), the instance type in the subnet's "
            "zone, the vCPU quota, EFA on the type and the capacity reservation when asked for, a given "
            "security group and EFS file system (and whether its backups are on), accessCidr (open port "
            "or Session Manager only) and the local session-manager-plugin. One line per check: PASS, "
            "WARN or FAIL with what to do; an AWS error in one check (a missing permission) is a FAIL "
            "line naming it, and the other checks still run. Exit 0 when nothing failed, 1 when "
            "something did, 2 when the checks could not run (no credentials, no region, unknown stack, "
            "bad config). " + aws.SETTINGS_HELP
        ),
    )
    parser.add_argument("--stack", default="dev", metavar="NAME",
                        help="stack whose Pulumi.<NAME>.yaml to check (default: dev)")
    parser.add_argument("--project-dir", type=Path, default=PROJECT_DIR, metavar="DIR",
                        help="directory of Pulumi.yaml and the stack files (default: this project)")
    parser.set_defaults(run=_command)
