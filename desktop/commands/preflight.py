"""``python -m desktop preflight``: check the AWS account against the stack's config
before ``pulumi up``, so a mistake shows in seconds instead of after a failed launch.

The first line names the account (STS caller identity) and the region it checks. Each
check prints one line, ``PASS``, ``WARN`` or ``FAIL``, saying what to do; an AWS error in
one check (a permission this identity lacks, throttling) is a ``FAIL`` line naming the
operation and the other checks still run. Exit 0 when nothing failed, 1 when something
did; 2 when the checks could not run at all (no or unusable credentials, no region,
unknown stack, bad config).
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Optional

import botocore.exceptions

from desktop.commands import aws, ssm
from desktop.commands.errors import CommandError
from desktop.commands.stack_file import PROJECT_DIR, read_stack
from desktop.config import OPEN_CIDR, DesktopArgs
from desktop.image import architecture_of, ssm_parameter_for
from desktop.ports import DCV_PORT, NFS_PORT, SSH_PORT

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"


class Result(NamedTuple):
    """The outcome of one check: PASS, WARN or FAIL and a line for a person."""

    status: str
    text: str

    def __str__(self) -> str:
        return f"{self.status}  {self.text}"


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


# ---------------------------------------------------------------------------
# What the checks share: the clients and lookups more than one check needs.

@dataclass
class Account:
    """The account as the checks see it; lookups are made once and kept."""

    aws: aws.Aws
    args: DesktopArgs
    _cache: dict = field(default_factory=dict)

    def ec2(self):
        return self.aws.client("ec2")

    def _once(self, key: str, fetch: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = fetch()
        return self._cache[key]

    def subnet(self) -> Optional[dict]:
        """The subnet, or None when it does not exist."""
        def fetch():
            try:
                return self.ec2().describe_subnets(SubnetIds=[self.args.subnet_id])["Subnets"][0]
            except botocore.exceptions.ClientError as error:
                if aws.code(error).startswith("InvalidSubnetID"):
                    return None
                raise
        return self._once("subnet", fetch)

    def given_group(self) -> Optional[dict]:
        """The given ``securityGroupId``, or None when it does not exist (or none is given)."""
        def fetch():
            group_id = self.args.security_group_id
            if not group_id:
                return None
            try:
                return self.ec2().describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
            except botocore.exceptions.ClientError as error:
                if aws.code(error).startswith("InvalidGroup"):
                    return None
                raise
        return self._once("given_group", fetch)

    def instance_type(self) -> Optional[dict]:
        """DescribeInstanceTypes of the configured type, or None when EC2 has no such type."""
        def fetch():
            try:
                types = self.ec2().describe_instance_types(InstanceTypes=[self.args.instance_type])
            except botocore.exceptions.ClientError as error:
                if aws.code(error) in ("InvalidInstanceType", "InvalidParameterValue"):
                    return None
                raise
            return (types.get("InstanceTypes") or [None])[0]
        return self._once("instance_type", fetch)


Check = Callable[[Account], Iterable[Result]]


# ---------------------------------------------------------------------------
# The checks, in the order they print.

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


def check_bucket(account: Account) -> Iterable[Result]:
    bucket, region = account.args.s3_bucket, account.aws.region
    try:
        response = account.aws.client("s3").head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as error:
        status = str(error.response.get("Error", {}).get("Code", ""))
        if status in ("404", "NoSuchBucket", "NotFound"):
            yield Result(FAIL, f"S3 bucket {bucket!r} does not exist: create it "
                               f"(`aws s3 mb s3://{bucket} --region {region}`) or set s3Bucket")
            return
        if status in ("403", "AccessDenied"):
            yield Result(FAIL, f"S3 bucket {bucket!r} exists but is not reachable with these credentials (403): "
                               "it belongs to another account or your identity may not list it; "
                               "pick a bucket of this account")
            return
        raise
    bucket_region = response.get("BucketRegion") or response.get("ResponseMetadata", {}).get(
        "HTTPHeaders", {}).get("x-amz-bucket-region")
    if bucket_region and bucket_region != region:
        yield Result(WARN, f"S3 bucket {bucket!r} is in {bucket_region}, the desktop in {region}: "
                           "transfers cross regions (slower, billed); a bucket in the same region is better")
        return
    yield Result(PASS, f"S3 bucket {bucket!r} exists and is reachable")


def check_network(account: Account) -> Iterable[Result]:
    args = account.args
    try:
        account.ec2().describe_vpcs(VpcIds=[args.vpc_id])
    except botocore.exceptions.ClientError as error:
        if not aws.code(error).startswith("InvalidVpcID"):
            raise
        yield Result(FAIL, f"VPC {args.vpc_id} does not exist in {account.aws.region}: "
                           "set vpcId (`aws ec2 describe-vpcs`)")
    else:
        yield Result(PASS, f"VPC {args.vpc_id} exists")
    subnet = account.subnet()
    if subnet is None:
        yield Result(FAIL, f"subnet {args.subnet_id} does not exist in {account.aws.region}: "
                           f"set subnetId (`aws ec2 describe-subnets --filters Name=vpc-id,Values={args.vpc_id}`)")
    elif subnet["VpcId"] != args.vpc_id:
        yield Result(FAIL, f"subnet {args.subnet_id} is in {subnet['VpcId']}, not in vpcId {args.vpc_id}: "
                           "set subnetId to a subnet of the VPC, or vpcId to the subnet's VPC")
    else:
        yield Result(PASS, f"subnet {args.subnet_id} is in {args.vpc_id} ({subnet['AvailabilityZone']})")


def _route_table(account: Account, subnet: dict) -> tuple[Optional[dict], str]:
    """The route table really associated with the subnet: its own, else the VPC's main one."""
    ec2 = account.ec2()
    own = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [subnet["SubnetId"]]}])["RouteTables"]
    if own:
        return own[0], "its own"
    main = ec2.describe_route_tables(Filters=[
        {"Name": "vpc-id", "Values": [subnet["VpcId"]]},
        {"Name": "association.main", "Values": ["true"]},
    ])["RouteTables"]
    return (main[0] if main else None), "the VPC's main"


