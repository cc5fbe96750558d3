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

#: The Linux user DCV's system authentication logs in (the automatic console session's owner).
DCV_USER = "ubuntu"
#: Every parameter of this project lives under this path.
PARAMETER_PREFIX = "/deep-learning-desktop"
LENGTH = 24
# Typed by hand into the DCV login: no quotes, spaces or backslash; no ':' either, which
# separates the user from the password in what chpasswd reads.
SPECIAL_CHARACTERS = "!#%+-=?@^_"


def parameter_name(role_name: str) -> str:
    """The parameter of the desktop whose role is ``role_name``.

    IAM role names are unique in an account (across regions), and the role's is generated
    from the desktop's name: two stacks of the same name deployed from two Pulumi
    backends into one account still get two parameters. The characters IAM allows in a
    role name but Parameter Store does not in a parameter name (``+=,@``) become ``-``.
    """
    return f"{PARAMETER_PREFIX}/{re.sub(r'[+=,@]', '-', role_name)}/dcv-password"


def read_policy(parameter_arn: str) -> dict:
    """Reading the one parameter. The AWS managed key ``aws/ssm`` that encrypts it lets
    every principal of the account decrypt through Parameter Store, so no ``kms:Decrypt``
    is granted here (and none would be needed with that key)."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DcvPassword",
            "Effect": "Allow",
            "Action": "ssm:GetParameter",
            "Resource": parameter_arn,
        }],
    }


@dataclass(frozen=True)
class DcvPassword:
    """The generated password (a secret output), its parameter, and the role's grant on it."""

    password: pulumi.Output[str]
    parameter: aws.ssm.Parameter
    grant: aws.iam.RolePolicy


def dcv_password(name: str, identity: Identity, parent: pulumi.Resource) -> DcvPassword:
    """Generate the password, store it as a SecureString, and let the desktop's role read it."""
    opts = pulumi.ResourceOptions(parent=parent)
    generated = random.RandomPassword(
        f"{name}-dcv-password",
        length=LENGTH,
        special=True,
        override_special=SPECIAL_CHARACTERS,
        min_lower=1,
        min_upper=1,
        min_numeric=1,
        opts=opts,
    )
    password = pulumi.Output.secret(generated.result)
    parameter = aws.ssm.Parameter(
        f"{name}-dcv-password-parameter",
        name=identity.role.name.apply(parameter_name),
        type="SecureString",  # encrypted with the AWS managed key aws/ssm
        value=password,
        description=f"DCV password of {DCV_USER} on the deep learning desktop {name}; read by its boot",
        # The name is fixed by the role: a replacement must free it before creating anew.
        opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=True),
    )
    grant = aws.iam.RolePolicy(
        f"{name}-dcv-password-read",
        name="dcv-password-parameter",
        role=identity.role.id,
        policy=parameter.arn.apply(lambda arn: json.dumps(read_policy(arn))),
        opts=opts,
    )
    return DcvPassword(password, parameter, grant)
