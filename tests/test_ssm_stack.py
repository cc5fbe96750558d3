"""The stack side of Session Manager: no open port, no key pair, a generated DCV password
in a SecureString only this desktop's role may read, and secret outputs that stay secret."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil

import pytest
from parliament import analyze_policy_string

import cloud_init
from conftest import GOOD, ROOT
from desktop.commands import offline
from desktop.commands.cli import main
from desktop.config import ConfigError, parse

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
INSTANCE = "aws:ec2/instance:Instance"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
PARAMETER = "aws:ssm/parameter:Parameter"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
# What the mock account names the role (the provider appends 7 random characters).
ROLE_NAME = "test--role-abc1234"
PARAMETER_NAME = f"/deep-learning-desktop/{ROLE_NAME}/dcv-password"


def instance_of(rendering):
    (instance,) = rendering.of_type(INSTANCE)
    return instance


def password_of(rendering) -> str:
    (generated,) = rendering.of_type(RANDOM_PASSWORD)
    return generated.state["result"]


# --- accessCidr ---------------------------------------------------------------

def test_without_access_cidr_the_group_admits_no_address_only_its_members(rendered):
    r = rendered(accessCidr=None)
    sg_id = r.outputs["DesktopSecurityGroup"]
    desktop_rules = [rule.inputs for rule in r.of_type(INGRESS) if rule.inputs["securityGroupId"] == sg_id]
    assert desktop_rules == [{
        "securityGroupId": sg_id, "ipProtocol": "-1", "referencedSecurityGroupId": sg_id,
        "description": "All traffic within the group (distributed SageMaker training)"}]
    for rule in r.of_type(INGRESS):  # the EFS group's NFS rule too: a group, never a range
        assert not {"cidrIpv4", "cidrIpv6", "prefixListId"} & set(rule.inputs), rule.name
    assert parse({k: v for k, v in GOOD.items() if k != "accessCidr"}).warnings == []


def test_with_access_cidr_ssh_and_dcv_stay_open_to_it(rendered):
    r = rendered()
    opened = sorted((rule.inputs["ipProtocol"], rule.inputs["fromPort"]) for rule in r.of_type(INGRESS)
                    if rule.inputs.get("cidrIpv4") == GOOD["accessCidr"])
    assert opened == [("tcp", 22), ("tcp", 8443), ("udp", 8443)]


# --- Session Manager ------------------------------------------------------------

@pytest.mark.parametrize("partition,region,arn", [
    ("aws", "us-east-1", "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"),
    ("aws-cn", "cn-north-1", "arn:aws-cn:iam::aws:policy/AmazonSSMManagedInstanceCore"),
    ("aws-us-gov", "us-gov-west-1", "arn:aws-us-gov:iam::aws:policy/AmazonSSMManagedInstanceCore"),
])
def test_every_desktop_role_gets_session_manager_in_its_partition(rendered, partition, region, arn):
    r = rendered(partition=partition, region=region)
    attachment = r.named("test--ssm-core")
    assert attachment.inputs["policyArn"] == arn
    assert attachment.inputs["role"] == r.named("test--role").state["name"]


# --- keyName ------------------------------------------------------------------

def test_without_key_name_the_instance_has_no_key_pair_and_the_shell_is_session_manager(rendered):
    r = rendered(keyName=None)
    instance = instance_of(r)
    assert instance.inputs.get("keyName") is None
    assert "keyName" in instance.ignore_changes  # still kept: adding one later would replace it
    assert r.outputs["SshCommand"] == (
        f"no key pair; a shell through Session Manager: `python -m desktop shell --stack test` or "
        f"`aws ssm start-session --target {instance.id} --region us-west-2`")


def test_a_key_without_an_open_port_goes_through_session_manager(rendered):
    r = rendered(accessCidr=None)
    command = r.outputs["SshCommand"]
    assert command.startswith(f"ssh -i ~/.ssh/{GOOD['keyName']}.pem -o ProxyCommand='aws ssm start-session")
    assert "--document-name AWS-StartSSHSession" in command and "--region us-west-2" in command
    assert command.endswith(f"ubuntu@{instance_of(r).id}")


class _Deployed(offline.AccountMocks):
    """A desktop created earlier: its instance reports the key pair it was created with
    ("" for none, as the provider reads it)."""

    def __init__(self, key_name: str):
        super().__init__()
        self.key_name = key_name

    def new_resource(self, args):
        rid, state = super().new_resource(args)
        if args.typ == INSTANCE:
            state["keyName"] = self.key_name
        return rid, state


def test_adding_a_key_pair_to_a_desktop_created_without_one_stops_at_the_preview(run_main):
    with pytest.raises(ConfigError) as caught:
        run_main(mocks=_Deployed(""))
    (problem,) = caught.value.problems
    assert (problem.key, problem.value) == ("keyName", GOOD["keyName"])
    assert problem.expected.startswith(
        "no key pair, as the desktop was created: adding one needs a new instance, and the root volume with your "
        "work would go with the old one. Unset keyName and open a shell through Session Manager "
        "(`python -m desktop shell`), or ")
    assert "pulumi destroy --target" in problem.expected


def test_dropping_the_key_pair_keeps_the_desktop_and_says_the_key_stays(run_main):
    r = run_main(mocks=_Deployed("old-key"), keyName=None)
    (warning,) = [w for w in r.warnings if "old-key" in w]
    assert "keeps the key pair 'old-key'" in warning and "authorized_keys" in warning
    assert "keyName" in instance_of(r).ignore_changes
    quiet = run_main(mocks=_Deployed(""), keyName=None)  # never had one, still none: nothing to say
    assert not [w for w in quiet.warnings if "key pair" in w]


# --- the DCV password -----------------------------------------------------------

def test_the_password_is_a_secure_string_of_this_desktop(rendered):
    r = rendered()
    (parameter,) = [p for p in r.of_type(PARAMETER) if p.name.endswith("-dcv-password-parameter")]
    assert parameter.inputs["type"] == "SecureString"
    assert "keyId" not in parameter.inputs  # the AWS managed key aws/ssm
    assert parameter.inputs["name"] == PARAMETER_NAME
    assert "value" in parameter.secret_inputs
    assert parameter.inputs["value"]["value"] == password_of(r)
    assert parameter.delete_before_replace  # its fixed name must be free for a replacement
    (generated,) = r.of_type(RANDOM_PASSWORD)
    assert generated.inputs["length"] >= 20 and ":" not in generated.inputs["overrideSpecial"]


def test_only_this_desktops_role_may_read_the_parameter_and_exactly_it(rendered):
    r = rendered()
    arn = f"arn:aws:ssm:us-west-2:123456789012:parameter{PARAMETER_NAME}"
    assert r.named("test--dcv-password-parameter").state["arn"] == arn
    grant = r.named("test--dcv-password-read")
    assert grant.inputs["role"] == r.named("test--role").id
    policy = json.loads(grant.inputs["policy"])
    allow, deny = policy["Statement"]
    assert allow == {"Sid": "DcvPassword", "Effect": "Allow", "Action": "ssm:GetParameter", "Resource": arn}
    # AmazonSSMManagedInstanceCore lets every desktop's role call ssm:GetParameter on any
    # parameter: the Deny keeps the other desktops' passwords encrypted for this one.
    assert (deny["Effect"], deny["Action"]) == ("Deny", "kms:Decrypt")
    assert not denies_decrypt(deny, arn)
    assert denies_decrypt(deny, "arn:aws:ssm:us-west-2:123456789012:parameter/deep-learning-desktop/bob-role-x/dcv-password")
    assert denies_decrypt(deny, "arn:aws:ssm:eu-west-1:210987654321:parameter/deep-learning-desktop/a/dcv-password")
    assert not denies_decrypt(deny, "arn:aws:ssm:us-west-2:123456789012:parameter/my-team/api-key")
    assert not denies_decrypt(deny, None)  # KMS use without the context: S3 objects, EBS, ...
    findings = analyze_policy_string(grant.inputs["policy"]).findings
    assert findings == [], [str(f) for f in findings]
    # No other inline policy of the program names the parameter or any SSM or KMS action.
    for other in r.of_type(ROLE_POLICY):
        if other is not grant:
            assert "kms:" not in other.inputs["policy"]
            # Other ssm: grants only on the boot files' and the SageMaker defaults' parameters
            # (tests/test_boot_files_stack.py); the boundary's ssm: actions are a Deny
            # (tests/test_role_evaluation.py).
            assert "ssm:" not in other.inputs["policy"] or other.inputs["name"] in (
                "boot-files-parameter", "sagemaker-config-parameter", "boundary")
    # The instance boots after the grant exists.
    assert grant.urn in instance_of(r).dependencies


def denies_decrypt(statement: dict, parameter_arn) -> bool:
    """Whether a Deny statement on kms:Decrypt applies when Parameter Store decrypts the
    parameter ``parameter_arn`` (its encryption context), or KMS is used without that
    context (None), by IAM's condition rules: every operator must hold, a missing key
    fails StringLike and satisfies StringNotEquals."""
    key = "kms:EncryptionContext:PARAMETER_ARN"
    for operator, conditions in statement["Condition"].items():
        pattern = conditions[key]
        if operator == "StringLike" and (parameter_arn is None or not fnmatch.fnmatchcase(parameter_arn, pattern)):
            return False
        if operator == "StringNotEquals" and parameter_arn == pattern:
            return False
        assert operator in ("StringLike", "StringNotEquals"), operator
    return True


def test_the_grant_follows_the_partition(rendered):
    r = rendered(partition="aws-cn", region="cn-north-1")
    allow, deny = json.loads(r.named("test--dcv-password-read").inputs["policy"])["Statement"]
    own = f"arn:aws-cn:ssm:cn-north-1:123456789012:parameter{PARAMETER_NAME}"
    assert allow["Resource"] == own
    assert deny["Resource"] == "arn:aws-cn:kms:*:*:key/*"
    assert denies_decrypt(deny, "arn:aws-cn:ssm:cn-north-1:123456789012:parameter/deep-learning-desktop/b/dcv-password")
    assert not denies_decrypt(deny, own)


def test_two_desktops_get_two_parameters_and_two_grants():
    args = parse(GOOD).args
    from desktop import DeepLearningDesktop

    r = offline.run(lambda: [DeepLearningDesktop(n, args) for n in ("alice", "bob")],
                    config={"aws:region": "us-east-1"})
    names = {p.name: p.inputs["name"] for p in r.of_type(PARAMETER) if p.inputs["type"] == "SecureString"}
    assert names == {"alice--dcv-password-parameter": "/deep-learning-desktop/alice--role-abc1234/dcv-password",
                     "bob--dcv-password-parameter": "/deep-learning-desktop/bob--role-abc1234/dcv-password"}
    resources = {r.named(f"{n}--dcv-password-read").inputs["policy"] for n in ("alice", "bob")}
    assert len(resources) == 2


def test_dcv_user_and_password_outputs_the_password_a_secret(rendered):
    r = rendered()
    assert r.outputs["DcvUser"] == "ubuntu"
    assert r.outputs["DcvPassword"] == password_of(r)
    assert "DcvPassword" in r.secret_outputs
    assert "DcvUser" not in r.secret_outputs and "SshCommand" not in r.secret_outputs


def test_the_boot_gets_the_parameter_name_never_the_password(rendered):
    r = rendered()
    user_data = cloud_init.decode(instance_of(r).inputs["userDataBase64"])
    _, script = cloud_init.split_parts(user_data)
    assert f"DCV_PASSWORD_PARAMETER={PARAMETER_NAME}\n" in script
    assert password_of(r) not in user_data


# --- plan ---------------------------------------------------------------------

@pytest.fixture
def project(tmp_path, monkeypatch):
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "__main__.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    monkeypatch.setattr("desktop.commands.stack_file.PROJECT_DIR", tmp_path)
    monkeypatch.setattr("desktop.commands.offline.MAIN", tmp_path / "__main__.py")
    return tmp_path


def write_stack(directory, name, **keys):
    merged = {k: v for k, v in {**GOOD, **keys}.items() if v is not None}
    body = "config:\n  aws:region: eu-west-1\n" + "".join(
        f"  deep-learning-desktop:{k}: {json.dumps(v)}\n" for k, v in merged.items())
    (directory / f"Pulumi.{name}.yaml").write_text(body)


def test_plan_says_session_manager_only_and_hides_the_password(project, capsys, monkeypatch):
    # A real password in the mocks, to show that the plan hides it (a plan's own is a placeholder).
    placeholders = offline.AccountMocks.__init__

    def real_values(self, **kw):
        placeholders(self, **{**kw, "placeholders": False})

    monkeypatch.setattr(offline.AccountMocks, "__init__", real_values)
    write_stack(project, "ssm", accessCidr=None, keyName=None)
    out_dir = project / "out"
    assert main(["plan", "--stack", "ssm", "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert "Access: Session Manager only: no port open to any address" in out
    assert "from 203.0.113.7/32" not in out and "key pair (none)" in out
    assert "DcvPassword           [secret]" in out
    plan = json.loads((out_dir / "plan.json").read_text())
    assert plan["outputs"]["DcvPassword"] == "[secret]"
    (parameter,) = [res for res in plan["resources"]
                    if res["type"] == PARAMETER and res["inputs"]["type"] == "SecureString"]
    assert parameter["inputs"]["value"] == "[secret]"
    password = offline.fake_password("ssm-dcv-password", 24)
    for text in [out] + [path.read_text() for path in out_dir.rglob("*") if path.is_file()]:
        assert password not in text


def test_plan_says_which_range_the_ports_are_open_to(project, capsys):
    write_stack(project, "open", accessCidr="198.51.100.0/24")
    assert main(["plan", "--stack", "open"]) == 0
    assert "Access: SSH (22) and DCV (8443) open from 198.51.100.0/24" in capsys.readouterr().out


def test_the_documented_rotation_command_names_the_password_resource(rendered):
    page = (ROOT / "docs" / "connect.md").read_text()
    (template,) = re.findall(r"pulumi up --replace '(urn:[^']+)'", page)
    (generated,) = rendered().of_type(RANDOM_PASSWORD)
    assert template.replace("<stack>", "test") == generated.urn
