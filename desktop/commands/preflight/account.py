"""Checks of the account itself: who the credentials are, the AMI it resolves, the key pair."""

from __future__ import annotations

from typing import Iterable

import botocore.exceptions

from desktop.commands import aws
from desktop.commands.preflight.lookups import Account
from desktop.commands.preflight.result import FAIL, PASS, Result
from desktop.image import architecture_of, ssm_parameter_for


def check_credentials(account: Account) -> Iterable[Result]:
    """Which account and region the checks look at: the STS caller identity."""
    identity = account.aws.client("sts").get_caller_identity()
    how = []
    if account.aws.settings.profile:
        how.append(f"profile {account.aws.settings.profile} (the stack's aws:profile)")
    if account.aws.assumed:
        how.append("assumed " + " then ".join(account.aws.assumed) + " (the stack's aws:assumeRoles)")
    yield Result(PASS, f"credentials work: account {identity['Account']} as {identity['Arn']}; "
                       f"region {account.aws.region} ({account.aws.region_source})"
                       + "".join(f"; {item}" for item in how))


def check_ami(account: Account) -> Iterable[Result]:
    args, region = account.args, account.aws.region
    info = account.instance_type()
    supported = (info or {}).get("ProcessorInfo", {}).get("SupportedArchitectures")
    architecture = architecture_of(supported) if info else None
    if args.ami_id:
        ami_id, source = args.ami_id, f"amiId {args.ami_id}"
    else:
        parameter = ssm_parameter_for(args.ami_ssm_parameter, architecture or "x86_64")
        try:
            ami_id = account.aws.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
        except botocore.exceptions.ClientError as error:
            if aws.code(error) not in ("ParameterNotFound", "ValidationException"):
                raise
            yield Result(FAIL, f"SSM parameter {parameter} does not exist in {region}: set amiSsmParameter "
                               "to a Deep Learning AMI parameter "
                               "(`aws ssm get-parameters-by-path --path /aws/service/deeplearning/ami "
                               "--recursive`) or set amiId")
            return
        source = f"SSM parameter {parameter} -> {ami_id}"
    images = []
    try:
        images = account.ec2().describe_images(ImageIds=[ami_id])["Images"]
    except botocore.exceptions.ClientError as error:
        if not aws.code(error).startswith("InvalidAMIID"):
            raise
    if not images:
        yield Result(FAIL, f"{source}: the AMI does not exist in {region} (AMI ids differ per region): "
                           "unset amiId to use the SSM parameter, or pick an AMI of this region")
        return
    image = images[0]
    if image.get("State") != "available":
        yield Result(FAIL, f"{source}: the AMI is {image.get('State')}, not available: pick another AMI")
        return
    if architecture and supported and image.get("Architecture") not in supported:
        yield Result(FAIL, f"{source}: the AMI is {image.get('Architecture')} but {args.instance_type} runs "
                           f"{'/'.join(supported)}: pick an AMI of that architecture or another instanceType")
        return
    yield Result(PASS, f"AMI resolves: {source} ({image.get('Architecture')}, available)")


def check_key_pair(account: Account) -> Iterable[Result]:
    """The key pair exists (when one is set)."""
    name, region = account.args.key_name, account.aws.region
    if not name:
        yield Result(PASS, "no keyName: the desktop has no key pair; open a shell through Session Manager "
                           "(`python -m desktop shell`)")
        return
    try:
        account.ec2().describe_key_pairs(KeyNames=[name])
    except botocore.exceptions.ClientError as error:
        if aws.code(error) != "InvalidKeyPair.NotFound":
            raise
        yield Result(FAIL, f"key pair {name!r} does not exist in {region}: create or import it "
                           f"(`aws ec2 import-key-pair --key-name {name} --public-key-material "
                           f"fileb://~/.ssh/id_ed25519.pub --region {region}`) or set keyName")
        return
    yield Result(PASS, f"key pair {name!r} exists")
