"""The words of a ConfigError and what DesktopArgs checks when built directly (as another
program builds it), literal by literal."""

from __future__ import annotations

import pytest

from conftest import GOOD
from desktop.config import ConfigError, DesktopArgs, Problem, parse

ARGS = dict(s3_bucket="team-data", vpc_id=GOOD["vpcId"], subnet_id=GOOD["subnetId"], key_name="team",
            access_cidr="203.0.113.0/24")
HEX_ID = "followed by 8 or 17 lowercase hex digits"


def test_one_problem_and_two_problems_read_as_a_person_expects():
    one = ConfigError([Problem("vpcId", "vpc-1", "a VPC id")])
    assert str(one) == "invalid stack configuration (1 problem):\n  - vpcId: 'vpc-1' is not valid; expected a VPC id"
    two = ConfigError([Problem("vpcId", "vpc-1", "a VPC id"), Problem("keyName", None, "a key pair name")])
    assert str(two) == ("invalid stack configuration (2 problems):\n"
                        "  - vpcId: 'vpc-1' is not valid; expected a VPC id\n"
                        "  - keyName: not set; expected a key pair name")


@pytest.mark.parametrize("field, key, value", [
    ("ami_id", "amiId", "ami-1"),
    ("efs_file_system_id", "efsFileSystemId", "fs-1"),
    ("security_group_id", "securityGroupId", "sg-1"),
    ("capacity_reservation_id", "capacityReservationId", "cr-1"),
])
def test_a_bad_optional_value_given_directly_is_refused(field, key, value):
    with pytest.raises(ConfigError) as caught:
        DesktopArgs(**ARGS, **{field: value})
    (problem,) = caught.value.problems
    prefix = value.split("-")[0]
    assert problem == Problem(key, value, f"'{prefix}-' {HEX_ID}, e.g. {prefix}-0123456789abcdef0")


def test_a_value_of_the_wrong_type_given_directly_is_a_problem_not_a_crash():
    with pytest.raises(ConfigError) as caught:
        DesktopArgs(**{**ARGS, "vpc_id": 5}, ebs_volume_size=5)
    assert caught.value.problems == [
        Problem("vpcId", 5, f"'vpc-' {HEX_ID}, e.g. vpc-0123456789abcdef0"),
        Problem("ebsVolumeSize", 5, "a whole number of GiB from 200 to 16384"),
    ]


def test_a_nested_fsx_path_names_the_fsx_value():
    with pytest.raises(ConfigError) as caught:
        DesktopArgs(**ARGS, fsx_lustre=True, fsx_mount_path="/home/ubuntu/efs/fsx")
    assert caught.value.problems == [Problem(
        "fsxMountPath", "/home/ubuntu/efs/fsx",
        "a path neither equal to nor nested with efsMountPath '/home/ubuntu/efs'")]


def test_every_key_that_breaks_its_rule_is_reported_not_only_the_first():
    with pytest.raises(ConfigError) as caught:
        parse({**GOOD, "vpcId": "vpc-1", "subnetId": "subnet-1", "keyName": "é"})
    assert [(p.key, p.value) for p in caught.value.problems] == [
        ("vpcId", "vpc-1"), ("subnetId", "subnet-1"), ("keyName", "é")]


def test_an_unknown_key_of_the_stack_is_reported_with_its_value(run_main):
    with pytest.raises(ConfigError) as caught:
        run_main(ebsvolumeSize="300")
    (problem,) = caught.value.problems
    assert (problem.key, problem.value) == ("ebsvolumeSize", "300")
    assert problem.expected.startswith("a known key (s3Bucket, amiId, amiSsmParameter, vpcId, ")


@pytest.mark.parametrize("bucket", [
    "a.-b", "a-.b", "xn--data", "sthree-data", "data-s3alias", "data--ol-s3", "data.mrap", "data--x-s3",
])
def test_bucket_names_s3_reserves_or_refuses_are_refused(bucket):
    with pytest.raises(ConfigError) as caught:
        DesktopArgs(**{**ARGS, "s3_bucket": bucket})
    assert [(p.key, p.value) for p in caught.value.problems] == [("s3Bucket", bucket)]


