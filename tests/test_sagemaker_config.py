"""The SageMaker SDK's defaults file: the real boot writes it, the real SDK reads it.

The SDK (sagemaker, pinned in tests/requirements-sagemaker.txt) brings numpy, pandas and
thirty more packages, and would downgrade packages of the project's venv (attrs,
packaging): it lives in its own venv, .venv-sagemaker, which tests/run makes. The checks
that need it run tests/sagemaker_sdk_check.py there, as a person's notebook would.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest
import yaml

from boot_sandbox import DEFAULT_VALUES
from conftest import ROOT
from desktop import sagemaker_config

SDK_PYTHON = ROOT / ".venv-sagemaker" / "bin" / "python"
CHECK = ROOT / "tests" / "sagemaker_sdk_check.py"
ADMIN = "/etc/xdg/sagemaker/config.yaml"
#: The parameter the boot reads it from: beside the boot files' one.
PARAMETER = DEFAULT_VALUES["boot_files_parameter"].rsplit("/", 1)[0] + "/sagemaker-config"
NOT_UPDATED = f"deep-learning-desktop: sagemaker defaults not updated: {PARAMETER} "
VALUES = dict(desktop="dev", role_arn="arn:aws:iam::123456789012:role/dev--role-abc1234",
              subnet_id="subnet-0123456789abcdef0", security_group_id="sg-0123456789abcdef0",
              bucket="my-dl-desktop-data")


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    """What the real SDK makes of our files (tests/sagemaker_sdk_check.py), in one process."""
    assert SDK_PYTHON.exists(), "the SageMaker SDK's venv is required: bash tests/run makes .venv-sagemaker"
    d = tmp_path_factory.mktemp("sagemaker")
    (d / "admin.yaml").write_text(sagemaker_config.render(**VALUES))
    (d / "user.yaml").write_text("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n"
                                 "      RemoteFunction:\n        S3RootUri: s3://my-own-bucket/experiments\n")
    (d / "bad.yaml").write_text(sagemaker_config.render(**VALUES).replace("RoleArn:", "RoleARN:", 1))
    (d / "none.yaml").write_text(sagemaker_config.NO_DEFAULTS)
    result = subprocess.run([str(SDK_PYTHON), str(CHECK), *(str(d / f"{n}.yaml") for n in ("admin", "user", "bad", "none"))],
                            capture_output=True, text=True, timeout=120, cwd=d,
                            # TMPDIR: the SDK writes a requirements file there and leaves it.
                            env={**os.environ, "SAGEMAKER_SUPPRESS_V2_WARNING": "1", "HOME": str(d), "TMPDIR": str(d)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_sdk_validates_and_loads_our_file_and_a_persons_own_file_wins(sdk):
    got = sdk["with_user"]
    assert got["valid"] is True
    assert got["remote"]["RoleArn"] == VALUES["role_arn"]
    assert got["remote"]["VpcConfig"] == {"Subnets": [VALUES["subnet_id"]], "SecurityGroupIds": [VALUES["security_group_id"]]}
    # The person's file is read after ours: its S3 root wins, our role stays.
    assert got["remote"]["S3RootUri"] == "s3://my-own-bucket/experiments"
    for section in ("TrainingJob", "ProcessingJob"):
        assert got["sections"][section]["RoleArn"] == VALUES["role_arn"]
    assert got["sections"]["Model"]["ExecutionRoleArn"] == VALUES["role_arn"]
    assert got["sections"]["ProcessingJob"]["NetworkConfig"]["VpcConfig"]["Subnets"] == [VALUES["subnet_id"]]
    assert got["session"] == {"DefaultS3Bucket": "my-dl-desktop-data", "DefaultS3ObjectKeyPrefix": "sagemaker/dev"}
    # Without the person's file: our S3 root. The none file is valid too, and sets nothing.
    assert sdk["alone"]["remote"]["S3RootUri"] == "s3://my-dl-desktop-data/sagemaker/dev"
    assert sdk["none"]["valid"] is True and sdk["none"]["remote"] == {}


def test_the_schema_check_can_fail(sdk):
    assert sdk["bad"]["valid"] is False


def test_a_remote_function_runs_as_the_desktop_with_nothing_named_in_code(sdk):
    """`@remote` with only an instance type and count: the CreateTrainingJob request SageMaker
    would get (captured in botocore, S3 and STS from moto) carries the file's role, VPC, S3 root."""
    request = sdk["remote"]["request"]
    assert request["RoleArn"] == VALUES["role_arn"]
    assert request["VpcConfig"] == {"Subnets": [VALUES["subnet_id"]], "SecurityGroupIds": [VALUES["security_group_id"]]}
    root = "s3://my-dl-desktop-data/sagemaker/dev/"
    assert request["OutputDataConfig"]["S3OutputPath"].startswith(root)
    assert request["InputDataConfig"] and all(channel["DataSource"]["S3DataSource"]["S3Uri"].startswith(root) for channel in request["InputDataConfig"])
    assert {"Key": "deep-learning-desktop", "Value": "dev"} in request["Tags"]
    assert request["ResourceConfig"]["InstanceType"] == "ml.g5.12xlarge" and request["ResourceConfig"]["InstanceCount"] == 2


# --- the boot writes it -----------------------------------------------------------------

