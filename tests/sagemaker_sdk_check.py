"""Run by tests/test_sagemaker_config.py with .venv-sagemaker's python (the real SageMaker SDK).

  sagemaker_sdk_check.py ADMIN USER BAD NONE

prints one JSON line: whether the SDK's schema accepts ADMIN and BAD, what its loader makes
of ADMIN then USER, of ADMIN alone and of NONE alone, and the CreateTrainingJob request of an
``@remote`` call with ADMIN as the admin file. One process, because importing the SDK takes
seconds. No network: S3 and STS are moto's (in process), and the
CreateTrainingJob call is captured before it leaves botocore.
"""

from __future__ import annotations

import json
import os
import sys


def validate(admin: str) -> dict:
    import jsonschema
    import yaml
    from sagemaker.config import validate_sagemaker_config

    try:
        validate_sagemaker_config(yaml.safe_load(open(admin)))
    except jsonschema.exceptions.ValidationError:
        return {"valid": False}
    return {"valid": True}


def load(admin: str, user: str) -> dict:
    os.environ["SAGEMAKER_ADMIN_CONFIG_OVERRIDE"] = admin
    os.environ["SAGEMAKER_USER_CONFIG_OVERRIDE"] = user
    from sagemaker.config import load_sagemaker_config

    merged = load_sagemaker_config()
    sm = merged.get("SageMaker", {})
    modules = sm.get("PythonSDK", {}).get("Modules", {})
    return {**validate(admin), "remote": modules.get("RemoteFunction", {}), "session": modules.get("Session", {}),
            "sections": {k: sm.get(k, {}) for k in ("TrainingJob", "ProcessingJob", "Model")}}


class Captured(Exception):
    pass


def remote(admin: str) -> dict:
    os.environ.update({"SAGEMAKER_ADMIN_CONFIG_OVERRIDE": admin, "SAGEMAKER_USER_CONFIG_OVERRIDE": admin,
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing"})
    import boto3
    import moto

    captured = {}
    with moto.mock_aws():
        boto3.client("s3").create_bucket(Bucket="my-dl-desktop-data")
        import sagemaker
        from sagemaker.remote_function import remote as remote_decorator

        session = sagemaker.Session(boto3.Session())

        def capture(params, **_):
            captured.update(params)
            raise Captured()

        session.sagemaker_client.meta.events.register("provide-client-params.sagemaker.CreateTrainingJob", capture)

        # As in a person's notebook: only the instance type and count; an image so that the
        # SDK does not look up the Python version's default one.
        @remote_decorator(instance_type="ml.g5.12xlarge", instance_count=2, use_torchrun=True,
                          sagemaker_session=session,
                          image_uri="763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-gpu-py311",
                          include_local_workdir=False, dependencies=None)
        def train(x):
            return x * 2

        try:
            train(21)
        except Captured:
            pass
    return {"request": captured}


def check_the_sdks_schema_once() -> None:
    """The SDK validates a defaults file on every read (a remote call reads it a dozen
    times) with jsonschema.validate, which first checks the SDK's own schema against
    JSON Schema's meta-schema: the same check of the same schema, two thirds of this
    process's CPU. It is made once; each file is still validated against the schema."""
    import jsonschema
    from sagemaker.config.config_schema import SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA as schema

    kind = jsonschema.validators.validator_for(schema)
    original = kind.check_schema

    def check_schema(given, *args, **kwargs):
        if given is not schema:
            return original(given, *args, **kwargs)
        if not checked:
            original(given, *args, **kwargs)
            checked.append(given)

    checked: list = []
    kind.check_schema = check_schema


if __name__ == "__main__":
    admin, user, bad, none = sys.argv[1:]
    check_the_sdks_schema_once()
    result = {
        "bad": validate(bad),
        "with_user": load(admin, user),
        # The same file as user file: a second read of ours, nothing of a person's.
        "alone": load(admin, admin),
        "none": load(none, none),
        "remote": remote(admin),
    }
    print(json.dumps(result, default=str))
