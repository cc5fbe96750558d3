"""Render the EC2 user data of the desktop: cloud-config + the boot script, as MIME."""

from __future__ import annotations

import base64
import email
import gzip
import hashlib
import re
import shlex
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

#: EC2's limit on raw user data (before base64), in bytes.
USER_DATA_LIMIT = 16_384
#: What this project allows itself, compressed: 10 KiB, five eighths of EC2's limit, so that
#: what is still to come fits. It was half (8,192) until the boot's writes were hardened
#: (issue 16: temp files checked and renamed, ubuntu's files written as ubuntu, mount points
#: and boot files checked), which took about 940 bytes with 57 left. That code cannot move
#: to the boot files' parameter: the writes are needed before it is read, and a boot that
#: could not read it must still come up. The files the boot installs (the idle agent and its
#: units, about 3.7 KB compressed) travel in that parameter (cloud_init/boot_files.py).
#: A test keeps the longest legal values with every feature on under it.
SIZE_GOAL = 10_240

_HERE = Path(__file__).resolve().parent
_CLOUD_CONFIG = _HERE / "cloud-config.yaml"
_BOOT_SCRIPT = _HERE / "boot.sh"

#: The script's variable for each keyword argument of `render`, in this order.
VARIABLES = {
    "region": "REGION",
    "dns_suffix": "DNS_SUFFIX",
    "efs_file_system_id": "EFS_FILE_SYSTEM_ID",
    "efs_mount_path": "EFS_MOUNT_PATH",
    "role_arn": "ROLE_ARN",
    "security_group_id": "SECURITY_GROUP_ID",
    "subnet_id": "SUBNET_ID",
    "dcv_password_parameter": "DCV_PASSWORD_PARAMETER",
    # FSx for Lustre: empty DNS name = off.
    "fsx_dns_name": "FSX_DNS_NAME",
    "fsx_mount_name": "FSX_MOUNT_NAME",
    "fsx_mount_path": "FSX_MOUNT_PATH",
    "efa": "EFA",  # "true" when the primary interface is an EFA
    # The Parameter Store parameter holding the files the boot installs (the idle agent and
    # its units, cloud_init/boot_files.py); "" = none. Only its name: no hash of its value,
    # so that an updated agent lands at the next boot without `pulumi up` stopping and
    # starting the desktop for it. The parameter is as trusted as the user data (only the
    # account's administrators can write either).
    "boot_files_parameter": "BOOT_FILES_PARAMETER",
}

#: Last line of the rendered assignment block (tests cut the script here).
END_OF_VALUES = "# --- end of rendered values ---"

_HEREDOC = re.compile(r"(?<!<)<<-?\s*(['\"]?)(\w+)\1")


class UserDataTooLarge(ValueError):
    """The rendered user data exceeds EC2's 16,384-byte limit."""

    def __init__(self, size: int, limit: int = USER_DATA_LIMIT) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"the EC2 user data is {size:,} bytes gzip-compressed, over EC2's limit of {limit:,} bytes "
            f"(raw, before base64); shorten the longest config values (efsMountPath, "
            f"the role name) or the boot script cloud_init/boot.sh"
        )


def _strip_comments(script: str, dedent: bool = False) -> str:
    """Drop comment-only and blank lines outside heredocs, keeping the first line
    (the shebang, or ``#cloud-config``); with ``dedent``, also the indentation of the
    lines outside heredocs (for bash, where it means nothing outside a heredoc: the boot
    script's only multi-line strings are awk programs, where it means nothing either).

    The comments explain the boot files in their sources (cloud_init/boot.sh,
    cloud_init/cloud-config.yaml); the user data has a hard size limit, so the
    copy sent to EC2 goes without. Heredoc bodies are file contents and are kept
    byte for byte.
    """
    out: list[str] = []
    delimiter: str | None = None
    for number, line in enumerate(script.splitlines()):
        if delimiter is not None:
            out.append(line)
            if line == delimiter:
                delimiter = None
            continue
        stripped = line.strip()
        if number > 0 and (not stripped or stripped.startswith("#")):
            continue
        out.append(line.lstrip(" \t") if dedent else line)
        match = _HEREDOC.search(line)
        if match:
            delimiter = match.group(2)
    return "\n".join(out) + "\n"


def shipped(name: str) -> str:
    """The text of ``cloud_init/<name>`` as the desktop gets it: without its comment-only and
    blank lines (like the boot script), first line kept."""
    return _strip_comments((_HERE / name).read_text(encoding="utf-8"))


def _assignments(values: dict[str, str]) -> str:
    lines = []
    for keyword, variable in VARIABLES.items():
        value = values[keyword]
        if not isinstance(value, str):
            raise TypeError(f"render: {keyword} must be a str, got {type(value).__name__}")
        if "\0" in value:
            raise ValueError(f"render: {keyword} contains a NUL character, which no shell variable can hold")
        lines.append(f"{variable}={shlex.quote(value)}")
    return "\n".join(lines)


