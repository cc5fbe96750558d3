"""``python -m desktop init`` against moto, with the public-IP service replaced by a local
HTTP server on 127.0.0.1 (``DESKTOP_CHECKIP_URL``)."""

from __future__ import annotations

import http.server
import socket
import threading
from types import SimpleNamespace

import pytest
import yaml

from desktop.commands import init
from desktop.commands.cli import main
from desktop.commands.errors import CommandError
from desktop.commands.stack_file import read_stack
from tests.moto_account import REGION, as_iam_user, aws_env, client  # noqa: F401

MY_IP = "198.51.100.23"


@pytest.fixture
def checkip(monkeypatch):
    """A local stand-in for https://checkip.amazonaws.com: answers ``body``, counts requests."""
    state = SimpleNamespace(body=f"{MY_IP}\n", requests=0)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the name http.server calls)
            state.requests += 1
            data = state.body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DESKTOP_CHECKIP_URL", f"http://127.0.0.1:{server.server_address[1]}/")
    yield state
    server.shutdown()
    server.server_close()


def default_vpc(ec2) -> str:
    return ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]


def subnet_in(ec2, vpc_id: str, zone: str) -> str:
    return ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                         {"Name": "availability-zone", "Values": [zone]}])["Subnets"][0]["SubnetId"]


def route_to_internet(ec2, vpc_id: str, table_id: str) -> str:
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    ec2.create_route(RouteTableId=table_id, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    return igw


@pytest.fixture
def account(aws_env):
    """moto's default VPC made as a real one is (its main table routes to an internet gateway),
    except that us-east-1a has its own table without that route; a bucket and a key pair."""
    ec2 = client("ec2")
    vpc = default_vpc(ec2)
    main_table = ec2.describe_route_tables(Filters=[
        {"Name": "vpc-id", "Values": [vpc]}, {"Name": "association.main", "Values": ["true"]}])["RouteTables"][0]
    igw = route_to_internet(ec2, vpc, main_table["RouteTableId"])
    private = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=private, SubnetId=subnet_in(ec2, vpc, "us-east-1a"))
    client("s3").create_bucket(Bucket="my-dl-bucket")
    ec2.create_key_pair(KeyName="my-key")
    return SimpleNamespace(vpc=vpc, igw=igw, subnet_1b=subnet_in(ec2, vpc, "us-east-1b"))


def run(capsys, tmp_path, *argv: str):
    code = main(["init", *argv, "--project-dir", str(tmp_path)])
    captured = capsys.readouterr()
    return SimpleNamespace(code=code, out=captured.out, err=captured.err)


def written(tmp_path, stack: str = "alice") -> dict:
    return yaml.safe_load((tmp_path / f"Pulumi.{stack}.yaml").read_text())["config"]


def test_init_writes_the_stack_from_the_account(account, checkip, tmp_path, capsys):
    result = run(capsys, tmp_path, "--stack", "alice", "--bucket", "my-dl-bucket")
    assert result.code == 0, result.err
    assert written(tmp_path) == {
        "aws:region": REGION,
        "deep-learning-desktop:s3Bucket": "my-dl-bucket",
        "deep-learning-desktop:vpcId": account.vpc,
        # us-east-1a has no internet route; us-east-1b is the first public zone offering g4dn.xlarge
        "deep-learning-desktop:subnetId": account.subnet_1b,
        "deep-learning-desktop:accessCidr": f"{MY_IP}/32",
    }
    assert checkip.requests == 1
    assert "account 123456789012" in result.out.splitlines()[0]
    assert "  keyName     none: open a shell with `python -m desktop shell`" in result.out.splitlines()
    for command in ("pulumi stack init alice", " -m desktop preflight --stack alice", "pulumi up --stack alice",
                    " -m desktop wait --stack alice",
                    " -m desktop connect --stack alice",
                    "pulumi stack output DcvPassword --show-secrets --stack alice"):
        assert command in result.out


def test_a_full_init_is_a_valid_stack(account, checkip, tmp_path, capsys):
    result = run(capsys, tmp_path, "--stack", "alice", "--bucket", "my-dl-bucket", "--key", "my-key",
                 "--instance-type", "g5.xlarge")
    assert result.code == 0, result.err
    stack = read_stack("alice", tmp_path)
    args = stack.parse().args
    assert stack.region == REGION
    assert (args.s3_bucket, args.vpc_id, args.subnet_id, args.key_name, args.access_cidr, args.instance_type) == \
        ("my-dl-bucket", account.vpc, account.subnet_1b, "my-key", f"{MY_IP}/32", "g5.xlarge")


