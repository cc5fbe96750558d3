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
