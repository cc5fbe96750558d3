"""Config validation: every rule of the spec's input table, reported all at once."""

from __future__ import annotations

import dataclasses
import ipaddress
import shutil

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from conftest import GOOD, ROOT
from desktop import config
from desktop.commands import stack_file
from desktop.config import ConfigError, DesktopArgs, parse

BAD = [
    ("s3Bucket", "ab"), ("s3Bucket", "My-Bucket"), ("s3Bucket", "a" * 64), ("s3Bucket", "bucket_name"),
    ("s3Bucket", "-bucket"), ("s3Bucket", "my..bucket"), ("s3Bucket", "192.168.1.1"),
    ("amiId", "ami-123"), ("amiId", "ami-0123456789ABCDEF0"), ("amiId", "img-12345678"),
    ("amiSsmParameter", "aws/service/x"), ("amiSsmParameter", "/has space"),
    ("vpcId", "vpc-1234567"), ("vpcId", "subnet-12345678"), ("vpcId", "vpc-123456789"),
    ("subnetId", "subnet-xyz12345"), ("subnetId", "vpc-12345678"),
    ("publicIp", "yes"), ("publicIp", "1"),
    ("ebsVolumeSize", "199"), ("ebsVolumeSize", "16385"), ("ebsVolumeSize", "200.5"),
    ("ebsVolumeSize", "lots"), ("ebsVolumeSize", "-300"),
    ("ebsVolumeType", "io2"), ("ebsVolumeType", "GP3"),
    ("efsFileSystemId", "fs-12"), ("efsFileSystemId", "efs-12345678"),
    ("efsMountPath", "relative/path"), ("efsMountPath", "/"), ("efsMountPath", "/home/ubuntu/my efs"),
    ("efsMountPath", "/home/../etc"), ("efsMountPath", "/mnt/a..b"), ("efsMountPath", "/home/ubuntu/efs/"),
    ("efsMountPath", "/a//b"),
    ("efsMountPath", "/" + "a" * 300), ("efsMountPath", "/home/$(reboot)"),
    ("securityGroupId", "sg-12"), ("securityGroupId", "group-12345678"),
    ("keyName", "a" * 256), ("keyName", "key\u00e9"), ("keyName", "key\nname"),
    ("instanceType", "g4dn"), ("instanceType", "G4DN.XLARGE"), ("instanceType", "g4dn.xlarge.extra"),
    ("accessCidr", "1.2.3.4"), ("accessCidr", "1.2.3.4/33"), ("accessCidr", "300.1.1.1/32"),
    ("accessCidr", "::/0"), ("accessCidr", "my-ip"),
    ("ebsOptimized", "maybe"),
    ("idleStopMinutes", "9"), ("idleStopMinutes", "1441"), ("idleStopMinutes", "-1"), ("idleStopMinutes", "30m"),
    ("idleBlockedHours", "169"), ("idleBlockedHours", "-1"), ("idleBlockedHours", "12h"),
    ("snapshotRetainCount", "1001"), ("snapshotRetainCount", "-1"), ("snapshotRetainCount", "seven"),
    ("snapshotTime", "5:00"), ("snapshotTime", "24:00"), ("snapshotTime", "05:60"), ("snapshotTime", "05:00Z"),
    ("efsBackup", "on"),
    ("fsxLustre", "yes"),
    ("fsxStorageCapacity", "1000"), ("fsxStorageCapacity", "3600"), ("fsxStorageCapacity", "0"),
    ("fsxStorageCapacity", "1.2"),
    ("fsxDeploymentType", "SCRATCH_1"), ("fsxDeploymentType", "persistent_2"),
    ("fsxMountPath", "fsx"), ("fsxMountPath", "/mnt/f s"),
    ("capacityReservationId", "cr-12"), ("capacityReservationId", "cb-0123456789abcdef0"),
    ("efa", "enabled"),
    ("spot", "sometimes"),
    ("spotMaxPrice", "-0.5"), ("spotMaxPrice", "0"), ("spotMaxPrice", "1e3"), ("spotMaxPrice", "$0.45"),
    ("spotMaxPrice", "NaN"), ("spotMaxPrice", "0.1234567"),
    ("budgetMonthlyUsd", "-5"), ("budgetMonthlyUsd", "12.5"), ("budgetMonthlyUsd", "1000001"),
    ("budgetEmail", "me"), ("budgetEmail", "me@localhost"), ("budgetEmail", "a@b.com,c@d.com"),
    ("budgetEmail", "Me <me@example.com>"), ("budgetEmail", "me@exa mple.com"),
    ("sagemakerAccess", "Scoped"), ("sagemakerAccess", "all"), ("sagemakerAccess", "true"),
]