def _default_routes(table: Optional[dict]) -> list[dict]:
    return [route for route in (table or {}).get("Routes", [])
            if route.get("DestinationCidrBlock") == OPEN_CIDR and route.get("State", "active") == "active"]


def _target(route: dict) -> str:
    for key in ("GatewayId", "NatGatewayId", "TransitGatewayId", "NetworkInterfaceId",
                "InstanceId", "VpcPeeringConnectionId", "LocalGatewayId", "CoreNetworkArn"):
        if route.get(key):
            return str(route[key])
    return "?"


def check_internet_route(account: Account) -> Iterable[Result]:
    subnet = account.subnet()
    if subnet is None or subnet["VpcId"] != account.args.vpc_id:
        return  # reported by check_network
    table, which = _route_table(account, subnet)
    table_name = f"route table {table['RouteTableId']} ({which})" if table else "no route table"
    routes = _default_routes(table)
    subnet_id = subnet["SubnetId"]
    if account.args.public_ip:
        gateways = [_target(r) for r in routes if _target(r).startswith("igw-")]
        if gateways:
            yield Result(PASS, f"subnet {subnet_id} routes {OPEN_CIDR} to internet gateway {gateways[0]} "
                               f"({table_name})")
        else:
            yield Result(FAIL, f"subnet {subnet_id} has no route {OPEN_CIDR} to an internet gateway "
                               f"({table_name}): set publicIp false (VPN/Direct Connect) or pick a public subnet")
        return
    # A private desktop still downloads DCV and packages at first boot.
    if routes:
        yield Result(PASS, f"subnet {subnet_id} routes {OPEN_CIDR} to {_target(routes[0])} ({table_name}); "
                           "publicIp is false: reach the desktop over VPN/Direct Connect")
    else:
        yield Result(WARN, f"subnet {subnet_id} has no route {OPEN_CIDR} ({table_name}): the first boot "
                           "downloads DCV and packages; add a NAT gateway route or the setup will fail")


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
    info = account.instance_type()
    if not args.efa or info is None:
        return  # off, or reported by check_instance_type
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


