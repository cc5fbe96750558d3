"""The rules config values must follow: each an expected form and a predicate.

A rule is ``(expected, check)``: the form a person reads in an error, and a
predicate on the converted value. :mod:`desktop.settings` gives each key its rule.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from typing import Any, Callable

Rule = tuple[str, Callable[[Any], bool]]

_HEX_ID = r"(?:[0-9a-f]{8}|[0-9a-f]{17})"


def aws_id(prefix: str) -> Rule:
    """An AWS resource id such as ``vpc-0123456789abcdef0``."""
    pattern = re.compile(rf"{prefix}-{_HEX_ID}")
    return (
        f"'{prefix}-' followed by 8 or 17 lowercase hex digits, e.g. {prefix}-0123456789abcdef0",
        lambda v: pattern.fullmatch(v) is not None,
    )


def boolean() -> Rule:
    return ("true or false", lambda v: isinstance(v, bool))


def whole_number(low: int, high: int, unit: str = "", zero_means: str = "") -> Rule:
    """A whole number from ``low`` to ``high``; with ``zero_means``, 0 is allowed too."""
    span = f"a whole number{f' of {unit}' if unit else ''} from {low} to {high}"
    expected = f"0 ({zero_means}) or {span}" if zero_means else span

    def check(v: Any) -> bool:
        if not isinstance(v, int) or isinstance(v, bool):
            return False
        return low <= v <= high or (bool(zero_means) and v == 0)

    return expected, check


def one_of(*choices: str) -> Rule:
    words = ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]
    return words, lambda v: v in choices


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4_LIKE = re.compile(r"\d+\.\d+\.\d+\.\d+")


def valid_bucket(v: str) -> bool:
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


def valid_ssm_name(v: str) -> bool:
    return _SSM_NAME.fullmatch(v) is not None


def valid_instance_type(v: str) -> bool:
    return _INSTANCE_TYPE.fullmatch(v) is not None


#: Where a file system may be mounted: below ubuntu's home, /mnt or /data, or at or below
#: /fsx. Never over a system directory (/etc, /usr/local/bin, /boot/efi, /home): the boot
#: mounts as root, and the file system's contents are ubuntu's (cloud_init/boot.sh checks
#: the same again).
MOUNT_PATH_BASES = ("/home/ubuntu/", "/mnt/", "/data/", "/fsx")


def valid_mount_path(v: str) -> bool:
    return (
        len(v) <= MOUNT_PATH_MAX
        and _MOUNT_PATH_CHARS.fullmatch(v) is not None
        and ".." not in v
        and posixpath.normpath(v) == v
        and (v == "/fsx" or v.startswith(tuple(b if b.endswith("/") else b + "/" for b in MOUNT_PATH_BASES)))
        # Not a hidden directory (~/.ssh, ~/.config, ~/.local/bin): what is there logs in or runs.
        and "/." not in v
    )


_KEY_NAME = re.compile(r"[A-Za-z0-9._-]{1,255}")


def valid_key_name(v: str) -> bool:
    """EC2 takes up to 255 ASCII characters; here only letters, digits and ``._-``, so that
    the name is one word in every command line and file it reaches."""
    return _KEY_NAME.fullmatch(v) is not None


def valid_cidr(v: str) -> bool:
    if "/" not in v:
        return False
    try:
        ipaddress.IPv4Network(v, strict=False)
    except ValueError:
        return False
    return True


_TIME_OF_DAY = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")


def valid_time_of_day(v: str) -> bool:
    return _TIME_OF_DAY.fullmatch(v) is not None


def nested(a: str, b: str) -> bool:
    """Whether two absolute paths are equal or one lies inside the other."""
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


_PRICE = re.compile(r"[0-9]{1,4}(?:\.[0-9]{1,6})?")


def valid_price(v: str) -> bool:
    """A positive decimal amount of USD per hour, e.g. 0.45 (no sign, no exponent, no 'NaN')."""
    return isinstance(v, str) and _PRICE.fullmatch(v) is not None and float(v) > 0


# Deliberately plain: one address, no display name, no list; the domain has a dot.
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+")


def valid_email(v: str) -> bool:
    return isinstance(v, str) and len(v) <= 254 and _EMAIL.fullmatch(v) is not None