GOOD_EDGES = [
    ("idleStopMinutes", "0", 0), ("idleStopMinutes", "10", 10), ("idleStopMinutes", "1440", 1440),
    ("snapshotRetainCount", "0", 0), ("snapshotRetainCount", "1000", 1000),
    ("snapshotTime", "00:00", "00:00"), ("snapshotTime", "23:59", "23:59"),
    ("fsxStorageCapacity", "1200", 1200), ("fsxStorageCapacity", "2400", 2400), ("fsxStorageCapacity", "4800", 4800),
]


@pytest.mark.parametrize("key,value,parsed", GOOD_EDGES)
def test_edge_values_are_accepted(key, value, parsed):
    args = parse({**GOOD, key: value}).args
    assert getattr(args, config.SETTINGS_BY_KEY[key].field) == parsed


@pytest.mark.parametrize("fsx_path", ["/home/ubuntu/efs", "/home/ubuntu/efs/fsx", "/home/ubuntu"])
def test_fsx_mount_path_may_not_equal_or_nest_with_the_efs_mount_path(fsx_path):
    with pytest.raises(ConfigError) as caught:
        parse({**GOOD, "fsxLustre": "true", "fsxMountPath": fsx_path})
    (problem,) = caught.value.problems
    assert problem.key == "fsxMountPath" and "/home/ubuntu/efs" in problem.expected


def test_fsx_mount_path_beside_the_efs_one_is_fine_and_unchecked_when_fsx_is_off():
    assert parse({**GOOD, "fsxLustre": "true", "fsxMountPath": "/home/ubuntu/efs2"}).args.fsx_lustre
    assert parse({**GOOD, "fsxMountPath": "/home/ubuntu/efs/x"}).args.fsx_lustre is False


@pytest.mark.parametrize("key,value", BAD)
def test_bad_value_names_the_key_value_and_expected_form(key, value):
    with pytest.raises(ConfigError) as caught:
        parse({**GOOD, key: value})
    (problem,) = caught.value.problems
    assert problem.key == key and problem.value == value
    line = str(caught.value).splitlines()[1]
    assert line.lstrip(" -").startswith(f"{key}: {value!r}")
    assert config.SETTINGS_BY_KEY[key].expected in line


def test_every_key_has_a_bad_value_in_the_table():
    assert {key for key, _ in BAD} == set(config.SETTINGS_BY_KEY)


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        parse({"ebsVolumeSize": "10", "ebsVolumeType": "st1", "unknownKey": "x"})
    keys = [p.key for p in caught.value.problems]
    assert set(keys) == set(config.REQUIRED_KEYS) | {"ebsVolumeSize", "ebsVolumeType", "unknownKey"}
    assert len(str(caught.value).splitlines()) == len(keys) + 1
    assert "pulumi config set s3Bucket" in str(caught.value)


def test_config_error_is_a_run_error_so_pulumi_prints_no_traceback():
    import pulumi

    assert issubclass(ConfigError, pulumi.RunError)


def test_defaults_apply_when_keys_are_unset_or_empty():
    args = parse({**GOOD, "efsFileSystemId": "", "securityGroupId": "", "amiId": ""}).args
    fields = {f.name: f.default for f in dataclasses.fields(DesktopArgs)}
    assert args.ebs_volume_size == fields["ebs_volume_size"] == 200
    assert args.instance_type == "g4dn.xlarge" and args.public_ip is True and args.ebs_optimized is True
    assert args.efs_file_system_id is None and args.security_group_id is None and args.ami_id is None


@pytest.mark.parametrize("raw,expected", [("false", False), ("False", False), ("TRUE", True), (False, False)])
def test_booleans_parse_and_false_is_not_replaced_by_the_default(raw, expected):
    assert parse({**GOOD, "publicIp": raw, "ebsOptimized": raw}).args.public_ip is expected


def test_integer_edges():
    assert parse({**GOOD, "ebsVolumeSize": "200"}).args.ebs_volume_size == 200
    assert parse({**GOOD, "ebsVolumeSize": 16384}).args.ebs_volume_size == 16384


def test_open_cidr_is_accepted_with_a_warning():
    parsed = parse({**GOOD, "accessCidr": "0.0.0.0/0"})
    assert parsed.args.access_cidr == "0.0.0.0/0"
    assert len(parsed.warnings) == 1 and "0.0.0.0/0" in parsed.warnings[0]


