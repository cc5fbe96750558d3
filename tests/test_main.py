"""The real __main__.py under mocks: exports, and a bad config stopping everything."""

from __future__ import annotations

import gc
import threading

import pytest

from conftest import GOOD, stack_config
from desktop.commands import offline
from desktop.config import PROJECT, ConfigError

SAMPLE_OUTPUTS = {"DesktopInstanceId", "DesktopRole", "DesktopSecurityGroup", "EFSFileSystemId"}


def test_main_exports_the_sample_outputs_and_the_extras_with_their_values(run_main):
    param = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
    mocks = offline.AccountMocks(region="eu-central-1", ssm_parameters={param: "ami-0bbbbbbbbbbbbbbbb"})
    r = run_main(mocks=mocks, region="eu-central-1", efsMountPath="/data/efs")
    instance = r.named("test--instance")
    role = r.named("test--role")
    assert SAMPLE_OUTPUTS <= set(r.outputs)
    assert r.outputs["DesktopInstanceId"] == instance.id and instance.id.startswith("i-")
    assert r.outputs["DesktopRole"] == role.state["arn"]
    assert r.outputs["DesktopRole"].startswith("arn:aws:iam::")
    assert r.outputs["DesktopSecurityGroup"] == r.named("test--sg").id
    assert r.outputs["EFSFileSystemId"] == r.named("test--efs").id
    public, private = instance.state["publicIp"], instance.state["privateIp"]
    assert (r.outputs["PublicIp"], r.outputs["PrivateIp"]) == (public, private)
    assert r.outputs["DcvUrl"] == f"https://{public}:8443"
    assert r.outputs["SshCommand"] == f"ssh -i ~/.ssh/{GOOD['keyName']}.pem ubuntu@{public}"
    assert r.outputs["AmiId"] == "ami-0bbbbbbbbbbbbbbbb"
    assert r.outputs["AmiSource"] == f"ssm:{param}"
    assert r.outputs["EfsMountPath"] == "/data/efs"
    assert r.warnings == []


def test_bad_config_stops_before_any_resource_is_registered(run_main):
    with pytest.raises(ConfigError) as caught:
        run_main(s3Bucket="Not_A_Bucket", ebsVolumeSize="0", vpcId=None)
    assert {p.key for p in caught.value.problems} == {"s3Bucket", "ebsVolumeSize", "vpcId"}


def test_a_mistyped_key_stops_pulumi_up(run_main):
    # A typo would otherwise leave the default in place without a word (500 GB here).
    with pytest.raises(ConfigError) as caught:
        run_main(ebsvolumeSize="250")
    (problem,) = caught.value.problems
    assert problem.key == "ebsvolumeSize" and "ebsVolumeSize" in str(caught.value)


def test_keys_reach_the_program_as_pulumi_up_passes_them(monkeypatch):
    # The Python language host hands the program the whole stack config in PULUMI_CONFIG;
    # a mistyped key there is caught too, and the real keys are read from it.
    import json

    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({**stack_config(), f"{PROJECT}:keyname": "my-key"}))
    with pytest.raises(ConfigError) as caught:
        offline.run_program({"aws:region": "us-west-2"})
    assert [p.key for p in caught.value.problems] == ["keyname"]
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(stack_config(ebsVolumeSize="300")))
    rendering = offline.run_program({"aws:region": "us-west-2"}, stack="test")
    assert rendering.named("test--instance").inputs["rootBlockDevice"]["volumeSize"] == 300


def test_bad_config_registers_nothing():
    registered = []

    class Watching(offline.AccountMocks):
        def new_resource(self, args):
            registered.append(args.typ)
            return super().new_resource(args)

    with pytest.raises(ConfigError):
        offline.run_program({"deep-learning-desktop:s3Bucket": "x"}, mocks=Watching())
    assert registered == []


def test_a_rendering_leaves_no_event_loop_open(run_main, recwarn):
    # Pulumi's mocks answer in the event loop's executor threads, and each of those threads
    # makes a loop of its own. One left open is closed by the garbage collector, at exit if
    # not before, and there it can print "Exception ignored in BaseEventLoop.__del__" on
    # the plan's stderr. Let the threads end and collect, and no loop may be found open.
    run_main()
    for thread in threading.enumerate():
        if thread.name.startswith("asyncio_"):
            thread.join(timeout=10)
    gc.collect()
    unclosed = [str(w.message) for w in recwarn.list if "unclosed event loop" in str(w.message)]
    assert unclosed == []
