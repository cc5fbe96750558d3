"""The files the boot installs (the idle agent and its systemd units) in a Parameter Store
parameter, which only this desktop's role is granted.

They used to travel in the EC2 user data, where they took half of the 8,192 compressed
bytes this project allows itself; the user data now carries only the parameter's name.
The value is the files as one deterministic payload (cloud_init/boot_files.py: base64 of a
tar.gz), so an unchanged agent never changes the parameter.

The SageMaker SDK's defaults file (desktop/sagemaker_config.py) has its own parameter beside
it, plain YAML: the agent alone nearly fills the boot files' one.

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
from desktop.sagemaker_config import NO_DEFAULTS, PATH

#: The parameter's last path element, under the desktop's own path (like the password's).
LEAF = "boot-files"
#: The SageMaker SDK's defaults file's parameter, beside it. The boot derives its name from
#: the boot files' (cloud_init/boot.sh ``sagemaker_config_parameter``): keep the two equal.
SAGEMAKER_CONFIG_LEAF = "sagemaker-config"
#: Standard while the value fits 4 KB (free), else Advanced (8 KB, $0.05 a month).
TIER = "Intelligent-Tiering"


def parameter_name(role_name: str, leaf: str = LEAF) -> str:
    """``/deep-learning-desktop/<role name>/boot-files`` (or another ``leaf``): the desktop's
    parameter path, as :func:`desktop.dcv_password.parameter_name` makes it."""
    return _parameter_name(role_name, leaf)


def read_policy(parameter_arn: str, sid: str = "BootFiles") -> dict:
    """Reading exactly the one parameter (a String: no key, no decryption)."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": sid,
            "Effect": "Allow",
            "Action": "ssm:GetParameter",
            "Resource": parameter_arn,
        }],
    }


@dataclass(frozen=True)
class BootFiles:
    """The parameter holding the files, the one holding the SageMaker SDK's defaults file,
    and the role's grant on each."""

    parameter: aws.ssm.Parameter
    grant: aws.iam.RolePolicy
    sagemaker_config: aws.ssm.Parameter
    sagemaker_config_grant: aws.iam.RolePolicy

    @property
    def resources(self) -> list[pulumi.Resource]:
        """What the boot reads, and may read: the instance waits for all of them."""
        return [self.parameter, self.grant, self.sagemaker_config, self.sagemaker_config_grant]


def boot_files(name: str, identity: Identity, parent: pulumi.Resource,
               sagemaker_config: pulumi.Input[str] = NO_DEFAULTS) -> BootFiles:
    """The parameter with the files the boot installs, the one with the SageMaker SDK's
    defaults file ``sagemaker_config`` (desktop/sagemaker_config.py; it may depend on other
    resources' outputs: the role, the group), and the desktop role's grant to read each.

    Raises :class:`cloud_init.boot_files.BootFilesTooLarge` (a ValueError) before anything is
    registered when the files no longer fit one parameter.
    """
    parameter, grant = _string_parameter(
        name, identity, parent, LEAF, payloads.payload(), sid="BootFiles",
        description=(f"The files the boot of the deep learning desktop {name} installs "
                     f"({', '.join(payloads.MEMBERS)}): base64 of a tar.gz"),
        tier=TIER)
    # ~1.5 KB of YAML: Standard (free) holds it; the boot refuses more than 8 KB.
    defaults, defaults_grant = _string_parameter(
        name, identity, parent, SAGEMAKER_CONFIG_LEAF, sagemaker_config, sid="SageMakerConfig",
        description=(f"The SageMaker SDK's defaults file of the deep learning desktop {name}; its boot "
                     f"writes it to {PATH} at every boot"),
        tier="Standard")
    return BootFiles(parameter, grant, defaults, defaults_grant)


def _string_parameter(name: str, identity: Identity, parent: pulumi.Resource, leaf: str,
                      value: pulumi.Input[str], *, sid: str, description: str,
                      tier: str) -> tuple[aws.ssm.Parameter, aws.iam.RolePolicy]:
    """The desktop's String parameter ``leaf`` and the role's grant to read exactly it."""
    # The name is fixed by the role: a replacement must free it before creating anew.
    parameter_child = child(name, leaf, parent, delete_before_replace=True)
    parameter = aws.ssm.Parameter(
        parameter_child.name,
        name=identity.role.name.apply(lambda role_name: parameter_name(role_name, leaf)),
        type="String",  # the agent's code, the SDK's defaults: nothing secret
        tier=tier,
        value=value,
        description=description,
        opts=parameter_child.opts,
    )
    grant_child = child(name, f"{leaf}-read", parent)
    grant = aws.iam.RolePolicy(
        grant_child.name,
        name=f"{leaf}-parameter",
        role=identity.role.id,
        policy=parameter.arn.apply(lambda arn: json.dumps(read_policy(arn, sid))),
        opts=grant_child.opts,
    )
    return parameter, grant
