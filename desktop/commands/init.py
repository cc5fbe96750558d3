"""``python -m desktop init --stack NAME``: write ``Pulumi.NAME.yaml`` from the account, so a
newcomer finds no VPC, subnet or IP by hand.

It takes the region (``--region``, else as ``pulumi up`` would choose it), the default VPC
(or ``--vpc``), a subnet of it that routes ``0.0.0.0/0`` to an internet gateway in a zone
that offers the instance type, the caller's public IP as a ``/32`` ``accessCidr`` (from
https://checkip.amazonaws.com; ``--no-ip``: no open port, Session Manager only), the
``--bucket`` (which must exist) and, with ``--key``, a key pair (which must exist). It never
overwrites a stack file without ``--force``.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import shlex
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import botocore.exceptions

from desktop.commands import aws, hints
from desktop.commands.errors import CommandError
from desktop.commands.stack_file import PROJECT_DIR, stack_path
from desktop.config import OPEN_CIDR, PROJECT, SETTINGS_BY_KEY, default

CHECKIP_URL = "https://checkip.amazonaws.com"
# Where init asks for the caller's public IP; tests point it at a local server.
CHECKIP_VARIABLE = "DESKTOP_CHECKIP_URL"
# Seconds to wait for it: a service that never answers must not hang init.
CHECKIP_TIMEOUT = 10


def _checked(key: str, option: str, value: Optional[str]) -> Optional[str]:
    """``value`` when it has the form config key ``key`` takes, else a :class:`CommandError`."""
    if value is None:
        return None
    setting = SETTINGS_BY_KEY[key]
    if not setting.check(value):
        raise CommandError(f"{option}: {value!r} is not valid; expected {setting.expected}")
    return value


def public_ip(url: Optional[str] = None) -> str:
    """The caller's public IPv4 address, as ``checkip.amazonaws.com`` sees it."""
    url = url or os.environ.get(CHECKIP_VARIABLE) or CHECKIP_URL
    try:
        with urllib.request.urlopen(url, timeout=CHECKIP_TIMEOUT) as response:
            text = response.read(100).decode("ascii", errors="replace").strip()
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise CommandError(f"cannot learn your public IP from {url} ({error}): pass --no-ip for Session "
                           "Manager only, or set accessCidr later (`pulumi config set accessCidr "
                           "203.0.113.7/32`)") from None
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise CommandError(f"{url} answered {text[:60]!r}, not an IPv4 address (accessCidr is IPv4): pass "
                           "--no-ip for Session Manager only, or set accessCidr later") from None


def _vpc(ec2, vpc_id: Optional[str], region: str) -> tuple[str, str]:
    """The VPC id and how it was chosen."""
    if vpc_id:
        try:
            ec2.describe_vpcs(VpcIds=[vpc_id])
        except botocore.exceptions.ClientError as error:
            if aws.code(error).startswith("InvalidVpcID"):
                raise CommandError(f"--vpc {vpc_id} does not exist in {region}: "
                                   f"see `aws ec2 describe-vpcs --region {region}`") from None
            raise
        return vpc_id, "--vpc"
    found = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    if not found:
        raise CommandError(f"this account has no default VPC in {region}: pass --vpc vpc-... "
                           f"(`aws ec2 describe-vpcs --region {region}`), or create the default VPC "
                           f"(`aws ec2 create-default-vpc --region {region}`)")
    return found[0]["VpcId"], "the default VPC"


def _internet_gateways(ec2, vpc_id: str, subnets: list[dict]) -> dict[str, str]:
    """Subnet id -> the internet gateway its route table sends ``0.0.0.0/0`` to, for the public ones."""
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]
    main, own = None, {}
    for table in tables:
        for association in table.get("Associations", []):
            if association.get("Main"):
                main = table
            elif association.get("SubnetId"):
                own[association["SubnetId"]] = table
    gateways = {}
    for subnet in subnets:
        table = own.get(subnet["SubnetId"], main) or {}
        for route in table.get("Routes", []):
            if (route.get("DestinationCidrBlock") == OPEN_CIDR and route.get("State", "active") == "active"
                    and str(route.get("GatewayId", "")).startswith("igw-")):
                gateways[subnet["SubnetId"]] = route["GatewayId"]
    return gateways


