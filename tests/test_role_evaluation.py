"""The desktop role's complete permissions, evaluated as IAM would (tests/iam_evaluation.py).

Complete: every inline policy the program gives the role, plus the document of every
managed policy it attaches, from tests/managed_policies/ (AWS's default version, pinned
with its version id). A managed policy without a pinned document fails the test: nothing
the role can do goes unevaluated.
"""

from __future__ import annotations

import json
import re

import parliament
import pytest
from parliament import analyze_policy_string

from conftest import ROOT
from desktop.identity import IAM_WRITE_ACTIONS
from iam_evaluation import ALLOW, EXPLICIT_DENY, IMPLICIT_DENY, Request, evaluate

ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
FIXTURES = ROOT / "tests" / "managed_policies"
#: The managed policy versions the evaluation was made against (AWS's default versions).
PINNED = {"AmazonSSMManagedInstanceCore": "v2", "AmazonSageMakerFullAccess": "v29"}

ACCOUNT = "123456789012"
REGION = "us-west-2"
OTHER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/bob--role-0fedcba"


def managed_document(arn: str) -> dict:
    name = arn.rsplit("/", 1)[-1]
    path = FIXTURES / f"{name}.json"
    assert path.exists(), f"{arn} is attached but tests/managed_policies/{name}.json pins no document of it"
    fixture = json.loads(path.read_text())
    assert fixture["Arn"] == arn and fixture["VersionId"] == PINNED[name] and fixture["IsDefaultVersion"]
    return fixture["Document"]


class Role:
    """One desktop role's ARN, trust and complete permissions, from an offline run."""

    def __init__(self, rendering):
        role = rendering.named("test--role")
        self.arn = role.state["arn"]
        self.name = role.state["name"]
        self.trust = json.loads(role.inputs["assumeRolePolicy"])
        self.inline = {p.inputs["name"]: json.loads(p.inputs["policy"])
                       for p in rendering.of_type(ROLE_POLICY) if p.inputs["role"] == self.name}
        self.managed = [a.inputs["policyArn"] for a in rendering.of_type(ATTACHMENT) if a.inputs["role"] == self.name]
        self.policies = list(self.inline.values()) + [managed_document(arn) for arn in self.managed]

    def decide(self, action: str, resource: str, **context) -> str:
        return evaluate(self.policies, Request(action, resource, context))

    def may(self, action: str, resource: str, **context) -> bool:
        return self.decide(action, resource, **context) == ALLOW

    def parameter(self, leaf: str) -> str:
        return f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/deep-learning-desktop/{self.name}/{leaf}"


@pytest.fixture(scope="module")
def roles():
    from desktop.commands import offline
    from conftest import stack_config

    return {access: Role(offline.run_program(stack_config(sagemakerAccess=access), stack="test"))
            for access in ("scoped", "full", "none")}


PASSED_TO_SAGEMAKER = {"iam:PassedToService": "sagemaker.amazonaws.com"}


# --- the boundary, in every mode -----------------------------------------------------

@pytest.mark.parametrize("access", ["scoped", "full", "none"])
def test_no_desktop_passes_another_desktops_role_or_its_own_elsewhere(roles, access):
    role = roles[access]
    assert role.decide("iam:PassRole", OTHER_ROLE, **PASSED_TO_SAGEMAKER) == EXPLICIT_DENY
    assert role.decide("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/AmazonSageMaker-ExecutionRole",
                       **{"iam:PassedToService": "glue.amazonaws.com"}) == EXPLICIT_DENY
    assert role.decide("iam:PassRole", role.arn, **{"iam:PassedToService": "ec2.amazonaws.com"}) == EXPLICIT_DENY
    assert role.may("iam:PassRole", role.arn, **PASSED_TO_SAGEMAKER) == (access != "none")


@pytest.mark.parametrize("access", ["scoped", "full", "none"])
def test_parameters_only_its_own_three_and_aws_public_ones(roles, access):
    role = roles[access]
    for leaf in ("dcv-password", "boot-files", "sagemaker-config"):
        assert role.may("ssm:GetParameter", role.parameter(leaf)), leaf
    # Each inline grant names exactly its own parameter (the boundary allows the rest of the path).
    assert {p["Statement"][0]["Resource"] for name, p in role.inline.items()
            if name in ("boot-files-parameter", "sagemaker-config-parameter")} == {
        role.parameter("boot-files"), role.parameter("sagemaker-config")}
    public = f"arn:aws:ssm:{REGION}::parameter/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
    assert role.may("ssm:GetParameter", public) and role.may("ssm:GetParameters", public)
    for other in (f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/prod/db/password",
                  f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/deep-learning-desktop/bob--role-0fedcba/dcv-password",
                  f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/deep-learning-desktop/{role.name}-x/dcv-password",
                  f"arn:aws:ssm:{REGION}::parameter/aws/reference/secretsmanager/prod-db"):
        for action in ("ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:GetParameterHistory"):
            assert role.decide(action, other) == EXPLICIT_DENY, (action, other)


