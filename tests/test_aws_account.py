"""The commands act on the account ``pulumi up`` acts on: the stack's ``aws:profile``,
``aws:region`` and ``aws:assumeRoles`` (pulumi-aws v7's list, chained), against moto's STS."""

from __future__ import annotations

import pytest

from desktop.commands import aws
from desktop.commands.errors import CommandError
from tests.moto_account import aws_env  # noqa: F401

OPERATOR = "arn:aws:iam::123456789012:role/desktop-operator"
OTHER_ACCOUNT = "arn:aws:iam::111122223333:role/desktop-deployer"


def identity(session: aws.Aws) -> dict:
    return session.client("sts").get_caller_identity()


def test_without_settings_the_caller_is_the_base_identity(aws_env):
    session = aws.Aws.for_stack({"aws:region": "us-east-1"})
    assert session.assumed == []
    assert ":assumed-role/" not in identity(session)["Arn"]


def test_one_assumed_role_changes_the_caller(aws_env):
    session = aws.Aws.for_stack({"aws:region": "us-east-1",
                                 "aws:assumeRoles": [{"roleArn": OPERATOR, "sessionName": "laptop"}]})
    assert identity(session)["Arn"] == "arn:aws:sts::123456789012:assumed-role/desktop-operator/laptop"
    assert session.session.get_credentials().access_key != "testing"


def test_assumed_roles_are_chained_in_order(aws_env):
    session = aws.Aws.for_stack({"aws:region": "eu-west-1", "aws:assumeRoles": [
        {"roleArn": OPERATOR, "sessionName": "hop1"},
        {"roleArn": OTHER_ACCOUNT, "sessionName": "hop2", "externalId": "team-7", "duration": "30m"},
    ]})
    found = identity(session)
    assert found["Account"] == "111122223333"
    assert found["Arn"] == "arn:aws:sts::111122223333:assumed-role/desktop-deployer/hop2"
    assert session.assumed == [OPERATOR, OTHER_ACCOUNT]
    assert session.region == "eu-west-1"


def test_the_stack_profile_wins_over_aws_profile(aws_env, tmp_path, monkeypatch):
    config = tmp_path / "aws-config"
    config.write_text("[profile desk]\nregion = ap-southeast-2\n[profile other]\nregion = sa-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "other")
    monkeypatch.delenv("AWS_REGION")
    session = aws.Aws.for_stack({"aws:profile": "desk"})
    assert session.region == "ap-southeast-2"  # the profile's region: the stack's profile was read


def test_an_unknown_profile_is_a_command_error(aws_env):
    with pytest.raises(CommandError, match="nowhere"):
        aws.Aws.for_stack({"aws:profile": "nowhere"})


def test_the_singular_assume_role_key_is_refused_as_pulumi_aws_v7_refuses_it():
    with pytest.raises(CommandError, match="invalid config key 'aws:assumeRole', should be 'aws:assumeRoles'"):
        aws.AccountSettings.from_stack({"aws:assumeRole": {"roleArn": OPERATOR}})


@pytest.mark.parametrize("roles, message", [
    ({"roleArn": OPERATOR}, "aws:assumeRoles to be a list"),
    ([{"sessionName": "x"}], r"aws:assumeRoles\[0\] must be a mapping with a roleArn"),
    ([{"roleArn": OPERATOR, "duration": "soon"}], r"aws:assumeRoles\[0\].duration: 'soon' is not a duration"),
])
def test_bad_assume_roles_are_command_errors(roles, message):
    with pytest.raises(CommandError, match=message):
        aws.AccountSettings.from_stack({"aws:assumeRoles": roles})


def test_each_provider_field_becomes_its_assume_role_argument():
    [hop] = aws.AccountSettings.from_stack({"aws:assumeRoles": [{
        "roleArn": OPERATOR, "sessionName": "s", "externalId": "e", "duration": "1h30m",
        "policy": '{"Version":"2012-10-17"}', "policyArns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
        "sourceIdentity": "alice", "tags": {"team": "ml"}, "transitiveTagKeys": ["team"],
    }]}).assume_roles
    assert hop.arguments == {
        "RoleArn": OPERATOR, "RoleSessionName": "s", "ExternalId": "e", "DurationSeconds": 5400,
        "Policy": '{"Version":"2012-10-17"}', "PolicyArns": [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}],
        "SourceIdentity": "alice", "Tags": [{"Key": "team", "Value": "ml"}], "TransitiveTagKeys": ["team"],
    }


@pytest.mark.parametrize("key, given, seconds", [
    ("duration", "900s", 900), ("duration", "2h", 7200), ("duration", "45m", 2700),
    ("durationSeconds", "3600", 3600), ("durationSeconds", 1800, 1800),  # what the provider's check reads
])
def test_durations_read_as_the_provider_reads_them(key, given, seconds):
    [hop] = aws.AccountSettings.from_stack({"aws:assumeRoles": [{"roleArn": OPERATOR, key: given}]}).assume_roles
    assert hop.arguments["DurationSeconds"] == seconds


def test_an_unnamed_session_gets_a_name_saying_who_assumed_it():
    [hop] = aws.AccountSettings.from_stack({"aws:assumeRoles": [{"roleArn": OPERATOR}]}).assume_roles
    assert hop.arguments["RoleSessionName"].startswith("deep-learning-desktop-")


def test_the_permission_a_failed_call_needed_is_named(aws_env):
    import botocore.exceptions

    session = aws.Aws.for_stack({"aws:region": "us-east-1"})
    session.client("ec2"), session.client("efs"), session.client("service-quotas"), session.client("s3")

    def denied(operation):
        return botocore.exceptions.ClientError({"Error": {"Code": "AccessDenied"}}, operation)
    assert session.permission(denied("DescribeRouteTables")) == "ec2:DescribeRouteTables"
    assert session.permission(denied("DescribeMountTargets")) == "elasticfilesystem:DescribeMountTargets"
    assert session.permission(denied("GetServiceQuota")) == "servicequotas:GetServiceQuota"
    assert session.permission(denied("HeadBucket")) == "s3:ListBucket"
    assert session.permission(denied("NoSuchOperation")) is None
