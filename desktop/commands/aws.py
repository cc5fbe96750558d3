"""boto3 for the ``python -m desktop`` commands: one session, retrying clients, and
AWS errors turned into one clear line (:class:`~desktop.commands.errors.CommandError`).

The commands act on the account ``pulumi up`` acts on: the stack's ``aws:profile`` and
``aws:assumeRoles`` (:class:`AccountSettings`), else boto3's own chain (``AWS_PROFILE``,
the environment, SSO). ``AWS_ENDPOINT_URL`` is honoured. The region is chosen as
``pulumi up`` chooses it: the stack's ``aws:region``, else ``AWS_REGION`` (which boto3
ignores), else ``AWS_DEFAULT_REGION``, else the profile's.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional

import boto3
import botocore.config
import botocore.exceptions
import botocore.parsers

from desktop.commands.errors import CommandError

# Standard retries back off on throttling and transient errors; what still fails
# after six tries in all (about 30 s of backoff at most) is reported, not retried forever.
CLIENT_CONFIG = botocore.config.Config(
    retries={"mode": "standard", "total_max_attempts": 6},
    connect_timeout=10,
    read_timeout=30,
)

# Codes that mean "this identity may not do that" rather than "that does not exist".
ACCESS_DENIED = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess",
    "AuthFailure", "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException",
    "SignatureDoesNotMatch", "UnrecognizedClientException", "OptInRequired",
})
THROTTLED = frozenset({
    "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
    "SlowDown", "RequestThrottled",
})


# What every command's --help says about the AWS settings it honours.
SETTINGS_HELP = ("Acts on the account `pulumi up` uses: the stack's aws:profile (else AWS_PROFILE) and "
                 "aws:assumeRoles; honours AWS_ENDPOINT_URL. The region is the stack's aws:region, "
                 "else AWS_REGION, else AWS_DEFAULT_REGION, else the profile's, as for `pulumi up`.")

NO_REGION = "no AWS region: set the stack's region (`pulumi config set aws:region us-east-1`) or AWS_REGION"

# Errors that mean the credentials themselves are missing or unusable: no command can go on.
CREDENTIAL_ERRORS = (
    botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError,
    botocore.exceptions.CredentialRetrievalError, botocore.exceptions.TokenRetrievalError,
    botocore.exceptions.SSOError, botocore.exceptions.ProfileNotFound, botocore.exceptions.NoRegionError,
)


# Every way an AWS call can fail. An answer botocore cannot parse (an HTML error page from a
# proxy, a truncated body) raises ResponseParserError, which is no BotoCoreError.
AWS_FAILURES = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError,
                botocore.parsers.ResponseParserError)


def region_choice(stack_region: Optional[str]) -> tuple[Optional[str], str]:
    """The region given to boto3 and where it comes from, before the profile is asked."""
    if stack_region:
        return stack_region, "the stack's aws:region"
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(variable):
            return os.environ[variable], variable
    return None, "the AWS profile"


# ---------------------------------------------------------------------------
# The provider's own account settings, as pulumi-aws v7 reads them from the stack.

_GO_DURATION = re.compile(r"(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?")


def _duration_seconds(value: Any, where: str) -> int:
    """Seconds of a provider duration: ``duration`` is Go's form (``1h``, ``30m``, ``3600s``);
    the provider's credential check also reads ``durationSeconds`` (a bare number is seconds)."""
    text = str(value).strip()
    if re.fullmatch(r"\d+", text):
        text += "s"
    match = _GO_DURATION.fullmatch(text)
    if not text or not match or not any(match.groupdict().values()):
        raise CommandError(f"{where}: {value!r} is not a duration; expected e.g. 1h, 30m or 3600s")
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    return int(parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0))