def _admits(permissions: list[dict], protocol: str, port: int, cidr: ipaddress.IPv4Network,
            group: Optional[str] = None) -> bool:
    """Whether the rules admit ``protocol``/``port`` from all of ``cidr``, or from the security ``group``."""
    for permission in permissions:
        proto = str(permission.get("IpProtocol"))
        if proto != "-1" and (  # "-1": every protocol and port
            proto not in (protocol, {"tcp": "6", "udp": "17"}[protocol])
            or not permission.get("FromPort", 0) <= port <= permission.get("ToPort", 65535)
        ):
            continue
        if group and any(pair.get("GroupId") == group for pair in permission.get("UserIdGroupPairs", [])):
            return True
        for ip_range in permission.get("IpRanges", []):
            try:
                allowed = ipaddress.IPv4Network(ip_range["CidrIp"], strict=False)
            except (KeyError, ValueError):
                continue
            if cidr.subnet_of(allowed):
                return True
    return False


def check_security_group(account: Account) -> Iterable[Result]:
    args = account.args
    group_id = args.security_group_id
    if not group_id:
        return
    group = account.given_group()
    if group is None:
        yield Result(FAIL, f"security group {group_id} does not exist in {account.aws.region}: "
                           "set securityGroupId, or unset it to have one created")
        return
    if group["VpcId"] != args.vpc_id:
        yield Result(FAIL, f"security group {group_id} is in {group['VpcId']}, not in vpcId {args.vpc_id}: "
                           "pick a group of the VPC, or unset securityGroupId to have one created")
        return
    if not args.access_cidr:
        yield Result(PASS, f"security group {group_id} is in {args.vpc_id}; no accessCidr: it needs no ingress "
                           "(Session Manager needs none)")
        return
    cidr = ipaddress.IPv4Network(args.access_cidr)
    permissions = group.get("IpPermissions", [])
    missing = [port for port in (SSH_PORT, DCV_PORT) if not _admits(permissions, "tcp", port, cidr)]
    if missing:
        ports = " and ".join(f"TCP {p}" for p in missing)
        commands = "; ".join(
            f"`aws ec2 authorize-security-group-ingress --group-id {group_id} --protocol tcp "
            f"--port {p} --cidr {args.access_cidr}`" for p in missing)
        yield Result(FAIL, f"security group {group_id} does not admit {ports} from {args.access_cidr}: "
                           f"add {commands}, or unset securityGroupId to have one created")
        return
    if not _admits(permissions, "udp", DCV_PORT, cidr):
        yield Result(WARN, f"security group {group_id} admits TCP 22 and 8443 from {args.access_cidr} but not "
                           f"UDP 8443: DCV then uses TCP only (QUIC is smoother); add `aws ec2 "
                           f"authorize-security-group-ingress --group-id {group_id} --protocol udp --port 8443 "
                           f"--cidr {args.access_cidr}`")
        return
    yield Result(PASS, f"security group {group_id} is in {args.vpc_id} and admits TCP 22 and 8443 "
                       f"from {args.access_cidr}")


