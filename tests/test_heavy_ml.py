"""FSx for Lustre, capacity reservations and Capacity Blocks, EFA: the component under Pulumi mocks."""

from __future__ import annotations

import json

import pytest

import cloud_init
from cloud_init.render import END_OF_VALUES
from conftest import GOOD
from desktop.commands import offline
from desktop.commands.plan import tree_lines
from desktop.config import ConfigError
from test_component import _Deployed

INSTANCE = "aws:ec2/instance:Instance"
LUSTRE = "aws:fsx/lustreFileSystem:LustreFileSystem"
ASSOCIATION = "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
ENI = "aws:ec2/networkInterface:NetworkInterface"
EIP = "aws:ec2/eip:Eip"
GET_CAPACITY_BLOCK = "aws:ec2/getCapacityBlockReservation:getCapacityBlockReservation"
RESERVATION = "cr-0123456789abcdef0"
INSTANCE_URN = ("urn:pulumi:test::deep-learning-desktop::"
                "deep-learning-desktop:index:DeepLearningDesktop$aws:ec2/instance:Instance::test--instance")


def instance_of(rendering):
    (instance,) = rendering.of_type(INSTANCE)
    return instance


def script_values(rendering) -> str:
    """The assignments at the top of the boot script the instance gets."""
    _, script = cloud_init.split_parts(cloud_init.decode(instance_of(rendering).inputs["userDataBase64"]))
    return script.split(END_OF_VALUES)[0]


# --- FSx for Lustre ---------------------------------------------------------------

def test_scratch_fsx_imports_the_bucket_on_the_file_system_and_is_kept(rendered):
    r = rendered(fsxLustre="true")
    (fsx,) = r.of_type(LUSTRE)
    i = fsx.inputs
    assert (i["deploymentType"], i["storageCapacity"], i["subnetIds"]) == ("SCRATCH_2", 1200, GOOD["subnetId"])
    assert i["securityGroupIds"] == [r.named("test--fsx-sg").id]
    assert (i["importPath"], i["exportPath"]) == ("s3://my-dl-data", "s3://my-dl-data")
    assert i["autoImportPolicy"] == "NEW_CHANGED_DELETED"
    assert "perUnitStorageThroughput" not in i
    assert r.of_type(ASSOCIATION) == []
    assert fsx.retain_on_delete and r.named("test--fsx-sg").retain_on_delete
    # The boot mounts it: the instance waits for it and gets its DNS name and mount name.
    assert fsx.urn in instance_of(r).dependencies
    values = script_values(r)
    assert f"FSX_DNS_NAME={fsx.state['dnsName']}\n" in values
    assert "FSX_MOUNT_NAME=abcdef12\n" in values and "FSX_MOUNT_PATH=/home/ubuntu/fsx\n" in values
    assert (r.outputs["FsxFileSystemId"], r.outputs["FsxMountPath"]) == (fsx.id, "/home/ubuntu/fsx")


def test_persistent_fsx_links_the_bucket_both_ways_through_an_association(rendered):
    r = rendered(fsxLustre="true", fsxDeploymentType="PERSISTENT_2", fsxStorageCapacity="4800",
                 fsxMountPath="/data/fsx")
    (fsx,) = r.of_type(LUSTRE)
    i = fsx.inputs
    assert (i["deploymentType"], i["storageCapacity"], i["perUnitStorageThroughput"]) == ("PERSISTENT_2", 4800, 125)
    assert not {"importPath", "exportPath", "autoImportPolicy"} & set(i)
    (link,) = r.of_type(ASSOCIATION)
    assert link.inputs["fileSystemId"] == fsx.id
    assert (link.inputs["fileSystemPath"], link.inputs["dataRepositoryPath"]) == ("/", "s3://my-dl-data")
    assert link.inputs["s3"] == {"autoImportPolicy": {"events": ["NEW", "CHANGED", "DELETED"]},
                                 "autoExportPolicy": {"events": ["NEW", "CHANGED", "DELETED"]}}
    assert link.inputs["deleteDataInFilesystem"] is False and link.inputs["batchImportMetaDataOnCreate"] is True
    assert link.retain_on_delete and fsx.retain_on_delete
    assert r.outputs["FsxMountPath"] == "/data/fsx"


