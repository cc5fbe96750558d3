"""``preflight`` for EFA (on moto) and capacity reservations (botocore's Stubber).

moto 5.2 has no DescribeCapacityReservations (nor Capacity Blocks), so the reservation
checks run against a real botocore EC2 client whose answers a Stubber gives: the requests
are checked against EC2's own service model, the answers are shaped as EC2 documents them.
"""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import boto3
import pytest
from botocore.stub import Stubber

from desktop.commands.cli import main
from desktop.commands.preflight import FAIL, PASS, WARN, Account, check_capacity_reservation
from desktop.config import DesktopArgs
from tests.moto_account import client, moto_module, seed_good_account, write_stack  # noqa: F401

RESERVATION = "cr-0123456789abcdef0"
SUBNET = "subnet-0123456789abcdef0"
NOW = datetime.datetime.now(datetime.timezone.utc)


# --- EFA, on moto --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good(moto_module):  # noqa: F811
    return seed_good_account()


def run_preflight(tmp_path, capsys, config) -> list[str]:
    stack = write_stack(tmp_path, config)
    main(["preflight", "--stack", stack, "--project-dir", str(tmp_path)])
    return capsys.readouterr().out.splitlines()


def test_efa_on_a_type_without_it_fails(good, tmp_path, capsys):
    lines = run_preflight(tmp_path, capsys, {**good.config, "efa": "true"})  # g4dn.xlarge
    (efa,) = [ln for ln in lines if "EFA" in ln]
    assert efa.startswith("FAIL") and "g4dn.xlarge has no EFA" in efa


def test_efa_on_a_type_with_it_passes(good, tmp_path, capsys):
    lines = run_preflight(tmp_path, capsys, {**good.config, "efa": "true", "instanceType": "g5.48xlarge"})
    (efa,) = [ln for ln in lines if "has EFA" in ln]
    assert efa.startswith("PASS") and "g5.48xlarge has EFA" in efa


def test_a_given_group_without_self_rules_is_warned_about_for_efa(good, tmp_path, capsys):
    lines = run_preflight(tmp_path, capsys, {**good.config, "efa": "true", "instanceType": "g5.48xlarge"})
    (group,) = [ln for ln in lines if "within itself" in ln]
    assert group.startswith("WARN") and "inbound and outbound" in group and good.security_group_id in group


def test_a_given_group_with_self_rules_passes_for_efa(good, tmp_path, capsys):
    ec2 = client("ec2")
    group = ec2.create_security_group(GroupName="efa-ready", Description="efa", VpcId=good.vpc_id)["GroupId"]
    self_rule = [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group}]}]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=self_rule)
    ec2.authorize_security_group_egress(GroupId=group, IpPermissions=self_rule)
    lines = run_preflight(tmp_path, capsys, {**good.config, "efa": "true", "instanceType": "g5.48xlarge",
                                             "securityGroupId": group})
    (line,) = [ln for ln in lines if "within itself" in ln]
    assert line.startswith("PASS")


def test_a_given_group_is_checked_for_the_lustre_servers_connections(good, tmp_path, capsys):
    ec2 = client("ec2")
    group = ec2.create_security_group(GroupName="lustre-ready", Description="lustre", VpcId=good.vpc_id)["GroupId"]
    servers = ec2.create_security_group(GroupName="servers", Description="fsx", VpcId=good.vpc_id)["GroupId"]
    config = {**good.config, "fsxLustre": "true", "securityGroupId": group}
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 988, "ToPort": 988, "UserIdGroupPairs": [{"GroupId": servers}]}])
    (line,) = [ln for ln in run_preflight(tmp_path, capsys, config) if "Lustre" in ln]
    assert line.startswith(f"WARN  security group {group} does not admit Lustre TCP 1018-1023: ")
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 1018, "ToPort": 1023, "UserIdGroupPairs": [{"GroupId": servers}]}])
    (line,) = [ln for ln in run_preflight(tmp_path, capsys, config) if "Lustre" in ln]
    assert line == f"PASS  security group {group} admits Lustre (TCP 988, 1018-1023)"


def test_efa_off_is_not_checked(good, tmp_path, capsys):
    assert not [ln for ln in run_preflight(tmp_path, capsys, good.config) if "EFA" in ln]


# --- capacity reservations, on a stubbed EC2 client -----------------------------------------

