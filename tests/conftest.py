"""Shared test fixtures: a full, valid stack config and offline runs of the program."""

from __future__ import annotations

import copy
import gc
import json
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
from tests.memo import memo  # noqa: E402
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


@memo
def _rendering(region: str, partition: str, keys: str) -> offline.Rendering:
    return offline.run_program(stack_config(region, **json.loads(keys)), stack="test",
                               mocks=offline.AccountMocks(partition=partition, region=region))


@pytest.fixture
def rendered():
    """As ``run_main`` with the pretend account's own answers in ``partition`` (no mocks of the
    test's own), for a test that only reads the rendering: each config is
    rendered once per test process (tests/memo.py), and each test gets its own deep copy of it.
    A test that changes what the program reads (a monkeypatch, its own mocks), or that watches
    the rendering happen (its event loops, its log), uses ``run_main``."""

    def render(region="us-west-2", partition="aws", **keys):
        return copy.deepcopy(_rendering(region, partition, json.dumps(keys, sort_keys=True)))

    return render


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



def _share_service_models() -> None:
    """Each client wraps its service's description in a new ServiceModel, whose answers are
    computed anew per client (which operation discovers endpoints: a walk over EC2's hundreds
    of operations for every EC2 client). A ServiceModel is a read-only view of the description
    the loaders above share, so within this test process one serves every client of it."""
    import botocore.client

    made: dict = {}
    original = botocore.client.ClientCreator._load_service_model

    def load_service_model(self, service_name, api_version=None):
        model = original(self, service_name, api_version)
        # The description is kept with its model, so its id stays its own.
        key = (id(model._service_description), service_name)
        if key not in made:
            made[key] = model
        return made[key]

    botocore.client.ClientCreator._load_service_model = load_service_model


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


def _share_event_aliases() -> None:
    """Each session's event emitter (and its copy in each client) learns anew what every event
    name is called after botocore's renames (EVENT_ALIASES), one name at a time: a tenth of a
    preflight run's own CPU. With the same renames the answer is the same, so within this
    test process the emitters that use botocore's own renames share what they learnt."""
    import botocore.hooks

    shared: dict = {}
    original = botocore.hooks.EventAliaser.__init__

    def init(self, event_emitter, event_aliases=None):
        original(self, event_emitter, event_aliases)
        if self._event_aliases == botocore.hooks.EVENT_ALIASES:
            self._alias_name_cache = shared

    botocore.hooks.EventAliaser.__init__ = init


def _share_source_positions() -> None:
    """Pulumi gives each registered resource the source position of every frame on the stack
    (for the engine's messages; no test reads them), and under pytest the stack is deep:
    making each frame's file URI anew was a sixth of a rendering's CPU. Within this test
    process, the position of a (file, line) is made once: the same message, as it was."""
    import pulumi.runtime.resource as pulumi_resource

    made: dict = {}
    original = pulumi_resource._get_source_position_for_frame

    def position(frame):
        key = (frame.filename, frame.lineno)
        if key not in made:
            made[key] = original(frame)
        return made[key]

    pulumi_resource._get_source_position_for_frame = position


_share_parsed_botocore_models()
_share_service_models()
_share_client_methods()
_share_event_aliases()
_share_source_positions()

# The garbage collector: a rendering makes hundreds of thousands of short-lived objects (Pulumi's
# outputs, futures and tasks), and with CPython's default threshold (700) the collector ran
# thousands of times per test file, each time walking the young objects, and often every object
# of the process (moto, botocore's models, pulumi_aws): a third of a Pulumi test file's CPU.
# Collect less often: garbage lives a little longer, and gc.collect() still collects it at once.
gc.set_threshold(20_000, 20, 20)


def pytest_collection_finish(session):
    """What the collection imported (moto, boto3, pulumi, the tests) lives as long as the
    process: freeze it, so that no collection walks it again (gc.freeze)."""
    gc.collect()
    gc.freeze()


def pytest_sessionfinish(session):
    """Collect what the tests left while pytest still holds the output, as the default
    collector did during the tests: a rendering that failed leaves futures whose exceptions
    asyncio reports when they are collected ("Future exception was never retrieved"), which
    at the interpreter's exit would go to the terminal."""
    gc.collect()


@pytest.fixture
def sandbox(tmp_path):
    """A factory of boot sandboxes (tests/boot_sandbox.py), one scratch root each."""
    from boot_sandbox import Sandbox

    made = []

    def make(**options):
        made.append(Sandbox(tmp_path / f"sandbox{len(made) + 1}", **options))
        return made[-1]

    return make
