"""EFA: an Elastic Fabric Adapter as the desktop's primary network interface.

pulumi-aws 7 attaches a primary interface to an instance only by id
(``primary_network_interface``; the older ``network_interface`` block is deprecated and
takes ids too), so the EFA is its own ``aws.ec2.NetworkInterface`` (``interface_type =
"efa"``) in the subnet and the desktop's security group, whose self rules EFA traffic
needs. The instance then sets none of ``subnet_id``, ``vpc_security_group_ids`` and
``associate_public_ip_address`` (they conflict with the interface): EC2 gives a public
address at launch only to an interface it creates itself, so with ``publicIp`` true the
EFA gets an Elastic IP, which also keeps the DCV address across stops.

Whether the instance type has EFA is EC2's answer at deploy (``efa_supported``), never a
list here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import pulumi
import pulumi_aws as aws

from desktop.config import SETTINGS_BY_FIELD, ConfigError, DesktopArgs, Problem
from desktop.cost_tag import with_cost_tag
from desktop.naming import child


@dataclass(frozen=True)
class Efa:
    """The EFA interface, and its Elastic IP when the desktop has a public address."""

    interface: aws.ec2.NetworkInterface
    public_ip: Optional[pulumi.Output[str]]


def interface(name: str, args: DesktopArgs, security_group_id: pulumi.Input[str],
              parent: pulumi.Resource, cost_tag: Optional[pulumi.Input[Mapping[str, str]]] = None) -> Optional[Efa]:
    """The EFA primary interface (None when ``efa`` is false); a ConfigError when the type has no EFA."""
    if not args.efa:
        return None
    supported = aws.ec2.get_instance_type_output(
        instance_type=args.instance_type, opts=pulumi.InvokeOutputOptions(parent=parent)).efa_supported
    # Known at the preview (an invoke), so `pulumi up` stops there.
    supported.apply(lambda ok: _refuse_unsupported(ok, args.instance_type))
    eni_child = child(name, "efa", parent)
    eni = aws.ec2.NetworkInterface(
        eni_child.name,
        subnet_id=args.subnet_id,
        security_groups=[security_group_id],
        interface_type="efa",
        description="Deep learning desktop: EFA primary interface",
        tags={"Name": name},
        opts=eni_child.opts,
    )
    if not args.public_ip:
        return Efa(eni, None)
    eip_child = child(name, "eip", parent)
    eip = aws.ec2.Eip(eip_child.name, domain="vpc", network_interface=eni.id,
                      tags=with_cost_tag({"Name": name}, cost_tag),
                      opts=eip_child.opts)
    return Efa(eni, eip.public_ip)


def _refuse_unsupported(supported: Optional[bool], instance_type: str) -> None:
    if supported:
        return
    raise ConfigError([Problem(
        SETTINGS_BY_FIELD["efa"].key, True,
        f"false for instanceType {instance_type}, which has no EFA (EC2: EfaSupported false); set efa false, "
        "or pick a type with EFA (`aws ec2 describe-instance-types --filters "
        "Name=network-info.efa-supported,Values=true --query 'InstanceTypes[].InstanceType'`)",
    )])
