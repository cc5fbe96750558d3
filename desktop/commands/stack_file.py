"""Stack files, read as the Pulumi CLI reads them, for the commands that run without it.

Pulumi reads ``Pulumi.<stack>.yaml`` as YAML 1.2 (go-yaml v3): ``12:30``, ``no`` and ``on``
are strings there, not 750 and booleans as YAML 1.1 (PyYAML) has them. The commands read it
with ruamel.yaml's safe loader, which resolves with the YAML 1.2 core schema, so that
``plan`` and ``preflight`` see the values the component later gets from ``pulumi.Config``.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any, NamedTuple, Optional

from desktop.commands.errors import CommandError
from desktop.config import PROJECT, Parsed, parse
from desktop.naming import SEPARATOR

# The project: the directory of Pulumi.yaml, two levels above this package.
PROJECT_DIR = Path(__file__).resolve().parents[2]

# A stack name, as Pulumi allows it: letters, digits, '-', '_' and '.'.
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


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


class StackNotFound(CommandError):
    """The stack file does not exist."""


class BadStackFile(CommandError):
    """The stack file exists but cannot be read: not UTF-8, not YAML, not a stack file."""


def stack_name(stack: str) -> str:
    """The stack's own name (the last part of ``org/stack`` or ``org/project/stack``), which
    names its file ``Pulumi.<name>.yaml`` and, through ``pulumi.get_stack()``, the desktop;
    a :class:`CommandError` for a name Pulumi or the component would refuse."""
    parts = str(stack).split("/")
    expected = ("expected NAME, ORG/NAME or ORG/PROJECT/NAME of letters, digits, '-', '_' and '.' "
                "(e.g. alice or my-org/alice)")
    if len(parts) > 3 or not all(_NAME.fullmatch(part) for part in parts):
        raise CommandError(f"--stack {stack!r} is not a stack name; {expected}")
    if len(parts) == 3 and parts[1] != PROJECT:
        raise CommandError(f"--stack {stack!r} names project {parts[1]!r}, but this project is {PROJECT!r}; "
                           f"use {parts[0]}/{PROJECT}/{parts[2]} or {parts[0]}/{parts[2]}")
    name = parts[-1]
    if SEPARATOR in name:
        # The desktop's children are named <stack>--<role> (desktop/naming.py): the same rule.
        raise CommandError(f"--stack {stack!r}: a stack name may not contain {SEPARATOR!r} (it separates the "
                           "desktop's name from its parts' names); e.g. alice-gpu instead of alice--gpu")
    return name


def stack_path(stack: str, project_dir: Optional[Path] = None) -> Path:
    """``Pulumi.<name>.yaml`` of ``stack`` in ``project_dir``."""
    return Path(project_dir or PROJECT_DIR) / f"Pulumi.{stack_name(stack)}.yaml"


def load_yaml(path: Path) -> Any:
    """The YAML 1.2 document in ``path``; a one-line :class:`BadStackFile` naming the file,
    line and column when it is not UTF-8 or not YAML."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        data = path.read_bytes()
    except OSError as error:
        raise BadStackFile(f"{path}: cannot read it ({error.strerror or error})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise BadStackFile(f"{path}: line {line}: byte 0x{data[error.start]:02x} is not UTF-8; "
                           "save the file as UTF-8 (as Pulumi reads it)") from None
    try:
        return YAML(typ="safe", pure=True).load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = " ".join(str(part) for part in (error.context, error.problem) if part)
        raise BadStackFile(f"{path}: {where}not valid YAML ({' '.join(what.split())})") from None
    except YAMLError as error:
        raise BadStackFile(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None


def _as_written(value: Any) -> Any:
    """A date YAML resolved (``2026-01-31``) back to the text written, as Pulumi keeps it."""
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


def read_stack(stack: str = "dev", project_dir: Optional[Path] = None) -> StackConfig:
    """Read ``Pulumi.<stack>.yaml`` as Pulumi would (without secrets)."""
    project_dir = Path(project_dir or PROJECT_DIR)
    path = stack_path(stack, project_dir)
    if not path.is_file():
        raise StackNotFound(
            f"no stack {stack!r}: {path} does not exist; write it with `{missing_stack_hint(stack, project_dir)}`, "
            f"or with `pulumi stack init {stack}` and `pulumi config set ...`")
    document = load_yaml(path)
    if document is None:
        document = {}
    config = (document.get("config") or {}) if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise BadStackFile(f"{path}: 'config' must be a mapping of keys to values")
    raw, other = {}, {}
    # The project's defaults and values first, then the stack's over them, as the CLI does.
    for name, value in [*_project_config(project_dir).items(), *config.items()]:
        namespace, _, key = str(name).partition(":")
        if not key:
            namespace, key = PROJECT, namespace
        if isinstance(value, dict) and "secure" in value:
            value = None  # none of our keys is a secret; an encrypted one is unreadable here
        value = _as_written(value)
        if namespace == PROJECT:
            raw[key] = value
        else:
            other[f"{namespace}:{key}"] = value
    _check_provider_values(path, other)
    return StackConfig(stack, raw, other)


def _check_provider_values(path: Path, other: dict[str, Any]) -> None:
    """The provider's keys the commands read must be strings (``aws:region: 12`` is not one)."""
    for key in ("aws:region", "aws:profile"):
        value = other.get(key)
        if value is not None and not isinstance(value, str):
            raise BadStackFile(f"{path}: {key} is {value!r} ({type(value).__name__}), not a string; "
                               f"expected e.g. `{key}: {'us-east-1' if key == 'aws:region' else 'my-profile'}`")


def missing_stack_hint(stack: str, project_dir: Path) -> str:
    """The ``init`` command that writes the missing stack file."""
    from desktop.commands.hints import command

    return command("init", stack=stack, project_dir=project_dir, always_stack=True) + " --bucket BUCKET"


def _project_config(project_dir: Path) -> dict[str, Any]:
    """The ``config:`` of ``Pulumi.yaml``: each key's ``default`` or ``value`` (or bare value)."""
    path = project_dir / "Pulumi.yaml"
    if not path.is_file():
        return {}
    document = load_yaml(path) or {}
    declared = (document.get("config") or {}) if isinstance(document, dict) else {}
    if not isinstance(declared, dict):
        raise BadStackFile(f"{path}: 'config' must be a mapping of keys to their declarations")
    values = {}
    for name, item in declared.items():
        if not isinstance(item, dict):
            values[name] = _as_written(item)
        elif "default" in item or "value" in item:
            values[name] = _as_written(item.get("default", item.get("value")))
    return values
