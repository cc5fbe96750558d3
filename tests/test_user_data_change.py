"""The preview says, in one line, when `pulumi up` will stop and start the desktop for a new
user data; and the advice for moving a desktop on purpose (`pulumi up --replace`)."""

from __future__ import annotations

import base64
from typing import Callable, Optional

import grpc
import pytest

import cloud_init
from conftest import stack_config
from desktop.commands import offline
from desktop.config import ConfigError
from desktop.user_data_change import restart_cause

INSTANCE = "aws:ec2/instance:Instance"
GET_INSTANCE = "aws:ec2/getInstance:getInstance"


class _ProviderError(grpc.RpcError):
    """How the engine answers an invoke the provider failed: an RPC error with details."""

    def code(self):
        return grpc.StatusCode.UNKNOWN

    def details(self):
        return "invoking aws:ec2/getInstance:getInstance: InvalidInstanceID.NotFound"


class _Earlier(offline.AccountMocks):
    """A desktop created earlier: EC2 holds the user data ``live(wanted)`` makes of the
    program's (None: the instance is new, so the preview has no id for it)."""

    def __init__(self, live: Optional[Callable[[str], str]], fail: bool = False):
        super().__init__(region="us-west-2")
        self.live = live
        self.fail = fail
        self.wanted = ""

    def new_resource(self, args):
        rid, state = super().new_resource(args)
        if args.typ == INSTANCE:
            self.wanted = args.inputs["userDataBase64"]
            if self.live is None:
                return "", state  # a new resource has no id at the preview
        return rid, state

    def call(self, args):
        if args.token == GET_INSTANCE:
            self.invocations.append(offline.Invocation(args.token, dict(args.args)))
            if self.fail:
                raise _ProviderError()
            assert args.args["getUserData"] is True
            return {"id": args.args["instanceId"], "instanceId": args.args["instanceId"],
                    "userDataBase64": self.live(self.wanted)}, []
        return super().call(args)


def preview(mocks, preview=True, **keys):
    return offline.run_program(stack_config("us-west-2", **keys), stack="test", mocks=mocks, preview=preview)


def restarts(rendering) -> list[str]:
    return [m for level, m in rendering.logs if level == "warning" and "will stop and start" in m]


def readable(encoded: str) -> str:
    return cloud_init.decode(encoded)


def gzip_of(text: str) -> str:
    return cloud_init.encode(text)


def older_script(encoded: str) -> str:
    """The user data of an older boot script with the same values."""
    return gzip_of(readable(encoded).replace("\nset -euo pipefail\n", "\nset -euo pipefail\nold_function() { :; }\n"))


def other_subnet(encoded: str) -> str:
    text = readable(encoded)
    assert "\nSUBNET_ID=subnet-0123456789abcdef0\n" in text
    return gzip_of(text.replace("\nSUBNET_ID=subnet-0123456789abcdef0\n", "\nSUBNET_ID=subnet-0aaaaaaaaaaaaaaaa\n"))


def plain(transform: Callable[[str], str] = lambda e: e) -> Callable[[str], str]:
    """What EC2 held for a desktop made before the gzip change (plain `user_data`)."""
    return lambda encoded: base64.b64encode(readable(transform(encoded)).encode()).decode()


@pytest.mark.parametrize("live, cause", [
    (older_script, "the boot script changed"),
    (other_subnet, "boot values changed (SUBNET_ID)"),
    (plain(), "the user data is now sent gzip-compressed (user_data_base64)"),
    (plain(older_script), "the boot script changed"),
])
def test_a_changed_user_data_is_announced_in_one_line_at_the_preview(live, cause):
    mocks = _Earlier(live)
    (warning,) = restarts(preview(mocks))
    instance_id = [r for r in mocks.invocations if r.token == GET_INSTANCE][0].args["instanceId"]
    assert warning.startswith(f"{cause}: `pulumi up` will stop and start the desktop ({instance_id})")
    assert "\n" not in warning


def test_nothing_is_said_when_the_user_data_is_the_same():
    mocks = _Earlier(lambda wanted: wanted)
    r = preview(mocks)
    assert restarts(r) == [] and [i for i in r.invocations if i.token == GET_INSTANCE]


def test_nothing_is_said_nor_read_for_a_new_desktop():
    r = preview(_Earlier(None))
    assert restarts(r) == [] and not [i for i in r.invocations if i.token == GET_INSTANCE]


def test_nothing_is_read_at_up_itself():
    """At `pulumi up` the update is done before the id is known; its preview has said it."""
    r = preview(_Earlier(older_script), preview=False)
    assert restarts(r) == [] and not [i for i in r.invocations if i.token == GET_INSTANCE]


def test_an_unreadable_desktop_is_a_note_not_a_failed_preview():
    r = preview(_Earlier(older_script, fail=True))
    assert restarts(r) == []
    (note,) = [m for level, m in r.logs if level == "info" and "could not read the user data" in m]
    assert "InvalidInstanceID.NotFound" in note


def test_restart_cause_names_every_difference():
    old = cloud_init.render(region="us-east-1", dns_suffix="amazonaws.com", efs_file_system_id="fs-0123abcd",
                            efs_mount_path="/home/ubuntu/efs", role_arn="arn:aws:iam::1:role/r",
                            security_group_id="sg-0123abcd", subnet_id="subnet-0123abcd")
    new = old.replace("REGION=us-east-1\n", "REGION=eu-west-1\n").replace("EFS_FILE_SYSTEM_ID=fs-0123abcd\n",
                                                                          "EFS_FILE_SYSTEM_ID=fs-0fedcba9\n")
    assert restart_cause(gzip_of(old), gzip_of(new)) == "boot values changed (EFS_FILE_SYSTEM_ID, REGION)"
    assert restart_cause(gzip_of(old), gzip_of(old)) is None
    assert restart_cause(base64.b64encode(b"#!/bin/sh\necho other\n").decode(), gzip_of(new)) == \
        "the user data changed"
    assert restart_cause("not base64!", gzip_of(new)) == "the user data changed"
    # Same parts, another MIME envelope (a part's file name): still named, in general words.
    renamed = old.replace('filename="cloud-config.yaml"', 'filename="cloud-config.yml"')
    assert renamed != old and restart_cause(gzip_of(old), gzip_of(renamed)) == "the user data changed"


class _Moved(offline.AccountMocks):
    """An earlier desktop in another subnet: what the instance reports for a kept value."""

    def new_resource(self, args):
        rid, state = super().new_resource(args)
        if args.typ == INSTANCE:
            state["subnetId"] = "subnet-0aaaaaaaaaaaaaaaa"
        return rid, state


def test_the_kept_value_error_gives_the_one_command_that_moves_the_desktop():
    with pytest.raises(ConfigError) as caught:
        preview(_Moved(region="us-west-2"), preview=False)
    (problem,) = caught.value.problems
    urn = ("urn:pulumi:test::deep-learning-desktop::deep-learning-desktop:index:DeepLearningDesktop"
           "$aws:ec2/instance:Instance::test--instance")
    assert f"`pulumi up --replace '{urn}'`" in problem.expected
