"""Names of the component's children, made in one place so that no two can collide.

A child is named ``<component name>--<role>``. Pulumi accepts any string as a
resource name; what matters is that two desktops in one program never make the
same name. With one ``-`` they could: ``dev`` + ``efs-sg`` and ``dev-efs`` + ``sg`` are
both ``dev-efs-sg``. With ``--``, a component name without ``--`` and a role that
does not start with ``-``, ``<name>--<role>`` is never another pair's name: the
first ``--`` after a shorter name would lie inside the longer name. ``--`` keeps
the names within the characters every AWS name Pulumi derives from them accepts
(IAM, security group and backup vault names all take ``-``).

Desktops made before this scheme have children named ``<name>-<role>``: each child
carries an alias to that name, so ``pulumi up`` renames them in place (same
physical resource, no replacement; the instance above all).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pulumi

SEPARATOR = "--"
# Lowercase words joined by single hyphens: never starts with "-", never holds SEPARATOR.
_ROLE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def check_component_name(name: str) -> None:
    """Raise ``ValueError`` for a component name that could make another desktop's child names."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a desktop's name must be a non-empty string, not {name!r}")
    if SEPARATOR in name:
        raise ValueError(
            f"a desktop's name may not contain {SEPARATOR!r} (it separates the desktop's name from its "
            f"children's roles): {name!r}")


def child_name(component: str, role: str) -> str:
    """The name of the child of desktop ``component`` that plays ``role`` (``sg``, ``instance``, ...)."""
    check_component_name(component)
    if not _ROLE.fullmatch(role):
        raise ValueError(f"a child's role is lowercase words joined by single hyphens, not {role!r}")
    return f"{component}{SEPARATOR}{role}"


def legacy_name(component: str, role: str) -> str:
    """The name the child had before :func:`child_name` (kept as its alias)."""
    return f"{component}-{role}"


@dataclass(frozen=True)
class Child:
    """A child's name and resource options: pass both to the resource."""

    name: str
    opts: pulumi.ResourceOptions


def child(component: str, role: str, parent: pulumi.Resource, **options: Any) -> Child:
    """Name and options of a child: ``parent``, an alias to its legacy name, and ``options``.

    Use it for every child::

        sg = child(name, "sg", parent)
        aws.ec2.SecurityGroup(sg.name, ..., opts=sg.opts)
    """
    return Child(
        child_name(component, role),
        pulumi.ResourceOptions(
            parent=parent, aliases=[pulumi.Alias(name=legacy_name(component, role))], **options),
    )
