"""preflight's checks for the road without open ports (issue 9), against moto: the account and
region it checks, an AWS error in one check as one FAIL line, the VPC's DNS attributes, the way
Session Manager gets to a desktop without a public IP, open port or not, the local plugin."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from desktop.commands import aws, preflight as checks
from desktop.commands.cli import main
from tests.moto_account import REGION, as_iam_user, client, moto_module  # noqa: F401
from tests.test_preflight import account, line, preflight, statuses  # noqa: F401 (fixtures)


def private_vpc(cidr: str, zone: str = "us-east-1a") -> SimpleNamespace:
    """A VPC with DNS on and one subnet with its own route table (no routes out yet)."""
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr.replace("0.0/16", "1.0/24"),
                               AvailabilityZone=zone)["Subnet"]["SubnetId"]
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
    return SimpleNamespace(vpc=vpc, subnet=subnet, table=table)


def add_endpoints(vpc: SimpleNamespace, *names: str) -> None:
    for name in names:
        client("ec2").create_vpc_endpoint(VpcId=vpc.vpc, ServiceName=f"com.amazonaws.{REGION}.{name}",
                                          VpcEndpointType="Interface", SubnetIds=[vpc.subnet])


def private(vpc: SimpleNamespace) -> dict:
    """Config changes for a desktop without a public IP in ``vpc``."""
    return {"vpcId": vpc.vpc, "subnetId": vpc.subnet, "publicIp": "false",
            "securityGroupId": None, "efsFileSystemId": None}


# --- which account, and one error is one FAIL line ------------------------------------

def test_the_first_line_names_the_assumed_role_and_region(account, tmp_path, capsys, monkeypatch):
    import yaml

    config = {f"deep-learning-desktop:{k}": v for k, v in account.good.config.items()}
    config.update({"aws:region": REGION, "aws:assumeRoles": [
        {"roleArn": "arn:aws:iam::123456789012:role/desktop-operator", "sessionName": "preflight"}]})
    (tmp_path / "Pulumi.roles.yaml").write_text(yaml.safe_dump({"config": config}))
    code = main(["preflight", "--stack", "roles", "--project-dir", str(tmp_path)])
    first = capsys.readouterr().out.splitlines()[0]
    assert code in (0, 1)
    assert first.startswith("PASS  credentials work: account 123456789012 as "
                            "arn:aws:sts::123456789012:assumed-role/desktop-operator/preflight; region us-east-1")
    assert "assumed arn:aws:iam::123456789012:role/desktop-operator (the stack's aws:assumeRoles)" in first


def test_a_credential_denied_describe_route_tables_fails_that_check_alone(preflight, moto_module):
    everything_but_route_tables = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "ec2:DescribeRouteTables", "Resource": "*"},
        ],
    }
    with as_iam_user(moto_module, "no-routes", everything_but_route_tables):
        # No given EFS: with IAM enforced, moto rejects the signature of EFS's GET requests.
        result = preflight(efsFileSystemId=None)
    assert result.code == 1, result.out + result.err
    assert result.err == ""
    assert [s for s in statuses(result) if s != "PASS"] == ["FAIL"], result.out
    failed = line(result, "FAIL", "the subnet's internet route not checked: access denied to DescribeRouteTables")
    assert "this identity needs ec2:DescribeRouteTables" in failed
    # the checks before and after it ran
    line(result, "PASS", "key pair 'my-key' exists")
    line(result, "PASS", "g4dn.xlarge is offered in us-east-1a")
    line(result, "PASS", "admits TCP 22 and 8443")


# --- the VPC's DNS attributes ---------------------------------------------------------------

def test_a_vpc_without_dns_hostnames_fails(preflight):
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]  # DNS hostnames off, as in EC2
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.7.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
    result = preflight(vpcId=vpc, subnetId=subnet, securityGroupId=None, efsFileSystemId=None)
    assert result.code == 1
    assert statuses(result).count("FAIL") == 1, result.out
    failed = line(result, "FAIL", f"VPC {vpc} has enableDnsHostnames off", "cannot mount EFS")
    assert f"`aws ec2 modify-vpc-attribute --vpc-id {vpc} --enable-dns-hostnames`" in failed
    assert "enableDnsSupport off" not in failed

    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": False})
    result = preflight(vpcId=vpc, subnetId=subnet, securityGroupId=None, efsFileSystemId=None)
    line(result, "FAIL", f"VPC {vpc} has enableDnsSupport and enableDnsHostnames off", "--enable-dns-support`")


# --- Session Manager without a public IP ----------------------------------------------------

def test_a_private_subnet_with_a_nat_gateway_passes(preflight):
    vpc = private_vpc("10.20.0.0/16")
    ec2 = client("ec2")
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=vpc.subnet, AllocationId=allocation)["NatGateway"]["NatGatewayId"]
    ec2.create_route(RouteTableId=vpc.table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    result = preflight(**private(vpc))
    assert result.code == 0, result.out
    line(result, "PASS", f"routes 0.0.0.0/0 to NAT gateway {nat}", "Session Manager reaches the desktop")


def test_a_private_subnet_with_the_three_endpoints_passes(preflight):
    vpc = private_vpc("10.21.0.0/16")
    add_endpoints(vpc, "ssm", "ssmmessages", "ec2messages")
    result = preflight(**private(vpc))
    line(result, "PASS", f"VPC {vpc.vpc} has the interface endpoints ssm, ssmmessages, ec2messages")


def test_a_missing_endpoint_is_named_with_the_command_that_adds_it(preflight):
    vpc = private_vpc("10.22.0.0/16")
    add_endpoints(vpc, "ssm", "ssmmessages")
    result = preflight(**private(vpc))
    warning = line(result, "WARN", "publicIp is false", "lacks the endpoints ec2messages")
    assert (f"`aws ec2 create-vpc-endpoint --vpc-id {vpc.vpc} --vpc-endpoint-type Interface --service-name "
            f"com.amazonaws.{REGION}.ec2messages --subnet-ids {vpc.subnet} --private-dns-enabled`") in warning
    assert ".ssm " not in warning and ".ssmmessages " not in warning


def test_no_way_in_at_all_fails_without_an_open_port(moto_module):
    # accessCidr cannot be empty in this checkout's config yet: the check is given the fields it reads.
    vpc = private_vpc("10.23.0.0/16")
    args = SimpleNamespace(vpc_id=vpc.vpc, subnet_id=vpc.subnet, public_ip=False, access_cidr=None)
    account = checks.Account(aws.Aws(REGION), args)
    [result] = checks.check_session_manager_path(account)
    assert result.status == checks.FAIL and "has no 0.0.0.0/0 route" in result.text
    args.access_cidr = "203.0.113.7/32"  # a VPN may still reach it: uncertain, so a warning
    [result] = checks.check_session_manager_path(checks.Account(aws.Aws(REGION), args))
    assert result.status == checks.WARN


# --- open port or Session Manager only, key pair, plugin ----------------------------------------

def test_without_access_cidr_the_line_says_session_manager_only():
    account = SimpleNamespace(args=SimpleNamespace(access_cidr=None, warnings=[]))
    [result] = checks.check_access_cidr(account)
    assert result.status == checks.PASS
    assert "no accessCidr: no port is open to any address" in result.text and "connect --ssm" in result.text


def test_without_key_name_the_line_says_shell():
    account = SimpleNamespace(args=SimpleNamespace(key_name=None), aws=SimpleNamespace(region=REGION))
    [result] = checks.check_key_pair(account)
    assert result.status == checks.PASS and "python -m desktop shell" in result.text


def test_a_missing_plugin_warns_with_the_install_link(preflight, tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = preflight()
    assert result.code == 0, result.out
    warning = line(result, "WARN", "session-manager-plugin is not installed here")
    assert "connect --ssm" in warning and "session-manager-working-with-install-plugin" in warning


@pytest.mark.parametrize("version", ["1.2.497.0", "garbled"])
def test_a_plugin_too_old_warns(preflight, monkeypatch, version):
    monkeypatch.setenv("FAKE_PLUGIN_VERSION", version)
    result = preflight()
    line(result, "WARN", "session-manager-plugin", "too old")