def test_cidr_with_host_bits_is_normalised_and_said_so():
    parsed = parse({**GOOD, "accessCidr": "198.51.100.77/24"})
    assert parsed.args.access_cidr == "198.51.100.0/24"
    assert any("198.51.100.0/24" in w for w in parsed.warnings)
    assert parse(GOOD).warnings == []


def test_desktop_args_built_directly_are_validated_too():
    with pytest.raises(ConfigError) as caught:
        DesktopArgs(s3_bucket="x", vpc_id="vpc-1", subnet_id="subnet-12345678", key_name="k",
                    access_cidr="10.0.0.0/8", ebs_volume_size=True)
    assert {p.key for p in caught.value.problems} == {"s3Bucket", "vpcId", "ebsVolumeSize"}


def test_desktop_args_are_frozen():
    args = parse(GOOD).args
    with pytest.raises(dataclasses.FrozenInstanceError):
        args.instance_type = "p5.48xlarge"


@settings(max_examples=300, deadline=None)
# Any text, and the kinds of text some key accepts (booleans in any case, numbers in and out of range).
@given(key=st.sampled_from(sorted(config.SETTINGS_BY_KEY)),
       value=st.one_of(st.text(), st.sampled_from(["true", "false", "True", "FALSE", "gp3", "sg-0123456789abcdef0"]),
                       st.from_regex(r"[0-9]{1,5}", fullmatch=True)))
def test_any_string_for_any_key_passes_or_raises_config_error(key, value):
    try:
        parsed = parse({**GOOD, key: value})
    except ConfigError as error:
        assert {p.key for p in error.problems} == {key}
    else:
        # Accepted: the key holds what the string says (its own kind), and the others are untouched.
        setting = config.SETTINGS_BY_KEY[key]
        got = getattr(parsed.args, setting.field)
        if value == "":  # not set: the default, or GOOD's value is dropped for an optional key
            assert got == config.default(key)
        elif setting.kind == "boolean":
            assert got is {"true": True, "false": False}[value.lower()]
        elif setting.kind == "integer":
            assert isinstance(got, int) and not isinstance(got, bool) and got == int(value)
        elif key == "accessCidr":  # host bits dropped (a warning says so)
            assert got == str(ipaddress.ip_network(value, strict=False))
        else:
            assert got == value
        assert parsed.args == parse({**GOOD, key: value}).args
        for other in GOOD:
            if other != key:
                assert getattr(parsed.args, config.SETTINGS_BY_KEY[other].field) == GOOD[other]


def test_pulumi_yaml_schema_declares_every_key_with_its_type_and_the_code_default():
    # The Pulumi CLI requires every typed key without a `default` before the program runs
    # ("Stack 'dev' is missing configuration value ..."), so each optional key needs the
    # code's default here, of the declared type, and a required key must have none.
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == config.PROJECT
    schema = project["config"]
    assert set(schema) == set(config.SETTINGS_BY_KEY)
    python_type = {"string": str, "integer": int, "boolean": bool}
    for setting in config.SETTINGS:
        declared = schema[setting.key]
        assert declared["type"] == setting.kind
        assert declared["description"]
        code_default = config.default(setting.key)
        if setting.key in config.REQUIRED_KEYS:
            assert "default" not in declared, setting.key
            continue
        assert "default" in declared, f"{setting.key} has no default: the Pulumi CLI would require it"
        assert type(declared["default"]) is python_type[setting.kind], setting.key
        assert declared["default"] == ("" if code_default is None else code_default), setting.key


def test_a_stack_with_only_the_required_keys_gets_the_project_defaults(tmp_path):
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / "Pulumi.min.yaml").write_text(yaml.safe_dump({"config": {
        f"{config.PROJECT}:{key}": value for key, value in GOOD.items()} | {
        f"{config.PROJECT}:ebsVolumeSize": "300", "aws:region": "eu-west-1"}}))
    stack = stack_file.read_stack("min", tmp_path)
    assert stack.raw["instanceType"] == config.default("instanceType")  # from Pulumi.yaml
    assert stack.raw["ebsVolumeSize"] == "300"  # the stack's value wins
    assert stack.parse().args.ebs_volume_size == 300 and stack.region == "eu-west-1"


