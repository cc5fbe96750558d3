"""Run the Pulumi program offline: Pulumi mocks stand in for the engine and AWS.

Used by ``python -m desktop plan`` and by the tests. A :class:`RecordingMonitor`
records every resource registration with the options a reviewer cares about
(parent, retain-on-delete, delete-before-replace, ignore-changes, dependencies); :class:`AccountMocks`
answers the invokes (partition, region, instance type with its EFA support, SSM parameter, AMI
lookup, Capacity Block lookup) and fills in the values that only AWS (or the random provider)
knows after deploy. Secret inputs and outputs are recorded as such, so that a plan can show
them as ``[secret]``.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import re
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.config import set_all_config
from pulumi.runtime.rpc_manager import RPCManager
from pulumi.runtime.settings import SETTINGS
from pulumi.runtime.settings import get_root_resource
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from desktop.commands.stack_file import PROJECT_DIR
from desktop.partition import DNS_SUFFIX
from desktop.settings import PROJECT

ACCOUNT_ID = "123456789012"
# Graviton families have a "g" right after the generation (g5g, c7gn, x2gd, im4gn), or are a1.
GRAVITON_FAMILY = re.compile(r"[a-z]+\d+g|a1$")
# The pretend account's EFA answer: EC2 offers EFA on the large sizes of a family
# (g4dn.8xlarge and up, g5.48xlarge, p4d.24xlarge, ...), never on g4dn.xlarge. The program
# itself asks EC2 (efaSupported); this is only what the offline account says.
EFA_SIZES = {"8xlarge", "12xlarge", "16xlarge", "24xlarge", "32xlarge", "48xlarge", "metal", "metal-48xl"}


@dataclass
class Registration:
    """One resource as the program registered it."""

    type: str
    name: str
    urn: str
    id: str
    parent: str
    custom: bool
    inputs: dict
    retain_on_delete: bool
    protect: bool
    delete_before_replace: bool
    ignore_changes: list[str]
    dependencies: list[str]
    state: dict = field(default_factory=dict)
    #: Inputs the program passed as secrets (their values must never be shown).
    secret_inputs: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)  # the URNs the engine would look for in the state
    provider: str = ""  # the provider reference of a custom resource; "" = the default provider


@dataclass
class Invocation:
    token: str
    args: dict
    provider: str = ""  # the provider reference it was made with; "" = the default provider


def _placeholder(what: str) -> str:
    return f"<{what}, known after deploy>"


class AccountMocks(pulumi.runtime.Mocks):
    """A pretend AWS account: answers invokes and creates resources.

    ``placeholders=True`` makes every value AWS would choose (ids, IPs, ARNs with
    generated names, the newest AMI) a visible ``<..., known after deploy>`` text;
    otherwise they are realistic fakes derived from the resource name.
    """

    def __init__(
        self,
        *,
        partition: str = "aws",
        region: str = "us-east-1",
        placeholders: bool = False,
        architectures: Optional[Callable[[str], list[str]]] = None,
        ssm_parameters: Optional[dict[str, str]] = None,
        images: Optional[dict[str, str]] = None,
        efa_supported: Optional[Callable[[str], bool]] = None,
        capacity_blocks: Optional[dict[str, dict]] = None,
        failing_reservations: Optional[dict[str, str]] = None,
    ):
        self.partition = partition
        self.region = region
        self.placeholders = placeholders
        self.architectures = architectures or _architectures
        self.ssm_parameters = ssm_parameters
        self.images = images or {}  # AMI id -> architecture, for DescribeImages
        self.efa_supported = efa_supported or _efa_supported
        # Capacity Block id -> its attributes; any other reservation is an On-Demand one.
        self.capacity_blocks = capacity_blocks or {}
        # Reservation id -> the error its lookup ends with (denied, throttled, not found).
        self.failing_reservations = failing_reservations or {}
        self.invocations: list[Invocation] = []

    # -- invokes -----------------------------------------------------------
    def call(self, args: pulumi.runtime.MockCallArgs):
        self.invocations.append(Invocation(args.token, dict(args.args), args.provider or ""))
        token, given = args.token, args.args
        if token == "aws:index/getPartition:getPartition":
            return {"id": self.partition, "partition": self.partition,
                    "dnsSuffix": DNS_SUFFIX.get(self.partition, "amazonaws.com"),
                    "reverseDnsPrefix": "com.amazonaws"}, []
        if token == "aws:index/getRegion:getRegion":
            return {"id": self.region, "region": self.region, "name": self.region,
                    "endpoint": f"ec2.{self.region}.amazonaws.com", "description": self.region}, []
        if token == "aws:ec2/getInstanceType:getInstanceType":
            return {"id": given["instanceType"], "instanceType": given["instanceType"],
                    "supportedArchitectures": self.architectures(given["instanceType"]),
                    "efaSupported": self.efa_supported(given["instanceType"])}, []
        if token == "aws:ec2/getCapacityBlockReservation:getCapacityBlockReservation":
            wanted = given.get("id")
            if wanted in self.failing_reservations:
                # A failure the engine returns, as a provider's error reaches the program,
                # not a crash of the mock.
                return {}, [("id", self.failing_reservations[wanted])]
            block = self.capacity_blocks.get(wanted)
            if block is None:
                # The data source describes any reservation (it filters on no type): an
                # On-Demand Capacity Reservation comes back as the type "default".
                return {"id": wanted, "reservationType": "default", "endDateType": "unlimited"}, []
            return {"id": wanted, "reservationType": "capacity-block", "endDateType": "limited",
                    "endDate": "2030-01-08T11:30:00Z", **block}, []
        if token == "aws:ssm/getParameter:getParameter":
            name = given["name"]
            if self.ssm_parameters is not None:
                value = self.ssm_parameters[name]
            elif self.placeholders:
                value = _placeholder(f"newest AMI named by {name}")
            else:
                value = _fake("ami", name)
            return {"id": name, "name": name, "value": value, "insecureValue": value, "type": "String",
                    "arn": f"arn:{self.partition}:ssm:{self.region}::parameter{name}", "version": 1}, []
        if token == "aws:ec2/getAmiIds:getAmiIds":
            wanted = {f["name"]: f["values"] for f in given.get("filters") or ()}
            ids = [ami for ami, arch in self.images.items()
                   if ami in wanted.get("image-id", [ami]) and arch in wanted.get("architecture", [arch])]
            return {"id": self.region, "ids": ids, "owners": given.get("owners", [])}, []
        raise NotImplementedError(f"offline rendering has no answer for the invoke {token}")

    # -- resources ---------------------------------------------------------
    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        state = dict(args.inputs)
        kind = args.typ.split(":")[-1]
        make = (lambda what, prefix: _placeholder(what)) if self.placeholders else (
            lambda what, prefix: _fake(prefix, args.name))
        arn_base = f"arn:{self.partition}"
        account = _placeholder("account id") if self.placeholders else ACCOUNT_ID
        if args.typ == "aws:ec2/instance:Instance":
            rid = make("instance id", "i")
            public = args.inputs.get("associatePublicIpAddress")
            state.update(
                arn=f"{arn_base}:ec2:{self.region}:{account}:instance/{rid}",
                privateIp=_placeholder("private IP") if self.placeholders else "10.0.0.10",
                publicIp=(_placeholder("public IP") if self.placeholders else "198.51.100.10") if public else "",
            )
        elif args.typ == "aws:ec2/securityGroup:SecurityGroup":
            rid = make(f"security group id of {args.name}", "sg")
        elif args.typ == "aws:efs/fileSystem:FileSystem":
            rid = make("EFS file system id", "fs")
            state["dnsName"] = f"{rid}.efs.{self.region}.{DNS_SUFFIX.get(self.partition)}"
        elif args.typ == "aws:efs/mountTarget:MountTarget":
            rid = make("mount target id", "fsmt")
        elif args.typ == "random:index/randomPassword:RandomPassword":
            rid = "none"  # what the random provider gives every password
            # A plan shows a placeholder; tests get a password of the requested length.
            state["result"] = (_placeholder("generated password") if self.placeholders
                               else fake_password(args.name, int(args.inputs.get("length", 24))))
            state["bcryptHash"] = _placeholder("bcrypt hash") if self.placeholders else "$2a$10$fake"
        elif args.typ == "aws:ssm/parameter:Parameter":
            rid = args.inputs["name"]
            state.update(arn=f"{arn_base}:ssm:{self.region}:{account}:parameter{rid}", version=1,
                         tier="Standard", keyId="alias/aws/ssm")
        elif args.typ == "aws:fsx/lustreFileSystem:LustreFileSystem":
            rid = make("FSx file system id", "fs")
            state["dnsName"] = (_placeholder("FSx DNS name") if self.placeholders
                                else f"{rid}.fsx.{self.region}.{DNS_SUFFIX.get(self.partition)}")
            state["mountName"] = _placeholder("FSx mount name") if self.placeholders else "abcdef12"
        elif args.typ == "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation":
            rid = make("data repository association id", "dra")
        elif args.typ == "aws:ec2/networkInterface:NetworkInterface":
            rid = make("network interface id", "eni")
        elif args.typ == "aws:ec2/eip:Eip":
            rid = make("Elastic IP allocation id", "eipalloc")
            state["publicIp"] = _placeholder("Elastic IP") if self.placeholders else "198.51.100.20"
        elif args.typ in _ID_PREFIX:
            rid = make(f"{kind} id", _ID_PREFIX[args.typ])
        elif args.typ == "aws:s3/bucket:Bucket":
            # A bucket's id is its name: given, or the logical name and a random suffix.
            rid = args.inputs.get("bucket") or f"{args.name.lower()}-0a1b2c3"
            state.update(bucket=rid, arn=f"{arn_base}:s3:::{rid}")
        elif args.typ in ("aws:iam/role:Role", "aws:iam/instanceProfile:InstanceProfile"):
            generated = args.inputs.get("name") or (
                _placeholder(f"generated name of {args.name}") if self.placeholders else f"{args.name}-abc1234")
            rid = generated
            path = "role" if kind == "Role" else "instance-profile"
            state.update(name=generated, arn=f"{arn_base}:iam::{account}:{path}/{generated}")
        else:
            rid = make(f"{kind} id", "id")
        return rid, state


def fake_password(name: str, length: int) -> str:
    """A stand-in for a generated password: derived from the resource name, ``length`` long."""
    digest = hashlib.sha256(f"password of {name}".encode()).hexdigest()
    return ("Pw-" + digest * 4)[:length]


# Id prefixes of the network resources a program using the component may create.
_ID_PREFIX = {
    "aws:ec2/vpc:Vpc": "vpc",
    "aws:ec2/subnet:Subnet": "subnet",
    "aws:ec2/internetGateway:InternetGateway": "igw",
    "aws:ec2/routeTable:RouteTable": "rtb",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "rtbassoc",
}


def _fake(prefix: str, name: str) -> str:
    digest = hashlib.sha256(name.encode()).hexdigest()[:17]
    return f"{prefix}-{digest}"


def _efa_supported(instance_type: str) -> bool:
    return instance_type.split(".")[-1] in EFA_SIZES


def _architectures(instance_type: str) -> list[str]:
    """What EC2 says for a type: arm64 for Graviton families (``g`` after the generation)."""
    family = instance_type.split(".")[0]
    return ["arm64"] if GRAVITON_FAMILY.match(family) else ["x86_64", "i386"]


class DuplicateUrnError(Exception):
    """Two resources of one program have the same URN, which the engine refuses."""


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that records every registration with its options.

    Like the engine, and unlike Pulumi's own mock monitor, it refuses a second
    resource with a URN already registered.
    """

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.registrations: list[Registration] = []
        self._urns: set[str] = set()

    def RegisterResource(self, request):
        urn = self.make_urn(request.parent, request.type, request.name)
        if urn in self._urns:
            # The engine's own words (pulumi/pulumi, pkg/resource/deploy's GetDuplicateResourceURNError).
            raise DuplicateUrnError(f"Duplicate resource URN '{urn}'; try giving it a unique name")
        self._urns.add(urn)
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(Registration(
                type=request.type,
                name=request.name,
                urn=response.urn,
                id=response.id,
                parent=request.parent,
                custom=request.custom,
                inputs=pulumi.runtime.rpc.deserialize_properties(request.object),
                retain_on_delete=request.retainOnDelete if request.HasField("retainOnDelete") else False,
                protect=request.protect if request.HasField("protect") else False,
                delete_before_replace=request.deleteBeforeReplace,
                ignore_changes=list(request.ignoreChanges),
                dependencies=list(request.dependencies),
                state=self.resources[response.urn].state if response.urn in self.resources else {},
                secret_inputs=_secret_keys(request.object),
                aliases=[self._alias_urn(request, alias) for alias in request.aliases],
                provider=request.provider,
            ))
        return response

    def _alias_urn(self, request, alias) -> str:
        """The URN an alias names, with what it leaves out taken from the resource, as the engine does."""
        if alias.HasField("urn") or not alias.HasField("spec"):
            return alias.urn
        spec = alias.spec
        parent = "" if spec.noParent else (spec.parentUrn or request.parent)
        return self.make_urn(parent, spec.type or request.type, spec.name or request.name)


