"""The desktop's IAM role and instance profile: SageMaker, its own bucket, the DCV license,
Session Manager.

Every ARN is built from the partition the provider runs in, so the same program
works in ``aws``, ``aws-cn`` and ``aws-us-gov``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from desktop.config import DesktopArgs
from desktop.naming import child
from desktop.partition import Partition

SAGEMAKER_POLICY = "AmazonSageMakerFullAccess"
# What the SSM agent on the Deep Learning AMI needs to register the desktop with Systems
# Manager, so that a shell and port forwarding reach it with no inbound port open.
SESSION_MANAGER_POLICY = "AmazonSSMManagedInstanceCore"

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


def trust_policy(dns_suffix: str) -> dict:
    """Who may assume the role: EC2 (the desktop) and SageMaker (jobs started from it)."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": [f"ec2.{dns_suffix}", "sagemaker.amazonaws.com"]},
            "Action": "sts:AssumeRole",
        }],
    }


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
    role = aws.iam.Role(
        role_child.name,
        description="Deep learning desktop: SageMaker, its S3 bucket, the DCV license, Session Manager",
        assume_role_policy=partition.dns_suffix.apply(lambda suffix: json.dumps(trust_policy(suffix))),
        opts=role_child.opts,
    )
    sagemaker = child(name, "sagemaker", parent)
    aws.iam.RolePolicyAttachment(
        sagemaker.name,
        role=role.name,
        policy_arn=partition.managed_policy(SAGEMAKER_POLICY),
        opts=sagemaker.opts,
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