def test_no_ip_writes_no_access_cidr_and_asks_nobody(account, checkip, tmp_path, capsys):
    result = run(capsys, tmp_path, "--stack", "alice", "--bucket", "my-dl-bucket", "--no-ip")
    assert result.code == 0, result.err
    config = written(tmp_path)
    assert "deep-learning-desktop:accessCidr" not in config and "deep-learning-desktop:keyName" not in config
    assert checkip.requests == 0
    assert "no open port" in result.out and " -m desktop connect --ssm --stack alice" in result.out


def test_an_account_without_a_default_vpc_needs_vpc(aws_env, checkip, tmp_path, capsys):
    ec2 = client("ec2")
    vpc = default_vpc(ec2)
    for subnet in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]:
        ec2.delete_subnet(SubnetId=subnet["SubnetId"])
    ec2.delete_vpc(VpcId=vpc)
    client("s3").create_bucket(Bucket="my-dl-bucket")
    result = run(capsys, tmp_path, "--stack", "alice", "--bucket", "my-dl-bucket")
    assert result.code == 2
    assert result.err.startswith(f"error: this account has no default VPC in {REGION}: pass --vpc")
    assert "create-default-vpc" in result.err
    assert not (tmp_path / "Pulumi.alice.yaml").exists()

    # A VPC of one's own, with one public subnet in a zone that offers g4dn.xlarge.
    own = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    public = ec2.create_subnet(VpcId=own, CidrBlock="10.9.1.0/24", AvailabilityZone="us-east-1c")["Subnet"]["SubnetId"]
    table = ec2.create_route_table(VpcId=own)["RouteTable"]["RouteTableId"]
    route_to_internet(ec2, own, table)
    ec2.associate_route_table(RouteTableId=table, SubnetId=public)
    result = run(capsys, tmp_path, "--stack", "alice", "--bucket", "my-dl-bucket", "--vpc", own)
    assert result.code == 0, result.err
    assert written(tmp_path)["deep-learning-desktop:subnetId"] == public


