"""The desktop's security group: SSH and DCV from ``accessCidr`` only, or the given group.

Without ``accessCidr`` the group admits nothing from any address, only its own members:
the desktop is reached through Session Manager, whose agent connects outwards.
"""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_aws as aws

from desktop.config import DesktopArgs
from desktop.naming import child
from desktop.ports import DCV_PORT, SSH_PORT

ANYWHERE = "0.0.0.0/0"


def security_group(name: str, args: DesktopArgs, parent: pulumi.Resource) -> pulumi.Output[str]:
    """The id of the desktop's security group: ``securityGroupId``, or a new group."""
    if args.security_group_id is not None:
        return pulumi.Output.from_input(args.security_group_id)
    sg = child(name, "sg", parent)
    group = aws.ec2.SecurityGroup(
        sg.name,
        vpc_id=args.vpc_id,
        # Kept as it was when accessCidr was required: a changed description replaces the group.
        description="Deep learning desktop: SSH and DCV from the access CIDR",
        tags={"Name": name},
        opts=sg.opts,
    )
    # One resource per rule (not inline rules) so a changed rule is replaced alone, and
    # emptying accessCidr deletes the three open ports and nothing else.
    ingress = _open_ports(args.access_cidr) + [
        # The sample's rule for distributed SageMaker training jobs in this group.
        ("self", dict(ip_protocol="-1", referenced_security_group_id=group.id,
                      description="All traffic within the group (distributed SageMaker training)")),
    ]
    egress = [
        ("egress-tcp", dict(ip_protocol="tcp", from_port=0, to_port=65535, cidr_ipv4=ANYWHERE,
                            description="TCP to anywhere (packages, S3, SageMaker)")),
        ("egress-self", dict(ip_protocol="-1", referenced_security_group_id=group.id,
                             description="All traffic within the group")),
    ]
    for role, rule in ingress:
        each = child(name, role, parent)
        aws.vpc.SecurityGroupIngressRule(each.name, security_group_id=group.id, **rule, opts=each.opts)
    for role, rule in egress:
        each = child(name, role, parent)
        aws.vpc.SecurityGroupEgressRule(each.name, security_group_id=group.id, **rule, opts=each.opts)
    return group.id


def _open_ports(access_cidr: Optional[str]) -> list[tuple[str, dict]]:
    """SSH and DCV (TCP, and UDP for QUIC) from ``access_cidr``; none without it."""
    if access_cidr is None:
        return []
    return [
        ("ssh", dict(ip_protocol="tcp", from_port=SSH_PORT, to_port=SSH_PORT, cidr_ipv4=access_cidr,
                     description="SSH")),
        ("dcv", dict(ip_protocol="tcp", from_port=DCV_PORT, to_port=DCV_PORT, cidr_ipv4=access_cidr,
                     description="DCV")),
        ("dcv-quic", dict(ip_protocol="udp", from_port=DCV_PORT, to_port=DCV_PORT, cidr_ipv4=access_cidr,
                          description="DCV QUIC")),
    ]