@dataclass(frozen=True)
class AssumeRole:
    """One hop of ``aws:assumeRoles``: the keyword arguments of STS AssumeRole."""

    role_arn: str
    arguments: dict

    @classmethod
    def from_config(cls, item: Any, index: int) -> "AssumeRole":
        where = f"aws:assumeRoles[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("roleArn"), str) or not item["roleArn"]:
            raise CommandError(f"{where} must be a mapping with a roleArn, e.g. "
                               "`- roleArn: arn:aws:iam::123456789012:role/deployer`")
        arguments: dict[str, Any] = {
            "RoleArn": item["roleArn"],
            # The provider's SDK names an unnamed session itself; this name says who it was.
            "RoleSessionName": item.get("sessionName") or f"deep-learning-desktop-{int(time.time())}",
        }
        for key, name in (("externalId", "ExternalId"), ("policy", "Policy"), ("sourceIdentity", "SourceIdentity")):
            if item.get(key):
                arguments[name] = str(item[key])
        if item.get("policyArns"):
            arguments["PolicyArns"] = [{"arn": str(arn)} for arn in item["policyArns"]]
        if item.get("tags"):
            arguments["Tags"] = [{"Key": str(k), "Value": str(v)} for k, v in dict(item["tags"]).items()]
        if item.get("transitiveTagKeys"):
            arguments["TransitiveTagKeys"] = [str(k) for k in item["transitiveTagKeys"]]
        for key in ("duration", "durationSeconds"):
            if item.get(key) not in (None, ""):
                arguments["DurationSeconds"] = _duration_seconds(item[key], f"{where}.{key}")
        return cls(item["roleArn"], arguments)


@dataclass(frozen=True)
class AccountSettings:
    """Which account and region a command acts on: the stack's provider settings."""

    region: Optional[str] = None
    profile: Optional[str] = None
    assume_roles: tuple[AssumeRole, ...] = ()

    @classmethod
    def from_stack(cls, other: Mapping[str, Any]) -> "AccountSettings":
        """From the stack file's non-project keys (:attr:`StackConfig.other`)."""
        if other.get("aws:assumeRole") is not None:
            # pulumi-aws v7 refuses the singular key with this very message.
            raise CommandError("invalid config key 'aws:assumeRole', should be 'aws:assumeRoles' (a list: "
                               "`aws:assumeRoles: [{roleArn: ...}]`), as pulumi-aws v7 requires")
        roles = other.get("aws:assumeRoles") or []
        if not isinstance(roles, list):
            raise CommandError(f"expected aws:assumeRoles to be a list, got {type(roles).__name__}")
        return cls(region=other.get("aws:region") or None, profile=other.get("aws:profile") or None,
                   assume_roles=tuple(AssumeRole.from_config(item, i) for i, item in enumerate(roles)))


class Aws:
    """A boto3 session on the stack's account and region, with clients made on first use.

    The base credentials are the stack's ``aws:profile`` (else boto3's own chain:
    environment, ``AWS_PROFILE``, SSO, ...); each ``aws:assumeRoles`` hop is assumed in
    order with the credentials of the one before, as the provider chains them.
    """

    def __init__(self, region: Optional[str] = None, settings: Optional[AccountSettings] = None):
        settings = settings or AccountSettings()
        self.settings = settings
        chosen, self.region_source = region_choice(region or settings.region)
        with errors():
            self.session = boto3.Session(profile_name=settings.profile, region_name=chosen)
        if not self.session.region_name:
            raise CommandError(NO_REGION)
        self.region: str = self.session.region_name
        self.assumed: list[str] = []  # the ARN of each assumed role, in order
        self._clients: dict[str, object] = {}
        with errors():
            for hop in settings.assume_roles:
                credentials = self.client("sts").assume_role(**hop.arguments)["Credentials"]
                self.session = boto3.Session(
                    aws_access_key_id=credentials["AccessKeyId"],
                    aws_secret_access_key=credentials["SecretAccessKey"],
                    aws_session_token=credentials["SessionToken"],
                    region_name=self.region,
                )
                self._clients = {}
                self.assumed.append(hop.role_arn)

    @classmethod
    def for_stack(cls, other: Mapping[str, Any]) -> "Aws":
        """The session of a stack, from its file's non-project keys."""
        return cls(settings=AccountSettings.from_stack(other))

    def client(self, service: str):
        """The boto3 client of ``service`` in this session's region."""
        if service not in self._clients:
            with errors():
                self._clients[service] = self.session.client(service, config=CLIENT_CONFIG)
        return self._clients[service]

    def permission(self, error: botocore.exceptions.ClientError) -> Optional[str]:
        """The IAM action a failed call needed (``ec2:DescribeRouteTables``), from the client
        that made it; None when no client of this session has that operation."""
        operation = getattr(error, "operation_name", "")
        for found in self._clients.values():
            model = found.meta.service_model
            if operation in model.operation_names:
                if model.service_name == "s3" and operation == "HeadBucket":
                    return "s3:ListBucket"  # HeadBucket is authorised as ListBucket
                return f"{model.signing_name}:{operation}"
        return None

    def plugin_environment(self) -> tuple[dict[str, str], str]:
        """The environment and profile argument for ``session-manager-plugin``, so that its own
        calls use this session's identity: the stack's profile, or the assumed role's credentials."""
        env = dict(os.environ)
        if not self.assumed:
            return env, self.settings.profile or ""
        frozen = self.session.get_credentials().get_frozen_credentials()
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            env.pop(name, None)
        env.update(AWS_ACCESS_KEY_ID=frozen.access_key, AWS_SECRET_ACCESS_KEY=frozen.secret_key)
        if frozen.token:
            env["AWS_SESSION_TOKEN"] = frozen.token
        # An empty profile: the plugin's SDK then takes the credentials from the environment.
        return env, ""