def test_a_public_subnet_only_where_the_type_is_not_offered_is_refused(aws_env, checkip, tmp_path, capsys):
    ec2 = client("ec2")
    client("s3").create_bucket(Bucket="my-dl-bucket")
    own = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    table = ec2.create_route_table(VpcId=own)["RouteTable"]["RouteTableId"]
    route_to_internet(ec2, own, table)
    in_1e = ec2.create_subnet(VpcId=own, CidrBlock="10.9.5.0/24", AvailabilityZone="us-east-1e")["Subnet"]["SubnetId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=in_1e)
    result = run(capsys, tmp_path, "--stack", "alice", "--bucket", "my-dl-bucket", "--vpc", own)
    assert result.code == 2
    assert "public subnets of" in result.err and "us-east-1e, where g4dn.xlarge is not offered" in result.err
    in_1f = ec2.create_subnet(VpcId=own, CidrBlock="10.9.6.0/24", AvailabilityZone="us-east-1f")["Subnet"]["SubnetId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=in_1f)
    result = run(capsys, tmp_path, "--stack", "alice", "--bucket", "my-dl-bucket", "--vpc", own)
    assert result.code == 0, result.err
    assert written(tmp_path)["deep-learning-desktop:subnetId"] == in_1f


def test_a_vpc_without_an_internet_route_is_refused(aws_env, checkip, tmp_path, capsys):
    client("s3").create_bucket(Bucket="my-dl-bucket")  # moto's default VPC has no internet gateway
    result = run(capsys, tmp_path, "--stack", "alice", "--bucket", "my-dl-bucket")
    assert result.code == 2
    assert "routes 0.0.0.0/0 to an internet gateway" in result.err


def test_an_existing_stack_file_is_kept_without_force(account, checkip, tmp_path, capsys):
    path = tmp_path / "Pulumi.alice.yaml"
    path.write_text("config:\n  aws:region: eu-west-1\n")
    result = run(capsys, tmp_path, "--stack", "alice", "--bucket", "my-dl-bucket")
    assert result.code == 2 and "--force" in result.err
    assert path.read_text() == "config:\n  aws:region: eu-west-1\n"
    result = run(capsys, tmp_path, "--stack", "alice", "--bucket", "my-dl-bucket", "--force")
    assert result.code == 0, result.err
    assert written(tmp_path)["aws:region"] == REGION


@pytest.mark.parametrize("argv, message", [
    (["--bucket", "no-such-bucket-here"], "--bucket no-such-bucket-here: no such S3 bucket"),
    (["--bucket", "my-dl-bucket", "--key", "lost-key"], "--key lost-key: no such key pair in us-east-1"),
    (["--bucket", "Not_A_Bucket"], "--bucket: 'Not_A_Bucket' is not valid"),
    (["--bucket", "my-dl-bucket", "--vpc", "vpc-0123456789abcdef0"], "--vpc vpc-0123456789abcdef0 does not exist"),
])
def test_what_does_not_exist_is_one_line_and_no_file(argv, message, account, checkip, tmp_path, capsys):
    result = run(capsys, tmp_path, "--stack", "alice", *argv)
    assert result.code == 2
    assert result.err.startswith(f"error: {message}") and len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "Pulumi.alice.yaml").exists()


def test_a_bucket_of_another_account_is_named_as_such(aws_env, account, checkip, tmp_path, capsys):
    # A bucket of another account answers HeadBucket with 403; here an identity that may
    # do everything but touch this bucket gets the same answer from moto.
    all_but_the_bucket = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*", "Resource": ["arn:aws:s3:::my-dl-bucket", "arn:aws:s3:::my-dl-bucket/*"]},
    ]}
    with as_iam_user(aws_env, "no-bucket", all_but_the_bucket):
        result = run(capsys, tmp_path, "--stack", "alice", "--bucket", "my-dl-bucket")
    assert result.code == 2
    assert result.err == ("error: --bucket my-dl-bucket: the bucket exists but these credentials cannot reach it "
                          "(403): it belongs to another account; name a bucket of this account\n")
    assert not (tmp_path / "Pulumi.alice.yaml").exists()


def test_an_ip_service_that_never_answers_times_out_pointing_to_no_ip(monkeypatch):
    monkeypatch.setattr(init, "CHECKIP_TIMEOUT", 0.3)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nobody answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        outcome = []
        asking = threading.Thread(target=lambda: outcome.append(_raised(init.public_ip, url)), daemon=True)
        asking.start()
        asking.join(5)
        hung = asking.is_alive()
    asking.join(5)  # closing the socket resets the connection: a hung request ends now
    assert not hung, "public_ip waited past its timeout"
    (error,) = outcome
    assert isinstance(error, CommandError) and "timed out" in str(error) and "--no-ip" in str(error)


def _raised(function, *args):
    try:
        function(*args)
    except Exception as error:  # noqa: BLE001 (the test inspects whatever it was)
        return error
    return None


def test_init_help_names_the_stack_as_its_file_does(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["init", "--help"])
    assert exit_.value.code == 0
    # "NAME" in the option is the NAME of the file it writes.
    assert "--stack NAME" in capsys.readouterr().out.replace("\n", " ")


def test_an_ip_service_answering_nonsense_points_to_no_ip(account, checkip, tmp_path, capsys):
    checkip.body = "<html>captive portal</html>"
    result = run(capsys, tmp_path, "--stack", "alice", "--bucket", "my-dl-bucket")
    assert result.code == 2 and "not an IPv4 address" in result.err and "--no-ip" in result.err
    assert not (tmp_path / "Pulumi.alice.yaml").exists()


def test_the_region_option_wins(account, checkip, tmp_path, capsys, monkeypatch):
    ec2 = client("ec2", "eu-west-1")
    vpc = default_vpc(ec2)
    main_table = ec2.describe_route_tables(Filters=[
        {"Name": "vpc-id", "Values": [vpc]}, {"Name": "association.main", "Values": ["true"]}])["RouteTables"][0]
    route_to_internet(ec2, vpc, main_table["RouteTableId"])
    result = run(capsys, tmp_path, "--stack", "alice", "--bucket", "my-dl-bucket", "--region", "eu-west-1")
    assert result.code == 0, result.err
    config = written(tmp_path)
    assert config["aws:region"] == "eu-west-1" and config["deep-learning-desktop:vpcId"] == vpc
    assert "note: bucket my-dl-bucket is in us-east-1" in result.out
