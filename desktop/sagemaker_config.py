"""The SageMaker Python SDK's defaults file for the desktop (``/etc/xdg/sagemaker/config.yaml``).

With it, ``@remote``, ``ModelTrainer``/``Estimator.fit()``, processing and ``Model`` run on
SageMaker from a desktop terminal or notebook without naming a role, a subnet, a security
group or a bucket: the desktop's own role, its subnet and group (VPC mode: the group
admits itself, which distributed training needs, and the desktop's EFS and FSx groups
admit it), and ``s3://<s3Bucket>/sagemaker/<desktop name>`` in its own bucket.

The path is the SDK's admin location (``platformdirs.site_config_dir("sagemaker")`` =
``/etc/xdg/sagemaker`` on Linux). The SDK reads it first and a person's own
``~/.config/sagemaker/config.yaml`` after, merging key by key, so the person's file wins
(sagemaker 2.257.7, ``sagemaker/config/config.py``, ``load_sagemaker_config``: the paths
``[admin, user]`` are merged in order with botocore's ``merge_dicts``, later values win).
The boot never touches the person's file.

The file travels in its own Parameter Store parameter, next to the boot files' one
(``/deep-learning-desktop/<role name>/sagemaker-config``, desktop/boot_files.py), not in the
user data: it follows the stack at every boot (a changed bucket lands at the next restart,
without `pulumi up` stopping the desktop), and the user data has no room left for it. Not
in the boot files' payload either: the idle agent alone nearly fills that parameter.
The keys follow the SDK's schema (``sagemaker/config/config_schema.py``); a test validates
the file with it and loads it with the SDK's own loader.
"""

from __future__ import annotations

import yaml

#: Where the boot writes the file on the desktop.
PATH = "/etc/xdg/sagemaker/config.yaml"
#: The tag every job, model and endpoint started from the desktop carries.
TAG_KEY = "deep-learning-desktop"
#: The file for ``sagemakerAccess: none``: valid for the SDK, and sets nothing.
NO_DEFAULTS = "SchemaVersion: '1.0'\n"


def s3_root(bucket: str, desktop: str) -> str:
    """Where jobs started from the desktop keep their code, inputs and results."""
    return f"s3://{bucket}/sagemaker/{desktop}"


def render(*, desktop: str, role_arn: str, subnet_id: str, security_group_id: str, bucket: str) -> str:
    """The defaults file (YAML) of the desktop named ``desktop``."""
    def vpc() -> dict:  # a fresh copy at each place: no YAML anchors in the file a person reads
        return {"SecurityGroupIds": [security_group_id], "Subnets": [subnet_id]}

    def tags() -> list:
        return [{"Key": TAG_KEY, "Value": desktop}]

    root = s3_root(bucket, desktop)
    document = {
        "SchemaVersion": "1.0",
        "SageMaker": {
            "PythonSDK": {"Modules": {
                # Estimator/ModelTrainer and Session.default_bucket(): the desktop's bucket, not
                # the SDK's own sagemaker-<region>-<account> (which the role may not create).
                "Session": {"DefaultS3Bucket": bucket, "DefaultS3ObjectKeyPrefix": f"sagemaker/{desktop}"},
                "RemoteFunction": {"RoleArn": role_arn, "S3RootUri": root, "VpcConfig": vpc(), "Tags": tags()},
            }},
            # Estimator/ModelTrainer jobs write their output under the Session's bucket and prefix.
            "TrainingJob": {"RoleArn": role_arn, "VpcConfig": vpc(), "Tags": tags()},
            "ProcessingJob": {"RoleArn": role_arn, "NetworkConfig": {"VpcConfig": vpc()}, "Tags": tags()},
            "Model": {"ExecutionRoleArn": role_arn, "VpcConfig": vpc(), "Tags": tags()},
        },
    }
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
