"""A moto server on 127.0.0.1 and an AWS account seeded for a desktop.

The commands under test reach moto through ``AWS_ENDPOINT_URL``, as a person's
commands reach AWS. moto's server runs in this process, so where moto cannot
express a state (the Deep Learning AMI's public SSM parameters, EC2 vCPU quotas,
an instance's console output) the helpers below set it in moto's backend directly.

Import the fixtures into a test module: ``from tests.moto_account import aws_env`` (the server itself,
``moto_server``, is one per test process: tests/conftest.py provides it).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import http.server
import json
import threading
import urllib.request
from dataclasses import dataclass, field
from typing import Optional

import boto3
import botocore.retries.standard
import botocore.session
import pytest
from moto.backends import get_backend, list_of_moto_modules
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.utils import method_names_from_class
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
ZONE = "us-east-1a"
ACCOUNT = DEFAULT_ACCOUNT_ID
MY_CIDR = "203.0.113.7/32"
DLAMI_PARAMETER = "/aws/service/deeplearning/ami/{arch}/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
G_AND_VT = "L-DB2E81BA"


@pytest.fixture(scope="session")
def moto_server():
    """One moto server for the whole session, on a free port of 127.0.0.1."""
    from moto.servicequotas.responses import ServiceQuotasResponse

    # moto 5.2.5 does not implement GetAWSDefaultServiceQuota (it answers 500, which
    # botocore retries); answer it as GetServiceQuota does.
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(ServiceQuotasResponse, "get_aws_default_service_quota",
                            ServiceQuotasResponse.get_service_quota, raising=False)
        # moto's EC2 backend loads its thousands of sample AMIs at every reset (a sixth of
        # the moto tests' CPU); the desktop's images are the ones a test registers
        # (add_image), so the samples are left out.
        monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        # CreateKeyPair makes a new 2048-bit RSA key, and every seeded account creates one:
        # one key, made once, serves them all (nothing reads a key pair's material).
        from moto.ec2.models import key_pairs

        monkeypatch.setattr(key_pairs, "random_rsa_key_pair", functools.lru_cache(maxsize=None)(
            key_pairs.random_rsa_key_pair))
        # moto's server finds each request's service by listing moto's own package folder
        # (list_of_moto_modules: a stat of each of its 150-odd folders, every request), and each
        # response class's methods by inspecting the class (method_names_from_class, every
        # request): a third of the server's CPU. Neither changes while the server runs; a test
        # that adds a method to a response class does it before the server starts, as above.
        from moto import backends
        from moto.core import responses

        monkeypatch.setattr(backends, "list_of_moto_modules",
                            functools.lru_cache(maxsize=None)(lambda: tuple(_moto_modules())))
        monkeypatch.setattr(responses, "method_names_from_class", functools.lru_cache(maxsize=None)(
            lambda clazz: frozenset(_method_names_from_class(clazz))))
        # A short poll, as the other local servers here: stopping waits for the loop to look,
        # and every test module that imports this fixture has its own server to stop at the end.
        from werkzeug.serving import BaseWSGIServer

        monkeypatch.setattr(BaseWSGIServer, "serve_forever",
                            functools.partialmethod(BaseWSGIServer.serve_forever, poll_interval=0.05))
        # moto 5.2.5 has no Price List API: it answered every GetProducts with a 500, which
        # the commands' clients retried with backoff (most of preflight's time), and the price
        # was always "unknown". The pretend account answers it (PriceListApp, below).
        from moto.moto_server import threaded_moto_server

        monkeypatch.setattr(threaded_moto_server, "DomainDispatcherApplication", PriceListApp)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
        server.stop()


# ---------------------------------------------------------------------------
# The Price List API (``pricing``), which moto lacks, served on moto's own endpoint: a
# client pointed at AWS_ENDPOINT_URL reaches it as it reaches EC2.

def price_item(attributes: dict, unit: str, usd: str, product_family: str) -> str:
    """One PriceList entry as GetProducts returns it: a JSON document in a string, with an
    on-demand and a reserved term (only the on-demand one is the desktop's price)."""
    sku = "JRTCKXETXFAKESKU"
    return json.dumps({
        "product": {"productFamily": product_family, "attributes": attributes, "sku": sku},
        "serviceCode": "AmazonEC2",
        "terms": {
            "OnDemand": {f"{sku}.JRTCKXETXF": {
                "priceDimensions": {f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                    "unit": unit, "endRange": "Inf", "description": f"${usd} per {unit}", "appliesTo": [],
                    "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7", "beginRange": "0", "pricePerUnit": {"USD": usd}}},
                "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z", "offerTermCode": "JRTCKXETXF",
                "termAttributes": {}}},
            "Reserved": {f"{sku}.4NA7Y494T4": {
                "priceDimensions": {f"{sku}.4NA7Y494T4.6YS6EN2CT7": {
                    "unit": unit, "description": "reserved", "appliesTo": [], "beginRange": "0", "endRange": "Inf",
                    "rateCode": f"{sku}.4NA7Y494T4.6YS6EN2CT7", "pricePerUnit": {"USD": "0.3310000000"}}},
                "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z", "offerTermCode": "4NA7Y494T4",
                "termAttributes": {"LeaseContractLength": "1yr", "OfferingClass": "standard",
                                   "PurchaseOption": "No Upfront"}}},
        },
        "version": "20261120000000",
        "publicationDate": "2026-11-20T00:00:00Z",
    })


