"""``python -m desktop connect --ssm`` and ``python -m desktop shell``: the desktop through
AWS Systems Manager Session Manager, with no open port and no key pair.

boto3 starts the session (``ssm.start_session``) and ``session-manager-plugin`` carries
it, handed over exactly as the AWS CLI hands it (``awscli/customizations/sessionmanager.py``):
the StartSession response (``SessionId``, ``TokenValue``, ``StreamUrl``) as JSON in the
environment variable ``AWS_SSM_START_SESSION_RESPONSE`` whose name is the first argument,
then the region, ``StartSession``, the profile, the request's parameters as JSON and the
SSM endpoint URL. Unlike the CLI, a plugin too old to read the environment variable is
refused rather than given the session token on its command line, where ``ps`` shows it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator, Optional

import botocore.exceptions

from desktop.commands import aws
from desktop.commands.dcv_file import dcv_file
from desktop.commands.errors import CommandError
from desktop.commands.stack_file import stack_name
from desktop.commands.target import USER, common_arguments, running
from desktop.commands.target import desktop as target_of
from desktop.ports import DCV_PORT

PLUGIN = "session-manager-plugin"
INSTALL_URL = ("https://docs.aws.amazon.com/systems-manager/latest/userguide/"
               "session-manager-working-with-install-plugin.html")
PORT_FORWARDING = "AWS-StartPortForwardingSession"
RESPONSE_VARIABLE = "AWS_SSM_START_SESSION_RESPONSE"
# The last plugin that reads the StartSession response only from its arguments (the AWS CLI's
# LAST_PLUGIN_VERSION_WITHOUT_ENV_VAR); later ones read it from RESPONSE_VARIABLE.
LAST_PLUGIN_WITHOUT_ENV = "1.2.497.0"


def _version_parts(text: str) -> Optional[list[int]]:
    cleaned = re.sub(r"\s+", "", text)
    if not re.fullmatch(r"\d+(\.\d+){0,3}", cleaned):
        return None
    return [int(part) for part in cleaned.split(".")]


def _newer(version: list[int], than: list[int]) -> bool:
    width = max(len(version), len(than))
    return version + [0] * (width - len(version)) > than + [0] * (width - len(than))


def plugin() -> tuple[str, str]:
    """The plugin's path and version; a :class:`CommandError` when it is missing or too old."""
    path = shutil.which(PLUGIN)
    if path is None:
        raise CommandError(f"{PLUGIN} is not installed; `connect --ssm` and `shell` need it: "
                           f"install it ({INSTALL_URL}), then run the command again")
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise CommandError(f"`{PLUGIN} --version` failed: {error}; reinstall it ({INSTALL_URL})") from None
    version = (done.stdout or "").strip()
    parts = _version_parts(version)
    if parts is None or not _newer(parts, _version_parts(LAST_PLUGIN_WITHOUT_ENV)):
        raise CommandError(f"{PLUGIN} {version or '(no version)'} is too old (it would take the session token "
                           f"on its command line): install a version after {LAST_PLUGIN_WITHOUT_ENV} "
                           f"({INSTALL_URL})")
    return path, version


@contextlib.contextmanager
def _user_signals_ignored() -> Iterator[None]:
    """Leave Ctrl-C, Ctrl-\\ and Ctrl-Z to the plugin, which shares the terminal, as the AWS CLI does:
    this process must outlive the plugin to end the session."""
    names = ("SIGINT", "SIGQUIT", "SIGTSTP")
    kept = {name: signal.signal(getattr(signal, name), signal.SIG_IGN) for name in names if hasattr(signal, name)}
    try:
        yield
    finally:
        for name, handler in kept.items():
            signal.signal(getattr(signal, name), handler)


