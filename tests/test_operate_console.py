"""The console output of an instance that is not on Nitro: EC2 refuses ``Latest``, and the
commands read the whole console instead (moto serves both calls)."""

from __future__ import annotations

import pytest

from desktop.commands import operate
from tests.moto_account import add_image, aws_env, client, console  # noqa: F401

TEXT = "[   42.1] cloud-init[1234]: deep-learning-desktop: installing dcv server\n"


@pytest.fixture
def xen_console(console, monkeypatch):
    """moto answers every GetConsoleOutput; EC2 refuses ``Latest=true`` for an instance
    that is not built on Nitro (a g3, say). Refuse it here for every instance, as EC2 does
    there, and count the calls of each kind."""
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.responses import general

    served = general.General.get_console_output  # the `console` fixture's answer
    calls = []

    def get_console_output(self):
        latest = str(self._get_param("Latest")).lower() == "true"
        calls.append(latest)
        if latest:
            raise EC2ClientError("UnsupportedOperation", "This instance type does not support the latest console output.")
        return served(self)

    monkeypatch.setattr(general.General, "get_console_output", get_console_output)
    return console, calls


def test_an_instance_without_the_latest_console_output_gives_its_whole_console(aws_env, xen_console):
    set_console, calls = xen_console
    ec2 = client("ec2")
    instance = ec2.run_instances(ImageId=add_image("x86_64"), InstanceType="g3.4xlarge",
                                 MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    set_console(instance, TEXT)
    assert operate.console_output(ec2, instance) == TEXT
    assert calls == [True, False]  # asked for the latest, refused, then the whole console


def test_other_console_errors_are_not_swallowed(aws_env, xen_console):
    import botocore.exceptions

    with pytest.raises(botocore.exceptions.ClientError) as caught:
        operate.console_output(client("ec2"), "i-0123456789abcdef0")
    assert caught.value.response["Error"]["Code"] == "InvalidInstanceID.NotFound"