G4DN_XLARGE = {"instanceType": "g4dn.xlarge", "regionCode": REGION, "operatingSystem": "Linux", "tenancy": "Shared",
               "preInstalledSw": "NA", "capacitystatus": "Used", "licenseModel": "No License required",
               "location": "US East (N. Virginia)", "vcpu": "4", "memory": "16 GiB", "gpu": "1"}
GP3_STORAGE = {"volumeApiName": "gp3", "regionCode": REGION, "location": "US East (N. Virginia)",
               "storageMedia": "SSD-backed", "volumeType": "General Purpose"}
# The account's price list: AWS's list prices of us-east-1 (aws.amazon.com/ec2/pricing,
# aws.amazon.com/ebs/pricing). A query that matches none of these gets an empty list, as
# GetProducts answers for a type or region it does not price.
PRICE_LIST = [
    ("AmazonEC2", "Compute Instance", G4DN_XLARGE, "Hrs", "0.5260000000"),
    # The same type on Windows: a query that leaves out operatingSystem would see two prices.
    ("AmazonEC2", "Compute Instance", {**G4DN_XLARGE, "operatingSystem": "Windows"}, "Hrs", "0.7100000000"),
    ("AmazonEC2", "Storage", GP3_STORAGE, "GB-Mo", "0.0800000000"),
]


def get_products(query: dict) -> dict:
    """GetProducts on PRICE_LIST: TERM_MATCH filters on the product's attributes (and its
    productFamily), every filter matching."""
    wanted = {f["Field"]: f["Value"] for f in query.get("Filters", []) if f.get("Type") == "TERM_MATCH"}
    found = [price_item(attributes, unit, usd, family)
             for service, family, attributes, unit, usd in PRICE_LIST
             if service == query.get("ServiceCode")
             and all({**attributes, "productFamily": family}.get(k) == v for k, v in wanted.items())]
    return {"FormatVersion": query.get("FormatVersion", "aws_v1"), "PriceList": found[:query.get("MaxResults", 100)]}


class PriceListApp(DomainDispatcherApplication):
    """moto's WSGI application, which also answers the Price List API's GetProducts (JSON 1.1,
    ``X-Amz-Target: AWSPriceListService.<operation>``)."""

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("AWSPriceListService."):
            return super().__call__(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if target == "AWSPriceListService.GetProducts":
            status, reply = "200 OK", get_products(json.loads(body or b"{}"))
        else:
            status, reply = "400 Bad Request", {"__type": "UnknownOperationException",
                                                "message": f"the pretend account has no {target}"}
        data = json.dumps(reply).encode()
        start_response(status, [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(data)))])
        return [data]


_moto_modules = list_of_moto_modules
_method_names_from_class = method_names_from_class


def reset_moto(url: str) -> None:
    """Empty every moto backend, through moto's own API."""
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()


