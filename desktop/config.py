"""Stack configuration: raw values in, a frozen, validated :class:`DesktopArgs` out.

Config flows one way: raw strings (from ``pulumi.Config`` or a ``Pulumi.<stack>.yaml``
file) are parsed into :class:`DesktopArgs`. Every bad key is reported at once in a
:class:`ConfigError`, before any resource is registered. The keys and their rules
live in :mod:`desktop.settings` and :mod:`desktop.rules`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Optional

import pulumi

from desktop.rules import MOUNT_PATH_MAX, nested
from desktop.settings import PROJECT, SETTINGS, SETTINGS_BY_FIELD, SETTINGS_BY_KEY, Setting

__all__ = [
    "MOUNT_PATH_MAX", "OPEN_CIDR", "PROJECT", "REQUIRED_KEYS", "SETTINGS", "SETTINGS_BY_FIELD", "SETTINGS_BY_KEY",
    "RESOURCE_ID_FIELDS", "ConfigError", "DesktopArgs", "Parsed", "Problem", "default", "from_pulumi", "parse",
]

OPEN_CIDR = "0.0.0.0/0"

SAGEMAKER_FULL_WARNING = (
    "sagemakerAccess is full: the desktop's role gets AWS's AmazonSageMakerFullAccess, which allows "
    "every SageMaker action on every SageMaker resource of the account (other people's jobs, models, "
    "endpoints and pipelines too), creating S3 buckets, ECR repositories and SNS topics, reading "
    "SageMaker-tagged secrets, Glue, Athena and Redshift queries; the desktop's boundary still "
    "holds (it passes only its own role, to SageMaker only; no Cognito, no IAM writes, no other "
    "Parameter Store parameters). `pulumi config rm sagemakerAccess` for the scoped default"
)


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


#: The fields that name AWS resources: a program may pass another resource's output
#: (``vpc.id``) for them as well as a literal.
RESOURCE_ID_FIELDS = ("s3_bucket", "vpc_id", "subnet_id", "efs_file_system_id", "security_group_id")


@dataclass(frozen=True, kw_only=True)
class DesktopArgs:
    """Validated inputs of one desktop. Field defaults are the project's defaults.

    Constructing it validates every field (so other programs using the component
    get the same checks) and raises :class:`ConfigError` listing every bad field
    by its config key. ``access_cidr`` with host bits set is normalised. Without
    ``access_cidr`` the desktop opens no port to any address (Session Manager only);
    without ``key_name`` it has no key pair.

    The resource ids (:data:`RESOURCE_ID_FIELDS`) also take a ``pulumi.Input``, such as
    the ``id`` of a VPC the program creates. Such a value is checked when it is known:
    the field becomes an ``Output`` whose ``apply`` raises the same :class:`ConfigError`,
    which fails the preview when the value is known then, else ``pulumi up``.
    """

    s3_bucket: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    key_name: Optional[str] = None
    access_cidr: Optional[str] = None
    ami_id: Optional[str] = None
    ami_ssm_parameter: str = (
        "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
    )
    public_ip: bool = True
    ebs_volume_size: int = 200
    ebs_volume_type: str = "gp3"
    efs_file_system_id: Optional[pulumi.Input[str]] = None
    efs_mount_path: str = "/home/ubuntu/efs"
    security_group_id: Optional[pulumi.Input[str]] = None
    instance_type: str = "g4dn.xlarge"
    ebs_optimized: bool = True
    idle_stop_minutes: int = 30
    idle_blocked_hours: int = 12
    snapshot_retain_count: int = 7
    snapshot_time: str = "05:00"
    efs_backup: bool = True
    fsx_lustre: bool = False
    fsx_storage_capacity: int = 1200
    fsx_deployment_type: str = "SCRATCH_2"
    fsx_mount_path: str = "/home/ubuntu/fsx"
    capacity_reservation_id: Optional[str] = None
    efa: bool = False
    spot: bool = False
    spot_max_price: Optional[str] = None
    budget_monthly_usd: int = 0
    budget_email: Optional[str] = None
    sagemaker_access: str = "scoped"

    def __post_init__(self) -> None:
        problems = []
        for setting in SETTINGS:
            value = getattr(self, setting.field)
            if value is None and _is_optional(setting):
                continue
            if setting.field in RESOURCE_ID_FIELDS and _known_later(value):
                checked = pulumi.Output.from_input(value).apply(functools.partial(_check_when_known, setting))
                object.__setattr__(self, setting.field, checked)
                continue
            if not _check(setting, value):
                problems.append(Problem(setting.key, value, setting.expected))
        if not problems and self.fsx_lustre and nested(self.fsx_mount_path, self.efs_mount_path):
            problems.append(Problem(
                SETTINGS_BY_FIELD["fsx_mount_path"].key, self.fsx_mount_path,
                f"a path neither equal to nor nested with efsMountPath {self.efs_mount_path!r}"))
        if not problems:
            problems += _combination_problems(self)
        if problems:
            raise ConfigError(problems)
        if self.access_cidr is not None:
            network = ipaddress.IPv4Network(self.access_cidr, strict=False)
            object.__setattr__(self, "access_cidr", str(network))

    @property
    def session_manager_only(self) -> bool:
        """No port open to any address: the desktop is reached through Session Manager."""
        return self.access_cidr is None

    @property
    def warnings(self) -> list[str]:
        """What is allowed but worth a second look."""
        warnings = []
        if self.access_cidr == OPEN_CIDR:
            warnings.append(
                f"accessCidr is {OPEN_CIDR}: SSH (22) and DCV (8443) are open to the whole internet; "
                "set your own range, e.g. `pulumi config set accessCidr 203.0.113.7/32`, or none "
                "(`pulumi config rm accessCidr`: no open port, Session Manager only)"
            )
        if self.sagemaker_access == "full":
            warnings.append(SAGEMAKER_FULL_WARNING)
        return warnings


def _combination_problems(args: "DesktopArgs") -> list[Problem]:
    """Keys that are valid alone but not together (or not alone)."""
    key = {field: SETTINGS_BY_FIELD[field].key for field in
           ("spot", "spot_max_price", "capacity_reservation_id", "budget_monthly_usd", "budget_email")}
    problems = []
    if args.spot and args.capacity_reservation_id:
        # EC2 launches into a reservation on demand (or with the capacity-block market type):
        # a Spot request cannot target one.
        problems.append(Problem(
            key["spot"], True,
            f"false while {key['capacity_reservation_id']} is set ({args.capacity_reservation_id}): a Spot "
            "desktop cannot run in a capacity reservation or Capacity Block; unset one of the two"))
    if args.spot_max_price is not None and not args.spot:
        problems.append(Problem(key["spot_max_price"], args.spot_max_price,
                                f"no value unless {key['spot']} is true (it caps the Spot price)"))
    if bool(args.budget_monthly_usd) != (args.budget_email is not None):
        # Named by the key that is set, the other one said: a budget needs both.
        given, missing = (("budget_monthly_usd", "budget_email") if args.budget_monthly_usd
                          else ("budget_email", "budget_monthly_usd"))
        problems.append(Problem(
            key[given], getattr(args, given),
            f"{SETTINGS_BY_FIELD[given].expected}, set together with {key[missing]} (a budget needs both: "
            f"`pulumi config set {key[missing]} ...`, or unset {key[given]})"))
    return problems


def _known_later(value: Any) -> bool:
    return isinstance(value, pulumi.Output) or inspect.isawaitable(value)


def _check_when_known(setting: Setting, value: Any) -> Any:
    """The value, once known, if it follows the key's rule; else the key's ConfigError.

    Given means given: an output that turns out empty is no "create one".
    """
    if value is None or not _check(setting, value):
        raise ConfigError([Problem(setting.key, value, setting.expected)])
    return value


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
    if args.access_cidr is not None and args.access_cidr != raw["accessCidr"]:
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

