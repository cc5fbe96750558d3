"""Checks of capacity and cost: the instance type in the zone, the vCPU quota, EFA on the
type, the capacity reservation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional

import botocore.exceptions

from desktop.commands import aws
from desktop.commands.preflight.lookups import Account
from desktop.commands.preflight.result import FAIL, PASS, WARN, Result


# ---------------------------------------------------------------------------
# vCPU quotas of running On-Demand instances (Service Quotas, service "ec2"), by the
# letters that start the instance family ("g" of g4dn, "inf" of inf2, "im" of im4gn).

@dataclass(frozen=True)
class Quota:
    """A Service Quotas quota of EC2: its code and its name in the console."""

    code: str
    name: str


_G = Quota("L-DB2E81BA", "Running On-Demand G and VT instances")
_STANDARD = Quota("L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances")

QUOTAS: dict[str, Quota] = {
    "g": _G, "gr": _G, "vt": _G,
    "p": Quota("L-417A185B", "Running On-Demand P instances"),
    "f": Quota("L-74FC7D96", "Running On-Demand F instances"),
    "x": Quota("L-7295265B", "Running On-Demand X instances"),
    "inf": Quota("L-1945791B", "Running On-Demand Inf instances"),
    "trn": Quota("L-2C3B7624", "Running On-Demand Trn instances"),
    "dl": Quota("L-6E869C2A", "Running On-Demand DL instances"),
    **{letters: _STANDARD for letters in ("a", "c", "d", "h", "i", "m", "r", "t", "z", "im", "is")},
}


def quota_for(instance_type: str) -> Optional[Quota]:
    """The vCPU quota an instance type counts against, or None when not known."""
    letters = re.match(r"[a-z]*", instance_type).group(0)
    return QUOTAS.get(letters)


def check_instance_type(account: Account) -> Iterable[Result]:
    instance_type, region = account.args.instance_type, account.aws.region
    if account.instance_type() is None:
        yield Result(FAIL, f"instance type {instance_type!r} does not exist in {region}: set instanceType to one "
                           f"that does (`aws ec2 describe-instance-type-offerings --region {region}`)")
        return
    subnet = account.subnet()
    if subnet is None:
        return  # reported by check_network
    zone = subnet["AvailabilityZone"]
    offerings = account.ec2().describe_instance_type_offerings(
        LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": [instance_type]}],
    )["InstanceTypeOfferings"]
    zones = sorted({o["Location"] for o in offerings})
    if zone in zones:
        yield Result(PASS, f"instance type {instance_type} is offered in {zone}")
    elif zones:
        yield Result(FAIL, f"instance type {instance_type} is not offered in {zone} (subnet {subnet['SubnetId']}): "
                           f"pick a subnet in {', '.join(zones)}, or another instanceType")
    else:
        yield Result(FAIL, f"instance type {instance_type} is not offered in any zone of {region}: "
                           "pick another instanceType or region")


def check_vcpu_quota(account: Account) -> Iterable[Result]:
    instance_type, region = account.args.instance_type, account.aws.region
    info = account.instance_type()
    if info is None:
        return  # reported by check_instance_type
    vcpus = int(info.get("VCpuInfo", {}).get("DefaultVCpus", 0))
    quota = quota_for(instance_type)
    if quota is None:
        yield Result(WARN, f"no known On-Demand vCPU quota for {instance_type}: check Service Quotas yourself")
        return
    client = account.aws.client("service-quotas")
    value = None
    for read in (client.get_service_quota, client.get_aws_default_service_quota):
        try:
            value = read(ServiceCode="ec2", QuotaCode=quota.code)["Quota"]["Value"]
            break
        except botocore.exceptions.ClientError as error:
            reason = aws.message(error)
        except botocore.exceptions.BotoCoreError as error:
            reason = str(error)
    if value is None:
        yield Result(WARN, f"cannot read the vCPU quota {quota.name!r} ({quota.code}): {reason}; "
                           f"check it in the Service Quotas console ({instance_type} needs {vcpus} vCPUs)")
        return
    if value < vcpus:
        yield Result(FAIL, f"vCPU quota {quota.name!r} ({quota.code}) is {value:g}, {instance_type} needs {vcpus}: "
                           f"request more (`aws service-quotas request-service-quota-increase --service-code ec2 "
                           f"--quota-code {quota.code} --desired-value {vcpus} --region {region}`) and wait for "
                           "the approval, or pick a smaller instanceType")
        return
    yield Result(PASS, f"vCPU quota {quota.name!r} ({quota.code}) is {value:g}, {instance_type} needs {vcpus} "
                       "(other running instances of that quota count too)")


def check_efa(account: Account) -> Iterable[Result]:
    """With ``efa`` true, EC2 must say the instance type has EFA (the program stops otherwise)."""
    args = account.args
    if not args.efa:
        return  # off: nothing to ask EC2 (it may not even allow DescribeInstanceTypes)
    info = account.instance_type()
    if info is None:
        return  # reported by check_instance_type
    network = info.get("NetworkInfo", {})
    if network.get("EfaSupported"):
        yield Result(PASS, f"instance type {args.instance_type} has EFA "
                           f"(up to {network.get('EfaInfo', {}).get('MaximumEfaInterfaces', 1)} interfaces)")
        yield from _check_efa_group(account)
        return
    yield Result(FAIL, f"efa is true but instance type {args.instance_type} has no EFA: set efa false or pick a type "
                       "with EFA (`aws ec2 describe-instance-types --filters Name=network-info.efa-supported,"
                       "Values=true --query 'InstanceTypes[].InstanceType'`)")


def _check_efa_group(account: Account) -> Iterable[Result]:
    """EFA traffic needs all traffic in and out within the interface's group. The group the
    program creates has those rules; a given one is checked here."""
    group_id = account.args.security_group_id
    group = account.given_group()
    if group is None:
        return  # none given, or reported by check_security_group

    def to_itself(permissions: list[dict]) -> bool:
        return any(p.get("IpProtocol") == "-1" and any(pair.get("GroupId") == group_id
                                                        for pair in p.get("UserIdGroupPairs", []))
                   for p in permissions)

    missing = [way for way, key in (("inbound", "IpPermissions"), ("outbound", "IpPermissionsEgress"))
               if not to_itself(group.get(key, []))]
    if not missing:
        yield Result(PASS, f"security group {group_id} lets all traffic in and out within itself, as EFA needs")
        return
    commands = " and ".join(
        f"`aws ec2 authorize-security-group-{'ingress' if way == 'inbound' else 'egress'} --group-id {group_id} "
        f"--ip-permissions IpProtocol=-1,UserIdGroupPairs=[{{GroupId={group_id}}}]`" for way in missing)
    yield Result(WARN, f"security group {group_id} does not let all {' and '.join(missing)} traffic through "
                       f"within itself: EFA traffic between instances of the group fails; add {commands}")


#: States of a capacity reservation an instance can run in, now or from its start date.
_USABLE = ("active", "scheduled")


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if hasattr(moment, "strftime") else str(moment)


def check_capacity_reservation(account: Account) -> Iterable[Result]:
    """``capacityReservationId``: it exists, is active or scheduled, fits the type and the zone, and has room."""
    args = account.args
    reservation_id = args.capacity_reservation_id
    if not reservation_id:
        return
    try:
        found = account.ec2().describe_capacity_reservations(
            CapacityReservationIds=[reservation_id])["CapacityReservations"]
    except botocore.exceptions.ClientError as error:
        if not aws.code(error).startswith("InvalidCapacityReservationId"):
            raise
        found = []
    if not found:
        yield Result(FAIL, f"capacity reservation {reservation_id} does not exist in {account.aws.region}: set "
                           "capacityReservationId to one of yours (`aws ec2 describe-capacity-reservations`), or unset it")
        return
    reservation = found[0]
    kind = "Capacity Block" if reservation.get("ReservationType") == "capacity-block" else "capacity reservation"
    name = f"{kind} {reservation_id}"
    state = reservation.get("State")
    failed = False
    if state not in _USABLE:
        ended = f", ended {_when(reservation['EndDate'])}" if reservation.get("EndDate") else ""
        yield Result(FAIL, f"{name} is {state}{ended}: an instance can only run in an active or scheduled one; "
                           "set capacityReservationId to another, or unset it")
        failed = True
    if reservation.get("InstanceType") != args.instance_type:
        yield Result(FAIL, f"{name} reserves {reservation.get('InstanceType')}, not instanceType "
                           f"{args.instance_type}: set instanceType {reservation.get('InstanceType')}, "
                           "or another capacityReservationId")
        failed = True
    subnet = account.subnet()
    zone = reservation.get("AvailabilityZone")
    if subnet is not None and subnet.get("AvailabilityZone") != zone:
        yield Result(FAIL, f"{name} is in {zone}, but subnet {subnet['SubnetId']} is in "
                           f"{subnet.get('AvailabilityZone')}: set subnetId to a subnet in {zone}")
        failed = True
    available, total = reservation.get("AvailableInstanceCount", 0), reservation.get("TotalInstanceCount", 0)
    if state == "active" and available < 1:  # a scheduled one fills only when it starts
        yield Result(FAIL, f"{name} has no room: all {total} of its instances are in use; stop one of them, "
                           "or pick another reservation")
        failed = True
    if failed:
        return
    ends = f", until {_when(reservation['EndDate'])}" if reservation.get("EndDate") else ""
    if state == "scheduled":
        yield Result(WARN, f"{name} is scheduled: it starts {_when(reservation.get('StartDate'))}{ends}; EC2 "
                           "launches the desktop into it only from then on, so run `pulumi up` after that")
        return
    yield Result(PASS, f"{name} is active{ends}, reserves {args.instance_type} in {zone}, "
                       f"{available} of {total} free")