@pytest.mark.parametrize("access", ["scoped", "full", "none"])
def test_no_cognito_and_no_identity_writes(roles, access):
    role = roles[access]
    pool = f"arn:aws:cognito-idp:{REGION}:{ACCOUNT}:userpool/{REGION}_AbCdEf123"
    for action in ("cognito-idp:AdminCreateUser", "cognito-idp:CreateUserPool", "cognito-idp:ListUserPools"):
        assert role.decide(action, pool) == EXPLICIT_DENY, action
    iam = next(s for s in parliament.iam_definition if s["prefix"] == "iam")
    writes = [p["privilege"] for p in iam["privileges"]
              if p["access_level"] in ("Write", "Permissions management", "Tagging") and p["privilege"] != "PassRole"]
    assert len(writes) > 80
    for action in writes:
        assert role.decide(f"iam:{action}", f"arn:aws:iam::{ACCOUNT}:role/{action}") == EXPLICIT_DENY, action
    # Every verb of the Deny is one IAM writes with: no read slipped in.
    verbs = {re.match(r"[A-Z][a-z]+", a).group(0) for a in writes}
    assert {a.split(":")[1].rstrip("*") for a in IAM_WRITE_ACTIONS} == verbs


@pytest.mark.parametrize("access", ["scoped", "full", "none"])
def test_session_manager_and_the_ssm_agent_keep_every_action_they_need(roles, access):
    role = roles[access]
    instance = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0123456789abcdef0"
    # Session Manager's documented instance permissions (session-manager-getting-started-
    # instance-profile.html), and the SSM agent's core (AmazonSSMManagedInstanceCore).
    for action in ("ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
                   "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
                   "ssm:UpdateInstanceInformation", "ec2messages:GetMessages", "ec2messages:AcknowledgeMessage",
                   "ec2messages:SendReply", "ssm:ListInstanceAssociations", "ssm:UpdateInstanceAssociationStatus",
                   "ssm:GetDocument", "ssm:DescribeDocument", "ssm:PutInventory"):
        assert role.may(action, instance), action


# --- sagemakerAccess -------------------------------------------------------------------

