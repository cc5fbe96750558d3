"""Stack configuration: the one place where config keys, defaults and rules live.

Config flows one way: raw strings (from ``pulumi.Config`` or a ``Pulumi.<stack>.yaml``
file) are parsed into a frozen, validated :class:`DesktopArgs`. Every bad key is
reported at once in a :class:`ConfigError`, before any resource is registered.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Optional

import pulumi

PROJECT = "deep-learning-desktop"

OPEN_CIDR = "0.0.0.0/0"


class Problem(NamedTuple):
    """One bad config value: the key, the value as given, and the expected form."""

    key: str
    value: Any
    expected: str

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.key}: not set; expected {self.expected}"
        return f"{self.key}: {self.value!r} is not valid; expected {self.expected}"


class ConfigError(pulumi.RunError):
    """Raised for a bad stack configuration; lists every bad key, one line each.

    A ``pulumi.RunError`` so that ``pulumi up`` prints the message without a
    Python traceback.
    """

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"invalid stack configuration ({len(self.problems)} problem"
            f"{'' if len(self.problems) == 1 else 's'}):\n{lines}"
        )


# ---------------------------------------------------------------------------
# Rules: each a predicate on the converted value, with the expected form it checks.

_HEX_ID = r"(?:[0-9a-f]{8}|[0-9a-f]{17})"


def _aws_id(prefix: str) -> tuple[str, Callable[[str], bool]]:
    pattern = re.compile(rf"{prefix}-{_HEX_ID}")
    return (
        f"'{prefix}-' followed by 8 or 17 lowercase hex digits, e.g. {prefix}-0123456789abcdef0",
        lambda v: pattern.fullmatch(v) is not None,
    )


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4_LIKE = re.compile(r"\d+\.\d+\.\d+\.\d+")


def _valid_bucket(v: str) -> bool:
    return (
        _BUCKET.fullmatch(v) is not None
        and ".." not in v
        and ".-" not in v
        and "-." not in v
        and not _IPV4_LIKE.fullmatch(v)
        and not v.startswith(("xn--", "sthree-"))
        and not v.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3"))
    )


_SSM_NAME = re.compile(r"/[A-Za-z0-9_./-]{1,2047}")
_INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")
_MOUNT_PATH_CHARS = re.compile(r"/[A-Za-z0-9._@+=,:~-][A-Za-z0-9._@+=,:~/-]*")
MOUNT_PATH_MAX = 255


def _valid_mount_path(v: str) -> bool:
    return (
        len(v) <= MOUNT_PATH_MAX
        and _MOUNT_PATH_CHARS.fullmatch(v) is not None
        and ".." not in v
        and posixpath.normpath(v) == v
    )


def _valid_key_name(v: str) -> bool:
    return 1 <= len(v) <= 255 and all(0x20 <= ord(c) <= 0x7E for c in v)


def _valid_cidr(v: str) -> bool:
    if "/" not in v:
        return False
    try:
        ipaddress.IPv4Network(v, strict=False)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------
# The keys. Order is the order of the README table.


@dataclass(frozen=True)
class Setting:
    """One stack config key: where it comes from, what it must look like."""

    key: str
    field: str
    sample: str  # the CloudFormation sample parameter it replaces, or "(new)"
    kind: str  # "string", "boolean" or "integer"
    expected: str
    check: Callable[[Any], bool]
    description: str


def _setting(key, field, sample, kind, rule, description):
    expected, check = rule
    return Setting(key, field, sample, kind, expected, check, description)


SETTINGS: tuple[Setting, ...] = (
    _setting("s3Bucket", "s3_bucket", "S3Bucket", "string",
             ("a valid S3 bucket name: 3-63 characters of lowercase letters, digits, dots and hyphens, "
              "starting and ending with a letter or digit", _valid_bucket),
             "S3 bucket the desktop may read, write and delete in."),
    _setting("amiId", "ami_id", "DeepLearningAMIUbuntu", "string", _aws_id("ami"),
             "Deep Learning AMI id; overrides the SSM lookup. Changing it replaces the instance."),
    _setting("amiSsmParameter", "ami_ssm_parameter", "(new)", "string",
             ("an SSM parameter name starting with '/', letters, digits and _ . - /",
              lambda v: _SSM_NAME.fullmatch(v) is not None),
             "Public SSM parameter naming the AMI; its architecture segment follows the instance type."),
    _setting("vpcId", "vpc_id", "DesktopVpcId", "string", _aws_id("vpc"), "VPC of the desktop."),
    _setting("subnetId", "subnet_id", "DesktopVpcSubnetId", "string", _aws_id("subnet"),
             "Subnet of the desktop (and of the new EFS mount target)."),
    _setting("publicIp", "public_ip", "DesktopHasPublicIpAddress", "boolean",
             ("true or false", lambda v: isinstance(v, bool)),
             "Give the desktop a public IP address."),
    _setting("ebsVolumeSize", "ebs_volume_size", "EbsVolumeSize", "integer",
             ("a whole number of GiB from 200 to 16384",
              lambda v: isinstance(v, int) and not isinstance(v, bool) and 200 <= v <= 16384),
             "Root volume size in GiB."),
    _setting("ebsVolumeType", "ebs_volume_type", "EbsVolumeType", "string",
             ("gp2 or gp3", lambda v: v in ("gp2", "gp3")), "Root volume type."),
    _setting("efsFileSystemId", "efs_file_system_id", "EFSFileSystemId", "string", _aws_id("fs"),
             "Existing EFS file system (with a mount target in the subnet's zone); empty = create one."),
    _setting("efsMountPath", "efs_mount_path", "EFSMountPath", "string",
             (f"an absolute path of at most {MOUNT_PATH_MAX} characters (letters, digits and . _ - @ + = , : ~), "
              "without spaces, '..', '//' or a trailing '/', and not '/'", _valid_mount_path),
             "Where EFS is mounted on the desktop."),
    _setting("securityGroupId", "security_group_id", "DesktopSecurityGroupId", "string", _aws_id("sg"),
             "Existing security group for the desktop; empty = create one."),
    _setting("keyName", "key_name", "KeyName", "string",
             ("an EC2 key pair name of 1-255 printable ASCII characters", _valid_key_name),
             "EC2 key pair for SSH as ubuntu."),
    _setting("instanceType", "instance_type", "DesktopInstanceType", "string",
             ("an EC2 instance type of the form family.size, e.g. g4dn.xlarge",
              lambda v: _INSTANCE_TYPE.fullmatch(v) is not None),
             "EC2 instance type; any type EC2 offers."),
    _setting("accessCidr", "access_cidr", "DesktopAccessCIDR", "string",
             ("an IPv4 CIDR such as 203.0.113.7/32", _valid_cidr),
             "IPv4 range allowed to reach SSH (22) and DCV (8443)."),
    _setting("ebsOptimized", "ebs_optimized", "EBSOptimized", "boolean",
             ("true or false", lambda v: isinstance(v, bool)), "EBS-optimized instance."),
)

SETTINGS_BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}
SETTINGS_BY_FIELD: dict[str, Setting] = {s.field: s for s in SETTINGS}


@dataclass(frozen=True, kw_only=True)
class DesktopArgs:
    """Validated inputs of one desktop. Field defaults are the project's defaults.

    Constructing it validates every field (so other programs using the component
    get the same checks) and raises :class:`ConfigError` listing every bad field
    by its config key. ``access_cidr`` with host bits set is normalised.
    """

    s3_bucket: str
    vpc_id: str
    subnet_id: str
    key_name: str
    access_cidr: str
    ami_id: Optional[str] = None
    ami_ssm_parameter: str = (
        "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
    )
    public_ip: bool = True
    ebs_volume_size: int = 200
    ebs_volume_type: str = "gp3"
    efs_file_system_id: Optional[str] = None
    efs_mount_path: str = "/home/ubuntu/efs"
    security_group_id: Optional[str] = None
    instance_type: str = "g4dn.xlarge"
    ebs_optimized: bool = True

    def __post_init__(self) -> None:
        problems = []
        for setting in SETTINGS:
            value = getattr(self, setting.field)
            if value is None and _is_optional(setting):
                continue
            if not _check(setting, value):
                problems.append(Problem(setting.key, value, setting.expected))
        if problems:
            raise ConfigError(problems)
        network = ipaddress.IPv4Network(self.access_cidr, strict=False)
        object.__setattr__(self, "access_cidr", str(network))

    @property
    def warnings(self) -> list[str]:
        """What is allowed but worth a second look."""
        if self.access_cidr == OPEN_CIDR:
            return [
                f"accessCidr is {OPEN_CIDR}: SSH (22) and DCV (8443) are open to the whole internet; "
                "set your own range, e.g. `pulumi config set accessCidr 203.0.113.7/32`"
            ]
        return []


def _check(setting: Setting, value: Any) -> bool:
    try:
        return bool(setting.check(value))
    except TypeError:
        return False


_FIELDS = {f.name: f for f in dataclasses.fields(DesktopArgs)}


def _is_optional(setting: Setting) -> bool:
    return _FIELDS[setting.field].default is None


def _is_required(setting: Setting) -> bool:
    f = _FIELDS[setting.field]
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def default(key: str) -> Any:
    """The default of a config key (``dataclasses.MISSING`` when required)."""
    return _FIELDS[SETTINGS_BY_KEY[key].field].default


REQUIRED_KEYS = tuple(s.key for s in SETTINGS if _is_required(s))


# ---------------------------------------------------------------------------
# Raw config (strings) to DesktopArgs.

_BOOL_WORDS = {"true": True, "false": False}


def _convert(setting: Setting, raw: Any) -> Any:
    """Turn a raw config value into the field's type; ValueError when it is not one."""
    if setting.kind == "boolean":
        if isinstance(raw, bool):
            return raw
        word = _BOOL_WORDS.get(str(raw).lower())
        if word is None:
            raise ValueError
        return word
    if setting.kind == "integer":
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if not re.fullmatch(r"[0-9]{1,9}", str(raw)):
            raise ValueError
        return int(str(raw))
    if not isinstance(raw, str):
        raise ValueError
    return raw