def test_a_project_file_that_is_no_mapping_gives_no_defaults_and_no_traceback(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("- a list, not a project\n")
    (tmp_path / "Pulumi.min.yaml").write_text(yaml.safe_dump({"config": {
        f"{config.PROJECT}:{key}": value for key, value in GOOD.items()}}))
    stack = stack_file.read_stack("min", tmp_path)
    assert set(stack.raw) == set(GOOD) and stack.raw["s3Bucket"] == GOOD["s3Bucket"]


def test_dev_stack_file_is_valid_and_read_like_the_program_reads_it():
    # What the file says, read back as Pulumi reads it (the YAML itself, namespaced keys),
    # must be what the commands' reader gives, key by key; the rest are the code's defaults.
    stack = stack_file.read_stack("dev")
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    prefix = f"{config.PROJECT}:"
    given = {k[len(prefix):]: v for k, v in document.items() if k.startswith(prefix)}
    assert stack.region == document["aws:region"]
    assert given and {k: stack.raw[k] for k in given} == given
    parsed = stack.parse()
    assert parsed.warnings == []
    for key, value in given.items():
        assert getattr(parsed.args, config.SETTINGS_BY_KEY[key].field) == value, key
    for key in set(config.SETTINGS_BY_KEY) - set(given):
        assert getattr(parsed.args, config.SETTINGS_BY_KEY[key].field) == config.default(key), key


def test_reading_an_unknown_stack_says_how_to_create_it(tmp_path):
    with pytest.raises(stack_file.StackNotFound, match="pulumi stack init prod"):
        stack_file.read_stack("prod", tmp_path)


def test_stack_file_values_typed_by_yaml_are_accepted(tmp_path):
    (tmp_path / "Pulumi.t.yaml").write_text(
        "config:\n  aws:region: eu-west-1\n"
        + "".join(f"  deep-learning-desktop:{k}: {v}\n" for k, v in GOOD.items())
        + "  deep-learning-desktop:publicIp: false\n  deep-learning-desktop:ebsVolumeSize: 500\n"
    )
    stack = stack_file.read_stack("t", tmp_path)
    args = stack.parse().args
    assert stack.region == "eu-west-1" and args.public_ip is False and args.ebs_volume_size == 500


# --- keys that only go together (or not at all) ------------------------------------

def test_spot_with_a_capacity_reservation_names_both_keys():
    with pytest.raises(ConfigError) as caught:
        parse({**GOOD, "spot": "true", "capacityReservationId": "cr-0123456789abcdef0"})
    (problem,) = caught.value.problems
    assert problem.key == "spot" and "capacityReservationId" in problem.expected
    assert "cr-0123456789abcdef0" in problem.expected


def test_a_spot_max_price_needs_spot():
    with pytest.raises(ConfigError) as caught:
        parse({**GOOD, "spotMaxPrice": "0.45"})
    (problem,) = caught.value.problems
    assert (problem.key, problem.value) == ("spotMaxPrice", "0.45") and "spot" in problem.expected
    args = parse({**GOOD, "spot": "true", "spotMaxPrice": "0.45"}).args
    assert (args.spot, args.spot_max_price) == (True, "0.45")


@pytest.mark.parametrize("given,missing", [
    ({"budgetMonthlyUsd": "200"}, "budgetEmail"), ({"budgetEmail": "me@example.com"}, "budgetMonthlyUsd")])
def test_a_budget_needs_both_its_keys(given, missing):
    with pytest.raises(ConfigError) as caught:
        parse({**GOOD, **given})
    (problem,) = caught.value.problems
    assert problem.key == next(iter(given)) and missing in problem.expected


def test_a_budget_with_both_keys_and_no_budget_by_default():
    args = parse({**GOOD, "budgetMonthlyUsd": "200", "budgetEmail": "me@example.com"}).args
    assert (args.budget_monthly_usd, args.budget_email) == (200, "me@example.com")
    assert parse(GOOD).args.budget_monthly_usd == 0 and parse(GOOD).args.budget_email is None


def test_a_budget_email_may_have_254_characters_and_no_more():
    # RFC 5321's path is 256 octets with its <>: 254 for the address. With budgetMonthlyUsd
    # set, so that the length alone decides.
    domain = "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"
    longest, over = "a" * 64 + "@" + domain, "a" * 64 + "@d" + domain
    assert (len(longest), len(over)) == (254, 255)
    assert parse({**GOOD, "budgetMonthlyUsd": "200", "budgetEmail": longest}).args.budget_email == longest
    with pytest.raises(ConfigError) as caught:
        parse({**GOOD, "budgetMonthlyUsd": "200", "budgetEmail": over})
    (problem,) = caught.value.problems
    assert (problem.key, problem.value) == ("budgetEmail", over) and "one e-mail address" in problem.expected
