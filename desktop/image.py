"""The AMI: the configured ``amiId``, or the Deep Learning AMI's public SSM parameter.

The parameter is read at deploy time, so a new stack always starts from the newest
AMI. The instance ignores later changes of that value (a newer AMI must never
replace a running desktop and delete its root volume); only an explicit ``amiId``
change replaces it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from desktop.config import DesktopArgs

ARM64 = "arm64"
X86_64 = "x86_64"

_ARCH_SEGMENT = re.compile(r"^(/aws/service/deeplearning/ami/)(?:x86_64|arm64)(/)")


def architecture_of(supported_architectures: list[str] | None) -> str:
    """The DLAMI architecture for an instance type's supported architectures."""
    supported = set(supported_architectures or ())
    return ARM64 if ARM64 in supported and X86_64 not in supported else X86_64


def ssm_parameter_for(parameter: str, architecture: str) -> str:
    """The parameter with its architecture segment set for ``architecture``.

    Only the Deep Learning AMI's own parameters have that segment; any other
    parameter is returned unchanged.
    """
    return _ARCH_SEGMENT.sub(rf"\g<1>{architecture}\g<2>", parameter, count=1)


def other_architecture(architecture: str) -> str:
    return X86_64 if architecture == ARM64 else ARM64


@dataclass(frozen=True)
class Image:
    """The AMI of the desktop and where it came from."""

    ami_id: pulumi.Output[str]
    source: pulumi.Output[str]  # "amiId" or "ssm:<parameter name>"
    from_ssm: bool
    # The instance type's architecture, when the parameter is a Deep Learning AMI one
    # whose architecture segment follows it; None otherwise.
    architecture: Optional[pulumi.Output[str]] = None


def resolve(args: DesktopArgs, parent: pulumi.Resource) -> Image:
    """Choose the AMI: ``amiId`` when set, else the SSM parameter for the type's architecture."""
    if args.ami_id:
        return Image(pulumi.Output.from_input(args.ami_id), pulumi.Output.from_input("amiId"), False)
    invoke = pulumi.InvokeOutputOptions(parent=parent)
    instance_type = aws.ec2.get_instance_type_output(instance_type=args.instance_type, opts=invoke)
    architecture = instance_type.supported_architectures.apply(architecture_of)
    parameter = architecture.apply(lambda arch: ssm_parameter_for(args.ami_ssm_parameter, arch))
    value = aws.ssm.get_parameter_output(name=parameter, opts=invoke).value
    follows = bool(_ARCH_SEGMENT.match(args.ami_ssm_parameter))
    return Image(value, parameter.apply(lambda p: f"ssm:{p}"), True, architecture if follows else None)


def is_of_architecture(ami_id: str, architecture: str, parent: pulumi.Resource) -> pulumi.Output[bool]:
    """Whether the Deep Learning AMI ``ami_id`` is of ``architecture`` (one DescribeImages).

    False also when the AMI is gone (old AMIs get deregistered), so that never raises an alarm.
    """
    found = aws.ec2.get_ami_ids_output(
        owners=["amazon"],  # the owner of the Deep Learning AMIs
        include_deprecated=True,
        filters=[
            aws.ec2.GetAmiIdsFilterArgs(name="image-id", values=[ami_id]),
            aws.ec2.GetAmiIdsFilterArgs(name="architecture", values=[architecture]),
        ],
        opts=pulumi.InvokeOutputOptions(parent=parent),
    )
    return found.ids.apply(bool)