def check_efs(account: Account) -> Iterable[Result]:
    args = account.args
    fs_id = args.efs_file_system_id
    if not fs_id:
        return
    efs = account.aws.client("efs")
    try:
        system = efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0]
    except botocore.exceptions.ClientError as error:
        if aws.code(error) != "FileSystemNotFound":
            raise
        yield Result(FAIL, f"EFS file system {fs_id} does not exist in {account.aws.region}: "
                           "set efsFileSystemId, or unset it to have one created")
        return
    if system.get("LifeCycleState", "available") != "available":
        yield Result(FAIL, f"EFS file system {fs_id} is {system['LifeCycleState']}, not available")
        return
    subnet = account.subnet()
    if subnet is None:
        return  # reported by check_network
    zone = subnet["AvailabilityZone"]
    targets = efs.describe_mount_targets(FileSystemId=fs_id)["MountTargets"]
    other_vpcs = {t.get("VpcId") for t in targets if t.get("VpcId") and t.get("VpcId") != subnet["VpcId"]}
    if other_vpcs:
        yield Result(FAIL, f"EFS file system {fs_id} has its mount targets in {', '.join(sorted(other_vpcs))}, "
                           f"not in {subnet['VpcId']}: use a file system of the desktop's VPC, or unset "
                           "efsFileSystemId to have one created")
        return
    in_zone = [t for t in targets if t.get("AvailabilityZoneName") == zone]
    if not in_zone:
        yield Result(FAIL, f"EFS file system {fs_id} has no mount target in {zone} (the zone of "
                           f"{subnet['SubnetId']}): create one (`aws efs create-mount-target --file-system-id "
                           f"{fs_id} --subnet-id {subnet['SubnetId']} --security-groups SG_ALLOWING_NFS`)")
        return
    target = in_zone[0]["MountTargetId"]
    yield Result(PASS, f"EFS file system {fs_id} has mount target {target} in {zone}")
    yield from _check_nfs_admitted(account, target, subnet)


def _check_nfs_admitted(account: Account, target: str, subnet: dict) -> Iterable[Result]:
    """The given EFS's mount target must admit NFS from the desktop: from a given desktop
    group, or from a range holding the subnet (a group this program creates does not
    exist yet, so no rule can name it)."""
    groups = account.aws.client("efs").describe_mount_target_security_groups(
        MountTargetId=target).get("SecurityGroups") or []
    described = account.ec2().describe_security_groups(GroupIds=groups)["SecurityGroups"] if groups else []
    permissions = [permission for group in described for permission in group.get("IpPermissions", [])]
    desktop_group = account.args.security_group_id
    subnet_range = ipaddress.IPv4Network(subnet["CidrBlock"])
    if _admits(permissions, "tcp", NFS_PORT, subnet_range, group=desktop_group):
        yield Result(PASS, f"mount target {target} admits NFS (TCP {NFS_PORT}) from the desktop")
        return
    if desktop_group:
        source, option = desktop_group, f"--source-group {desktop_group}"
    else:
        source, option = f"the subnet {subnet_range}", f"--cidr {subnet_range}"
    yield Result(WARN, f"mount target {target} (security groups {', '.join(groups) or 'none'}) admits no NFS "
                       f"(TCP {NFS_PORT}) from {source}: EFS will not mount; add `aws ec2 "
                       f"authorize-security-group-ingress --group-id {groups[0] if groups else 'SG'} "
                       f"--protocol tcp --port {NFS_PORT} {option}`, or unset efsFileSystemId to have one created")


def check_efs_backup(account: Account) -> Iterable[Result]:
    """Whether a given EFS file system has AWS Backup's automatic backups. The file system
    is its owner's: the program never changes it, so this only says how things are."""
    fs_id = account.args.efs_file_system_id
    if not fs_id:
        return  # a created one gets backups from efsBackup
    efs = account.aws.client("efs")
    try:
        efs.describe_file_systems(FileSystemId=fs_id)
        status = efs.describe_backup_policy(FileSystemId=fs_id)["BackupPolicy"]["Status"]
    except botocore.exceptions.ClientError as error:
        if aws.code(error) == "FileSystemNotFound":
            return  # reported by check_efs
        if aws.code(error) != "PolicyNotFound":  # never set: no automatic backups
            raise
        status = "DISABLED"
    if status in ("ENABLED", "ENABLING"):
        yield Result(PASS, f"EFS file system {fs_id} has automatic backups (AWS Backup: daily, kept 35 days by "
                           "the default plan)")
        return
    yield Result(WARN, f"EFS file system {fs_id} has no automatic backups (its backup policy is {status}): "
                       "it is yours, so this program leaves it as it is; to turn them on, `aws efs "
                       f"put-backup-policy --file-system-id {fs_id} --backup-policy Status=ENABLED`")