def _secret_keys(struct) -> list[str]:
    """The top-level properties of a registration that the program marked secret."""
    keys = []
    for key, value in struct.fields.items():
        if value.WhichOneof("kind") != "struct_value":
            continue
        sig = value.struct_value.fields.get(rpc._special_sig_key)
        if sig is not None and sig.string_value == rpc._special_secret_sig:
            keys.append(key)
    return keys


class _LogRecorder(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.INFO)
        self.records: list[tuple[str, str]] = []

    def emit(self, record):
        self.records.append((record.levelname.lower(), record.getMessage()))


@dataclass
class Rendering:
    """What the program did offline: resources, invokes, outputs, log lines."""

    registrations: list[Registration]
    invocations: list[Invocation]
    outputs: dict[str, Any]
    logs: list[tuple[str, str]]
    #: Names of the stack outputs that are secrets (`pulumi stack output` hides them).
    secret_outputs: set[str] = field(default_factory=set)

    @property
    def warnings(self) -> list[str]:
        return [message for level, message in self.logs if level == "warning"]

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def named(self, name: str) -> Registration:
        (found,) = [r for r in self.registrations if r.name == name]
        return found


def run(
    program: Callable[[], Any],
    *,
    config: dict[str, Any],
    stack: str = "dev",
    mocks: Optional[AccountMocks] = None,
    preview: bool = False,
) -> Rendering:
    """Run ``program`` under mocks with ``config`` (keys like ``deep-learning-desktop:s3Bucket``),
    as `pulumi up` runs it, or as its preview does (``preview=True``).

    Each call runs in a fresh context, so runs never see each other's resources.
    Exceptions of the program (a ``ConfigError`` above all) propagate.
    """
    region = config.get("aws:region") or "us-east-1"
    mocks = mocks or AccountMocks(region=region)
    # A fresh event loop too, and every loop made during the run closed afterwards: a loop
    # left open is closed by the garbage collector, at exit if not before, where it can print
    # "Exception ignored in BaseEventLoop.__del__" on stderr.
    previous_policy = asyncio.get_event_loop_policy()
    loops = _LoopKeeper()
    asyncio.set_event_loop_policy(loops)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return contextvars.Context().run(_run, program, config, stack, mocks, preview)
    finally:
        # A program that failed leaves tasks behind: cancel them and let them end, so none
        # is destroyed unawaited ("coroutine ... was never awaited").
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        # Join the executor threads first, so none of their loops is still in use.
        loop.run_until_complete(loop.shutdown_default_executor())
        asyncio.set_event_loop(None)
        loops.close_all()
        asyncio.set_event_loop_policy(previous_policy)