def _script(values: dict[str, str]) -> str:
    # Dedented too: about 200 bytes less, compressed, of the SIZE_GOAL the user data may take.
    body = _strip_comments(_BOOT_SCRIPT.read_text(encoding="utf-8"), dedent=True)
    shebang, _, rest = body.partition("\n")
    if not shebang.startswith("#!"):
        raise RuntimeError(f"{_BOOT_SCRIPT} must start with a shebang line")
    return (
        f"{shebang}\n"
        "# Rendered by cloud_init.render from cloud_init/boot.sh (comments stripped).\n"
        f"{_assignments(values)}\n"
        f"{END_OF_VALUES}\n"
        f"{rest}"
    )


def _text_part(text: str, subtype: str, filename: str) -> MIMEText:
    # 7bit plain text keeps the document small; anything a 7bit body cannot carry
    # unchanged (non-ASCII, or a CR the generator would turn into a newline)
    # goes base64 so every byte arrives as rendered.
    plain = text.isascii() and "\r" not in text
    part = MIMEText(text, subtype, "us-ascii" if plain else "utf-8")
    part.add_header("Content-Disposition", "attachment", filename=filename)
    return part


def render(
    *,
    region: str,
    dns_suffix: str,
    efs_file_system_id: str,
    efs_mount_path: str,
    role_arn: str,
    security_group_id: str,
    subnet_id: str,
    dcv_password_parameter: str = "",
    fsx_dns_name: str = "",
    fsx_mount_name: str = "",
    fsx_mount_path: str = "",
    efa: str = "false",
    boot_files_parameter: str = "",
) -> str:
    """Return the EC2 user data: a multi-part MIME document (text), readable.

    Part 1 is text/cloud-config (user scripts run at every boot), part 2 the
    text/x-shellscript boot script. Every value reaches the script only as a
    ``shlex.quote``d assignment at its top: ``dcv_password_parameter`` is the *name* of
    the SSM SecureString holding ubuntu's DCV password ("" = leave the password alone),
    never the password. ``boot_files_parameter`` is the *name* of the String parameter
    holding the files the boot installs (cloud_init/boot_files.py; "" = none). The FSx and
    EFA values default to "off", so callers that know nothing of them keep working. EC2 gets it gzip-compressed
    (:func:`encode`); raises :class:`UserDataTooLarge` when that exceeds EC2's
    16,384-byte limit.
    """
    values = {
        "region": region,
        "dns_suffix": dns_suffix,
        "efs_file_system_id": efs_file_system_id,
        "efs_mount_path": efs_mount_path,
        "role_arn": role_arn,
        "security_group_id": security_group_id,
        "subnet_id": subnet_id,
        "dcv_password_parameter": dcv_password_parameter,
        "fsx_dns_name": fsx_dns_name,
        "fsx_mount_name": fsx_mount_name,
        "fsx_mount_path": fsx_mount_path,
        "efa": efa,
        "boot_files_parameter": boot_files_parameter,
    }
    cloud_config = _strip_comments(_CLOUD_CONFIG.read_text(encoding="utf-8"))
    script = _script(values)
    # A fixed boundary keeps the user data identical for identical inputs (a
    # random one would stop and start the instance on every `pulumi up`); derived
    # from the content, it cannot occur inside it.
    digest = hashlib.sha256((cloud_config + "\0" + script).encode("utf-8")).hexdigest()
    message = MIMEMultipart(boundary=f"==deep-learning-desktop-{digest[:32]}==")
    message.attach(_text_part(cloud_config, "cloud-config", "cloud-config.yaml"))
    message.attach(_text_part(script, "x-shellscript", "deep-learning-desktop.sh"))
    user_data = message.as_string()
    size = len(compress(user_data))
    if size > USER_DATA_LIMIT:
        raise UserDataTooLarge(size)
    return user_data


def compress(user_data: str) -> bytes:
    """The bytes EC2 gets: gzip, which cloud-init recognises and decompresses itself.

    The gzip header's timestamp is fixed, so the same user data always gives the same
    bytes (a changed user data stops and starts the instance).
    """
    return gzip.compress(user_data.encode("utf-8"), compresslevel=9, mtime=0)


def encode(user_data: str) -> str:
    """The compressed user data as base64, for the instance's ``user_data_base64``."""
    return base64.b64encode(compress(user_data)).decode("ascii")


def decode(user_data_base64: str) -> str:
    """The readable MIME document back from :func:`encode`'s output."""
    return gzip.decompress(base64.b64decode(user_data_base64)).decode("utf-8")


def split_parts(user_data: str) -> tuple[str, str]:
    """Parse user data from :func:`render` back; return (cloud_config_text, script_text)."""
    message = email.message_from_string(user_data)
    if not message.is_multipart():
        raise ValueError("user data is not a multi-part MIME document")
    texts: dict[str, list[str]] = {}
    for part in message.get_payload():
        payload = part.get_payload(decode=True)
        text = payload.decode(part.get_content_charset() or "us-ascii")
        texts.setdefault(part.get_content_type(), []).append(text)
    cloud_configs = texts.pop("text/cloud-config", [])
    scripts = texts.pop("text/x-shellscript", [])
    if len(cloud_configs) != 1 or len(scripts) != 1 or texts:
        found = {k: len(v) for k, v in texts.items()}
        raise ValueError(
            "expected exactly one text/cloud-config and one text/x-shellscript part, "
            f"found {len(cloud_configs)} and {len(scripts)}, plus {found or 'nothing else'}"
        )
    return cloud_configs[0], scripts[0]
