"""``python -m desktop preflight`` against moto: for each check an account where it
passes and one where it fails, run as a person runs it (``AWS_ENDPOINT_URL``)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from desktop.commands.cli import main
from desktop.commands.aws import CLIENT_CONFIG
from desktop.commands.preflight import quota_for
from tests import fake_plugin
from tests.moto_account import (
    DLAMI_PARAMETER, REGION, add_image, as_iam_user, client, moto_module,  # noqa: F401
    seed_good_account, set_ec2_quota, throttling_endpoint, write_stack,
)

P_QUOTA = "L-417A185B"


@pytest.fixture(scope="module")
def account(moto_module):
    """One account for the module: the good desktop, plus resources that break one check each."""
    good = seed_good_account()
    ec2 = client("ec2")
    extra = SimpleNamespace(good=good)
    # VPC 1's main route table has no internet route: a subnet without its own table is private.
    extra.private_subnet = ec2.create_subnet(
        VpcId=good.vpc_id, CidrBlock="10.0.2.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    # A public subnet in us-east-1e, where moto (like EC2) offers no g4dn.xlarge.
    extra.subnet_1e = ec2.create_subnet(
        VpcId=good.vpc_id, CidrBlock="10.0.3.0/24", AvailabilityZone="us-east-1e")["Subnet"]["SubnetId"]
    ec2.associate_route_table(RouteTableId=good.route_table_id, SubnetId=extra.subnet_1e)
    # VPC 2: its main route table has the internet route, and one subnet overrides it with its own table.
    extra.vpc2 = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=extra.vpc2, EnableDnsHostnames={"Value": True})
    igw2 = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw2, VpcId=extra.vpc2)
    main_table = ec2.describe_route_tables(Filters=[
        {"Name": "vpc-id", "Values": [extra.vpc2]}, {"Name": "association.main", "Values": ["true"]},
    ])["RouteTables"][0]["RouteTableId"]
    ec2.create_route(RouteTableId=main_table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw2)
    extra.main_routed_subnet = ec2.create_subnet(
        VpcId=extra.vpc2, CidrBlock="10.1.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    extra.own_private_subnet = ec2.create_subnet(
        VpcId=extra.vpc2, CidrBlock="10.1.2.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    private_table = ec2.create_route_table(VpcId=extra.vpc2)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=private_table, SubnetId=extra.own_private_subnet)
    # Security groups that miss a port, miss QUIC, or live in the other VPC.
    extra.sg_ssh_only = ec2.create_security_group(
        GroupName="ssh-only", Description="ssh", VpcId=good.vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=extra.sg_ssh_only, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "203.0.113.7/32"}]}])
    extra.sg_tcp_only = ec2.create_security_group(
        GroupName="tcp-only", Description="tcp", VpcId=good.vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=extra.sg_tcp_only, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    extra.sg_vpc2 = ec2.create_security_group(
        GroupName="other", Description="other", VpcId=extra.vpc2)["GroupId"]
    # An EFS file system without any mount target.
    extra.efs_no_target = client("efs").create_file_system(CreationToken="bare")["FileSystemId"]
    # An EFS whose mount target admits NFS from the whole VPC range (so from any new group too).
    extra.efs_by_range = client("efs").create_file_system(CreationToken="by-range")["FileSystemId"]
    vpc_nfs = ec2.create_security_group(GroupName="vpc-nfs", Description="nfs", VpcId=good.vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=vpc_nfs, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 2049, "ToPort": 2049, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}])
    client("efs").create_mount_target(FileSystemId=extra.efs_by_range, SubnetId=good.subnet_id,
                                      SecurityGroups=[vpc_nfs])
    # A bucket in another region, and an arm64 AMI for an x86_64 instance type.
    client("s3").create_bucket(Bucket="far-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    # EC2 quotas exist in every account; moto's Service Quotas knows none, so the test sets
    # the P quota in moto's backend (0, as in a new account) and leaves Standard unreadable.
    set_ec2_quota(P_QUOTA, 0)
    return extra


@pytest.fixture
def preflight(account, tmp_path, capsys, monkeypatch):
    """Run ``python -m desktop preflight`` on the good config changed by ``changes``, with a
    session-manager-plugin on PATH."""
    fake_plugin.install(tmp_path / "plugin-bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'plugin-bin'}{os.pathsep}{os.environ.get('PATH', '')}")

    def run(**changes):
        config = {**account.good.config, **changes}
        stack = write_stack(tmp_path, config)
        code = main(["preflight", "--stack", stack, "--project-dir", str(tmp_path)])
        captured = capsys.readouterr()
        return SimpleNamespace(code=code, out=captured.out, err=captured.err, lines=captured.out.splitlines())
    return run


def line(result, status: str, *words: str) -> str:
    """The one output line with ``status`` that holds all ``words``; fails when there is none."""
    found = [ln for ln in result.lines if ln.startswith(f"{status}  ") and all(w in ln for w in words)]
    assert found, f"no {status} line with {words} in:\n{result.out}{result.err}"
    return found[0]


def statuses(result) -> list[str]:
    return [ln.split()[0] for ln in result.lines if ln[:4] in ("PASS", "WARN", "FAIL")]


def test_a_good_account_passes_as_a_whole(preflight, account):
    result = preflight()
    assert result.code == 0, result.out
    assert set(statuses(result)) == {"PASS"}
    line(result, "PASS", "credentials work", "123456789012", REGION, "aws:region")
    line(result, "PASS", "AMI resolves", DLAMI_PARAMETER.format(arch="x86_64"), account.good.images["x86_64"])
    line(result, "PASS", "key pair 'my-key' exists")
    line(result, "PASS", "S3 bucket 'my-dl-bucket' exists and is reachable")
    line(result, "PASS", f"VPC {account.good.vpc_id} exists")
    line(result, "PASS", f"subnet {account.good.subnet_id} is in {account.good.vpc_id}")
    line(result, "PASS", "routes 0.0.0.0/0 to internet gateway", account.good.igw_id, "its own")
    line(result, "PASS", "g4dn.xlarge is offered in us-east-1a")
    line(result, "PASS", "L-DB2E81BA", "is 8", "needs 4")
    line(result, "PASS", account.good.security_group_id, "admits TCP 22 and 8443")
    line(result, "PASS", account.good.efs_id, "mount target", "us-east-1a")
    line(result, "PASS", "admits NFS (TCP 2049) from the desktop")
    line(result, "PASS", "accessCidr 203.0.113.7/32", "open ports")
    line(result, "PASS", f"VPC {account.good.vpc_id} has enableDnsSupport and enableDnsHostnames on")
    line(result, "PASS", "session-manager-plugin 1.2.707.0 is installed")
    assert result.lines[0].startswith("PASS  credentials work: account 123456789012")
    assert "0 failed" in result.lines[-1]


def test_no_credentials_is_one_line_and_exit_2(preflight, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = preflight()
    assert result.code == 2
    assert result.err.strip().startswith("error: no AWS credentials found")
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


def test_an_identity_allowed_nothing_gets_one_fail_per_check_naming_the_permission(preflight, moto_module):
    # STS answers GetCallerIdentity whatever the policies; every other check is denied.
    with as_iam_user(moto_module, "nobody"):
        result = preflight()
    assert result.code == 1, result.out + result.err
    assert result.err == ""
    assert result.lines[0].startswith("PASS  credentials work: account 123456789012 as "
                                      "arn:aws:iam::123456789012:user/nobody")
    line(result, "FAIL", "the key pair not checked: access denied to DescribeKeyPairs",
         "this identity needs ec2:DescribeKeyPairs")
    line(result, "FAIL", "the VPC and subnet not checked", "needs ec2:DescribeVpcs")
    line(result, "FAIL", "the VPC's DNS attributes not checked", "needs ec2:DescribeVpcAttribute")
    line(result, "FAIL", "the security group not checked", "needs ec2:DescribeSecurityGroups")
    line(result, "PASS", "session-manager-plugin")  # the checks after the failed ones still ran
    assert "fix the FAIL lines" in result.lines[-1]


def test_a_bucket_these_credentials_may_not_reach_fails(preflight, moto_module, account):
    # A bucket of another account answers HeadBucket with 403; here an identity that may
    # do everything but touch this bucket gets the same answer from moto.
    all_but_the_bucket = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:*", "Resource": ["arn:aws:s3:::my-dl-bucket",
                                                              "arn:aws:s3:::my-dl-bucket/*"]},
        ],
    }
    with as_iam_user(moto_module, "no-bucket", all_but_the_bucket):
        # No given EFS: with IAM enforced, moto rejects the signature of EFS's
        # DescribeFileSystems (a GET with a query string) whatever the policy says.
        result = preflight(efsFileSystemId=None, s3Bucket="my-dl-bucket")
    assert result.code == 1, result.out + result.err
    line(result, "FAIL", "S3 bucket 'my-dl-bucket' exists but is not reachable with these credentials (403)")
    assert [s for s in statuses(result) if s != "PASS"] == ["FAIL"], result.out


def test_throttling_after_retries_is_one_line_and_exit_2(preflight, throttling_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", throttling_endpoint.url)
    result = preflight()
    assert result.code == 2
    assert result.err.startswith("error: AWS is throttling GetCallerIdentity even after retries")
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    # every try the client allows, then one line
    assert throttling_endpoint.requests == ["GetCallerIdentity"] * CLIENT_CONFIG.retries["total_max_attempts"]


def test_unknown_stack_and_bad_config_exit_2(preflight, tmp_path, capsys):
    assert main(["preflight", "--stack", "nope", "--project-dir", str(tmp_path)]) == 2
    assert "no stack 'nope'" in capsys.readouterr().err
    result = preflight(s3Bucket=None, instanceType="g4dn")
    assert result.code == 2
    assert "s3Bucket" in result.err and "instanceType: 'g4dn'" in result.err and "Traceback" not in result.err


def test_the_stack_region_wins_over_aws_region(preflight, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    result = preflight()
    assert result.code == 0, result.out
    line(result, "PASS", "region us-east-1 (the stack's aws:region)")


@pytest.mark.parametrize("environment, source", [
    ({"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "eu-west-1"}, "AWS_REGION"),
    ({"AWS_DEFAULT_REGION": "us-east-1"}, "AWS_DEFAULT_REGION"),
    ({}, "the AWS profile"),
])
def test_without_a_stack_region_the_region_comes_from_the_environment_then_the_profile(
        environment, source, account, tmp_path, monkeypatch, capsys):
    # As `pulumi up` does: AWS_REGION (which boto3 alone ignores), AWS_DEFAULT_REGION, the profile.
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    profile = tmp_path / "aws-config"
    profile.write_text("[default]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(profile))
    stack = write_stack(tmp_path, account.good.config, stack="noregion", region=None)
    code = main(["preflight", "--stack", stack, "--project-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"region us-east-1 ({source})" in out


# --- the AMI ---------------------------------------------------------------

def test_ami_for_a_graviton_type_comes_from_the_arm64_parameter(preflight, account):
    result = preflight(instanceType="g5g.xlarge")
    assert result.code == 0, result.out
    line(result, "PASS", "AMI resolves", DLAMI_PARAMETER.format(arch="arm64"), account.good.images["arm64"], "arm64")


def test_ami_parameter_missing_fails(preflight):
    missing = "/aws/service/deeplearning/ami/x86_64/no-such-ami/latest/ami-id"
    result = preflight(amiSsmParameter=missing)
    assert result.code == 1
    line(result, "FAIL", f"SSM parameter {missing} does not exist in us-east-1")


def test_ami_id_passes_and_missing_ami_id_fails(preflight, account):
    assert preflight(amiId=account.good.images["x86_64"]).code == 0
    result = preflight(amiId="ami-0123456789abcdef0")
    assert result.code == 1
    line(result, "FAIL", "amiId ami-0123456789abcdef0", "does not exist in us-east-1")


def test_ami_of_the_wrong_architecture_fails(preflight, account):
    result = preflight(amiId=account.good.images["arm64"])
    assert result.code == 1
    line(result, "FAIL", "the AMI is arm64 but g4dn.xlarge runs x86_64")


def test_ami_not_available_fails(preflight):
    pending = add_image("x86_64", state="pending")
    result = preflight(amiId=pending)
    assert result.code == 1
    line(result, "FAIL", pending, "is pending, not available")


# --- key pair and bucket -----------------------------------------------------

def test_missing_key_pair_fails(preflight):
    result = preflight(keyName="lost-key")
    assert result.code == 1
    line(result, "FAIL", "key pair 'lost-key' does not exist in us-east-1", "import-key-pair")


def test_missing_bucket_fails(preflight):
    result = preflight(s3Bucket="no-such-bucket-here")
    assert result.code == 1
    line(result, "FAIL", "S3 bucket 'no-such-bucket-here' does not exist", "aws s3 mb")


def test_bucket_in_another_region_warns(preflight):
    result = preflight(s3Bucket="far-bucket")
    assert result.code == 0
    line(result, "WARN", "S3 bucket 'far-bucket' is in eu-west-1")


# --- VPC, subnet, route ------------------------------------------------------

def test_missing_vpc_fails(preflight):
    result = preflight(vpcId="vpc-0123456789abcdef0", securityGroupId=None, efsFileSystemId=None)
    assert result.code == 1
    line(result, "FAIL", "VPC vpc-0123456789abcdef0 does not exist")


def test_missing_subnet_fails(preflight):
    result = preflight(subnetId="subnet-0123456789abcdef0", efsFileSystemId=None)
    assert result.code == 1
    line(result, "FAIL", "subnet subnet-0123456789abcdef0 does not exist")


def test_subnet_of_another_vpc_fails(preflight, account):
    result = preflight(subnetId=account.main_routed_subnet, efsFileSystemId=None)
    assert result.code == 1
    line(result, "FAIL", f"subnet {account.main_routed_subnet} is in {account.vpc2}, not in vpcId {account.good.vpc_id}")


def test_subnet_on_the_vpc_main_table_without_internet_route_fails(preflight, account):
    result = preflight(subnetId=account.private_subnet, efsFileSystemId=None)
    assert result.code == 1
    text = line(result, "FAIL", f"subnet {account.private_subnet} has no route 0.0.0.0/0 to an internet gateway")
    assert "the VPC's main" in text and "set publicIp false" in text


def test_subnet_on_the_vpc_main_table_with_internet_route_passes(preflight, account):
    result = preflight(vpcId=account.vpc2, subnetId=account.main_routed_subnet,
                       securityGroupId=None, efsFileSystemId=None)
    assert result.code == 0, result.out
    line(result, "PASS", f"subnet {account.main_routed_subnet} routes 0.0.0.0/0 to internet gateway", "the VPC's main")


def test_own_route_table_wins_over_a_routed_main_table(preflight, account):
    result = preflight(vpcId=account.vpc2, subnetId=account.own_private_subnet,
                       securityGroupId=None, efsFileSystemId=None)
    assert result.code == 1
    line(result, "FAIL", f"subnet {account.own_private_subnet} has no route 0.0.0.0/0", "its own")


def test_private_desktop_without_any_default_route_fails(preflight, account):
    # Issue 19: no route at all makes the first boot impossible (it downloads DCV): a FAIL.
    result = preflight(subnetId=account.private_subnet, publicIp="false", efsFileSystemId=None)
    assert result.code == 1, result.out
    line(result, "FAIL", f"subnet {account.private_subnet} has no route 0.0.0.0/0", "NAT gateway")


# --- instance type and quota -------------------------------------------------

def test_instance_type_not_offered_in_the_subnet_zone_fails(preflight, account):
    result = preflight(subnetId=account.subnet_1e, efsFileSystemId=None)
    assert result.code == 1
    text = line(result, "FAIL", "g4dn.xlarge is not offered in us-east-1e")
    assert "us-east-1a" in text  # where it is offered


def test_unknown_instance_type_fails(preflight):
    result = preflight(instanceType="zz9.xlarge")
    assert result.code == 1
    line(result, "FAIL", "instance type 'zz9.xlarge' does not exist in us-east-1")
    # Its architecture unknown, the AMI is still looked up as x86_64's (the usual one), not failed.
    assert not any("AMI" in ln or "SSM parameter" in ln for ln in result.lines if ln.startswith("FAIL"))


def test_a_type_offered_in_no_zone_of_the_region_fails(preflight):
    # moto's offerings, taken from EC2's, have no DL2q in us-east-1.
    result = preflight(instanceType="dl2q.24xlarge")
    assert result.code == 1
    line(result, "FAIL", "instance type dl2q.24xlarge is not offered in any zone of us-east-1: pick another "
         "instanceType or region")


def test_vcpu_quota_too_small_fails(preflight):
    result = preflight(instanceType="p4d.24xlarge")
    assert result.code == 1
    line(result, "FAIL", "Running On-Demand P instances", P_QUOTA, "is 0", "needs 96",
         "request-service-quota-increase", "and wait for the approval, or pick a smaller instanceType")


def test_vcpu_quota_unreadable_warns(preflight):
    result = preflight(instanceType="c5.xlarge")
    assert result.code == 0, result.out
    line(result, "WARN", "cannot read the vCPU quota", "L-1216C47A", "needs 4 vCPUs")


@pytest.mark.parametrize("instance_type, code", [
    ("g4dn.xlarge", "L-DB2E81BA"), ("g5g.2xlarge", "L-DB2E81BA"), ("vt1.3xlarge", "L-DB2E81BA"),
    ("p5.48xlarge", "L-417A185B"), ("inf2.xlarge", "L-1945791B"), ("trn1.2xlarge", "L-2C3B7624"),
    ("dl1.24xlarge", "L-6E869C2A"), ("x2iedn.xlarge", "L-7295265B"), ("f1.2xlarge", "L-74FC7D96"),
    ("m7i-flex.large", "L-1216C47A"), ("im4gn.large", "L-1216C47A"), ("t3.micro", "L-1216C47A"),
])
def test_quota_of_each_family(instance_type, code):
    assert quota_for(instance_type).code == code


def test_family_without_a_known_quota():
    assert quota_for("mac2.metal") is None


# --- security group, EFS, accessCidr ------------------------------------------

def test_security_group_missing_a_port_fails(preflight, account):
    result = preflight(securityGroupId=account.sg_ssh_only)
    assert result.code == 1
    text = line(result, "FAIL", f"security group {account.sg_ssh_only} does not admit TCP 8443 from 203.0.113.7/32")
    assert "TCP 22" not in text.split(":")[0]


def test_security_group_missing_both_ports_names_both(preflight, account):
    closed = client("ec2").create_security_group(GroupName="closed", Description="nothing in",
                                                 VpcId=account.good.vpc_id)["GroupId"]
    result = preflight(securityGroupId=closed)
    assert result.code == 1
    line(result, "FAIL", f"security group {closed} does not admit TCP 22 and TCP 8443 from 203.0.113.7/32: ")


def test_security_group_without_quic_warns(preflight, account):
    result = preflight(securityGroupId=account.sg_tcp_only)
    assert result.code == 0
    line(result, "WARN", account.sg_tcp_only, "not UDP 8443")


def test_security_group_of_another_vpc_fails(preflight, account):
    result = preflight(securityGroupId=account.sg_vpc2)
    assert result.code == 1
    line(result, "FAIL", f"security group {account.sg_vpc2} is in {account.vpc2}")


def test_missing_security_group_fails(preflight):
    result = preflight(securityGroupId="sg-0123456789abcdef0")
    assert result.code == 1
    line(result, "FAIL", "security group sg-0123456789abcdef0 does not exist")


def test_efs_without_a_mount_target_in_the_zone_fails(preflight, account):
    result = preflight(efsFileSystemId=account.efs_no_target)
    assert result.code == 1
    line(result, "FAIL", f"EFS file system {account.efs_no_target} has no mount target in us-east-1a",
         "create-mount-target")


def test_efs_that_admits_nfs_only_from_another_group_warns(preflight, account):
    # The mount target admits the given desktop group; a group pulumi up creates is not it.
    result = preflight(securityGroupId=None)
    assert result.code == 0, result.out
    warning = line(result, "WARN", "admits no NFS (TCP 2049) from the subnet 10.0.1.0/24", "EFS will not mount")
    assert "--protocol tcp --port 2049 --cidr 10.0.1.0/24" in warning


def test_efs_that_admits_nfs_from_the_vpc_range_passes_with_a_new_group(preflight, account):
    result = preflight(securityGroupId=None, efsFileSystemId=account.efs_by_range)
    assert result.code == 0, result.out
    line(result, "PASS", "admits NFS (TCP 2049) from the desktop")


def test_missing_efs_fails(preflight):
    result = preflight(efsFileSystemId="fs-0123456789abcdef0")
    assert result.code == 1
    line(result, "FAIL", "EFS file system fs-0123456789abcdef0 does not exist")


def test_open_access_cidr_warns(preflight):
    result = preflight(accessCidr="0.0.0.0/0", securityGroupId=None)
    assert result.code == 0, result.out
    line(result, "WARN", "accessCidr is 0.0.0.0/0", "open to the whole internet")


# --- the roads a first boot and a person need (issue 19; issue 21, survivor 6) -------------

def test_a_private_desktop_on_a_subnet_whose_only_way_out_is_an_internet_gateway_fails(preflight):
    # The good subnet routes 0.0.0.0/0 to an internet gateway only: without a public IP the
    # desktop can download nothing there.
    result = preflight(publicIp=False)
    assert result.code == 1
    found = line(result, "FAIL", "only to internet gateway", "cannot download")
    assert "nat-gateway-id" in found


@pytest.fixture(scope="module")
def nat_subnet(account):
    """A subnet of the good VPC whose own table sends 0.0.0.0/0 to a NAT gateway."""
    ec2 = client("ec2")
    subnet = ec2.create_subnet(VpcId=account.good.vpc_id, CidrBlock="10.0.9.0/24",
                               AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=account.good.subnet_id, AllocationId=allocation)["NatGateway"]["NatGatewayId"]
    table = ec2.create_route_table(VpcId=account.good.vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
    return SimpleNamespace(subnet=subnet, nat=nat)


def test_a_nat_gateway_route_does_not_pass_as_an_internet_gateway_for_a_public_ip(preflight, nat_subnet):
    result = preflight(publicIp=True, subnetId=nat_subnet.subnet, efsFileSystemId=None)
    assert result.code == 1
    line(result, "FAIL", nat_subnet.subnet, f"to {nat_subnet.nat}, not to an internet gateway")
    assert not any("routes 0.0.0.0/0 to internet gateway" in ln for ln in result.lines)


def test_a_nat_gateway_route_is_the_way_out_of_a_private_desktop(preflight, nat_subnet):
    result = preflight(publicIp=False, subnetId=nat_subnet.subnet, efsFileSystemId=None)
    text = line(result, "PASS", nat_subnet.subnet, f"to NAT gateway {nat_subnet.nat}")
    assert text.endswith("; publicIp is false: reach the desktop over VPN/Direct Connect or Session Manager")
    assert not any(nat_subnet.subnet in ln for ln in result.lines if ln.startswith("FAIL"))


def test_session_manager_as_the_only_road_without_the_plugin_fails(preflight, monkeypatch, tmp_path):
    bare = tmp_path / "bare-bin"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))  # no session-manager-plugin anywhere
    result = preflight(accessCidr=None)
    assert result.code == 1
    line(result, "FAIL", "session-manager-plugin is not installed", "the only way")
    # With a port open, the plugin is a second road: a warning.
    assert preflight().code == 0


def test_an_answer_botocore_cannot_parse_is_one_fail_line_and_the_rest_runs(preflight, monkeypatch):
    import botocore.parsers
    from desktop.commands import aws

    def html(**_):
        raise botocore.parsers.ResponseParserError("invalid XML received: b'<html>502 Bad Gateway</html>'")

    original = aws.Aws.client

    def client(self, service):
        made = original(self, service)
        made.meta.events.register("before-call.ec2.DescribeRouteTables", html)  # a proxy's page
        return made

    monkeypatch.setattr(aws.Aws, "client", client)
    result = preflight()
    assert result.code == 1 and "Traceback" not in result.err
    line(result, "FAIL", "the subnet's internet route not checked", "not an AWS reply", "502 Bad Gateway")
    line(result, "PASS", "instance type g4dn.xlarge is offered")  # the checks after it still ran
    line(result, "PASS", "session-manager-plugin")
