"""The DCV password of ``ubuntu``: generated at deploy, so nobody needs SSH to set one.

It lives in Pulumi state (the stack output ``DcvPassword``, a secret) and in an SSM
Parameter Store SecureString that only this desktop's role is granted. The boot reads
that parameter and sets the password through ``chpasswd``'s standard input, once per
parameter version, so a password changed on the desktop stays until the stack changes it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from desktop.identity import Identity
from desktop.naming import child
from desktop.partition import Partition

#: The Linux user DCV's system authentication logs in (the automatic console session's owner).
DCV_USER = "ubuntu"
#: Every parameter of this project lives under this path.
PARAMETER_PREFIX = "/deep-learning-desktop"
LENGTH = 24
# Typed by hand into the DCV login: no quotes, spaces or backslash; no ':' either, which
# separates the user from the password in what chpasswd reads.
SPECIAL_CHARACTERS = "!#%+-=?@^_"


def parameter_name(role_name: str, leaf: str = "dcv-password") -> str:
    """The parameter ``leaf`` (default: the password's) of the desktop whose role is ``role_name``.

    IAM role names are unique in an account (across regions), and the role's is generated
    from the desktop's name: two stacks of the same name deployed from two Pulumi
    backends into one account still get two parameters. The characters IAM allows in a
    role name but Parameter Store does not in a parameter name (``+=,@``) become ``-``.
    """
    return f"{PARAMETER_PREFIX}/{re.sub(r'[+=,@]', '-', role_name)}/{leaf}"


def read_policy(partition: str, parameter_arn: str) -> dict:
    """Reading the one parameter, and decrypting no other desktop's.

    The AWS managed key ``aws/ssm`` lets every principal of the account decrypt through
    Parameter Store, so reading our own SecureString needs no ``kms:Decrypt`` grant. But
    ``AmazonSSMManagedInstanceCore`` allows ``ssm:GetParameter`` on every parameter, so
    without the ``Deny`` every desktop's role could read every other desktop's password.
    Parameter Store decrypts with the parameter's ARN as encryption context
    (``PARAMETER_ARN``): the ``Deny`` refuses decrypting any parameter of this project but
    our own, and leaves every other use of KMS (S3, the person's own parameters) alone.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DcvPassword",
                "Effect": "Allow",
                "Action": "ssm:GetParameter",
                "Resource": parameter_arn,
            },
            {
                "Sid": "NoOtherDesktopsPassword",
                "Effect": "Deny",
                "Action": "kms:Decrypt",
                "Resource": f"arn:{partition}:kms:*:*:key/*",
                "Condition": {
                    "StringLike": {
                        "kms:EncryptionContext:PARAMETER_ARN": f"arn:{partition}:ssm:*:*:parameter{PARAMETER_PREFIX}/*",
                    },
                    "StringNotEquals": {"kms:EncryptionContext:PARAMETER_ARN": parameter_arn},
                },
            },
        ],
    }


@dataclass(frozen=True)
class DcvPassword:
    """The generated password (a secret output), its parameter, and the role's grant on it."""

    password: pulumi.Output[str]
    parameter: aws.ssm.Parameter
    grant: aws.iam.RolePolicy


def dcv_password(name: str, identity: Identity, partition: Partition, parent: pulumi.Resource) -> DcvPassword:
    """Generate the password, store it as a SecureString, and let the desktop's role read it."""
    generated_child = child(name, "dcv-password", parent)
    generated = random.RandomPassword(
        generated_child.name,
        length=LENGTH,
        special=True,
        override_special=SPECIAL_CHARACTERS,
        min_lower=1,
        min_upper=1,
        min_numeric=1,
        opts=generated_child.opts,
    )
    password = pulumi.Output.secret(generated.result)
    # The name is fixed by the role: a replacement must free it before creating anew.
    parameter_child = child(name, "dcv-password-parameter", parent, delete_before_replace=True)
    parameter = aws.ssm.Parameter(
        parameter_child.name,
        name=identity.role.name.apply(parameter_name),
        type="SecureString",  # encrypted with the AWS managed key aws/ssm
        value=password,
        description=f"DCV password of {DCV_USER} on the deep learning desktop {name}; read by its boot",
        opts=parameter_child.opts,
    )
    grant_child = child(name, "dcv-password-read", parent)
    grant = aws.iam.RolePolicy(
        grant_child.name,
        name="dcv-password-parameter",
        role=identity.role.id,
        policy=pulumi.Output.all(partition.name, parameter.arn).apply(lambda v: json.dumps(read_policy(*v))),
        opts=grant_child.opts,
    )
    return DcvPassword(password, parameter, grant)
