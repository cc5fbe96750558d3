"""The component as a library: other programs' outputs as inputs, names that never
collide, aliases to the names of before, and the example of docs/library.md, all under Pulumi mocks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pytest

import cloud_init
from conftest import GOOD
from desktop import ConfigError, DeepLearningDesktop, DesktopArgs
from desktop.commands import offline
from desktop.component import TYPE
from desktop.naming import child_name

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = "aws:ec2/instance:Instance"
SG = "aws:ec2/securityGroup:SecurityGroup"
MOUNT_TARGET = "aws:efs/mountTarget:MountTarget"
EFS = "aws:efs/fileSystem:FileSystem"
LITERALS = dict(key_name="team", access_cidr="203.0.113.0/24")


def run(program, mocks=None):
    return offline.run(program, config={"aws:region": "us-east-1"}, mocks=mocks)


def network():
    """What a program that makes its own network registers before the desktop."""
    vpc = aws.ec2.Vpc("net", cidr_block="10.20.0.0/16")
    subnet = aws.ec2.Subnet("net", vpc_id=vpc.id, cidr_block="10.20.1.0/24")
    bucket = aws.s3.Bucket("data")
    return vpc, subnet, bucket


def user_data(registration) -> str:
    return cloud_init.decode(registration.inputs["userDataBase64"])


# --- outputs of other resources as inputs ------------------------------------------

def test_a_program_passes_the_ids_of_the_vpc_subnet_and_bucket_it_creates():
    def program():
        vpc, subnet, bucket = network()
        DeepLearningDesktop("dev", DesktopArgs(s3_bucket=bucket.id, vpc_id=vpc.id, subnet_id=subnet.id, **LITERALS))

    r = run(program)
    (vpc,) = r.of_type("aws:ec2/vpc:Vpc")
    (subnet,) = r.of_type("aws:ec2/subnet:Subnet")
    (bucket,) = r.of_type("aws:s3/bucket:Bucket")
    assert vpc.id.startswith("vpc-") and subnet.id.startswith("subnet-") and bucket.id.startswith("data-")
    assert {g.inputs["vpcId"] for g in r.of_type(SG)} == {vpc.id}
    (target,) = r.of_type(MOUNT_TARGET)
    assert target.inputs["subnetId"] == subnet.id
    (instance,) = r.of_type(INSTANCE)
    assert instance.inputs["subnetId"] == subnet.id
    assert f"SUBNET_ID={subnet.id}\n" in user_data(instance)
    (policy,) = [p for p in r.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["name"] == "s3-read-write"]
    resources = {s["Resource"] for s in json.loads(policy.inputs["policy"])["Statement"]}
    assert resources == {f"arn:aws:s3:::{bucket.id}", f"arn:aws:s3:::{bucket.id}/*"}


def test_a_given_group_and_file_system_may_be_outputs_too():
    def program():
        vpc, subnet, _ = network()
        group = aws.ec2.SecurityGroup("shared", vpc_id=vpc.id)
        files = aws.efs.FileSystem("shared")
        desktop = DeepLearningDesktop("dev", DesktopArgs(
            s3_bucket="team-data", vpc_id=vpc.id, subnet_id=subnet.id, security_group_id=group.id,
            efs_file_system_id=files.id, **LITERALS))
        pulumi.export("sg", desktop.security_group_id)
        pulumi.export("efs", desktop.efs_file_system_id)

    r = run(program)
    (group,) = r.of_type(SG)  # the program's own: the desktop creates none
    (files,) = r.of_type(EFS)
    assert group.name == "shared" and files.name == "shared"
    assert r.of_type(MOUNT_TARGET) == []
    (instance,) = r.of_type(INSTANCE)
    assert instance.inputs["vpcSecurityGroupIds"] == [group.id]
    assert (r.outputs["sg"], r.outputs["efs"]) == (group.id, files.id)
    assert f"EFS_FILE_SYSTEM_ID={files.id}\n" in user_data(instance)


@pytest.mark.parametrize("field, key, wrong, expected", [
    ("subnet_id", "subnetId", "vpc", "'subnet-' followed by 8 or 17 lowercase hex digits"),
    ("vpc_id", "vpcId", "subnet", "'vpc-' followed by 8 or 17 lowercase hex digits"),
    ("s3_bucket", "s3Bucket", "vpc", "a valid S3 bucket name"),
    ("security_group_id", "securityGroupId", "subnet", "'sg-' followed by 8 or 17 lowercase hex digits"),
    ("efs_file_system_id", "efsFileSystemId", "vpc", "'fs-' followed by 8 or 17 lowercase hex digits"),
])
def test_a_bad_value_known_only_later_fails_with_the_keys_message(field, key, wrong, expected):
    # The classic slip: the id of the wrong resource. Only known once the VPC exists.
    def program():
        vpc, subnet, _ = network()
        ids = {"vpc": vpc.id, "subnet": subnet.id}
        values = dict(s3_bucket="team-data", vpc_id=vpc.id, subnet_id=subnet.id, **LITERALS)
        values[field] = ids[wrong].apply(lambda v: v.upper() if field == "s3_bucket" else v)
        DeepLearningDesktop("dev", DesktopArgs(**values))

    with pytest.raises(ConfigError) as caught:
        run(program)
    (problem,) = caught.value.problems
    assert problem.key == key
    assert re.fullmatch(rf"{wrong}-[0-9a-f]{{17}}", problem.value.lower())
    assert problem.expected.startswith(expected)
    assert f"{key}: {problem.value!r} is not valid; expected {expected}" in str(caught.value)


def test_an_awaitable_is_an_input_too():
    async def bucket_name() -> str:
        return "team-data"

    def program():
        vpc, subnet, _ = network()
        DeepLearningDesktop("dev", DesktopArgs(s3_bucket=bucket_name(), vpc_id=vpc.id, subnet_id=subnet.id,
                                               **LITERALS))

    r = run(program)
    (policy,) = [p for p in r.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["name"] == "s3-read-write"]
    assert json.loads(policy.inputs["policy"])["Statement"][0]["Resource"] == "arn:aws:s3:::team-data"


def test_an_output_that_turns_out_empty_is_no_request_to_create():
    def program():
        vpc, subnet, _ = network()
        DeepLearningDesktop("dev", DesktopArgs(s3_bucket="team-data", vpc_id=vpc.id, subnet_id=subnet.id,
                                               efs_file_system_id=vpc.id.apply(lambda _: ""), **LITERALS))

    with pytest.raises(ConfigError) as caught:
        run(program)
    assert [(p.key, p.value) for p in caught.value.problems] == [("efsFileSystemId", "")]


def test_literal_values_beside_outputs_are_still_checked_at_once():
    captured = {}

    def program():
        vpc, _, _ = network()
        with pytest.raises(ConfigError) as caught:
            DesktopArgs(s3_bucket="team-data", vpc_id=vpc.id, subnet_id="subnet-nothex", **LITERALS)
        captured["problems"] = caught.value.problems

    r = run(program)
    assert [(p.key, p.value) for p in captured["problems"]] == [("subnetId", "subnet-nothex")]
    assert not [reg for reg in r.registrations if reg.type == TYPE]


class _Deployed(offline.AccountMocks):
    """A desktop created earlier in another subnet: the instance reports the kept subnet."""

    def new_resource(self, args):
        rid, state = super().new_resource(args)
        if args.typ == INSTANCE:
            state["subnetId"] = "subnet-0aaaaaaaaaaaaaaaa"
        return rid, state


def test_the_kept_subnet_is_compared_with_a_subnet_the_program_creates():
    def program():
        vpc, subnet, _ = network()
        DeepLearningDesktop("dev", DesktopArgs(s3_bucket="team-data", vpc_id=vpc.id, subnet_id=subnet.id,
                                               **LITERALS))

    with pytest.raises(ConfigError) as caught:
        run(program, mocks=_Deployed(region="us-east-1"))
    (problem,) = caught.value.problems
    assert problem.key == "subnetId" and problem.value.startswith("subnet-")
    assert "the desktop's own 'subnet-0aaaaaaaaaaaaaaaa'" in problem.expected
    run(program)  # the same program on an account whose desktop is in that subnet goes through


# --- names -------------------------------------------------------------------------

def test_two_desktops_whose_names_made_the_same_child_names_now_do_not():
    # dev's "efs-sg" and dev-efs's "sg" were both dev-efs-sg: a duplicate URN.
    args = DesktopArgs(**{"s3_bucket": "team-data", "vpc_id": GOOD["vpcId"], "subnet_id": GOOD["subnetId"]},
                       **LITERALS)

    def program():
        DeepLearningDesktop("dev", args)
        DeepLearningDesktop("dev-efs", args)

    r = run(program)
    urns = [reg.urn for reg in r.registrations]
    assert len(urns) == len(set(urns))
    groups = {g.name for g in r.of_type(SG)}
    assert groups == {"dev--sg", "dev--efs-sg", "dev-efs--sg", "dev-efs--efs-sg"}


def test_the_offline_harness_refuses_a_duplicate_urn_as_the_engine_does():
    def program():
        aws.s3.Bucket("data")
        aws.s3.Bucket("data")

    with pytest.raises(offline.DuplicateUrnError) as caught:
        run(program)
    assert str(caught.value) == (
        "Duplicate resource URN 'urn:pulumi:dev::deep-learning-desktop::pulumi:pulumi:Stack$aws:s3/bucket:Bucket"
        "::data'; try giving it a unique name")


def test_a_name_that_could_make_another_desktops_child_names_is_refused():
    args = DesktopArgs(**{"s3_bucket": "team-data", "vpc_id": GOOD["vpcId"], "subnet_id": GOOD["subnetId"]},
                       **LITERALS)
    with pytest.raises(ValueError, match="may not contain '--'"):
        run(lambda: DeepLearningDesktop("dev--efs", args))


@pytest.mark.parametrize("name", ["", "dev--efs"])
def test_component_names_that_could_collide_are_refused(name):
    with pytest.raises(ValueError, match="a desktop's name"):
        child_name(name, "sg")


@pytest.mark.parametrize("role", ["-sg", "efs--sg", "sg-", "SG", ""])
def test_a_role_that_could_make_another_childs_name_is_refused(role):
    # The proof that no two names collide needs roles that neither start with "-" nor hold "--".
    with pytest.raises(ValueError, match=f"a child's role is lowercase words joined by single hyphens, not {role!r}"):
        child_name("dev", role)
    assert child_name("dev", "efs-mount-target") == "dev--efs-mount-target"


# Every child of a desktop named "test", by its name before the "--" scheme.
OLD_NAMES = {
    "test-sg", "test-ssh", "test-dcv", "test-dcv-quic", "test-self", "test-egress-tcp", "test-egress-self",
    "test-efs", "test-efs-sg", "test-efs-nfs", "test-efs-mount-target",
    "test-role", "test-sagemaker", "test-s3-read-write", "test-dcv-license-s3", "test-profile",
    "test-instance",
}


def test_every_child_has_an_alias_to_its_old_name_so_up_renames_in_place(rendered):
    # sagemakerAccess full: the one mode with the old test-sagemaker attachment.
    r = rendered(sagemakerAccess="full")
    (component,) = [reg for reg in r.registrations if reg.type == TYPE]
    children = [reg for reg in r.registrations if reg.parent == component.urn]
    # (New kinds of children have no old name to alias, but an alias to a name never used is harmless.)
    assert {reg.name for reg in children} >= {name.replace("test-", "test--", 1) for name in OLD_NAMES}
    prefix = "urn:pulumi:test::deep-learning-desktop::deep-learning-desktop:index:DeepLearningDesktop$"
    for reg in children:
        old = "test-" + reg.name.removeprefix("test--")
        assert reg.aliases == [f"{prefix}{reg.type}::{old}"], reg.name
    # Above all the instance: found under its old URN, it is renamed, not replaced.
    (instance,) = r.of_type(INSTANCE)
    assert instance.aliases == [f"{prefix}aws:ec2/instance:Instance::test-instance"]


# --- the example of docs/library.md ----------------------------------------------------

LIBRARY_PAGE = ROOT / "docs" / "library.md"


def library_example() -> str:
    page = LIBRARY_PAGE.read_text()
    match = re.search(r"```python\n(.*?)```", page, re.S)
    assert match, "docs/library.md has a python example"
    return match.group(1)


def test_the_library_example_runs_two_desktops_sharing_one_efs_in_a_new_vpc():
    r = run(lambda: exec(compile(library_example(), str(LIBRARY_PAGE), "exec"), {"__name__": "__main__"}))
    (vpc,) = r.of_type("aws:ec2/vpc:Vpc")
    (subnet,) = r.of_type("aws:ec2/subnet:Subnet")
    (route_table,) = r.of_type("aws:ec2/routeTable:RouteTable")
    (gateway,) = r.of_type("aws:ec2/internetGateway:InternetGateway")
    assert route_table.inputs["routes"] == [{"cidrBlock": "0.0.0.0/0", "gatewayId": gateway.id}]
    (association,) = r.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
    assert (association.inputs["subnetId"], association.inputs["routeTableId"]) == (subnet.id, route_table.id)
    components = {reg.name for reg in r.registrations if reg.type == TYPE}
    assert components == {"alice", "bob"}
    (efs,) = r.of_type(EFS)  # one file system, alice's
    assert efs.name == "alice--efs"
    (target,) = r.of_type(MOUNT_TARGET)
    assert target.inputs["subnetId"] == subnet.id
    # Two groups, alice's and the one of her EFS mount target; none of bob's own.
    assert {group.name for group in r.of_type(SG)} == {"alice--sg", "alice--efs-sg"}
    alice_group = r.named("alice--sg")
    assert alice_group.inputs["vpcId"] == vpc.id
    instances = {reg.name: reg for reg in r.of_type(INSTANCE)}
    assert set(instances) == {"alice--instance", "bob--instance"}
    for instance in instances.values():
        assert instance.inputs["subnetId"] == subnet.id
        assert instance.inputs["vpcSecurityGroupIds"] == [alice_group.id]
        assert f"EFS_FILE_SYSTEM_ID={efs.id}\n" in user_data(instance)
    assert instances["bob--instance"].inputs["instanceType"] == "g5g.xlarge"
    assert set(r.outputs) == {"alice", "bob"}