def _subnet(ec2, vpc_id: str, instance_type: str, region: str) -> tuple[dict, str]:
    """A subnet of the VPC with an internet route, in a zone that offers the type, and its gateway."""
    offered = {o["Location"] for o in ec2.describe_instance_type_offerings(
        LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": [instance_type]}])["InstanceTypeOfferings"]}
    if not offered:
        raise CommandError(f"instance type {instance_type} is not offered in any zone of {region}: "
                           "pass another --instance-type or --region")
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    gateways = _internet_gateways(ec2, vpc_id, subnets)
    public = [s for s in subnets if s["SubnetId"] in gateways and s.get("State", "available") == "available"]
    if not public:
        raise CommandError(f"no subnet of {vpc_id} routes {OPEN_CIDR} to an internet gateway, which the first "
                           "boot needs for its downloads: pass --vpc with a public subnet, or add the route "
                           f"(`aws ec2 create-route --route-table-id rtb-... --destination-cidr-block {OPEN_CIDR} "
                           "--gateway-id igw-...`)")
    fitting = sorted((s for s in public if s["AvailabilityZone"] in offered),
                     key=lambda s: (s["AvailabilityZone"], s["SubnetId"]))
    if not fitting:
        zones = ", ".join(sorted({s["AvailabilityZone"] for s in public}))
        raise CommandError(f"the public subnets of {vpc_id} are in {zones}, where {instance_type} is not "
                           f"offered (it is in {', '.join(sorted(offered))}): pass another --instance-type, "
                           "or --vpc with a public subnet in one of those zones")
    chosen = fitting[0]
    return chosen, gateways[chosen["SubnetId"]]


def _check_bucket(session: aws.Aws, bucket: str, out) -> None:
    try:
        response = session.client("s3").head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as error:
        status = aws.code(error)
        if status in ("404", "NoSuchBucket", "NotFound"):
            raise CommandError(f"--bucket {bucket}: no such S3 bucket: create it "
                               f"(`aws s3 mb s3://{bucket} --region {session.region}`) or name another") from None
        if status in ("403", "AccessDenied"):
            raise CommandError(f"--bucket {bucket}: the bucket exists but these credentials cannot reach it "
                               "(403): it belongs to another account; name a bucket of this account") from None
        raise
    # botocore reads it from the x-amz-bucket-region header.
    bucket_region = response.get("BucketRegion")
    if bucket_region and bucket_region != session.region:
        print(f"note: bucket {bucket} is in {bucket_region}, the desktop will be in {session.region}: "
              "transfers cross regions (slower, billed)", file=out)


def _check_key(ec2, key: str, region: str) -> None:
    try:
        ec2.describe_key_pairs(KeyNames=[key])
    except botocore.exceptions.ClientError as error:
        if aws.code(error) == "InvalidKeyPair.NotFound":
            raise CommandError(f"--key {key}: no such key pair in {region}: import yours (`aws ec2 "
                               f"import-key-pair --key-name {key} --public-key-material "
                               f"fileb://~/.ssh/id_ed25519.pub --region {region}`), or leave --key out "
                               "and use `python -m desktop shell`") from None
        raise


def stack_document(values: dict[str, str], provider: dict[str, str], header: list[str]) -> str:
    """The text of a stack file: comment lines, then ``config:`` with the provider's keys and ours."""
    import yaml

    config = {**provider, **{f"{PROJECT}:{key}": value for key, value in values.items()}}
    body = yaml.safe_dump({"config": config}, sort_keys=False, default_flow_style=False)
    return "".join(f"# {line}\n" for line in header) + body


def init(args: argparse.Namespace, out=None) -> int:
    """Write the stack file of ``args.stack`` from the account; 0 when written."""
    out = out or sys.stdout
    stack = args.stack
    path = stack_path(stack, args.project_dir)  # refuses a name Pulumi or the component would refuse
    if path.exists() and not args.force:
        raise CommandError(f"{path} exists: init does not overwrite it; pass --force to replace it, "
                           "or pick another --stack")
    bucket = _checked("s3Bucket", "--bucket", args.bucket)
    key = _checked("keyName", "--key", args.key)
    vpc_id = _checked("vpcId", "--vpc", args.vpc)
    instance_type = _checked("instanceType", "--instance-type", args.instance_type) or default("instanceType")
    cidr = None if args.no_ip else f"{public_ip()}/32"

    try:
        session = aws.Aws(settings=aws.AccountSettings(region=args.region, profile=args.profile))
    except CommandError as error:
        if str(error) != aws.NO_REGION:
            raise
        raise CommandError("no AWS region: pass --region (e.g. --region us-east-1; init writes it to the stack "
                           "file as aws:region), or set AWS_REGION") from None
    region = session.region
    with aws.errors():
        caller = session.client("sts").get_caller_identity()
        print(f"account {caller['Account']} as {caller['Arn']}; region {region} "
              f"({'--region' if args.region else session.region_source})", file=out)
        ec2 = session.client("ec2")
        vpc_id, vpc_source = _vpc(ec2, vpc_id, region)
        subnet, gateway = _subnet(ec2, vpc_id, instance_type, region)
        _check_bucket(session, bucket, out)
        if key:
            _check_key(ec2, key, region)

    values = {"s3Bucket": bucket, "vpcId": vpc_id, "subnetId": subnet["SubnetId"]}
    if cidr:
        values["accessCidr"] = cidr
    if key:
        values["keyName"] = key
    if args.instance_type:
        values["instanceType"] = instance_type
    provider = {"aws:region": region}
    if args.profile:
        provider["aws:profile"] = args.profile
    today = datetime.date.today().isoformat()
    header = [f"Written by `python -m desktop init` on {today} from account {caller['Account']} ({region}).",
              f"Check it with `{hints.command('preflight', stack=stack, project_dir=args.project_dir, always_stack=True)}`; "
              "change a value with `pulumi config set KEY VALUE`."]
    path.write_text(stack_document(values, provider, header))

    print(f"wrote {path}:", file=out)
    print(f"  region      {region}", file=out)
    print(f"  vpcId       {vpc_id} ({vpc_source})", file=out)
    print(f"  subnetId    {subnet['SubnetId']} ({subnet['AvailabilityZone']}, routes {OPEN_CIDR} to "
          f"{gateway}; offers {instance_type})", file=out)
    if cidr:
        print(f"  accessCidr  {cidr} (your public IP): DCV (8443) and SSH (22) open to it alone", file=out)
    else:
        print("  accessCidr  none (--no-ip): no open port; reach the desktop through Session Manager", file=out)
    print(f"  keyName     {key}" if key else "  keyName     none: open a shell with `python -m desktop shell`",
          file=out)
    print(f"  s3Bucket    {bucket}", file=out)
    connect = "connect --ssm" if not cidr else "connect"
    print("next:", file=out)
    def ours(name: str) -> str:
        return hints.command(name, stack=stack, project_dir=args.project_dir, always_stack=True)

    quoted = shlex.quote(stack)
    for line in (f"pulumi stack init {quoted}            # once; it keeps this file",
                 ours("preflight"),
                 f"pulumi up --stack {quoted}",
                 ours("wait"),
                 ours(connect) + ("    # or `connect --ssm`: no open port needed" if cidr else ""),
                 f"pulumi stack output DcvPassword --show-secrets --stack {quoted}   # log in to DCV as ubuntu"):
        print(f"  {line}", file=out)
    return 0


def register(subparsers) -> None:
    """Add ``init`` to the ``python -m desktop`` parser."""
    parser = subparsers.add_parser(
        "init", help="write Pulumi.<stack>.yaml from your account (VPC, subnet, your IP)",
        description="Write Pulumi.<NAME>.yaml from the account: the region, the default VPC (or --vpc), a "
                    "subnet of it that routes 0.0.0.0/0 to an internet gateway in a zone offering the "
                    f"instance type, your public IP as a /32 accessCidr (asked of {CHECKIP_URL}; "
                    f"{CHECKIP_VARIABLE} overrides the address), the bucket (which must exist) and, with --key, "
                    "a key pair. Never overwrites an existing stack file without --force. Prints the "
                    "commands that follow. " + aws.SETTINGS_HELP)
    parser.add_argument("--stack", required=True, metavar="NAME", help="the stack to write Pulumi.<NAME>.yaml for")
    parser.add_argument("--bucket", required=True, metavar="NAME",
                        help="the S3 bucket the desktop may use (s3Bucket); it must exist")
    parser.add_argument("--key", metavar="NAME",
                        help="an EC2 key pair for SSH (keyName); without it, shell through Session Manager")
    parser.add_argument("--vpc", metavar="ID", help="the VPC (default: the account's default VPC)")
    parser.add_argument("--instance-type", metavar="TYPE",
                        help=f"the instance type the subnet's zone must offer (default: {default('instanceType')})")
    parser.add_argument("--no-ip", action="store_true",
                        help="no accessCidr: no open port, reach the desktop through Session Manager only")
    parser.add_argument("--region", metavar="REGION",
                        help="the region (aws:region; default: AWS_REGION, AWS_DEFAULT_REGION, the profile's)")
    parser.add_argument("--profile", metavar="NAME", help="the AWS profile to use and to write as aws:profile")
    parser.add_argument("--force", action="store_true", help="overwrite an existing stack file")
    parser.add_argument("--project-dir", type=Path, default=PROJECT_DIR, metavar="DIR",
                        help="directory of Pulumi.yaml and the stack files (default: this project)")
    parser.set_defaults(run=lambda args: init(args))
