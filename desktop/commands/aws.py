"""boto3 for the ``python -m desktop`` commands: one session, retrying clients, and
AWS errors turned into one clear line (:class:`~desktop.commands.errors.CommandError`).

boto3 itself honours ``AWS_PROFILE`` and ``AWS_ENDPOINT_URL``. The region is chosen as
``pulumi up`` chooses it: the stack's ``aws:region``, else ``AWS_REGION`` (which boto3
ignores), else ``AWS_DEFAULT_REGION``, else the profile's.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional

import boto3
import botocore.config
import botocore.exceptions
import botocore.session

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
SETTINGS_HELP = ("Honours AWS_PROFILE and AWS_ENDPOINT_URL. The region is the stack's aws:region, "
                 "else AWS_REGION, else AWS_DEFAULT_REGION, else the profile's, as for `pulumi up`.")

NO_REGION = "no AWS region: set the stack's region (`pulumi config set aws:region us-east-1`) or AWS_REGION"

_LOADER = None


def _botocore_session() -> botocore.session.Session:
    """A fresh botocore session (credentials and settings read anew) sharing one
    loader, so the service models are parsed once per process, not once per command."""
    global _LOADER
    core = botocore.session.get_session()
    if _LOADER is None:
        _LOADER = core.get_component("data_loader")
    else:
        core.register_component("data_loader", _LOADER)
    return core


def region_choice(stack_region: Optional[str]) -> tuple[Optional[str], str]:
    """The region given to boto3 and where it comes from, before the profile is asked."""
    if stack_region:
        return stack_region, "the stack's aws:region"
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(variable):
            return os.environ[variable], variable
    return None, "the AWS profile"


class Aws:
    """A boto3 session for one region, with clients made on first use."""

    def __init__(self, region: Optional[str] = None):
        chosen, self.region_source = region_choice(region)
        with errors():
            self.session = boto3.Session(botocore_session=_botocore_session(), region_name=chosen)
            paths = self.session._loader.search_paths  # boto3 appends its data path on every session
            paths[:] = list(dict.fromkeys(paths))
        if not self.session.region_name:
            raise CommandError(NO_REGION)
        self.region: str = self.session.region_name
        self._clients: dict[str, object] = {}

    def client(self, service: str):
        """The boto3 client of ``service`` in this session's region."""
        if service not in self._clients:
            with errors():
                self._clients[service] = self.session.client(service, config=CLIENT_CONFIG)
        return self._clients[service]


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
    if isinstance(error, botocore.exceptions.BotoCoreError):
        return f"AWS request failed: {error}"
    return None


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Turn every botocore failure inside the block into a :class:`CommandError`."""
    try:
        yield
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        raise CommandError(explain(error)) from None