@pytest.mark.parametrize("bucket", ["a.b-c", "xn-data", "data-s3", "data.mrap1"])
def test_bucket_names_near_the_reserved_ones_are_accepted(bucket):
    assert DesktopArgs(**{**ARGS, "s3_bucket": bucket}).s3_bucket == bucket


def test_key_pair_names_are_letters_digits_and_dot_underscore_hyphen_up_to_255_characters():
    for good in ("my-key", "team.key_2", "k" * 255):
        assert DesktopArgs(**{**ARGS, "key_name": good}).key_name == good
    for bad in ("k" * 256, "my key", "key;reboot", "$(reboot)", "`id`", "~tilde~", "del\x7f", "tab\tkey", "ключ", ""):
        with pytest.raises(ConfigError) as caught:
            DesktopArgs(**{**ARGS, "key_name": bad})
        (problem,) = caught.value.problems
        assert problem.key == "keyName" and problem.value == bad and "letters, digits" in problem.expected


def test_a_mount_path_may_be_255_characters_and_no_more():
    longest = "/mnt/" + "e" * 250
    assert DesktopArgs(**ARGS, efs_mount_path=longest).efs_mount_path == longest
    with pytest.raises(ConfigError):
        DesktopArgs(**ARGS, efs_mount_path=longest + "e")


@pytest.mark.parametrize("field,key", [("efs_mount_path", "efsMountPath"), ("fsx_mount_path", "fsxMountPath")])
@pytest.mark.parametrize("path", [
    "/etc", "/etc/efs", "/usr/local/bin", "/boot/efi", "/home", "/home/ubuntu", "/home/other/efs", "/",
    "/mnt", "/data", "/root/efs", "/var/lib/efs", "/fsxx", "/mntx/efs", "/home/ubuntu/.ssh",
    "/home/ubuntu/.config/autostart", "/home/ubuntu/work/.local", "/home/ubuntu/../../etc",
])
def test_a_mount_path_outside_home_mnt_data_and_fsx_is_refused_naming_the_key(field, key, path):
    with pytest.raises(ConfigError) as caught:
        DesktopArgs(**ARGS, fsx_lustre=True, **{field: path})
    problem = caught.value.problems[0]
    assert (problem.key, problem.value) == (key, path)
    assert "/home/ubuntu/, /mnt/ or /data/, or /fsx" in problem.expected


@pytest.mark.parametrize("path", ["/home/ubuntu/efs", "/home/ubuntu/work/data", "/mnt/efs", "/data/team", "/fsx",
                                  "/fsx/scratch"])
def test_a_mount_path_under_home_mnt_data_or_fsx_is_taken(path):
    assert DesktopArgs(**ARGS, efs_mount_path=path).efs_mount_path == path


@pytest.mark.parametrize("efs,fsx", [("/mnt/data", "/mnt/data"), ("/mnt/data", "/mnt/data/fsx"),
                                     ("/fsx/efs", "/fsx"), ("/home/ubuntu/a", "/home/ubuntu/a/b")])
def test_efs_and_fsx_may_not_be_equal_or_nested(efs, fsx):
    with pytest.raises(ConfigError) as caught:
        DesktopArgs(**ARGS, fsx_lustre=True, efs_mount_path=efs, fsx_mount_path=fsx)
    assert caught.value.problems[0].key == "fsxMountPath"


def test_every_value_that_is_not_of_its_type_is_reported_not_only_the_first():
    with pytest.raises(ConfigError) as caught:
        parse({**GOOD, "publicIp": "yes", "ebsVolumeSize": "big", "ebsOptimized": "no"})
    assert [(p.key, p.value) for p in caught.value.problems] == [
        ("publicIp", "yes"), ("ebsVolumeSize", "big"), ("ebsOptimized", "no")]
