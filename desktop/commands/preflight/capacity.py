"""Checks of capacity and cost: the instance type in the zone, the vCPU quota, EFA on the
type, the capacity reservation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
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
    value, reason = _read_quota(account, quota)
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


# ---------------------------------------------------------------------------
# Spot: capacity in the zone and the Spot vCPU quotas (Service Quotas, service "ec2"), which
# are apart from the On-Demand ones.

_SPOT_STANDARD = Quota("L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests")
_SPOT_G = Quota("L-3819A6DF", "All G and VT Spot Instance Requests")
SPOT_QUOTAS: dict[str, Quota] = {
    "g": _SPOT_G, "gr": _SPOT_G, "vt": _SPOT_G,
    "p": Quota("L-7212CCBC", "All P Spot Instance Requests"),
    "f": Quota("L-88CF9481", "All F Spot Instance Requests"),
    "x": Quota("L-E3A00192", "All X Spot Instance Requests"),
    "inf": Quota("L-B5D1601B", "All Inf Spot Instance Requests"),
    "trn": Quota("L-6B0D517C", "All Trn Spot Instance Requests"),
    "dl": Quota("L-85EED4F7", "All DL Spot Instance Requests"),
    **{letters: _SPOT_STANDARD for letters in ("a", "c", "d", "h", "i", "m", "r", "t", "z", "im", "is")},
}


def spot_quota_for(instance_type: str) -> Optional[Quota]:
    """The Spot vCPU quota an instance type counts against, or None when not known."""
    return SPOT_QUOTAS.get(re.match(r"[a-z]*", instance_type).group(0))


def check_spot(account: Account) -> Iterable[Result]:
    """With ``spot`` true: a Spot price for the type in the subnet's zone (EC2 offers Spot
    capacity there), and the Spot vCPU quota."""
    args = account.args
    info, subnet = account.instance_type(), account.subnet()
    if not args.spot or info is None or subnet is None:
        return  # off, or reported by check_instance_type / check_network
    from desktop.commands.idle import spot_price  # the one Spot price lookup, shared with status

    zone = subnet["AvailabilityZone"]
    price = spot_price(account.ec2(), args.instance_type, zone)
    if price.usd is None:
        yield Result(FAIL, f"spot is true but {price.why_unknown}: EC2 offers no Spot capacity for it there; pick "
                           "another zone's subnet or instanceType, or set spot false")
    else:
        capped = (f"; spotMaxPrice {args.spot_max_price} is below it, so EC2 would not start the desktop now"
                  if args.spot_max_price is not None and Decimal(args.spot_max_price) < price.usd else "")
        yield Result(WARN if capped else PASS,
                     f"Spot offers {args.instance_type} in {zone} at {price.text('hour', 4)} now{capped}")
    vcpus = int(info.get("VCpuInfo", {}).get("DefaultVCpus", 0))
    quota = spot_quota_for(args.instance_type)
    if quota is None:
        yield Result(WARN, f"no known Spot vCPU quota for {args.instance_type}: check Service Quotas yourself")
        return
    value, reason = _read_quota(account, quota)
    if value is None:
        yield Result(WARN, f"cannot read the Spot vCPU quota {quota.name!r} ({quota.code}): {reason}; check it in "
                           f"the Service Quotas console ({args.instance_type} needs {vcpus} vCPUs)")
    elif value < vcpus:
        yield Result(FAIL, f"Spot vCPU quota {quota.name!r} ({quota.code}) is {value:g}, {args.instance_type} needs "
                           f"{vcpus}: request more (`aws service-quotas request-service-quota-increase --service-code "
                           f"ec2 --quota-code {quota.code} --desired-value {vcpus} --region {account.aws.region}`), "
                           "or set spot false")
    else:
        yield Result(PASS, f"Spot vCPU quota {quota.name!r} ({quota.code}) is {value:g}, {args.instance_type} needs "
                           f"{vcpus}")


def _read_quota(account: Account, quota: Quota) -> tuple[Optional[float], str]:
    """The account's value of ``quota`` (else AWS's default), or None and why not."""
    client = account.aws.client("service-quotas")
    reason = ""
    for read in (client.get_service_quota, client.get_aws_default_service_quota):
        try:
            return read(ServiceCode="ec2", QuotaCode=quota.code)["Quota"]["Value"], ""
        except botocore.exceptions.ClientError as error:
            reason = aws.message(error)
        except botocore.exceptions.BotoCoreError as error:
            reason = str(error)
    return None, reason


# ---------------------------------------------------------------------------
# Cost: the price of the type, what a stopped desktop costs, the budget's tag.

def check_prices(account: Account) -> Iterable[Result]:
    """The on-demand price per hour of the type here (Price List API) and the monthly cost
    of what stays while stopped (desktop/prices.py). Information: never a failure."""
    from desktop import prices
    from desktop.commands import idle
    from desktop.commands.plan import stopped_items
    from desktop.partition import of_region

    args, region = account.args, account.aws.region
    if of_region(region) == "aws":
        hourly = idle.instance_hourly(idle._pricing_client(account.aws), region, args.instance_type)
    else:
        hourly = idle.Price(None, "the Price List API serves the aws partition only")
    yield Result(PASS, f"{args.instance_type} costs {hourly.text('hour')} on demand in {region} while it runs; "
                       f"stopped it still costs {prices.summary(stopped_items(args))}")


def check_cost_tag(account: Account) -> Iterable[Result]:
    """With a budget: the cost allocation tag it filters on must be active, or it counts nothing."""
    from desktop.cost_tag import COST_TAG

    if not account.args.budget_monthly_usd:
        return
    # Cost Explorer's endpoint for the aws partition is in us-east-1.
    ce = account.aws.session.client("ce", region_name="us-east-1", config=aws.CLIENT_CONFIG)
    found = ce.list_cost_allocation_tags(TagKeys=[COST_TAG], Type="UserDefined").get("CostAllocationTags", [])
    status = found[0].get("Status") if found else None
    activate = (f"`aws ce update-cost-allocation-tags-status --cost-allocation-tags-status "
                f"TagKey={COST_TAG},Status=Active` (once per account; Billing takes up to 24 hours to apply it)")
    if status == "Active":
        yield Result(PASS, f"cost allocation tag {COST_TAG} is active: the budget counts this desktop's cost")
    elif status:
        yield Result(FAIL, f"cost allocation tag {COST_TAG} is {status}: the budget counts nothing until it is "
                           f"active: {activate}")
    else:
        yield Result(WARN, f"cost allocation tag {COST_TAG} is not known to Billing yet (it appears up to 24 hours "
                           f"after `pulumi up` first tags the desktop); then activate it: {activate}")


def check_lustre_client_group(account: Account) -> Iterable[Result]:
    """With FSx and a given ``securityGroupId``: the group must admit Lustre (TCP 988 and
    1018-1023) from the file system's group, which the program creates (named ``<name>-fsx``)."""
    from desktop.ports import LUSTRE_PORT, LUSTRE_PORT_RANGE

    args = account.args
    group = account.given_group()
    if not args.fsx_lustre or group is None:
        return

    def admits(low: int, high: int) -> bool:
        return any(p.get("IpProtocol") in ("tcp", "-1")
                   and (p.get("IpProtocol") == "-1" or (p.get("FromPort", 0) <= low and high <= p.get("ToPort", 0)))
                   and (p.get("UserIdGroupPairs") or p.get("IpRanges"))
                   for p in group.get("IpPermissions", []))

    missing = [f"{low}" if low == high else f"{low}-{high}"
               for low, high in ((LUSTRE_PORT, LUSTRE_PORT), LUSTRE_PORT_RANGE) if not admits(low, high)]
    if not missing:
        yield Result(PASS, f"security group {args.security_group_id} admits Lustre (TCP 988, 1018-1023)")
        return
    yield Result(WARN, f"security group {args.security_group_id} does not admit Lustre TCP {', '.join(missing)}: "
                       "the FSx file servers' own connections to the desktop (after a failover or maintenance) are "
                       "dropped and the mount hangs. After `pulumi up`, admit them from the FSx group: `aws ec2 "
                       f"authorize-security-group-ingress --group-id {args.security_group_id} --ip-permissions "
                       "IpProtocol=tcp,FromPort=988,ToPort=988,UserIdGroupPairs=[{GroupId=<FSx group>}] "
                       "IpProtocol=tcp,FromPort=1018,ToPort=1023,UserIdGroupPairs=[{GroupId=<FSx group>}]`")
