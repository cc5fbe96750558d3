"""Say at the preview when `pulumi up` will stop and start the desktop for a new user data.

A changed user data (new values, or a newer boot script after updating this project)
makes the provider stop the instance, set the user data and start it again: the person
loses the open session. Nothing in the preview's own output names that; this module
warns in one line, naming the cause.

Why a live read: at the preview the provider answers an update with its *proposed*
state (pulumi-terraform-bridge ``Provider.Update`` with ``preview``: ``diff.ProposedState``),
so the instance's ``user_data_base64`` output is already the new value there. The old one
is what EC2 holds: ``aws.ec2.get_instance(get_user_data=True)`` reads it, only at a preview
and only for an instance that exists (a new one has no id at the preview).
"""

from __future__ import annotations

import base64
import binascii
import gzip
from typing import Optional

import pulumi
import pulumi_aws as aws

import cloud_init
from cloud_init.render import END_OF_VALUES


def warn_when_restarted(instance: aws.ec2.Instance, user_data_base64: pulumi.Output[str]) -> None:
    """At a preview, warn when the desktop's user data would change (a stop and start)."""
    if not pulumi.runtime.is_dry_run():
        # At `pulumi up` the id is known only once the update is done; its preview said it.
        return
    pulumi.Output.all(instance.id, user_data_base64).apply(lambda v: _compare(v[0], v[1], instance))


def _compare(instance_id: Optional[str], wanted: str, instance: aws.ec2.Instance) -> None:
    if not instance_id or not wanted:
        return
    try:
        current = aws.ec2.get_instance(instance_id=instance_id, get_user_data=True,
                                       opts=pulumi.InvokeOptions(parent=instance)).user_data_base64
    except Exception as error:  # noqa: BLE001 - a note must never fail the preview
        pulumi.log.info(f"could not read the user data of the desktop ({instance_id}) to say whether "
                        f"`pulumi up` restarts it: {error}", instance)
        return
    cause = restart_cause(current or "", wanted)
    if cause:
        pulumi.log.warn(f"{cause}: `pulumi up` will stop and start the desktop ({instance_id}) to give it "
                        "the new user data; save open work first", instance)


def restart_cause(current_base64: str, wanted_base64: str) -> Optional[str]:
    """Why EC2's user data (base64 of what it holds) differs from the wanted one, or None if equal."""
    if current_base64 == wanted_base64:
        return None
    current, wanted = _readable(current_base64), _readable(wanted_base64)
    if current is None or wanted is None:
        return "the user data changed"
    if current == wanted:
        return "the user data is now sent gzip-compressed (user_data_base64)"
    try:
        old_config, old_script = cloud_init.split_parts(current)
        new_config, new_script = cloud_init.split_parts(wanted)
    except ValueError:
        return "the user data changed"
    causes = []
    old_values, old_body = _values_and_body(old_script)
    new_values, new_body = _values_and_body(new_script)
    if old_body != new_body:
        causes.append("the boot script changed")
    changed = sorted(name for name in old_values.keys() | new_values.keys()
                     if old_values.get(name) != new_values.get(name))
    if changed:
        causes.append(f"boot values changed ({', '.join(changed)})")
    if old_config != new_config:
        causes.append("the cloud-config changed")
    return " and ".join(causes) or "the user data changed"


def _readable(encoded: str) -> Optional[str]:
    """The text of base64 user data, gzip or plain; None when it is neither."""
    try:
        raw = base64.b64decode(encoded, validate=True)
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return raw.decode("utf-8")
    except (binascii.Error, ValueError, OSError, EOFError, UnicodeDecodeError):
        return None


def _values_and_body(script: str) -> tuple[dict[str, str], str]:
    """The rendered assignments (name -> quoted value) and the script after them."""
    header, marker, body = script.rpartition(f"\n{END_OF_VALUES}\n")
    if not marker:
        return {}, script
    values = {}
    for line in header.splitlines()[1:]:
        name, equals, value = line.partition("=")
        if equals and name.isidentifier():
            values[name] = value
    return values, body