def enforce_iam(url: str, enforce: bool) -> None:
    """Make moto check IAM permissions (off by default), through moto's own API."""
    data = b"0" if enforce else b"inf"
    request = urllib.request.Request(f"{url}/moto-api/reset-auth", data=data, method="POST",
                                     headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(request, timeout=10).close()


@contextlib.contextmanager
def as_iam_user(url: str, name: str, policy: Optional[dict] = None):
    """Run the block as a new IAM user (with ``policy`` inline, if any) while moto checks IAM."""
    iam = client("iam")
    iam.create_user(UserName=name)
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        enforce_iam(url, True)
        try:
            yield
        finally:
            enforce_iam(url, False)


def use_moto(monkeypatch, url: str, tmp_path) -> None:
    """Point AWS at moto the way a person points it at AWS: through the environment."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    # Never read the machine's own AWS files, never ask the instance metadata service.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def moto_module(moto_server, tmp_path_factory):
    """A fresh moto account shared by the tests of one module (seed it once)."""
    reset_moto(moto_server)
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_moto(monkeypatch, moto_server, tmp_path_factory.mktemp("aws"))
        yield moto_server


@pytest.fixture
def aws_env(moto_server, monkeypatch, tmp_path):
    """A fresh moto account for one test."""
    reset_moto(moto_server)
    use_moto(monkeypatch, moto_server, tmp_path)
    return moto_server


class Throttled(http.server.BaseHTTPRequestHandler):
    """An AWS endpoint that throttles every request, as EC2 and STS do under load
    (moto never throttles). It answers in the XML both EC2 and STS use for errors."""

    requests: list[str] = []

    def do_POST(self):  # noqa: N802 (the name http.server calls)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        action = dict(pair.partition("=")[::2] for pair in body.split("&")).get("Action", "?")
        type(self).requests.append(action)
        reply = (b"<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
                 b"<Message>Request limit exceeded.</Message></Error></Errors>"
                 b"<RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>")
        self.send_response(503)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@dataclass
class ThrottlingEndpoint:
    url: str
    requests: list[str]  # the action of every request, retries included


@pytest.fixture
def throttling_endpoint(monkeypatch):
    """A local endpoint that throttles everything. Point ``AWS_ENDPOINT_URL`` at its
    ``url``; botocore still retries, but with no wait between tries."""
    class Handler(Throttled):
        requests = []

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)
    yield ThrottlingEndpoint(url="http://127.0.0.1:%d" % server.server_address[1], requests=Handler.requests)
    server.shutdown()
    server.server_close()


def on_every_session(monkeypatch, event: str, handler) -> None:
    """Register a botocore event handler on every session made from now on (the commands
    make their own); chains onto any earlier such patch."""
    made = botocore.session.get_session

    def session():
        core = made()
        core.register(event, handler)
        return core

    monkeypatch.setattr(botocore.session, "get_session", session)


def edit_described_instances(monkeypatch, edit) -> None:
    """Call ``edit`` on each instance of EC2's DescribeInstances answers: what moto's
    instances cannot say (a boot mode, an empty DNS name, another root device)."""
    def each(parsed, **_):
        for reservation in parsed.get("Reservations", []):
            for instance in reservation["Instances"]:
                edit(instance)

    on_every_session(monkeypatch, "after-call.ec2.DescribeInstances", each)


def client(service: str, region: str = REGION):
    return boto3.client(service, region_name=region)


# ---------------------------------------------------------------------------
# States moto cannot express through its API, set in its in-process backend.

def backend(service: str, region: str = REGION):
    return get_backend(service)[ACCOUNT][region]


def add_image(architecture: str, region: str = REGION, state: str = "available") -> str:
    """Register an AMI of ``architecture``: moto's RegisterImage takes no architecture."""
    from moto.ec2.models.amis import Ami
    from moto.ec2.utils import random_ami_id

    ec2 = backend("ec2", region)
    ami = Ami(ec2, random_ami_id(), name=f"Deep Learning Base OSS Nvidia Driver GPU AMI ({architecture})",
              architecture=architecture, state=state, public=True, owner_alias="amazon",
              virtualization_type="hvm", root_device_type="ebs")
    ec2.amis[ami.id] = ami
    return ami.id


def put_public_parameter(name: str, value: str, region: str = REGION) -> None:
    """Seed a public ``/aws/service/...`` parameter: moto ships none of the DLAMI ones and
    refuses PutParameter under ``/aws``."""
    from moto.ssm.models import Parameter

    ssm = backend("ssm", region)
    ssm._parameters[name].append(Parameter(
        account_id="aws", name=name, value=value, parameter_type="String", description=None,
        allowed_pattern=None, keyid=None, last_modified_date=datetime.datetime.now(datetime.timezone.utc),
        version=1, data_type="aws:ec2:image",
    ))


def set_ec2_quota(code: str, value: float, region: str = REGION) -> None:
    """Give the account an EC2 quota: moto's Service Quotas knows only VPC quotas."""
    quotas = backend("service-quotas", region)
    original = quotas.get_service_quota
    known = dict(getattr(quotas, "_seeded_quotas", {}))
    known[code] = value

    def get_service_quota(service_code: str, quota_code: str):
        if service_code == "ec2" and quota_code in known:
            return {"ServiceCode": "ec2", "QuotaCode": quota_code, "QuotaName": quota_code,
                    "Value": known[quota_code], "Unit": "None", "Adjustable": True}
        return original(service_code=service_code, quota_code=quota_code)

    # The backend object is replaced on every moto reset, and this patch with it.
    quotas._seeded_quotas = known
    quotas.get_service_quota = get_service_quota


# ---------------------------------------------------------------------------
# A good account: everything a desktop needs, as preflight expects it.

@dataclass
class Account:
    """Ids of a seeded account and the stack config that fits it."""

    vpc_id: str
    subnet_id: str
    route_table_id: str
    igw_id: str
    security_group_id: str
    efs_id: str
    images: dict[str, str]
    config: dict[str, object] = field(default_factory=dict)


def seed_good_account(region: str = REGION, zone: str = ZONE, instance_type: str = "g4dn.xlarge",
                      quota: Optional[float] = 8) -> Account:
    """An account where every preflight check passes for the returned ``config``."""
    ec2 = client("ec2", region)
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    # A new VPC has DNS hostnames off (as in EC2); mounting EFS by name needs them on.
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.1.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
    igw_id = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
    table_id = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table_id, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw_id)
    ec2.associate_route_table(RouteTableId=table_id, SubnetId=subnet_id)
    ec2.create_key_pair(KeyName="my-key")
    group_id = ec2.create_security_group(GroupName="desktop", Description="desktop", VpcId=vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "203.0.113.0/24"}]},
        {"IpProtocol": "tcp", "FromPort": 8443, "ToPort": 8443, "IpRanges": [{"CidrIp": "203.0.113.0/24"}]},
        {"IpProtocol": "udp", "FromPort": 8443, "ToPort": 8443, "IpRanges": [{"CidrIp": "203.0.113.0/24"}]},
    ])
    s3 = client("s3", region)
    if region == "us-east-1":
        s3.create_bucket(Bucket="my-dl-bucket")
    else:
        s3.create_bucket(Bucket="my-dl-bucket", CreateBucketConfiguration={"LocationConstraint": region})
    efs = client("efs", region)
    # With AWS Backup's automatic backups, as a well-kept given file system has them.
    efs_id = efs.create_file_system(CreationToken="desktop", Encrypted=True, Backup=True)["FileSystemId"]
    # Its mount target admits NFS from the desktop's group, as a given EFS must.
    nfs_group = ec2.create_security_group(GroupName="efs-nfs", Description="nfs", VpcId=vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=nfs_group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 2049, "ToPort": 2049, "UserIdGroupPairs": [{"GroupId": group_id}]}])
    efs.create_mount_target(FileSystemId=efs_id, SubnetId=subnet_id, SecurityGroups=[nfs_group])
    images = {arch: add_image(arch, region) for arch in ("x86_64", "arm64")}
    for arch, image_id in images.items():
        put_public_parameter(DLAMI_PARAMETER.format(arch=arch), image_id, region)
    if quota is not None:
        set_ec2_quota(G_AND_VT, quota, region)
    config = {
        "s3Bucket": "my-dl-bucket",
        "vpcId": vpc_id,
        "subnetId": subnet_id,
        "keyName": "my-key",
        "accessCidr": MY_CIDR,
        "instanceType": instance_type,
        "securityGroupId": group_id,
        "efsFileSystemId": efs_id,
    }
    return Account(vpc_id, subnet_id, table_id, igw_id, group_id, efs_id, images, config)


