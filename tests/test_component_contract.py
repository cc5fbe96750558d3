"""What the component promises beyond the spec's list, each pinned to a literal so that a
changed line fails here: the names and descriptions a person sees in the console (a
security group's description also forces its replacement), the exact IAM documents, the
values in the user data, the provider a program gives, and the kept-value checks."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
import pytest

import cloud_init
from cloud_init.render import END_OF_VALUES
from conftest import GOOD
from desktop import ConfigError, DeepLearningDesktop, DesktopArgs
from desktop.commands import offline
from test_component import _Deployed

INSTANCE = "aws:ec2/instance:Instance"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


def instance_of(rendering):
    (instance,) = rendering.of_type(INSTANCE)
    return instance


def test_descriptions_and_tags_of_the_security_groups_and_the_role(rendered):
    r = rendered()
    desktop_group = r.named("test--sg").inputs
    assert desktop_group["description"] == "Deep learning desktop: SSH and DCV from the access CIDR"
    efs_group = r.named("test--efs-sg").inputs
    assert efs_group["description"] == "EFS mount target: NFS from the deep learning desktop"
    assert efs_group["vpcId"] == GOOD["vpcId"]
    assert efs_group["tags"] == {"Name": "test-efs"}
    assert r.named("test--efs-nfs").inputs["description"] == "NFS from the desktop"
    role = r.named("test--role").inputs
    assert role["description"] == "Deep learning desktop: SageMaker, its S3 bucket, the DCV license, Session Manager"
    # The children of fsxLustre and efa, as the console lists them.
    heavy = rendered(fsxLustre="true", efa="true", instanceType="g5.48xlarge")
    fsx_group = heavy.named("test--fsx-sg").inputs
    assert fsx_group["description"] == "FSx for Lustre: Lustre from the deep learning desktop and between the file servers"
    assert fsx_group["tags"] == {"Name": "test-fsx"}
    efa = heavy.named("test--efa").inputs
    assert (efa["description"], efa["tags"]) == ("Deep learning desktop: EFA primary interface", {"Name": "test"})


def test_every_iam_document_has_the_policy_language_version_iam_takes(rendered):
    # IAM refuses a document whose Version is neither "2012-10-17" nor the older "2008-10-17"
    # (which has no policy variables): `pulumi up` would fail at the role.
    r = rendered(fsxLustre="true", efa="true", instanceType="g5.48xlarge")
    documents = {(reg.name, key): json.loads(reg.inputs[key]) for reg in r.registrations
                 for key in ("assumeRolePolicy", "policy") if key in reg.inputs and reg.type.startswith("aws:iam/")}
    assert len(documents) == 9  # two trust policies, seven inline ones
    assert {name: document["Version"] for name, document in documents.items()} == \
        {name: "2012-10-17" for name in documents}


def test_the_iam_documents_exactly(rendered):
    r = rendered()
    assert json.loads(r.named("test--role").inputs["assumeRolePolicy"]) == {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": ["ec2.amazonaws.com", "sagemaker.amazonaws.com"]},
            "Action": "sts:AssumeRole",
        }],
    }
    assert json.loads(r.named("test--s3-read-write").inputs["policy"]) == {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Bucket", "Effect": "Allow",
             "Action": ["s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads",
                        "s3:GetBucketLocation", "s3:GetBucketVersioning"],
             "Resource": "arn:aws:s3:::my-dl-data"},
            {"Sid": "Objects", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging", "s3:GetObjectVersionTagging",
                        "s3:GetObjectAcl", "s3:PutObject", "s3:PutObjectTagging", "s3:PutObjectAcl",
                        "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:DeleteObjectTagging",
                        "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
             "Resource": "arn:aws:s3:::my-dl-data/*"},
        ],
    }
    assert json.loads(r.named("test--dcv-license-s3").inputs["policy"]) == {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                       "Resource": "arn:aws:s3:::dcv-license.us-west-2/*"}],
    }


def test_each_value_reaches_its_own_variable_in_the_user_data(rendered):
    r = rendered(efsMountPath="/data/efs")
    script = cloud_init.split_parts(cloud_init.decode(instance_of(r).inputs["userDataBase64"]))[1]
    values = dict(line.split("=", 1) for line in script.split(END_OF_VALUES)[0].splitlines()
                  if "=" in line and not line.startswith("#"))
    assert values == {
        "REGION": "us-west-2",
        "DNS_SUFFIX": "amazonaws.com",
        "EFS_FILE_SYSTEM_ID": r.outputs["EFSFileSystemId"],
        "EFS_MOUNT_PATH": "/data/efs",
        "ROLE_ARN": r.outputs["DesktopRole"],
        "SECURITY_GROUP_ID": r.outputs["DesktopSecurityGroup"],
        "SUBNET_ID": GOOD["subnetId"],
        # Names of parameters, never their values; the features that are off are empty.
        "DCV_PASSWORD_PARAMETER": "/deep-learning-desktop/test--role-abc1234/dcv-password",
        "BOOT_FILES_PARAMETER": "/deep-learning-desktop/test--role-abc1234/boot-files",
        "FSX_DNS_NAME": "''",
        "FSX_MOUNT_NAME": "''",
        "FSX_MOUNT_PATH": "''",
        "EFA": "false",
    }
    assert r.outputs["DesktopRole"] == "arn:aws:iam::123456789012:role/test--role-abc1234"
    assert r.outputs["DesktopSecurityGroup"].startswith("sg-")


KEPT_AMI = "ami-0aaaaaaaaaaaaaaaa"
NEWEST = "ami-0bbbbbbbbbbbbbbbb"


def test_a_provider_given_to_the_component_makes_every_resource_and_lookup():
    # A program deploying to another account or region passes its own provider; the
    # component's children and its lookups (partition, region, AMI) must all use it.
    args = DesktopArgs(s3_bucket="team-data", vpc_id=GOOD["vpcId"], subnet_id=GOOD["subnetId"],
                       key_name="team", access_cidr="203.0.113.0/24")

    def program():
        provider = aws.Provider("elsewhere", region="eu-west-1")
        DeepLearningDesktop("dev", args, opts=pulumi.ResourceOptions(providers={"aws": provider}))

    # Deployed earlier from an older AMI, so the kept AMI's architecture is looked up too.
    parameter = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
    mocks = _Deployed({"ami": KEPT_AMI}, region="eu-west-1", ssm_parameters={parameter: NEWEST},
                      images={KEPT_AMI: "x86_64"})
    r = offline.run(program, config={"aws:region": "us-east-1"}, mocks=mocks)
    (provider,) = r.of_type("pulumi:providers:aws")
    reference = f"{provider.urn}::{provider.id}"
    # Every AWS resource; the DCV password's RandomPassword is the random provider's, which
    # has no account or region.
    children = [reg for reg in r.registrations if reg.custom and reg.type.startswith("aws:")]
    assert len(children) >= 17
    assert {reg.provider for reg in children} == {reference}
    tokens = {inv.token for inv in r.invocations}
    assert {"aws:index/getPartition:getPartition", "aws:index/getRegion:getRegion",
            "aws:ec2/getInstanceType:getInstanceType", "aws:ssm/getParameter:getParameter",
            "aws:ec2/getAmiIds:getAmiIds"} <= tokens
    assert {inv.provider for inv in r.invocations} == {reference}


def test_a_kept_value_is_checked_even_after_one_that_matches(run_main):
    # subnetId matches, keyName (checked after it) does not.
    with pytest.raises(ConfigError) as caught:
        run_main(mocks=_Deployed({"subnetId": GOOD["subnetId"], "keyName": "old-key"}))
    assert [p.key for p in caught.value.problems] == ["keyName"]


def test_a_newer_ami_is_mentioned_with_the_kept_and_the_newest_one(run_main):
    parameter = "/aws/service/deeplearning/ami/{}/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
    mocks = _Deployed({"ami": KEPT_AMI}, ssm_parameters={parameter.format("x86_64"): NEWEST},
                      images={KEPT_AMI: "x86_64"})
    r = run_main(mocks=mocks)
    notes = [m for level, m in r.logs if level == "info" and "newer" in m]
    assert notes == [
        f"a newer Deep Learning AMI ({NEWEST}) is published; the desktop keeps {KEPT_AMI}. To move to it, "
        f"`pulumi config set amiId {NEWEST}` (this replaces the instance and deletes its root volume: "
        "copy your work to EFS or S3 first)."]


def test_an_ami_parameter_of_ones_own_is_followed_without_architecture_checks(run_main):
    # Not a Deep Learning AMI parameter: no architecture segment to follow, and the kept
    # AMI is not looked up for its architecture; a newer value is only mentioned.
    own = "/team/desktop/ami-id"
    mocks = _Deployed({"ami": KEPT_AMI}, ssm_parameters={own: NEWEST}, images={KEPT_AMI: "x86_64"})
    r = run_main(mocks=mocks, amiSsmParameter=own, instanceType="g5g.xlarge")
    assert [inv.args["name"] for inv in r.invocations if inv.token == "aws:ssm/getParameter:getParameter"] == [own]
    assert not [inv for inv in r.invocations if inv.token == "aws:ec2/getAmiIds:getAmiIds"]
    notes = [m for level, m in r.logs if level == "info" and "newer" in m]
    assert notes == [
        f"a newer Deep Learning AMI ({NEWEST}) is published; the desktop keeps {KEPT_AMI}. To move to it, "
        f"`pulumi config set amiId {NEWEST}` (this replaces the instance and deletes its root volume: "
        "copy your work to EFS or S3 first)."]
    assert r.outputs["AmiSource"] == f"ssm:{own}"