class _LoopKeeper(asyncio.DefaultEventLoopPolicy):
    """An event loop policy that remembers every loop it makes, so that all can be closed.

    Pulumi's mocks answer registrations in the loop's executor threads, and each of those
    threads makes a loop of its own (``pulumi.runtime.sync_await._ensure_event_loop``) that
    nothing closes.
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: list[asyncio.AbstractEventLoop] = []

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        self._made.append(loop)
        return loop

    def close_all(self) -> None:
        for loop in self._made:
            loop.close()


def _run(program, config, stack, mocks, preview=False) -> Rendering:
    monitor = RecordingMonitor(mocks)
    recorder = _LogRecorder()
    logger = logging.getLogger(f"deep-learning-desktop.offline.{id(recorder)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(recorder)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor, logger=logger)
    # The outstanding outputs and RPCs are context variables whose default is one shared
    # object, which set_mocks leaves in place: a run that failed would leave its tasks
    # (of a loop since closed) there for the next run to wait on.
    SETTINGS.outputs = set()
    SETTINGS.rpc_manager = RPCManager()
    set_all_config({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in config.items()
                    if v is not None})
    root = get_root_resource()
    _sync_await(run_pulumi_func(program))
    outputs, secrets = {}, set()
    if getattr(root, "outputs", None):
        outputs = _sync_await(pulumi.Output.all(**root.outputs).future()) or {}
        secrets = {key for key, value in root.outputs.items()
                   if _sync_await(pulumi.Output.from_input(value).is_secret())}
    logger.removeHandler(recorder)
    return Rendering(monitor.registrations, mocks.invocations, dict(outputs), recorder.records, secrets)


MAIN = PROJECT_DIR / "__main__.py"


def run_program(
    config: dict[str, Any], *, stack: str = "dev", mocks: Optional[AccountMocks] = None,
    main: Path = MAIN, preview: bool = False,
) -> Rendering:
    """Run the real ``__main__.py`` offline."""
    return run(lambda: runpy.run_path(str(main), run_name="__main__"), config=config, stack=stack, mocks=mocks,
               preview=preview)