def write_stack(project_dir, config: dict, stack: str = "test", region: Optional[str] = REGION) -> str:
    """Write ``Pulumi.<stack>.yaml`` with the project's keys (and ``aws:region``)."""
    import yaml

    document = {f"deep-learning-desktop:{key}": value for key, value in config.items() if value is not None}
    if region:
        document["aws:region"] = region
    (project_dir / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": document}))
    return stack


# ---------------------------------------------------------------------------
# An instance's serial console: moto answers GetConsoleOutput with one fixed text.

def set_console(instance_id: str, text: str, region: str = REGION) -> None:
    """What GetConsoleOutput returns for the instance (needs the ``console`` fixture)."""
    backend("ec2", region).get_instance(instance_id).console_text = text


@pytest.fixture
def console(monkeypatch):
    """Let tests set an instance's console output in moto's backend (``set_console``):
    moto 5.2.5 returns the same sample text for every instance."""
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.ec2.responses import general
    from moto.ec2.utils import Base64EncodedString

    def get_console_output(self):
        instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
        text = getattr(instance, "console_text", general.SAMPLE_CONSOLE_OUTPUT)
        return ActionResult({"InstanceId": instance.id, "Timestamp": utcnow(),
                             "Output": Base64EncodedString.from_raw_string(text)})

    monkeypatch.setattr(general.General, "get_console_output", get_console_output)
    return set_console


def set_state(instance_id: str, state: str, region: str = REGION) -> None:
    """Put an instance in a state moto passes through instantly (e.g. ``pending``)."""
    from moto.ec2.models.instances import InstanceState

    codes = {"pending": 0, "running": 16, "stopping": 64, "stopped": 80}
    backend("ec2", region).get_instance(instance_id)._state = InstanceState(state, codes[state])