def test_fsx_group_admits_lustre_from_the_desktop_and_from_itself(rendered):
    r = rendered(fsxLustre="true")
    fsx_sg, desktop_sg = r.named("test--fsx-sg").id, r.outputs["DesktopSecurityGroup"]
    assert r.named("test--fsx-sg").inputs["vpcId"] == GOOD["vpcId"]
    rules = {}
    for rule in r.of_type(INGRESS) + r.of_type(EGRESS):
        i = rule.inputs
        if i["securityGroupId"] != fsx_sg:
            continue
        peer = {fsx_sg: "self", desktop_sg: "desktop"}[i["referencedSecurityGroupId"]]
        direction = "in" if rule.type == INGRESS else "out"
        rules[(direction, i["ipProtocol"], i["fromPort"], i["toPort"], peer)] = rule.retain_on_delete
    lustre = [("tcp", 988, 988), ("tcp", 1018, 1023)]
    # The group's own rules stay with the kept file system; the desktop's go, so its group can go too.
    assert rules == {(d, *ports, peer): peer == "self"
                     for d in ("in", "out") for ports in lustre for peer in ("self", "desktop")}


def test_fsx_admits_a_given_desktop_group(rendered):
    r = rendered(fsxLustre="true", securityGroupId="sg-0fedcba9876543210")
    peers = {rule.inputs["referencedSecurityGroupId"] for rule in r.of_type(INGRESS)
             if rule.name.startswith("test--fsx-") and rule.name.endswith("from-desktop")}
    assert peers == {"sg-0fedcba9876543210"}


def test_no_fsx_when_off(rendered):
    r = rendered()
    assert not [reg for reg in r.registrations if reg.type.startswith("aws:fsx/") or "-fsx" in reg.name]
    assert "FsxFileSystemId" not in r.outputs and "FsxMountPath" not in r.outputs
    values = script_values(r)
    assert "FSX_DNS_NAME=''\n" in values and "FSX_MOUNT_PATH=''\n" in values