def test_the_boot_writes_the_stacks_file_rewrites_it_and_leaves_a_persons_own_alone(sandbox):
    box = sandbox(version="24.04", gpu=True, nvidia_ok=True)
    box.env["STUB_SAGEMAKER_CONFIG"] = sagemaker_config.render(**VALUES)
    assert box.boot().returncode == 0
    assert box.read(ADMIN) == sagemaker_config.render(**VALUES)
    assert yaml.safe_load(box.read(ADMIN))["SageMaker"]["PythonSDK"]["Modules"]["RemoteFunction"]["S3RootUri"] == \
        "s3://my-dl-desktop-data/sagemaker/dev"
    mode = box.path(ADMIN).stat().st_mode
    assert stat.S_IMODE(mode) == 0o644 and stat.S_ISREG(mode)
    own = box.path("/home/ubuntu/.config/sagemaker/config.yaml")
    own.parent.mkdir(parents=True)
    own.write_text("SchemaVersion: '1.0'\n# mine\n")
    # The stack moves to another bucket: the next boot writes it, no temp file stays behind.
    box.env["STUB_SAGEMAKER_CONFIG"] = sagemaker_config.render(**{**VALUES, "bucket": "team-bucket"})
    later = box.boot()
    assert later.returncode == 0, later.output
    assert "s3://team-bucket/sagemaker/dev" in box.read(ADMIN) and "my-dl-desktop-data" not in box.read(ADMIN)
    assert sorted(p.name for p in box.path(ADMIN).parent.iterdir()) == ["config.yaml"]
    assert own.read_text() == "SchemaVersion: '1.0'\n# mine\n"
    assert not [line for line in box.console_lines() if line.startswith(NOT_UPDATED)]


@pytest.mark.parametrize("trouble,line", [
    ({"STUB_SAGEMAKER_CONFIG": ""}, "not readable after 12 attempts; the previous file stays"),  # ParameterNotFound
    ({"STUB_SAGEMAKER_CONFIG_DENIED": "99"}, "not readable after 12 attempts; the previous file stays"),
    ({"STUB_SAGEMAKER_CONFIG": "SchemaVersion: '1.0'\n" + "#" * 8200}, "refused: empty or over 8,192 bytes; "
     "the previous file stays"),
])
def test_a_boot_that_cannot_read_the_defaults_keeps_the_previous_file_and_says_so(sandbox, trouble, line):
    box = sandbox(version="24.04", gpu=True, nvidia_ok=True)
    box.env["STUB_SAGEMAKER_CONFIG"] = sagemaker_config.render(**VALUES)
    assert box.boot().returncode == 0
    before = box.read(ADMIN)
    box.env.update(trouble)
    later = box.boot()
    assert later.returncode == 0, later.output
    assert box.read(ADMIN) == before, "uncertain: the file stays as it was"
    assert sorted(p.name for p in box.path(ADMIN).parent.iterdir()) == ["config.yaml"]
    assert [l for l in box.console_lines() if l.startswith(NOT_UPDATED)] == [NOT_UPDATED + line]
    reads = [c for c in later.named("aws") if PARAMETER in c]
    assert len(reads) == (1 if "refused" in line else 12), "bounded retries, as for the other parameters"
    assert "deep-learning-desktop: ready" in box.console_lines(), "the boot goes on"


def test_a_boot_waits_for_the_grant_and_reads_only_this_desktops_parameter(sandbox):
    box = sandbox(version="24.04", gpu=True, nvidia_ok=True)
    box.env.update(STUB_SAGEMAKER_CONFIG=sagemaker_config.render(**VALUES), STUB_SAGEMAKER_CONFIG_DENIED="3")
    first = box.boot()
    assert first.returncode == 0, first.output
    assert box.read(ADMIN) == sagemaker_config.render(**VALUES)
    reads = [c for c in first.named("aws") if PARAMETER in c]
    assert reads[0][1:] == ["ssm", "get-parameter", "--region", "us-east-1", "--name", PARAMETER,
                            "--query", "Parameter.Value", "--output", "text"]
    assert len(reads) == 4
    # A boot files' name that is not this desktop's: nothing is read beside it.
    other = "/deep-learning-desktop/bob--role-0fedcba/boot-files"
    later = box.boot(boot_files_parameter=other)
    assert later.returncode == 0, later.output
    assert not [c for c in later.named("aws") if any(a.endswith("/sagemaker-config") for a in c)]
    assert box.read(ADMIN) == sagemaker_config.render(**VALUES)


# --- data where the desktop has it ------------------------------------------------------

def test_a_job_in_the_desktops_group_reaches_its_efs_and_fsx(rendered):
    """A job started with the defaults carries the groups of their VpcConfig; the desktop's EFS
    mount target and FSx file system admit NFS and Lustre from that group itself (a group
    reference, so every instance carrying it, not one address)."""
    r = rendered(fsxLustre="true")
    (parameter,) = [p for p in r.of_type("aws:ssm/parameter:Parameter") if p.name == "test--sagemaker-config"]
    defaults = yaml.safe_load(parameter.inputs["value"]["value"])
    job_groups = defaults["SageMaker"]["TrainingJob"]["VpcConfig"]["SecurityGroupIds"]
    assert job_groups == [r.outputs["DesktopSecurityGroup"]]
    ingress = [rule.inputs for rule in r.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")]

    def admitted(group_id) -> set:
        return {(i["ipProtocol"], i["fromPort"], i["toPort"]) for i in ingress
                if i["securityGroupId"] == group_id and i.get("referencedSecurityGroupId") in job_groups}

    (mount_target,) = r.of_type("aws:efs/mountTarget:MountTarget")
    (efs_group,) = mount_target.inputs["securityGroups"]
    assert admitted(efs_group) == {("tcp", 2049, 2049)}
    (fsx,) = r.of_type("aws:fsx/lustreFileSystem:LustreFileSystem")
    (fsx_group,) = fsx.inputs["securityGroupIds"]
    assert admitted(fsx_group) == {("tcp", 988, 988), ("tcp", 1018, 1023)}
    assert not any("cidrIpv4" in i for i in ingress if i["securityGroupId"] in (efs_group, fsx_group))