def _terminate(session: aws.Aws, session_id: str) -> None:
    """End the session on the service's side (the plugin may have left it open)."""
    try:
        session.client("ssm").terminate_session(SessionId=session_id)
        return
    except botocore.exceptions.ClientError as error:
        failure = error
        # An assumed role's credentials may have expired during a long session: assume it again.
        if aws.code(error) in ("ExpiredToken", "ExpiredTokenException") and session.assumed:
            try:
                aws.Aws(session.region, session.settings).client("ssm").terminate_session(SessionId=session_id)
                return
            except (botocore.exceptions.ClientError, aws.CommandError) as again:
                failure = again
    except botocore.exceptions.BotoCoreError as error:
        failure = error
    reason = aws.explain(failure) if not isinstance(failure, aws.CommandError) else str(failure)
    print(f"warning: could not end session {session_id} ({reason}); Session Manager ends it after its "
          "idle timeout", file=sys.stderr)


def run_session(session: aws.Aws, parameters: dict, plugin_path: str,
                started: Optional[Callable[[], None]] = None) -> int:
    """Start a Session Manager session with StartSession ``parameters``, run the plugin on it
    until it exits, then terminate the session. 0 when the plugin exited cleanly, else 1.
    ``started`` runs once the session exists (what to print then), before the plugin."""
    ssm = session.client("ssm")
    with aws.errors():
        response = ssm.start_session(**parameters)
    session_id = response["SessionId"]
    try:
        if started is not None:
            started()
        env, profile = session.plugin_environment()
        env[RESPONSE_VARIABLE] = json.dumps({
            "SessionId": response["SessionId"],
            "TokenValue": response["TokenValue"],
            "StreamUrl": response["StreamUrl"],
        })
        command = [plugin_path, RESPONSE_VARIABLE, ssm.meta.region_name, "StartSession", profile,
                   json.dumps(parameters), ssm.meta.endpoint_url]
        with _user_signals_ignored():
            code = subprocess.call(command, env=env)
    finally:
        _terminate(session, session_id)
    if code != 0:
        print(f"{PLUGIN} exited with code {code}; session {session_id} is ended", file=sys.stderr)
        return 1
    return 0


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def password_hint(stack: str) -> str:
    """Where the person finds the DCV password the stack generated."""
    return f"`{shlex.join(['pulumi', 'stack', 'output', 'DcvPassword', '--show-secrets', '--stack', stack])}`"


def connect(args: argparse.Namespace) -> int:
    """``connect --ssm``: forward DCV's port 8443 to a local port through Session Manager."""
    path_of_plugin, _ = plugin()  # before StartSession: no session is left behind without a plugin
    target = target_of(args)
    running(target)
    port = args.local_port or free_port()
    path = args.output or Path(f"{stack_name(args.stack)}-{target.instance_id}.dcv")
    path.write_text(dcv_file("localhost", port=port))

    def started() -> None:
        # Only now: before StartSession answered, nothing listens at that address.
        print(f"DCV address:     https://localhost:{port}  (through Session Manager, while this runs)")
        print(f"DCV connection:  {path}  (open it with the DCV client: `{shlex.join(['dcvviewer', str(path)])}`)")
        print(f"DCV login:       {USER}, password: {password_hint(args.stack)}")
        print("Press Ctrl-C to end the session.", flush=True)

    parameters = {
        "Target": target.instance_id,
        "DocumentName": PORT_FORWARDING,
        "Parameters": {"portNumber": [str(DCV_PORT)], "localPortNumber": [str(port)]},
    }
    return run_session(target.aws, parameters, path_of_plugin, started)


def _shell(args: argparse.Namespace) -> int:
    path_of_plugin, _ = plugin()
    target = target_of(args)
    running(target)
    print(f"Shell on {target.instance_id} through Session Manager (`sudo -iu {USER}` for the "
          "desktop's user); `exit` ends it.", flush=True)
    return run_session(target.aws, {"Target": target.instance_id}, path_of_plugin)


def register(subparsers) -> None:
    """Add ``shell`` to the ``python -m desktop`` parser (``connect --ssm`` lives on ``connect``)."""
    shell = subparsers.add_parser(
        "shell", help="a shell on the desktop through Session Manager (no SSH, no open port)",
        description=f"Open a Session Manager shell on the desktop: no key pair and no open port needed. "
                    f"Needs the Session Manager plugin ({INSTALL_URL}). " + aws.SETTINGS_HELP)
    common_arguments(shell)
    shell.set_defaults(run=_shell)