def code(error: botocore.exceptions.ClientError) -> str:
    """The AWS error code of a ClientError (e.g. ``InvalidKeyPair.NotFound``)."""
    return str(error.response.get("Error", {}).get("Code", ""))


def message(error: botocore.exceptions.ClientError) -> str:
    """``Code: message`` of a ClientError, on one line."""
    text = " ".join(str(error.response.get("Error", {}).get("Message", "")).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{code(error)}: {text}" if text else code(error)


def explain(error: BaseException) -> Optional[str]:
    """One line for an expected AWS failure, or None when it is not one."""
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        return ("no AWS credentials found: run `aws configure` or `aws sso login`, "
                "or set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
    if isinstance(error, botocore.exceptions.ProfileNotFound):
        return f"{error}: check AWS_PROFILE and ~/.aws/config"
    if isinstance(error, (botocore.exceptions.PartialCredentialsError,
                          botocore.exceptions.CredentialRetrievalError,
                          botocore.exceptions.TokenRetrievalError,
                          botocore.exceptions.SSOError)):
        return f"AWS credentials are unusable ({error}): refresh them, e.g. `aws sso login`"
    if isinstance(error, botocore.exceptions.NoRegionError):
        return NO_REGION
    if isinstance(error, (botocore.exceptions.EndpointConnectionError,
                          botocore.exceptions.ConnectTimeoutError,
                          botocore.exceptions.ReadTimeoutError)):
        return f"cannot reach AWS ({error}): check the network, the region and AWS_ENDPOINT_URL"
    if isinstance(error, botocore.exceptions.ClientError):
        operation = getattr(error, "operation_name", "") or "the request"
        if code(error) in ACCESS_DENIED:
            return (f"access denied to {operation} ({message(error)}): "
                    "use an identity allowed to do it, or refresh expired credentials")
        if code(error) in THROTTLED:
            return f"AWS is throttling {operation} even after retries ({message(error)}): try again in a minute"
        return f"{operation} failed: {message(error)}"
    if isinstance(error, botocore.parsers.ResponseParserError):
        first = " ".join(str(error).split())[:200]
        return (f"AWS answered with something that is not an AWS reply ({first}): a proxy or firewall "
                "in between? check the network and AWS_ENDPOINT_URL, then try again")
    if isinstance(error, botocore.exceptions.BotoCoreError):
        return f"AWS request failed: {error}"
    return None


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Turn every botocore failure inside the block into a :class:`CommandError`."""
    try:
        yield
    except AWS_FAILURES as error:
        raise CommandError(explain(error)) from None
