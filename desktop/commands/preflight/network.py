"""Checks of the network and the ways in: VPC and subnet, DNS, routes, Session Manager's
way in and plugin, the security group, accessCidr."""

from __future__ import annotations

import ipaddress
import re
import shutil
from typing import Iterable, Optional

import botocore.exceptions

from desktop.commands import aws
from desktop.commands.preflight.lookups import Account
from desktop.commands.preflight.result import FAIL, PASS, WARN, Result
from desktop.commands import ssm
from desktop.commands.errors import CommandError
from desktop.config import OPEN_CIDR
from desktop.ports import DCV_PORT, SSH_PORT


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
        # Only an internet gateway gives a public IP its way out: a NAT or transit gateway does not.
        gateways = [str(r["GatewayId"]) for r in routes if str(r.get("GatewayId") or "").startswith("igw-")]
        if gateways:
            yield Result(PASS, f"subnet {subnet_id} routes {OPEN_CIDR} to internet gateway {gateways[0]} "
                               f"({table_name})")
        else:
            found = f"routes {OPEN_CIDR} to {_target(routes[0])}, not to" if routes else f"has no route {OPEN_CIDR} to"
            yield Result(FAIL, f"subnet {subnet_id} {found} an internet gateway ({table_name}): a public IP "
                               "is reachable only through one; set publicIp false (VPN/Direct Connect, Session "
                               "Manager) or pick a public subnet")
        return
    # A private desktop still downloads DCV and packages at first boot: through a NAT gateway
    # (or another way out the network team runs), never through an internet gateway, which
    # carries only the traffic of instances with a public IP.
    onward = [r for r in routes if not _target(r).startswith("igw-")]
    nat = [_target(r) for r in onward if _target(r).startswith("nat-")]
    fix = ("add a route to a NAT gateway (`aws ec2 create-route --route-table-id "
           f"{table['RouteTableId'] if table else 'rtb-...'} --destination-cidr-block {OPEN_CIDR} "
           "--nat-gateway-id nat-...`), or set publicIp true with a public subnet")
    if nat:
        yield Result(PASS, f"subnet {subnet_id} routes {OPEN_CIDR} to NAT gateway {nat[0]} ({table_name}); "
                           "publicIp is false: reach the desktop over VPN/Direct Connect or Session Manager")
    elif onward:
        yield Result(WARN, f"subnet {subnet_id} routes {OPEN_CIDR} to {_target(onward[0])} ({table_name}), not "
                           "to a NAT gateway: the first boot downloads DCV and packages through it; make sure it "
                           "leads to the internet")
    elif routes:
        yield Result(FAIL, f"subnet {subnet_id} routes {OPEN_CIDR} only to internet gateway {_target(routes[0])} "
                           f"({table_name}), which a desktop without a public IP cannot use: the first boot "
                           f"cannot download DCV and packages; {fix}")
    else:
        yield Result(FAIL, f"subnet {subnet_id} has no route {OPEN_CIDR} ({table_name}): the first boot "
                           f"cannot download DCV and packages; {fix}")


def admits(permissions: list[dict], protocol: str, port: int, cidr: ipaddress.IPv4Network,
            group: Optional[str] = None) -> bool:
    """Whether the rules admit ``protocol``/``port`` from all of ``cidr``, or from the security ``group``."""
    for permission in permissions:
        proto = str(permission.get("IpProtocol"))
        if proto != "-1" and (  # "-1": every protocol and port
            proto not in (protocol, {"tcp": "6", "udp": "17"}[protocol])
            or not permission["FromPort"] <= port <= permission["ToPort"]  # EC2 gives both for TCP and UDP
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
    missing = [port for port in (SSH_PORT, DCV_PORT) if not admits(permissions, "tcp", port, cidr)]
    if missing:
        ports = " and ".join(f"TCP {p}" for p in missing)
        commands = "; ".join(
            f"`aws ec2 authorize-security-group-ingress --group-id {group_id} --protocol tcp "
            f"--port {p} --cidr {args.access_cidr}`" for p in missing)
        yield Result(FAIL, f"security group {group_id} does not admit {ports} from {args.access_cidr}: "
                           f"add {commands}, or unset securityGroupId to have one created")
        return
    if not admits(permissions, "udp", DCV_PORT, cidr):
        yield Result(WARN, f"security group {group_id} admits TCP 22 and 8443 from {args.access_cidr} but not "
                           f"UDP 8443: DCV then uses TCP only (QUIC is smoother); add `aws ec2 "
                           f"authorize-security-group-ingress --group-id {group_id} --protocol udp --port 8443 "
                           f"--cidr {args.access_cidr}`")
        return
    yield Result(PASS, f"security group {group_id} is in {args.vpc_id} and admits TCP 22 and 8443 "
                       f"from {args.access_cidr}")


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
    # An internet gateway carries nothing of an instance without a public IP: no way out.
    targets = [_target(route) for route in _default_routes(table) if not _target(route).startswith("igw-")]
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
    # Without accessCidr no port is open: Session Manager is the only road, and the plugin with it.
    only_road = not account.args.access_cidr
    status = FAIL if only_road else WARN
    why = ("no accessCidr: Session Manager is the only way to the desktop" if only_road
           else "`connect --ssm` and `shell` need it")
    if shutil.which(ssm.PLUGIN) is None:
        yield Result(status, f"{ssm.PLUGIN} is not installed here ({why}): install it: {ssm.INSTALL_URL}")
        return
    try:
        _, version = ssm.plugin()
    except CommandError as error:
        yield Result(status, f"{error} ({why})")
        return
    yield Result(PASS, f"{ssm.PLUGIN} {version} is installed (for `connect --ssm` and `shell`)")