def test_the_role_gains_nothing_for_fsx(rendered):
    """FSx reads and writes the bucket through its own service-linked role."""
    def grants(rendering):
        policies = {reg.inputs["name"]: json.loads(reg.inputs["policy"])
                    for reg in rendering.of_type("aws:iam/rolePolicy:RolePolicy")}
        attached = {reg.inputs["policyArn"] for reg in rendering.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
        return policies, attached

    assert grants(rendered(fsxLustre="true", fsxDeploymentType="PERSISTENT_2")) == grants(rendered())


def test_plan_says_the_file_system_is_kept_and_how_it_is_linked(rendered):
    lines = "\n".join(tree_lines(rendered(fsxLustre="true")))
    assert "SCRATCH_2 1200 GiB in subnet subnet-0123456789abcdef0" in lines
    assert "linked to s3://my-dl-data: new, changed and deleted objects appear in it (NEW_CHANGED_DELETED)" in lines
    assert "kept on destroy because it may hold files not (yet) in the bucket" in lines
    persistent = "\n".join(tree_lines(rendered(fsxLustre="true", fsxDeploymentType="PERSISTENT_2")))
    assert "links / to s3://my-dl-data: imports NEW, CHANGED, DELETED objects, exports NEW, CHANGED, DELETED" \
        in persistent


# --- capacity reservations and Capacity Blocks -------------------------------------

def test_no_reservation_keeps_ec2s_open_preference_and_looks_nothing_up(rendered):
    r = rendered()
    i = instance_of(r).inputs
    assert i["capacityReservationSpecification"] == {"capacityReservationPreference": "open"}
    assert "instanceMarketOptions" not in i
    assert not [inv for inv in r.invocations if inv.token == GET_CAPACITY_BLOCK]


def test_an_on_demand_reservation_is_targeted_without_a_market_type(rendered):
    r = rendered(capacityReservationId=RESERVATION)
    i = instance_of(r).inputs
    assert i["capacityReservationSpecification"] == {"capacityReservationTarget": {"capacityReservationId": RESERVATION}}
    assert "instanceMarketOptions" not in i
    assert i["rootBlockDevice"]["deleteOnTermination"] is True
    assert [inv.args["id"] for inv in r.invocations if inv.token == GET_CAPACITY_BLOCK] == [RESERVATION]
    assert (f"capacity reservation {RESERVATION}, as an On-Demand Capacity Reservation (no Capacity Block of that "
            "id was found; offline none is known, `pulumi up` asks EC2)") in "\n".join(tree_lines(r))


def test_a_capacity_block_uses_the_capacity_block_market_and_keeps_the_root_volume(run_main):
    mocks = offline.AccountMocks(capacity_blocks={RESERVATION: {"instanceType": "p5.48xlarge"}})
    r = run_main(mocks=mocks, capacityReservationId=RESERVATION, instanceType="p5.48xlarge")
    i = instance_of(r).inputs
    assert i["capacityReservationSpecification"] == {"capacityReservationTarget": {"capacityReservationId": RESERVATION}}
    assert i["instanceMarketOptions"] == {"marketType": "capacity-block"}
    # EC2 ends the instance with the block: the work on the root volume stays.
    assert i["rootBlockDevice"]["deleteOnTermination"] is False
    assert "a Capacity Block (market type capacity-block)" in "\n".join(tree_lines(r))


def test_moving_into_a_capacity_block_stops_at_the_preview(run_main):
    # Created on demand: the instance kept empty market options (ignore_changes keeps them so).
    mocks = _Deployed({"instanceMarketOptions": {}}, capacity_blocks={RESERVATION: {"instanceType": "p5.48xlarge"}})
    with pytest.raises(ConfigError) as caught:
        run_main(mocks=mocks, capacityReservationId=RESERVATION, instanceType="p5.48xlarge")
    (problem,) = caught.value.problems
    assert (problem.key, problem.value) == ("capacityReservationId", RESERVATION)
    assert "it runs on demand or in an On-Demand Capacity Reservation, and moving into a Capacity Block" \
        in problem.expected
    assert f"pulumi destroy --target '{INSTANCE_URN}'" in problem.expected


def test_leaving_a_capacity_block_stops_at_the_preview_and_staying_goes_through(run_main):
    in_block = {"instanceMarketOptions": {"marketType": "capacity-block"}}
    with pytest.raises(ConfigError) as caught:
        run_main(mocks=_Deployed(in_block))
    (problem,) = caught.value.problems
    assert problem.key == "capacityReservationId" and problem.value is None
    assert "it runs in a Capacity Block, and moving out of a Capacity Block" in problem.expected
    staying = _Deployed(in_block, capacity_blocks={RESERVATION: {"instanceType": "p5.48xlarge"}})
    run_main(mocks=staying, capacityReservationId=RESERVATION, instanceType="p5.48xlarge")


def test_switching_between_on_demand_reservations_changes_in_place(run_main):
    # capacity_reservation_specification does not force replacement (the provider stops and starts).
    r = run_main(mocks=_Deployed({"capacityReservationSpecification": {
        "capacityReservationTarget": {"capacityReservationId": "cr-0aaaaaaaaaaaaaaaa"}}}),
        capacityReservationId=RESERVATION)  # no ConfigError: run_main would raise it
    instance = instance_of(r)
    assert instance.urn == INSTANCE_URN, "the same instance"
    # The new reservation reaches the provider (not kept by ignore_changes), which changes it in place.
    assert instance.inputs["capacityReservationSpecification"] == {
        "capacityReservationTarget": {"capacityReservationId": RESERVATION}}
    assert not any(k.startswith("capacityReservation") for k in instance.ignore_changes)
    assert not instance.delete_before_replace


# --- EFA ---------------------------------------------------------------------------

def test_efa_is_the_primary_interface_in_the_subnet_and_the_desktop_group(rendered):
    r = rendered(efa="true", instanceType="g5.48xlarge")
    (eni,) = r.of_type(ENI)
    assert eni.inputs["interfaceType"] == "efa"
    assert eni.inputs["subnetId"] == GOOD["subnetId"]
    assert eni.inputs["securityGroups"] == [r.outputs["DesktopSecurityGroup"]]
    i = instance_of(r).inputs
    assert i["primaryNetworkInterface"] == {"networkInterfaceId": eni.id}
    # The interface's subnet, groups and address; the instance may not set them beside it.
    assert not {"subnetId", "vpcSecurityGroupIds", "associatePublicIpAddress"} & set(i)
    assert i["tags"]["Efa"] == "true"
    (eip,) = r.of_type(EIP)
    assert (eip.inputs["networkInterface"], eip.inputs["domain"]) == (eni.id, "vpc")
    assert r.outputs["PublicIp"] == eip.state["publicIp"]
    assert r.outputs["DcvUrl"] == f"https://{eip.state['publicIp']}:8443"
    assert "EFA=true\n" in script_values(r)
    supported = [inv.args["instanceType"] for inv in r.invocations
                 if inv.token == "aws:ec2/getInstanceType:getInstanceType"]
    assert "g5.48xlarge" in supported
    plan = "\n".join(tree_lines(r))
    assert "interface type efa, subnet subnet-0123456789abcdef0, security groups ['test--sg']" in plan
    assert "Elastic IP of test--efa, the desktop's public address" in plan


def test_efa_without_a_public_ip_has_no_elastic_ip(rendered):
    r = rendered(efa="true", instanceType="p4d.24xlarge", publicIp="false")
    assert r.of_type(EIP) == []
    assert r.outputs["DcvUrl"] == f"https://{r.outputs['PrivateIp']}:8443"


def test_efa_on_a_type_without_it_is_a_config_error_naming_the_type(run_main):
    with pytest.raises(ConfigError) as caught:
        run_main(efa="true")  # g4dn.xlarge, the default
    (problem,) = caught.value.problems
    assert (problem.key, problem.value) == ("efa", True)
    assert "instanceType g4dn.xlarge, which has no EFA" in problem.expected


def test_efa_support_is_ec2s_answer_not_a_list(run_main):
    # The same type, two accounts that answer differently: the program follows the answer.
    # The default type (g4dn.xlarge) has EFA in no list; this account says it does.
    yes = offline.AccountMocks(efa_supported=lambda instance_type: True)
    r = run_main(mocks=yes, efa="true")
    (eni,) = r.of_type(ENI)
    assert eni.inputs["interfaceType"] == "efa"
    assert instance_of(r).inputs["primaryNetworkInterface"] == {"networkInterfaceId": eni.id}
    # p4d.24xlarge has EFA in every list; this account says it does not.
    with pytest.raises(ConfigError) as caught:
        run_main(mocks=offline.AccountMocks(efa_supported=lambda instance_type: False),
                 efa="true", instanceType="p4d.24xlarge")
    (problem,) = caught.value.problems
    assert problem.key == "efa" and problem.value is True
    assert "p4d.24xlarge" in problem.expected


def test_no_efa_when_off(rendered):
    r = rendered(instanceType="p4d.24xlarge")
    assert r.of_type(ENI) == [] and r.of_type(EIP) == []
    assert "Efa" not in instance_of(r).inputs["tags"]
    assert "EFA=false\n" in script_values(r)


@pytest.mark.parametrize("kept_tags,wanted,own", [
    ({"Name": "test-deep-learning-ubuntu-desktop"}, "true", "'false'"),
    ({"Name": "test-deep-learning-ubuntu-desktop", "Efa": "true"}, "false", "'true'"),
], ids=["turning-on", "turning-off"])
def test_turning_efa_on_or_off_on_an_existing_desktop_stops_at_the_preview(run_main, kept_tags, wanted, own):
    with pytest.raises(ConfigError) as caught:
        run_main(mocks=_Deployed({"tags": kept_tags}), efa=wanted, instanceType="g5.48xlarge")
    (problem,) = caught.value.problems
    assert (problem.key, problem.value) == ("efa", wanted == "true")
    assert f"the desktop's own {own}" in problem.expected
    assert f"pulumi destroy --target '{INSTANCE_URN}'" in problem.expected


def test_an_efa_desktop_that_keeps_efa_goes_through(run_main):
    r = run_main(mocks=_Deployed({"tags": {"Name": "x", "Efa": "true"}}), efa="true", instanceType="g5.48xlarge")
    assert instance_of(r).inputs["primaryNetworkInterface"]


# --- bad values ----------------------------------------------------------------------

@pytest.mark.parametrize("key,value", [
    ("fsxStorageCapacity", "1000"),
    ("fsxStorageCapacity", "3600"),
    ("fsxDeploymentType", "PERSISTENT_1"),
    ("fsxLustre", "yes"),
    ("capacityReservationId", "cr-12345"),
    ("efa", "1"),
])
def test_bad_values_are_config_errors_naming_the_key(run_main, key, value):
    with pytest.raises(ConfigError) as caught:
        run_main(**{key: value})
    assert [p.key for p in caught.value.problems] == [key]


def test_fsx_inside_efs_is_a_config_error(run_main):
    with pytest.raises(ConfigError) as caught:
        run_main(fsxLustre="true", fsxMountPath="/home/ubuntu/efs/fsx")
    (problem,) = caught.value.problems
    assert problem.key == "fsxMountPath" and "efsMountPath" in problem.expected
