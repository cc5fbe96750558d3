"""The files the boot installs (the idle agent and its systemd units) in a Parameter Store
parameter, which only this desktop's role is granted.

They used to travel in the EC2 user data, where they took half of the 8,192 compressed
bytes this project allows itself; the user data now carries only the parameter's name.
The value is the files as one deterministic payload (cloud_init/boot_files.py: base64 of a
tar.gz), so an unchanged agent never changes the parameter.

The user data carries no hash of the payload, on purpose: a changed agent then changes
only the parameter, and lands at the desktop's next boot, without `pulumi up` stopping and
starting a running desktop for it. The parameter is as trusted as the user data: only the
account's administrators can write either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from cloud_init import boot_files as payloads
from desktop.dcv_password import parameter_name as _parameter_name
from desktop.identity import Identity
from desktop.naming import child

#: The parameter's last path element, under the desktop's own path (like the password's).
LEAF = "boot-files"
#: Standard while the value fits 4 KB (free), else Advanced (8 KB, $0.05 a month).
TIER = "Intelligent-Tiering"


def parameter_name(role_name: str) -> str:
    """``/deep-learning-desktop/<role name>/boot-files``: the desktop's parameter path, as
    :func:`desktop.dcv_password.parameter_name` makes it."""
    return _parameter_name(role_name, LEAF)


def read_policy(parameter_arn: str) -> dict:
    """Reading exactly the one parameter (a String: no key, no decryption)."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "BootFiles",
            "Effect": "Allow",
            "Action": "ssm:GetParameter",
            "Resource": parameter_arn,
        }],
    }


@dataclass(frozen=True)
class BootFiles:
    """The parameter holding the files, and the role's grant on it."""

    parameter: aws.ssm.Parameter
    grant: aws.iam.RolePolicy


def boot_files(name: str, identity: Identity, parent: pulumi.Resource,
               sagemaker_config: pulumi.Input[str] = payloads.NO_SAGEMAKER_DEFAULTS) -> BootFiles:
    """The parameter with the files the boot installs, and the desktop role's grant to read it.
    ``sagemaker_config`` is the SageMaker SDK's defaults file (desktop/sagemaker_config.py),
    which may depend on other resources' outputs (the role, the group).

    Raises :class:`cloud_init.boot_files.BootFilesTooLarge` (a ValueError) before anything is
    registered when the files no longer fit one parameter.
    """
    payloads.payload()  # too large already without the defaults file: say so now
    value = pulumi.Output.from_input(sagemaker_config).apply(lambda text: payloads.payload(payloads.texts(text)))
    # The name is fixed by the role: a replacement must free it before creating anew.
    parameter_child = child(name, "boot-files", parent, delete_before_replace=True)
    parameter = aws.ssm.Parameter(
        parameter_child.name,
        name=identity.role.name.apply(parameter_name),
        type="String",  # the agent's code: nothing secret
        tier=TIER,
        value=value,
        description=(f"The files the boot of the deep learning desktop {name} installs "
                     f"({', '.join(payloads.MEMBERS)}): base64 of a tar.gz"),
        opts=parameter_child.opts,
    )
    grant_child = child(name, "boot-files-read", parent)
    grant = aws.iam.RolePolicy(
        grant_child.name,
        name="boot-files-parameter",
        role=identity.role.id,
        policy=parameter.arn.apply(lambda arn: json.dumps(read_policy(arn))),
        opts=grant_child.opts,
    )
    return BootFiles(parameter, grant)