class Parsed(NamedTuple):
    """Parsed config: the arguments and the warnings a person should see."""

    args: DesktopArgs
    warnings: list[str]


def parse(raw: Mapping[str, Any]) -> Parsed:
    """Parse raw config values keyed by config key (``None`` or ``""`` = not set).

    Raises :class:`ConfigError` naming every bad or missing key and every key
    this project does not know.
    """
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for key in raw:
        if key not in SETTINGS_BY_KEY:
            problems.append(Problem(key, raw[key], f"a known key ({', '.join(SETTINGS_BY_KEY)})"))
    for setting in SETTINGS:
        value = raw.get(setting.key)
        if value is None or value == "":
            if _is_required(setting):
                problems.append(Problem(
                    setting.key, None,
                    f"{setting.expected}; it is required: `pulumi config set {setting.key} VALUE`"))
            continue
        try:
            converted = _convert(setting, value)
        except ValueError:
            problems.append(Problem(setting.key, value, setting.expected))
            continue
        if not _check(setting, converted):
            problems.append(Problem(setting.key, value, setting.expected))
            continue
        values[setting.field] = converted
    if problems:
        raise ConfigError(problems)
    args = DesktopArgs(**values)
    warnings = []
    if args.access_cidr != raw["accessCidr"]:
        warnings.append(
            f"accessCidr {raw['accessCidr']!r} has host bits set; using the network {args.access_cidr!r}"
        )
    return Parsed(args, warnings + args.warnings)


