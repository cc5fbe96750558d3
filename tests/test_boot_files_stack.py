"""The stack side of the boot files: the parameter holding them and the one holding the
SageMaker SDK's defaults, the role's grant on exactly each, the instance waiting for all
of them, and the user data naming the first."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from parliament import analyze_policy_string

import cloud_init
import yaml

from cloud_init.boot_files import ADVANCED_LIMIT, FILES, MEMBERS, payload, tier, unpack
from cloud_init.render import shipped
from conftest import GOOD, ROOT
from desktop import DeepLearningDesktop
from desktop.commands import offline
from desktop.commands.cli import main
from desktop.config import parse

PARAMETER = "aws:ssm/parameter:Parameter"
INSTANCE = "aws:ec2/instance:Instance"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
# What the mock account names the role (the provider appends 7 random characters).
NAME = "/deep-learning-desktop/test--role-abc1234/boot-files"
SAGEMAKER_NAME = "/deep-learning-desktop/test--role-abc1234/sagemaker-config"


def boot_files_parameter(r):
    (parameter,) = [p for p in r.of_type(PARAMETER) if p.name == "test--boot-files"]
    return parameter


def sagemaker_parameter(r):
    (parameter,) = [p for p in r.of_type(PARAMETER) if p.name == "test--sagemaker-config"]
    return parameter


def sagemaker_values(text: str) -> tuple:
    """(role, subnets, groups, S3 root) of a SageMaker defaults file."""
    document = yaml.safe_load(text)["SageMaker"]
    remote = document["PythonSDK"]["Modules"]["RemoteFunction"]
    return (remote["RoleArn"], remote["VpcConfig"]["Subnets"], remote["VpcConfig"]["SecurityGroupIds"],
            remote["S3RootUri"])


def test_the_parameter_holds_exactly_the_files_as_the_desktop_gets_them(rendered):
    r = rendered()
    parameter = boot_files_parameter(r)
    inputs = parameter.inputs
    assert inputs["name"] == NAME
    assert inputs["type"] == "String"
    assert inputs["tier"] == "Intelligent-Tiering"
    # The provider's SDK marks every parameter value secret (the state keeps it encrypted).
    files = unpack(inputs["value"]["value"])
    # The agent and its units only: the SageMaker defaults have their own parameter.
    assert {name: text for name, (_, text) in files.items()} == {name: shipped(name) for name in FILES}
    assert files["idle_agent.py"][0] == 0o755
    assert len(inputs["value"]["value"]) <= ADVANCED_LIMIT
    assert parameter.delete_before_replace  # its fixed name must be free for a replacement


def test_the_sagemaker_parameter_holds_the_desktops_defaults_as_plain_yaml(rendered):
    r = rendered()
    parameter = sagemaker_parameter(r)
    inputs = parameter.inputs
    assert inputs["name"] == SAGEMAKER_NAME
    assert inputs["type"] == "String" and inputs["tier"] == "Standard"
    # The SageMaker SDK's defaults of this desktop (tests/test_sagemaker_config.py has the SDK read it).
    text = inputs["value"]["value"]
    assert sagemaker_values(text) == (
        r.outputs["DesktopRole"], [GOOD["subnetId"]], [r.outputs["DesktopSecurityGroup"]],
        f"s3://{GOOD['s3Bucket']}/sagemaker/test")
    assert len(text) <= 4_096, "Standard holds it"
    assert parameter.delete_before_replace


def test_without_sagemaker_the_defaults_file_sets_nothing(rendered):
    text = sagemaker_parameter(rendered(sagemakerAccess="none")).inputs["value"]["value"]
    assert yaml.safe_load(text) == {"SchemaVersion": "1.0"}


def test_the_user_data_names_the_parameter_and_carries_no_file(rendered):
    r = rendered()
    (instance,) = r.of_type(INSTANCE)
    _, script = cloud_init.split_parts(cloud_init.decode(instance.inputs["userDataBase64"]))
    assert f"\nBOOT_FILES_PARAMETER={NAME}\n" in script
    assert "OnUnitActiveSec" not in script and "def main" not in script


def test_the_instance_boots_after_the_parameters_and_the_grants(rendered):
    r = rendered()
    (instance,) = r.of_type(INSTANCE)
    assert boot_files_parameter(r).urn in instance.dependencies
    assert r.named("test--boot-files-read").urn in instance.dependencies
    assert sagemaker_parameter(r).urn in instance.dependencies
    assert r.named("test--sagemaker-config-read").urn in instance.dependencies


@pytest.mark.parametrize("partition,region", [
    ("aws", "us-east-1"), ("aws-cn", "cn-north-1"), ("aws-us-gov", "us-gov-west-1"),
])
def test_the_role_may_read_exactly_these_parameters_in_its_partition(rendered, partition, region):
    r = rendered(partition=partition, region=region)
    for leaf, sid, name, parameter in (("boot-files", "BootFiles", NAME, boot_files_parameter(r)),
                                       ("sagemaker-config", "SageMakerConfig", SAGEMAKER_NAME, sagemaker_parameter(r))):
        grant = r.named(f"test--{leaf}-read")
        assert grant.inputs["name"] == f"{leaf}-parameter"
        assert grant.inputs["role"] == r.named("test--role").state["name"]
        policy = json.loads(grant.inputs["policy"])
        assert policy["Statement"] == [{
            "Sid": sid, "Effect": "Allow", "Action": "ssm:GetParameter",
            "Resource": f"arn:{partition}:ssm:{region}:123456789012:parameter{name}"}]
        assert parameter.state["arn"] == policy["Statement"][0]["Resource"]
        findings = analyze_policy_string(json.dumps(policy)).findings
        assert findings == [], [str(f) for f in findings]


def test_two_desktops_get_two_parameters_and_two_grants():
    args = parse(GOOD).args
    r = offline.run(lambda: [DeepLearningDesktop(n, args) for n in ("alice", "bob")],
                    config={"aws:region": "us-east-1"})
    names = {p.name: p.inputs["name"] for p in r.of_type(PARAMETER) if p.inputs["type"] == "String"}
    assert names == {f"{n}--{leaf}": f"/deep-learning-desktop/{n}--role-abc1234/{leaf}"
                     for n in ("alice", "bob") for leaf in ("boot-files", "sagemaker-config")}
    resources = {json.loads(r.named(f"{n}--{leaf}-read").inputs["policy"])["Statement"][0]["Resource"]
                 for n in ("alice", "bob") for leaf in ("boot-files", "sagemaker-config")}
    assert len(resources) == 4


def test_files_too_large_for_a_parameter_stop_the_program_before_anything_is_created(monkeypatch):
    """The check runs before the parameter is registered: a clear error, not a failed `up`."""
    import cloud_init.boot_files as boot_files
    import os
    noise = __import__("base64").b64encode(os.urandom(7000)).decode()
    real = boot_files.texts
    monkeypatch.setattr(boot_files, "texts", lambda: {**real(), "idle_agent.py": noise})
    args = parse(GOOD).args
    with pytest.raises(Exception) as raised:
        offline.run(lambda: DeepLearningDesktop("big", args), config={"aws:region": "us-east-1"})
    assert "over the limit of an Advanced parameter, 8,192" in str(raised.value), raised.value


# --- plan -----------------------------------------------------------------------

@pytest.fixture
def project(tmp_path, monkeypatch):
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "__main__.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    monkeypatch.setattr("desktop.commands.stack_file.PROJECT_DIR", tmp_path)
    monkeypatch.setattr("desktop.commands.offline.MAIN", tmp_path / "__main__.py")
    return tmp_path


def test_plan_shows_the_parameter_and_writes_the_files(project, capsys):
    out_dir = project / "out"
    assert main(["plan", "--stack", "dev", "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    # The dev stack's boot files: the agent and its units, as the stack packs them.
    assert (f"boot-files, tier Intelligent-Tiering: {tier(payload())} for a value of {len(payload()):,} characters "
            "(Standard holds 4,096, Advanced 8,192)") in out
    found = re.search(r"/sagemaker-config, tier Standard, ([\d,]+) characters \(Standard holds 4,096\), free\n"
                      r"[│ ]*the SageMaker SDK's defaults file \(YAML\), which the boot writes to "
                      r"/etc/xdg/sagemaker/config.yaml", out)
    assert found and 500 < int(found.group(1).replace(",", "")) <= 4_096, out
    assert "idle_agent.py (0755, " in out and "deep-learning-desktop-idle.timer (0644, " in out
    assert "allow ssm:GetParameter on arn:aws:ssm:" in out and "/boot-files" in out
    assert re.search(r"allow ssm:GetParameter on arn:aws:ssm:[^\n]*:parameter/deep-learning-desktop/[^\n]*/sagemaker-config\n", out)
    assert re.search(r"user data [\d,]+ bytes, [\d,]+ gzip-compressed \(EC2's limit 16,384, "
                     r"this project's goal 10,240\)", out)
    written = {path.name: path for path in (out_dir / "boot-files").iterdir()}
    assert sorted(written) == list(MEMBERS)
    defaults = out_dir / "sagemaker-config.yaml"
    assert sagemaker_values(defaults.read_text())[3] == "s3://my-dl-desktop-data/sagemaker/dev"
    for name, path in written.items():
        assert path.read_text() == shipped(name)
        assert path.stat().st_mode & 0o777 == FILES[name]
