"""boto3 for the ``python -m desktop`` commands: one session, retrying clients, and
AWS errors turned into one clear line (:class:`~desktop.cli.CommandError`).

boto3 itself honours ``AWS_PROFILE``, ``AWS_REGION`` and ``AWS_ENDPOINT_URL``; the
stack's ``aws:region``, when set, wins over them, as it does for ``pulumi up``.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import boto3
import botocore.config
import botocore.exceptions
import botocore.session

from desktop.cli import CommandError

# Standard retries back off on throttling and transient errors; what still fails
# after them is reported, not retried forever.
CLIENT_CONFIG = botocore.config.Config(
    retries={"mode": "standard", "max_attempts": 5},
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


class Aws:
    """A boto3 session for one region, with clients made on first use."""

    def __init__(self, region: Optional[str] = None):
        with errors():
            self.session = boto3.Session(botocore_session=_botocore_session(), region_name=region or None)
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