def _keys_set(namespace: str) -> list[str]:
    """Every key the stack sets in ``namespace``. ``pulumi.Config`` reads one key at a time;
    the whole map is what the language host passes (``PULUMI_CONFIG``) or what was set in
    this process (mocks)."""
    every = {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    prefix = f"{namespace}:"
    return [key[len(prefix):] for key in every if key.startswith(prefix)]


def from_pulumi(config: Optional[pulumi.Config] = None) -> DesktopArgs:
    """Read the stack's config once, log its warnings, and return the arguments.

    A key of the namespace that this project does not know is an error, as in ``plan``
    and ``preflight``: a mistyped key would otherwise leave its default in place unsaid.
    """
    config = config or pulumi.Config()
    raw = {key: config.get(key) for key in _keys_set(config.name)}
    raw.update({s.key: config.get(s.key) for s in SETTINGS})
    parsed = parse(raw)
    for warning in parsed.warnings:
        pulumi.log.warn(warning)
    return parsed.args


# ---------------------------------------------------------------------------
# Stack files, for the commands that run without the Pulumi CLI.

PROJECT_DIR = Path(__file__).resolve().parent.parent


class StackConfig(NamedTuple):
    """A stack's config as read from ``Pulumi.<stack>.yaml``."""

    stack: str
    raw: dict[str, Any]  # project keys without the namespace
    other: dict[str, Any]  # every other namespaced key, e.g. {"aws:region": "us-east-1"}

    @property
    def region(self) -> Optional[str]:
        return self.other.get("aws:region") or None

    def parse(self) -> Parsed:
        return parse(self.raw)


class StackNotFound(Exception):
    """The stack file does not exist or is not a stack file."""


def read_stack(stack: str = "dev", project_dir: Optional[Path] = None) -> StackConfig:
    """Read ``Pulumi.<stack>.yaml`` as Pulumi would (without secrets)."""
    import yaml

    project_dir = Path(project_dir or PROJECT_DIR)
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", stack) or not path.is_file():
        raise StackNotFound(
            f"no stack {stack!r}: {path} does not exist; create it with "
            f"`pulumi stack init {stack}` and `pulumi config set ...`"
        )
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise StackNotFound(f"{path} is not valid YAML: {error}") from None
    config = document.get("config") or {} if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise StackNotFound(f"{path}: 'config' must be a mapping of keys to values")
    raw, other = {}, {}
    # The project's defaults and values first, then the stack's over them, as the CLI does.
    for name, value in [*_project_config(project_dir).items(), *config.items()]:
        namespace, _, key = str(name).partition(":")
        if not key:
            namespace, key = PROJECT, namespace
        if isinstance(value, dict) and "secure" in value:
            value = None  # none of our keys is a secret; an encrypted one is unreadable here
        if namespace == PROJECT:
            raw[key] = value
        else:
            other[f"{namespace}:{key}"] = value
    return StackConfig(stack, raw, other)


def _project_config(project_dir: Path) -> dict[str, Any]:
    """The ``config:`` of ``Pulumi.yaml``: each key's ``default`` or ``value`` (or bare value)."""
    import yaml

    path = project_dir / "Pulumi.yaml"
    if not path.is_file():
        return {}
    declared = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    values = {}
    for name, item in declared.items():
        if not isinstance(item, dict):
            values[name] = item
        elif "default" in item or "value" in item:
            values[name] = item.get("default", item.get("value"))
    return values
