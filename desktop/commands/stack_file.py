"""Stack files, read as the Pulumi CLI reads them, for the commands that run without it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple, Optional

from desktop.config import PROJECT, Parsed, parse

# The project: the directory of Pulumi.yaml, two levels above this package.
PROJECT_DIR = Path(__file__).resolve().parents[2]


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