def check_access_cidr(account: Account) -> Iterable[Result]:
    """Open port or Session Manager only: which of the two this desktop is."""
    if not account.args.access_cidr:
        yield Result(PASS, "no accessCidr: no port is open to any address; reach the desktop through Session "
                           "Manager (`python -m desktop connect --ssm`, `python -m desktop shell`)")
        return
    warnings = account.args.warnings
    for warning in warnings:
        yield Result(WARN, warning)
    if not warnings and not account.args.access_cidr:
        yield Result(PASS, "accessCidr is empty: no port open to any address; Session Manager only")
    elif not warnings:
        yield Result(PASS, f"accessCidr {account.args.access_cidr} limits SSH and DCV to your range "
                           "(open ports; Session Manager works as well)")


# The VPC interface endpoints Session Manager needs when the desktop has no way to the internet.
SSM_ENDPOINTS = ("ssm", "ssmmessages", "ec2messages")


def check_vpc_dns(account: Account) -> Iterable[Result]:
    """The VPC resolves names: mounting EFS by its DNS name needs both DNS attributes."""
    vpc_id = account.args.vpc_id
    ec2 = account.ec2()
    states = {}
    for attribute in ("enableDnsSupport", "enableDnsHostnames"):
        try:
            answer = ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute)
        except botocore.exceptions.ClientError as error:
            if aws.code(error).startswith("InvalidVpcID"):
                return  # reported by check_network
            raise
        states[attribute] = bool(answer.get(attribute[0].upper() + attribute[1:], {}).get("Value"))
    off = [attribute for attribute, on in states.items() if not on]
    if off:
        fixes = "; ".join(f"`aws ec2 modify-vpc-attribute --vpc-id {vpc_id} --{_dashed(a)}`" for a in off)
        yield Result(FAIL, f"VPC {vpc_id} has {' and '.join(off)} off: the desktop cannot mount EFS by its DNS "
                           f"name (nor use private Session Manager endpoints); turn on: {fixes}")
        return
    yield Result(PASS, f"VPC {vpc_id} has enableDnsSupport and enableDnsHostnames on (EFS mounts by name)")


def _dashed(attribute: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "-" + m.group(0).lower(), attribute)


def _endpoint_service(region: str, name: str) -> str:
    prefix = "cn.com.amazonaws" if region.startswith("cn-") else "com.amazonaws"
    return f"{prefix}.{region}.{name}"