def reservation(**changes) -> dict:
    """A DescribeCapacityReservations entry: an active Capacity Block with room, for p5.48xlarge in us-east-1a."""
    return {
        "CapacityReservationId": RESERVATION, "InstanceType": "p5.48xlarge", "InstancePlatform": "Linux/UNIX",
        "AvailabilityZone": "us-east-1a", "Tenancy": "default", "TotalInstanceCount": 1,
        "AvailableInstanceCount": 1, "State": "active", "ReservationType": "capacity-block",
        "StartDate": NOW - datetime.timedelta(hours=2), "EndDate": NOW + datetime.timedelta(days=2),
        "EndDateType": "limited", "InstanceMatchCriteria": "targeted",
        **changes,
    }


def check(found: dict | None, zone: str = "us-east-1a", instance_type: str = "p5.48xlarge"):
    """The reservation check's results, EC2 answering with ``found`` (None: no such reservation)."""
    ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    stubber = Stubber(ec2)
    request = {"CapacityReservationIds": [RESERVATION]}
    if found is None:
        stubber.add_client_error("describe_capacity_reservations", "InvalidCapacityReservationId.NotFound",
                                 f"The capacity reservation ID '{RESERVATION}' does not exist", 400,
                                 expected_params=request)
    else:
        stubber.add_response("describe_capacity_reservations", {"CapacityReservations": [found]}, request)
        stubber.add_response("describe_subnets", {"Subnets": [{
            "SubnetId": SUBNET, "VpcId": "vpc-0123456789abcdef0", "AvailabilityZone": zone,
            "CidrBlock": "10.0.1.0/24"}]}, {"SubnetIds": [SUBNET]})
    args = DesktopArgs(s3_bucket="my-dl-bucket", vpc_id="vpc-0123456789abcdef0", subnet_id=SUBNET,
                       key_name="my-key", access_cidr="203.0.113.7/32", instance_type=instance_type,
                       capacity_reservation_id=RESERVATION)
    account = Account(SimpleNamespace(client=lambda service: {"ec2": ec2}[service], region="us-east-1"), args)
    with stubber:
        results = list(check_capacity_reservation(account))
        stubber.assert_no_pending_responses()
    return results


def test_an_active_capacity_block_that_fits_passes():
    (result,) = check(reservation())
    assert result.status == PASS
    assert f"Capacity Block {RESERVATION} is active, until" in result.text
    assert "reserves p5.48xlarge in us-east-1a, 1 of 1 free" in result.text


def test_a_missing_reservation_fails():
    (result,) = check(None)
    assert result.status == FAIL and f"capacity reservation {RESERVATION} does not exist" in result.text


def test_the_wrong_instance_type_fails():
    (result,) = check(reservation(), instance_type="g5.48xlarge")
    assert result.status == FAIL
    assert "reserves p5.48xlarge, not instanceType g5.48xlarge: set instanceType p5.48xlarge" in result.text


def test_the_wrong_zone_fails():
    (result,) = check(reservation(), zone="us-east-1b")
    assert result.status == FAIL
    assert f"is in us-east-1a, but subnet {SUBNET} is in us-east-1b: set subnetId to a subnet in us-east-1a" \
        in result.text


def test_an_expired_reservation_fails_and_says_when_it_ended():
    ended = NOW - datetime.timedelta(days=1)
    (result,) = check(reservation(State="expired", EndDate=ended, AvailableInstanceCount=0))
    assert result.status == FAIL
    assert f"is expired, ended {ended.strftime('%Y-%m-%d %H:%M UTC')}" in result.text


def test_a_full_reservation_fails():
    (result,) = check(reservation(ReservationType="default", TotalInstanceCount=2, AvailableInstanceCount=0))
    assert result.status == FAIL
    assert f"capacity reservation {RESERVATION} has no room: all 2 of its instances are in use" in result.text


def test_a_scheduled_block_warns_when_it_starts():
    starts = NOW + datetime.timedelta(days=3)
    (result,) = check(reservation(State="scheduled", StartDate=starts, EndDate=starts + datetime.timedelta(days=1)))
    assert result.status == WARN
    assert f"is scheduled: it starts {starts.strftime('%Y-%m-%d %H:%M UTC')}" in result.text


def test_every_mismatch_is_its_own_line():
    results = check(reservation(State="cancelled"), zone="us-east-1b", instance_type="g5.48xlarge")
    assert [r.status for r in results] == [FAIL, FAIL, FAIL]
