"""The desktop's IAM role and instance profile: SageMaker, its own bucket, the DCV license,
Session Manager, and the boundary no policy of it can widen.

Every ARN is built from the partition the provider runs in, so the same program
works in ``aws``, ``aws-cn`` and ``aws-us-gov``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from desktop import sagemaker_policy
from desktop.config import DesktopArgs
from desktop.naming import child
from desktop.partition import Partition

# sagemakerAccess: full, the sample's policy (for parity; the boundary below still applies).
SAGEMAKER_POLICY = "AmazonSageMakerFullAccess"
# What the SSM agent on the Deep Learning AMI needs to register the desktop with Systems
# Manager, so that a shell and port forwarding reach it with no inbound port open.
# Kept as AWS's managed policy rather than our copy of its actions: AWS updates it with the
# agent (a copy would break Session Manager the day the agent needs one more action, and
# "uncertain means safe" here means the shell stays reachable). Its one broad grant,
# ssm:GetParameter/GetParameters on every parameter, the boundary's
# OnlyOwnAndPublicParameters Deny takes back.
SESSION_MANAGER_POLICY = "AmazonSSMManagedInstanceCore"

# Every IAM action that changes users, groups, roles, policies, credentials or the account's
# identity providers, by verb (iam:PassRole is the next statement's; reads stay allowed,
# none is granted anyway). tests/test_role_evaluation.py checks them against every IAM write
# action parliament knows.
IAM_WRITE_ACTIONS = (
    "iam:Add*", "iam:Attach*", "iam:Change*", "iam:Create*", "iam:Deactivate*", "iam:Delete*",
    "iam:Detach*", "iam:Disable*", "iam:Enable*", "iam:Put*", "iam:Remove*", "iam:Reset*",
    "iam:Resync*", "iam:Set*", "iam:Tag*", "iam:Untag*", "iam:Update*", "iam:Upload*",
)
# SageMaker actions that hand the caller a session or code path running as *another* role
# without passing it: a presigned Studio or notebook URL opens a Jupyter as the profile's or
# notebook's role; a lifecycle configuration or a pipeline definition changed in place runs
# new code as the role the notebook or pipeline already has. Only AmazonSageMakerFullAccess
# allows them; denied in every mode.
SAGEMAKER_OTHER_ROLE_ACTIONS = (
    "sagemaker:CreatePresignedDomainUrl",
    "sagemaker:CreatePresignedNotebookInstanceUrl",
    "sagemaker:CreateNotebookInstanceLifecycleConfig",
    "sagemaker:UpdateNotebookInstanceLifecycleConfig",
    "sagemaker:UpdateNotebookInstance",
    "sagemaker:UpdatePipeline",
)
# The reads of Parameter Store values.
PARAMETER_READ_ACTIONS = (
    "ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:GetParameterHistory",
)

# Bucket-level and object-level actions, each on the resource it applies to. Together
# they are the data work the sample's s3:Get*, s3:List*, s3:PutObject* and
# s3:DeleteObject* allowed (objects, their versions, tags and ACLs, multipart uploads),
# without its bucket configuration reads (policy, encryption, lifecycle, ...).
BUCKET_ACTIONS = (
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:ListBucketMultipartUploads",
    "s3:GetBucketLocation",
    "s3:GetBucketVersioning",
)
OBJECT_ACTIONS = (
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
    "s3:GetObjectAcl",
    "s3:PutObject",
    "s3:PutObjectTagging",
    "s3:PutObjectAcl",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:DeleteObjectTagging",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)


def trust_policy(dns_suffix: str, sagemaker: bool = True) -> dict:
    """Who may assume the role: EC2 (the desktop) and, unless ``sagemakerAccess`` is none,
    SageMaker (jobs started from it)."""
    services = [f"ec2.{dns_suffix}"] + ([sagemaker_policy.SAGEMAKER_PRINCIPAL] if sagemaker else [])
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": services},
            "Action": "sts:AssumeRole",
        }],
    }


def boundary_policy(partition: str, role_arn: str) -> dict:
    """What the role may never do, whatever policy is attached (explicit Denies win in IAM):

    - pass any role but its own, or its own to any service but SageMaker: a job started
      from desktop A never runs as desktop B's role (AmazonSageMakerFullAccess allows
      passing every role of the account to SageMaker);
    - change IAM users, groups, roles or policies; act on Cognito user pools;
    - open another role's SageMaker notebook or Studio session, or change the code one runs;
    - read a Parameter Store value other than its own (``/deep-learning-desktop/<role name>/``:
      the DCV password and the boot files) and AWS's public ones (``/aws/service/``);
      AmazonSSMManagedInstanceCore alone allows them all.
    """
    # desktop.dcv_password names the parameters (and imports this module for Identity).
    from desktop.dcv_password import parameter_name

    role_name = role_arn.rsplit("/", 1)[-1]
    own_parameters = f"arn:{partition}:ssm:*:*:parameter{parameter_name(role_name, '*')}"
    public_parameters = f"arn:{partition}:ssm:*:*:parameter/aws/service/*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "PassOnlyOwnRole", "Effect": "Deny", "Action": "iam:PassRole", "NotResource": role_arn},
            {"Sid": "PassOwnRoleOnlyToSageMaker", "Effect": "Deny", "Action": "iam:PassRole", "Resource": role_arn,
             "Condition": {"StringNotEquals": {"iam:PassedToService": sagemaker_policy.SAGEMAKER_PRINCIPAL}}},
            {"Sid": "NoIdentityWrites", "Effect": "Deny", "Action": list(IAM_WRITE_ACTIONS), "Resource": "*"},
            {"Sid": "NoCognito", "Effect": "Deny", "Action": "cognito-idp:*", "Resource": "*"},
            {"Sid": "NoOtherRolesSageMakerSessions", "Effect": "Deny", "Action": list(SAGEMAKER_OTHER_ROLE_ACTIONS),
             "Resource": "*"},
            {"Sid": "OnlyOwnAndPublicParameters", "Effect": "Deny", "Action": list(PARAMETER_READ_ACTIONS),
             "NotResource": [own_parameters, public_parameters]},
        ],
    }


def account_of(arn: str) -> str:
    """The account id field of an ARN."""
    return arn.split(":")[4]


def s3_read_write_policy(partition: str, bucket: str) -> dict:
    """Read, list, write and delete in ``bucket``, and nothing on any other bucket."""
    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Bucket", "Effect": "Allow", "Action": list(BUCKET_ACTIONS), "Resource": bucket_arn},
            {"Sid": "Objects", "Effect": "Allow", "Action": list(OBJECT_ACTIONS), "Resource": f"{bucket_arn}/*"},
        ],
    }


def dcv_license_policy(partition: str, region: str) -> dict:
    """The DCV server on EC2 checks its license in a regional AWS bucket."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": f"arn:{partition}:s3:::dcv-license.{region}/*",
        }],
    }