def test_scoped_runs_jobs_as_itself_pulls_dlc_images_and_reads_their_logs(roles):
    role = roles["scoped"]
    job = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/train-2026-01-01"
    vpc = {"sagemaker:VpcSubnets": "subnet-0123456789abcdef0", "sagemaker:VpcSecurityGroupIds": "sg-0123456789abcdef0"}
    for action in ("sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob",
                   "sagemaker:AddTags"):
        assert role.may(action, job, **vpc), action
    assert role.may("iam:PassRole", role.arn, **PASSED_TO_SAGEMAKER)
    for action in ("sagemaker:CreateProcessingJob", "sagemaker:CreateModel", "sagemaker:CreateEndpoint",
                   "sagemaker:CreateTransformJob", "sagemaker:CreateHyperParameterTuningJob",
                   "sagemaker:CreateExperiment", "sagemaker:BatchPutMetrics"):
        assert role.may(action, f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:thing/x"), action
    assert role.may("ecr:BatchGetImage", "arn:aws:ecr:us-east-1:763104351884:repository/pytorch-training")
    assert role.may("ecr:GetDownloadUrlForLayer", f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/my-image")
    assert role.may("ecr:GetAuthorizationToken", "*")
    assert not role.may("ecr:BatchGetImage", "arn:aws:ecr:us-east-1:999999999999:repository/someone-else")
    assert not role.may("ecr:PutImage", f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/my-image")
    stream = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/TrainingJobs:log-stream:train/algo-1-1"
    assert role.may("logs:GetLogEvents", stream) and role.may("logs:PutLogEvents", stream)
    assert not role.may("logs:GetLogEvents", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/payroll:log-stream:x")
    assert role.may("ec2:CreateNetworkInterface", f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/subnet-0123456789abcdef0")
    assert role.may("cloudwatch:PutMetricData", "*", **{"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"})
    assert not role.may("cloudwatch:PutMetricData", "*", **{"cloudwatch:namespace": "Billing"})
    # Nothing of the managed policy's extras: other regions' or accounts' SageMaker, Studio,
    # S3 buckets by name, secrets, other roles.
    assert not role.may("sagemaker:CreateTrainingJob", f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:training-job/x")
    assert not role.may("sagemaker:CreatePresignedDomainUrl", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:user-profile/d/u")
    assert not role.may("s3:GetObject", "arn:aws:s3:::team-sagemaker-data/x")
    assert not role.may("secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:AmazonSageMaker-x")
    assert role.managed == [f"arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"]


def test_full_is_the_managed_policy_and_still_passes_no_other_role(roles):
    role = roles["full"]
    assert "arn:aws:iam::aws:policy/AmazonSageMakerFullAccess" in role.managed
    assert "sagemaker-scoped" not in role.inline
    assert role.may("sagemaker:CreateTrainingJob", f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:training-job/x")
    assert role.decide("iam:PassRole", OTHER_ROLE, **PASSED_TO_SAGEMAKER) == EXPLICIT_DENY
    # The ways to another role's session without passing it.
    for action in ("sagemaker:CreatePresignedDomainUrl", "sagemaker:CreatePresignedNotebookInstanceUrl",
                   "sagemaker:UpdatePipeline", "sagemaker:UpdateNotebookInstance"):
        assert role.decide(action, f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:notebook-instance/bob") == EXPLICIT_DENY
    assert role.decide("iam:CreateServiceLinkedRole", f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/x") == EXPLICIT_DENY


def test_none_has_no_sagemaker_at_all(roles):
    role = roles["none"]
    (statement,) = role.trust["Statement"]
    assert statement["Principal"]["Service"] == ["ec2.amazonaws.com"]
    assert roles["scoped"].trust["Statement"][0]["Principal"]["Service"] == ["ec2.amazonaws.com", "sagemaker.amazonaws.com"]
    assert role.decide("sagemaker:CreateTrainingJob", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/x") == IMPLICIT_DENY
    assert role.decide("iam:PassRole", role.arn, **PASSED_TO_SAGEMAKER) == IMPLICIT_DENY
    assert not role.may("ecr:BatchGetImage", "arn:aws:ecr:us-east-1:763104351884:repository/pytorch-training")
    assert not role.may("logs:GetLogEvents", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/TrainingJobs")
    # The desktop itself still works: its bucket, its password, Session Manager.
    assert role.may("s3:GetObject", "arn:aws:s3:::my-dl-data/x") and role.may("ssm:GetParameter", role.parameter("dcv-password"))


@pytest.mark.parametrize("access", ["scoped", "full", "none"])
def test_our_policies_pass_parliament_and_fit_iams_inline_limit(roles, access):
    role = roles[access]
    for name, policy in role.inline.items():
        findings = analyze_policy_string(json.dumps(policy)).findings
        assert findings == [], (name, [str(f) for f in findings])
    # IAM's limit on a role's inline policies together, whitespace not counted.
    assert sum(len(json.dumps(p, separators=(",", ":"))) for p in role.inline.values()) < 10_240


def test_every_arn_follows_the_partition():
    from desktop.commands import offline
    from conftest import stack_config

    r = offline.run_program(stack_config(region="cn-north-1"), stack="test",
                            mocks=offline.AccountMocks(partition="aws-cn", region="cn-north-1"))
    role = r.named("test--role")
    texts = [p.inputs["policy"] for p in r.of_type(ROLE_POLICY) if p.inputs["role"] == role.state["name"]]
    scoped = json.loads(r.named("test--sagemaker-scoped").inputs["policy"])
    assert "arn:aws-cn:ecr:*:727897471807:repository/*" in json.dumps(scoped)
    assert all("arn:aws:" not in text for text in texts) and any("arn:aws-cn:ssm:" in text for text in texts)


def test_full_is_allowed_with_a_warning_saying_what_it_allows():
    from conftest import GOOD
    from desktop.config import parse

    assert parse(GOOD).warnings == [] and parse({**GOOD, "sagemakerAccess": "none"}).warnings == []
    (warning,) = parse({**GOOD, "sagemakerAccess": "full"}).warnings
    for said in ("AmazonSageMakerFullAccess", "every SageMaker action", "only its own role", "Cognito",
                 "pulumi config rm sagemakerAccess"):
        assert said in warning


def test_a_role_with_a_path_reads_the_parameters_the_boot_names_after_its_last_part():
    """IAM's role name is the ARN's last part, whatever the path (`role/team/ml/<name>`); the
    boot names its parameters after it (`${ROLE_ARN##*/}`), so the boundary must too, or a
    role given a path could read none of its own parameters."""
    from desktop.identity import boundary_policy

    arn = f"arn:aws:iam::{ACCOUNT}:role/team/ml/carol--role-0abcdef"
    allow_all = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    policies = [boundary_policy("aws", arn), allow_all]
    own = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/deep-learning-desktop/carol--role-0abcdef/dcv-password"
    assert evaluate(policies, Request("ssm:GetParameter", own)) == ALLOW
    with_path = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/deep-learning-desktop/team/ml/carol--role-0abcdef/x"
    assert evaluate(policies, Request("ssm:GetParameter", with_path)) == EXPLICIT_DENY
