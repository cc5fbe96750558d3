"""The files the boot installs on the desktop (the idle agent and its systemd units), as
one payload for an SSM Parameter Store parameter.

They used to travel in the user data, where they took about half of its compressed size
(issue 11's goal was 8,192 bytes with every feature on; SIZE_GOAL in render.py). Now the stack writes them into a
parameter, the user data carries only the parameter's name, and the boot reads it
(cloud_init/boot.sh ``install_idle_agent``).

The payload is base64 of a gzip'd tar, built so that the same files always give the same
value (fixed times, owners, modes and order): an unchanged agent never changes the
parameter, and never shows as a change in a preview.
"""

from __future__ import annotations

import base64
import gzip
import io
import tarfile

from cloud_init.render import shipped

#: The files, by their name in cloud_init/ (and in the payload), with their mode. The boot
#: accepts a payload only when its members are exactly these names.
FILES = {
    "deep-learning-desktop-idle.service": 0o644,
    "deep-learning-desktop-idle.timer": 0o644,
    "idle_agent.py": 0o755,
}

#: Every member of a payload, as the boot lists them (sorted). The SageMaker SDK's defaults
#: file is none of them: it has its own parameter (desktop/boot_files.py), as the agent alone
#: nearly fills this one.
MEMBERS = tuple(sorted(FILES))

#: Parameter Store's limits on a parameter's value: Standard (free) up to 4 KB, Advanced
#: ($0.05 a month) up to 8 KB. The parameter asks for Intelligent-Tiering, so Parameter
#: Store picks Standard while the payload fits it.
STANDARD_LIMIT = 4_096
ADVANCED_LIMIT = 8_192


class BootFilesTooLarge(ValueError):
    """The payload exceeds what a Parameter Store parameter can hold (8 KB, Advanced)."""

    def __init__(self, size: int, limit: int = ADVANCED_LIMIT) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"the files the boot installs ({', '.join(sorted(FILES))}) are {size:,} characters as a "
            f"Parameter Store value (base64 of their tar.gz), over the limit of an Advanced parameter, "
            f"{limit:,}; make cloud_init/idle_agent.py smaller, or split the files over two parameters"
        )


def texts() -> dict[str, str]:
    """Each file's text as the desktop gets it (comment-only lines stripped), by name."""
    return {name: shipped(name) for name in sorted(FILES)}


def payload(files: dict[str, str] | None = None, limit: int = ADVANCED_LIMIT) -> str:
    """The parameter's value: base64 of a gzip'd tar of ``files`` (default: :func:`texts`).

    Deterministic: members sorted by name, mtime 0, owner root (0/0), mode from
    :data:`FILES` (0644 for another name), gzip header without a time. Raises
    :class:`BootFilesTooLarge` when it exceeds ``limit``.
    """
    files = texts() if files is None else files
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            data = files[name].encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = FILES.get(name, 0o644)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    value = base64.b64encode(gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)).decode("ascii")
    if len(value) > limit:
        raise BootFilesTooLarge(len(value), limit)
    return value


def unpack(value: str) -> dict[str, tuple[int, str]]:
    """The files in a payload, by name: (mode, text). For ``plan`` and tests."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(value, validate=True)), mode="r:gz") as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member)
            out[member.name] = (member.mode, extracted.read().decode("utf-8") if extracted else "")
    return out


def tier(value: str) -> str:
    """The tier Intelligent-Tiering gives a parameter with this value."""
    return "Standard" if len(value) <= STANDARD_LIMIT else "Advanced"