@dataclass(frozen=True)
class Identity:
    role: aws.iam.Role
    profile: aws.iam.InstanceProfile


def desktop_role(name: str, args: DesktopArgs, partition: Partition, parent: pulumi.Resource) -> Identity:
    """The role the desktop (and SageMaker jobs it starts) runs as, and its instance profile."""
    role_child = child(name, "role", parent)
    with_sagemaker = args.sagemaker_access != "none"
    role = aws.iam.Role(
        role_child.name,
        description="Deep learning desktop: SageMaker, its S3 bucket, the DCV license, Session Manager",
        assume_role_policy=partition.dns_suffix.apply(lambda suffix: json.dumps(trust_policy(suffix, with_sagemaker))),
        opts=role_child.opts,
    )
    boundary = child(name, "boundary", parent)
    aws.iam.RolePolicy(
        boundary.name,
        name="boundary",
        role=role.id,
        policy=pulumi.Output.all(partition.name, role.arn).apply(lambda v: json.dumps(boundary_policy(*v))),
        opts=boundary.opts,
    )
    if args.sagemaker_access == "full":
        sagemaker = child(name, "sagemaker", parent)
        aws.iam.RolePolicyAttachment(
            sagemaker.name,
            role=role.name,
            policy_arn=partition.managed_policy(SAGEMAKER_POLICY),
            opts=sagemaker.opts,
        )
    elif args.sagemaker_access == "scoped":
        scoped = child(name, "sagemaker-scoped", parent)
        aws.iam.RolePolicy(
            scoped.name,
            name="sagemaker-scoped",
            role=role.id,
            policy=pulumi.Output.all(partition.name, partition.region, role.arn).apply(
                lambda v: json.dumps(sagemaker_policy.scoped_policy(v[0], v[1], account_of(v[2]), v[2]))),
            opts=scoped.opts,
        )
    ssm_core = child(name, "ssm-core", parent)
    aws.iam.RolePolicyAttachment(
        ssm_core.name,
        role=role.name,
        policy_arn=partition.managed_policy(SESSION_MANAGER_POLICY),
        opts=ssm_core.opts,
    )
    s3 = child(name, "s3-read-write", parent)
    aws.iam.RolePolicy(
        s3.name,
        name="s3-read-write",
        role=role.id,
        # The bucket may be another resource's output (a program that creates it).
        policy=pulumi.Output.all(partition.name, args.s3_bucket).apply(
            lambda v: json.dumps(s3_read_write_policy(*v))
        ),
        opts=s3.opts,
    )
    dcv = child(name, "dcv-license-s3", parent)
    aws.iam.RolePolicy(
        dcv.name,
        name="dcv-license-s3",
        role=role.id,
        policy=pulumi.Output.all(partition.name, partition.region).apply(
            lambda v: json.dumps(dcv_license_policy(*v))
        ),
        opts=dcv.opts,
    )
    profile_child = child(name, "profile", parent)
    profile = aws.iam.InstanceProfile(profile_child.name, role=role.name, opts=profile_child.opts)
    return Identity(role, profile)
