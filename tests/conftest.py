"""Shared test fixtures: a full, valid stack config and offline runs of the program."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from desktop.commands import offline  # noqa: E402
from desktop.config import PROJECT  # noqa: E402
# One moto server per test process (per xdist worker), shared by every module that uses
# moto: each module resets it to an empty account through moto's API.
from tests.moto_account import moto_server  # noqa: E402,F401

GOOD = {
    "s3Bucket": "my-dl-data",
    "vpcId": "vpc-0123456789abcdef0",
    "subnetId": "subnet-0123456789abcdef0",
    "keyName": "my-key",
    "accessCidr": "203.0.113.7/32",
}


def stack_config(region: str = "us-west-2", **keys) -> dict:
    """A namespaced stack config: GOOD plus ``keys`` (a value of None removes the key)."""
    merged = {**GOOD, **keys}
    config = {f"{PROJECT}:{k}": v for k, v in merged.items() if v is not None}
    config["aws:region"] = region
    return config


@pytest.fixture
def run_main():
    """Run the real __main__.py offline with GOOD config plus overrides."""

    def run(mocks=None, region="us-west-2", **keys):
        return offline.run_program(stack_config(region, **keys), stack="test", mocks=mocks)

    return run


def _share_parsed_botocore_models() -> None:
    """Every command makes its own boto3 session, as it must; a test process runs hundreds
    of them, and parsing the service models (EC2's is megabytes of JSON) anew for each costs
    most of the moto tests' time. Within this test process, loaders share what they parsed,
    as one loader shares it between its own clients."""
    import botocore.loaders

    shared: dict = {}
    for name in ("load_service_model", "load_data_with_path"):
        original = getattr(botocore.loaders.Loader, name)

        def load(self, *args, _original=original, _name=name, **kwargs):
            key = (_name, tuple(self.search_paths), args, tuple(sorted(kwargs.items())))
            if key not in shared:
                shared[key] = _original(self, *args, **kwargs)
            return shared[key]

        setattr(botocore.loaders.Loader, name, load)



def _share_client_methods() -> None:
    """Making a client builds one method per operation of its service (EC2 has hundreds),
    anew for every client of every session: a fifth of the moto tests' CPU. The methods
    depend only on the service model, which the loaders above share; so within this test
    process a new client class gets a copy of the methods built for the same model.
    Every session still emits its own creating-client-class event and makes its own class."""
    import botocore.client

    built: dict = {}
    original = botocore.client.ClientCreator._create_methods

    def create_methods(self, service_model):
        description = service_model._service_description
        if id(description) not in built:
            # The description is kept with the methods, so its id stays its own.
            built[id(description)] = (description, original(self, service_model))
        return dict(built[id(description)][1])

    botocore.client.ClientCreator._create_methods = create_methods


_share_parsed_botocore_models()
_share_client_methods()


@pytest.fixture
def sandbox(tmp_path):
    """A factory of boot sandboxes (tests/boot_sandbox.py), one scratch root each."""
    from boot_sandbox import Sandbox

    made = []

    def make(**options):
        made.append(Sandbox(tmp_path / f"sandbox{len(made) + 1}", **options))
        return made[-1]

    return make