def check_session_manager_path(account: Account) -> Iterable[Result]:
    """Without a public IP, the SSM agent needs a NAT gateway or the VPC's SSM endpoints."""
    args = account.args
    subnet = account.subnet()
    if args.public_ip or subnet is None or subnet["VpcId"] != args.vpc_id:
        return  # a public IP reaches Systems Manager over the internet route checked above
    table, _ = _route_table(account, subnet)
    targets = [_target(route) for route in _default_routes(table)]
    nat = [target for target in targets if target.startswith("nat-")]
    if nat:
        yield Result(PASS, f"subnet {subnet['SubnetId']} routes {OPEN_CIDR} to NAT gateway {nat[0]}: Session "
                           "Manager reaches the desktop without a public IP")
        return
    endpoints = account.ec2().describe_vpc_endpoints(Filters=[
        {"Name": "vpc-id", "Values": [args.vpc_id]},
        {"Name": "vpc-endpoint-type", "Values": ["Interface"]},
    ])["VpcEndpoints"]
    present = {str(e.get("ServiceName", "")).rsplit(".", 1)[-1] for e in endpoints
               if str(e.get("State", "available")).lower() in ("available", "pending", "pendingacceptance")}
    missing = [name for name in SSM_ENDPOINTS if name not in present]
    if not missing:
        yield Result(PASS, f"VPC {args.vpc_id} has the interface endpoints {', '.join(SSM_ENDPOINTS)}: Session "
                           "Manager reaches the desktop without a public IP")
        return
    region = account.aws.region
    adds = "; ".join(
        f"`aws ec2 create-vpc-endpoint --vpc-id {args.vpc_id} --vpc-endpoint-type Interface --service-name "
        f"{_endpoint_service(region, name)} --subnet-ids {subnet['SubnetId']} --private-dns-enabled`"
        for name in missing)
    route = (f"routes {OPEN_CIDR} to {targets[0]}, not to a NAT gateway" if targets
             else f"has no {OPEN_CIDR} route")
    # Another route (a transit gateway, a firewall) may or may not lead to Systems Manager; with
    # no route at all and no open port, nothing reaches the desktop.
    status = FAIL if not targets and not args.access_cidr else WARN
    yield Result(status, f"publicIp is false, subnet {subnet['SubnetId']} {route}, and VPC {args.vpc_id} lacks "
                         f"the endpoints {', '.join(missing)}: Session Manager (`connect --ssm`, `shell`) may not "
                         f"reach the desktop; add a NAT gateway route, or the endpoints: {adds}")


def check_session_manager_plugin(account: Account) -> Iterable[Result]:
    """The local Session Manager plugin, which `connect --ssm` and `shell` hand sessions to."""
    if shutil.which(ssm.PLUGIN) is None:
        yield Result(WARN, f"{ssm.PLUGIN} is not installed here: `connect --ssm` and `shell` need it; "
                           f"install it: {ssm.INSTALL_URL}")
        return
    try:
        _, version = ssm.plugin()
    except CommandError as error:
        yield Result(WARN, str(error))
        return
    yield Result(PASS, f"{ssm.PLUGIN} {version} is installed (for `connect --ssm` and `shell`)")


# After check_credentials, which runs first and alone: without an identity nothing can be checked.
CHECKS: tuple[Check, ...] = (
    check_ami,
    check_key_pair,
    check_bucket,
    check_network,
    check_vpc_dns,
    check_internet_route,
    check_session_manager_path,
    check_instance_type,
    check_vcpu_quota,
    check_efa,
    check_capacity_reservation,
    check_security_group,
    check_efs,
    check_efs_backup,
    check_access_cidr,
    check_session_manager_plugin,
)

# What each check looks at, for the FAIL line of a check an AWS error stopped.
TOPICS: dict[Check, str] = {
    check_ami: "the AMI", check_key_pair: "the key pair", check_bucket: "the S3 bucket",
    check_network: "the VPC and subnet", check_vpc_dns: "the VPC's DNS attributes",
    check_internet_route: "the subnet's internet route", check_session_manager_path: "Session Manager's way in",
    check_instance_type: "the instance type", check_vcpu_quota: "the vCPU quota",
    check_security_group: "the security group", check_efs: "the EFS file system",
    check_efa: "EFA on the instance type", check_capacity_reservation: "the capacity reservation",
    check_efs_backup: "the EFS file system's backups",
    check_access_cidr: "accessCidr", check_session_manager_plugin: "the Session Manager plugin",
}


def _stopped(account: Account, check: Check, error: Exception) -> Result:
    """The FAIL line of a check an unexpected AWS error stopped: what was not checked and why."""
    topic = TOPICS.get(check, check.__name__)
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


def _run(check: Check, account: Account) -> Iterable[Result]:
    """The results of one check; an AWS error ends it with a FAIL line, not the whole preflight."""
    try:
        yield from check(account)
    except aws.CREDENTIAL_ERRORS:
        raise  # no check can run without credentials: exit 2
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
        yield _stopped(account, check, error)


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
        for check in CHECKS:
            for result in _run(check, account):
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
