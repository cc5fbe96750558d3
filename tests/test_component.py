"""The desktop component under Pulumi mocks: resources, properties, options, outputs."""

from __future__ import annotations

import base64
import json

import pulumi
import pytest
from google.protobuf import empty_pb2
from parliament import analyze_policy_string

import cloud_init
from conftest import GOOD
from desktop import DeepLearningDesktop
from desktop.commands import offline
from desktop.component import TYPE
from desktop.config import ConfigError, parse

SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
EFS = "aws:efs/fileSystem:FileSystem"
MOUNT_TARGET = "aws:efs/mountTarget:MountTarget"
INSTANCE = "aws:ec2/instance:Instance"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
GET_PARAMETER = "aws:ssm/getParameter:getParameter"


def instance_of(rendering):
    (instance,) = rendering.of_type(INSTANCE)
    return instance


def user_data_of(rendering) -> str:
    """The readable user data the instance gets (compressed, base64)."""
    return cloud_init.decode(instance_of(rendering).inputs["userDataBase64"])


def test_default_config_creates_the_desktop_group_with_exactly_the_spec_rules(rendered):
    r = rendered()
    sg_id = r.outputs["DesktopSecurityGroup"]
    sg = r.named("test--sg")
    assert sg.inputs["vpcId"] == GOOD["vpcId"] and sg.inputs["tags"] == {"Name": "test"}
    rules = {}
    for rule in r.of_type(INGRESS) + r.of_type(EGRESS):
        if rule.name == "test--efs-nfs":
            continue
        i = rule.inputs
        assert i["securityGroupId"] == sg_id
        direction = "in" if rule.type == INGRESS else "out"
        peer = i.get("cidrIpv4") or ("self" if i.get("referencedSecurityGroupId") == sg_id else "?")
        rules[(direction, i["ipProtocol"], i.get("fromPort"), i.get("toPort"), peer)] = i.get("description")
    cidr = GOOD["accessCidr"]
    assert rules == {
        ("in", "tcp", 22, 22, cidr): "SSH",
        ("in", "tcp", 8443, 8443, cidr): "DCV",
        ("in", "udp", 8443, 8443, cidr): "DCV QUIC",
        ("in", "-1", None, None, "self"): "All traffic within the group (distributed SageMaker training)",
        ("out", "tcp", 0, 65535, "0.0.0.0/0"): "TCP to anywhere (packages, S3, SageMaker)",
        ("out", "-1", None, None, "self"): "All traffic within the group",
    }
    assert instance_of(r).inputs["vpcSecurityGroupIds"] == [sg_id]


def test_default_config_creates_an_encrypted_efs_kept_on_destroy_with_an_nfs_mount_target(rendered):
    r = rendered()
    (efs,) = r.of_type(EFS)
    assert efs.inputs["encrypted"] is True and efs.inputs["performanceMode"] == "generalPurpose"
    # The cost allocation tag: the root volume's, the role's name (the mock names it test--role-abc1234).
    assert efs.inputs["tags"] == {"Name": "test", "DeepLearningDesktop": "test--role-abc1234"}
    assert efs.retain_on_delete is True
    (target,) = r.of_type(MOUNT_TARGET)
    assert target.inputs["subnetId"] == GOOD["subnetId"]
    assert target.inputs["fileSystemId"] == r.outputs["EFSFileSystemId"]
    (nfs_group,) = target.inputs["securityGroups"]
    nfs = r.named("test--efs-nfs").inputs
    assert nfs["securityGroupId"] == nfs_group
    assert (nfs["ipProtocol"], nfs["fromPort"], nfs["toPort"]) == ("tcp", 2049, 2049)
    assert nfs["referencedSecurityGroupId"] == r.outputs["DesktopSecurityGroup"]
    # The desktop boots after its mount target exists, so the first mount can succeed.
    assert target.urn in instance_of(r).dependencies
    # One mount target per zone: a replacement must delete the old one first.
    assert target.delete_before_replace and not efs.delete_before_replace
    assert not any(reg.retain_on_delete for reg in r.registrations if reg.type != EFS)


def test_given_security_group_creates_no_desktop_group(rendered):
    r = rendered(securityGroupId="sg-0fedcba9876543210")
    assert [g.name for g in r.of_type(SG)] == ["test--efs-sg"]
    assert {rule.name for rule in r.of_type(INGRESS) + r.of_type(EGRESS)} == {"test--efs-nfs"}
    assert instance_of(r).inputs["vpcSecurityGroupIds"] == ["sg-0fedcba9876543210"]
    assert r.named("test--efs-nfs").inputs["referencedSecurityGroupId"] == "sg-0fedcba9876543210"
    assert r.outputs["DesktopSecurityGroup"] == "sg-0fedcba9876543210"


def test_given_efs_creates_no_file_system_nor_mount_target(rendered):
    r = rendered(efsFileSystemId="fs-0123456789abcdef0")
    assert r.of_type(EFS) == [] and r.of_type(MOUNT_TARGET) == []
    assert [g.name for g in r.of_type(SG)] == ["test--sg"]
    assert r.outputs["EFSFileSystemId"] == "fs-0123456789abcdef0"
    assert "fs-0123456789abcdef0" in user_data_of(r)
    assert instance_of(r).dependencies == [d for d in instance_of(r).dependencies if "MountTarget" not in d]


def test_both_given_creates_no_network_or_storage_resources(rendered):
    r = rendered(securityGroupId="sg-0fedcba9876543210", efsFileSystemId="fs-0123456789abcdef0")
    types = {reg.type for reg in r.registrations}
    assert not types & {SG, INGRESS, EGRESS, EFS, MOUNT_TARGET}
    assert r.outputs["DesktopSecurityGroup"] == "sg-0fedcba9876543210"
    assert r.outputs["EFSFileSystemId"] == "fs-0123456789abcdef0"


def test_no_public_ip_uses_the_private_address_everywhere(rendered):
    r = rendered(publicIp="false")
    assert instance_of(r).inputs["associatePublicIpAddress"] is False
    private = r.outputs["PrivateIp"]
    assert r.outputs["DcvUrl"] == f"https://{private}:8443"
    assert r.outputs["SshCommand"].endswith(f"ubuntu@{private}")
    assert not r.outputs["PublicIp"]


def test_instance_has_every_property_of_the_spec(rendered):
    r = rendered(instanceType="p4d.24xlarge", ebsVolumeSize="1000", ebsVolumeType="gp2", ebsOptimized="false")
    i = instance_of(r).inputs
    assert i["instanceType"] == "p4d.24xlarge" and i["ebsOptimized"] is False
    assert i["keyName"] == GOOD["keyName"] and i["subnetId"] == GOOD["subnetId"]
    assert i["associatePublicIpAddress"] is True
    assert i["rootBlockDevice"] == {"volumeSize": 1000, "volumeType": "gp2", "encrypted": True,
                                    "deleteOnTermination": True,
                                    # the desktop's own tag, which its snapshots target (tests/test_snapshots.py)
                                    "tags": {"DeepLearningDesktop": r.named("test--role").state["name"]}}
    assert i["metadataOptions"]["httpTokens"] == "required"
    assert i["metadataOptions"]["httpEndpoint"] == "enabled"
    # Containers on the desktop are one hop further; more hops would let IMDS answer beyond the host.
    assert i["metadataOptions"]["httpPutResponseHopLimit"] == 2
    assert i["tags"] == {"Name": "test-deep-learning-ubuntu-desktop", "IdleStopMinutes": "30", "IdleBlockedHours": "12",
                         "DeepLearningDesktop": "test--role-abc1234"}
    assert i["iamInstanceProfile"] == r.named("test--profile").state["name"]
    assert i["userDataReplaceOnChange"] is False
    assert "userData" not in i
    assert base64.b64decode(i["userDataBase64"])[:2] == b"\x1f\x8b"  # gzip, which cloud-init unpacks
    assert user_data_of(r).startswith('Content-Type: multipart/mixed; boundary="')


def test_ami_from_ssm_follows_the_architecture_and_is_ignored_for_changes(rendered):
    x86 = rendered()
    arm = rendered(instanceType="g5g.xlarge")
    names = [[inv.args["name"] for inv in r.invocations if inv.token == GET_PARAMETER] for r in (x86, arm)]
    assert names[0] == ["/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"]
    assert names[1] == ["/aws/service/deeplearning/ami/arm64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"]
    for r in (x86, arm):
        assert "ami" in instance_of(r).ignore_changes
        assert instance_of(r).inputs["ami"] == r.outputs["AmiId"]
        assert r.outputs["AmiSource"] == "ssm:" + [
            inv.args["name"] for inv in r.invocations if inv.token == GET_PARAMETER][0]


def test_ssm_value_reaches_the_instance(run_main):
    param = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
    mocks = offline.AccountMocks(ssm_parameters={param: "ami-0aaaaaaaaaaaaaaaa"})
    assert instance_of(run_main(mocks=mocks)).inputs["ami"] == "ami-0aaaaaaaaaaaaaaaa"


def test_explicit_ami_skips_the_lookup_and_a_change_replaces_the_instance(rendered):
    r = rendered(amiId="ami-0123456789abcdef0")
    assert not [inv for inv in r.invocations if inv.token in (GET_PARAMETER, "aws:ec2/getInstanceType:getInstanceType")]
    assert instance_of(r).inputs["ami"] == "ami-0123456789abcdef0"
    assert "ami" not in instance_of(r).ignore_changes
    assert r.outputs["AmiSource"] == "amiId"


def test_inputs_that_would_replace_the_instance_are_kept(rendered):
    ignored = set(instance_of(rendered(amiId="ami-0123456789abcdef0")).ignore_changes)
    # Beside them the keep-awake tag, which `python -m desktop keep-awake` sets, and the EFA
    # interface, the Capacity Block market type and the tag saying EFA: see tests/test_heavy_ml.py.
    assert ignored == {"subnetId", "keyName", "associatePublicIpAddress", "ebsOptimized",
                       "tags.KeepAwakeUntil", "tagsAll.KeepAwakeUntil",
                       "primaryNetworkInterface", "instanceMarketOptions", 'tags["Efa"]'}


class _Deployed(offline.AccountMocks):
    """An account whose desktop was created earlier: the instance reports ``kept``
    (what ignore_changes keeps) instead of the program's values."""

    def __init__(self, kept: dict, **account):
        super().__init__(**account)
        self.kept = kept

    def new_resource(self, args):
        rid, state = super().new_resource(args)
        if args.typ == INSTANCE:
            state.update(self.kept)
        return rid, state


def _deployed_elsewhere():
    """Created earlier in another subnet with another key."""
    return _Deployed({"subnetId": "subnet-0aaaaaaaaaaaaaaaa", "keyName": "old-key"})


def test_a_config_that_would_move_the_desktop_stops_at_the_preview(run_main, rendered):
    # The mount target and the user data follow the config, the instance keeps its
    # own values: rather than half-move, `pulumi up` stops and says how to move.
    with pytest.raises(ConfigError) as caught:
        run_main(mocks=_deployed_elsewhere())
    problems = {p.key: p for p in caught.value.problems}
    assert set(problems) == {"subnetId", "keyName"}
    assert problems["subnetId"].value == GOOD["subnetId"]
    assert "the desktop's own 'subnet-0aaaaaaaaaaaaaaaa'" in problems["subnetId"].expected
    assert "the desktop's own 'old-key'" in problems["keyName"].expected
    instance_urn = "urn:pulumi:test::deep-learning-desktop::" \
        "deep-learning-desktop:index:DeepLearningDesktop$aws:ec2/instance:Instance::test--instance"
    assert f"pulumi destroy --target '{instance_urn}'" in problems["keyName"].expected
    rendered()  # a desktop whose values match goes through


KEPT_AMI = "ami-0aaaaaaaaaaaaaaaa"
NEWEST = {"x86_64": "ami-0bbbbbbbbbbbbbbbb", "arm64": "ami-0cccccccccccccccc"}
GET_AMI_IDS = "aws:ec2/getAmiIds:getAmiIds"


def _deployed_earlier(kept_architecture: str | None = "x86_64"):
    """Created from an older DLAMI (gone when ``kept_architecture`` is None), since replaced in SSM."""
    parameter = "/aws/service/deeplearning/ami/{}/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
    return _Deployed({"ami": KEPT_AMI},
                     ssm_parameters={parameter.format(a): ami for a, ami in NEWEST.items()},
                     images={KEPT_AMI: kept_architecture} if kept_architecture else {})


def logged(rendering, level):
    return [message for each, message in rendering.logs if each == level]


def test_a_newer_ami_in_ssm_is_only_mentioned(run_main):
    r = run_main(mocks=_deployed_earlier())
    assert not logged(r, "error")
    (note,) = [m for m in logged(r, "info") if "newer Deep Learning AMI" in m]
    assert KEPT_AMI in note and f"pulumi config set amiId {NEWEST['x86_64']}" in note


def test_moving_to_the_other_architecture_with_the_kept_ami_stops_at_the_preview(run_main):
    with pytest.raises(ConfigError) as caught:
        run_main(mocks=_deployed_earlier(), instanceType="g5g.xlarge")
    (problem,) = caught.value.problems
    assert (problem.key, problem.value) == ("instanceType", "g5g.xlarge")
    assert f"an x86_64 type like the desktop's AMI {KEPT_AMI}" in problem.expected
    assert "g5g.xlarge is arm64" in problem.expected
    assert f"pulumi config set amiId {NEWEST['arm64']}" in problem.expected


def test_a_deregistered_kept_ami_raises_no_alarm(run_main):
    r = run_main(mocks=_deployed_earlier(kept_architecture=None), instanceType="g5g.xlarge")
    assert not logged(r, "error")
    assert [inv for inv in r.invocations if inv.token == GET_AMI_IDS]


def test_the_kept_ami_is_looked_up_only_when_it_is_not_the_newest(run_main, rendered):
    assert not [inv for inv in rendered().invocations if inv.token == GET_AMI_IDS]
    r = run_main(mocks=_deployed_earlier())  # an x86_64 type: is the kept AMI arm64?
    (lookup,) = [inv for inv in r.invocations if inv.token == GET_AMI_IDS]
    assert lookup.args["owners"] == ["amazon"] and lookup.args["includeDeprecated"] is True
    assert {f["name"]: f["values"] for f in lookup.args["filters"]} == {
        "image-id": [KEPT_AMI], "architecture": ["arm64"]}


def test_iam_role_trust_managed_policy_and_inline_policies(rendered):
    r = rendered()
    trust = json.loads(r.named("test--role").inputs["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    assert sorted(statement["Principal"]["Service"]) == ["ec2.amazonaws.com", "sagemaker.amazonaws.com"]
    assert statement["Action"] == "sts:AssumeRole"
    # sagemakerAccess scoped (the default): our own policy, not AmazonSageMakerFullAccess
    # (tests/test_role_evaluation.py evaluates what the role may do).
    attachments = {a.inputs["policyArn"] for a in r.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                   if a.inputs["role"] == r.named("test--role").state["name"]}
    assert attachments == {"arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"}
    policies = {p.inputs["name"]: json.loads(p.inputs["policy"]) for p in r.of_type(ROLE_POLICY)}
    assert set(policies) == {"s3-read-write", "dcv-license-s3", "dcv-password-parameter", "boot-files-parameter",
                             "sagemaker-config-parameter", "boundary", "sagemaker-scoped"}
    resources = {res for s in policies["s3-read-write"]["Statement"] for res in [s["Resource"]]}
    assert resources == {"arn:aws:s3:::my-dl-data", "arn:aws:s3:::my-dl-data/*"}
    actions = {a for s in policies["s3-read-write"]["Statement"] for a in s["Action"]}
    assert {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"} <= actions
    # What the sample's wildcards allowed for the data: versions, tags, ACLs.
    assert {"s3:ListBucketVersions", "s3:GetObjectVersion", "s3:DeleteObjectVersion", "s3:GetObjectTagging",
            "s3:PutObjectTagging", "s3:PutObjectAcl"} <= actions
    assert not any("*" in a for a in actions)
    (dcv,) = policies["dcv-license-s3"]["Statement"]
    assert dcv["Action"] == "s3:GetObject" and dcv["Resource"] == "arn:aws:s3:::dcv-license.us-west-2/*"
    for policy in policies.values():
        findings = analyze_policy_string(json.dumps(policy)).findings
        assert findings == [], [str(f) for f in findings]
    profile = r.named("test--profile").inputs
    assert profile["role"] == r.named("test--role").state["name"]
    assert r.outputs["DesktopRole"] == r.named("test--role").state["arn"]


def test_china_partition_builds_every_arn_from_the_partition(rendered):
    r = rendered(partition="aws-cn", region="cn-north-1")
    text = json.dumps([reg.inputs for reg in r.registrations]) + json.dumps(r.outputs)
    assert "arn:aws-cn:" in text
    assert "arn:aws:" not in text
    trust = json.loads(r.named("test--role").inputs["assumeRolePolicy"])
    assert "ec2.amazonaws.com.cn" in trust["Statement"][0]["Principal"]["Service"]
    assert "fs-" in user_data_of(r) and "amazonaws.com.cn" in user_data_of(r)


# Every kind of child: the default desktop's, and those fsxLustre and efa add.
@pytest.mark.parametrize("keys", [{}, {"fsxLustre": "true", "efa": "true", "instanceType": "g5.48xlarge"}])
def test_every_child_is_parented_to_the_component(rendered, keys):
    r = rendered(**keys)
    (component,) = [reg for reg in r.registrations if reg.type == TYPE]
    children = [reg for reg in r.registrations if reg is not component]
    assert len(children) >= 17
    assert all(child.parent == component.urn for child in children)
    assert all(child.name.startswith("test--") for child in children)


def test_open_cidr_warning_reaches_the_person(rendered):
    r = rendered(accessCidr="0.0.0.0/0")
    assert any("0.0.0.0/0" in w for w in r.warnings)
    assert not any("0.0.0.0/0" in w for w in rendered().warnings)


def test_two_desktops_in_one_program_do_not_clash():
    alice = parse({**GOOD, "keyName": "alice"}).args
    bob = parse({**GOOD, "keyName": "bob", "instanceType": "g5g.2xlarge"}).args
    results = {}

    def program():
        for name, args in (("alice", alice), ("bob", bob)):
            results[name] = DeepLearningDesktop(name, args).dcv_url

    r = offline.run(program, config={"aws:region": "us-east-1"})
    names = [reg.name for reg in r.registrations]
    assert len(names) == len(set(names))
    components = {reg.name: reg.urn for reg in r.registrations if reg.type == TYPE}
    assert set(components) == {"alice", "bob"}
    for reg in r.registrations:
        if reg.type != TYPE:
            assert reg.parent == components[reg.name.split("--")[0]]
    instances = {reg.name: reg.inputs for reg in r.of_type(INSTANCE)}
    assert instances["alice--instance"]["keyName"] == "alice"
    assert instances["bob--instance"]["instanceType"] == "g5g.2xlarge"


def test_the_component_registers_its_outputs_in_the_state(run_main, monkeypatch):
    # What `pulumi stack export` and the console show under the component (Pulumi's mock
    # monitor drops them: recorded here).
    registered = {}

    def record(monitor, request):
        registered[request.urn] = pulumi.runtime.rpc.deserialize_properties(request.outputs)
        return empty_pb2.Empty()

    monkeypatch.setattr(offline.RecordingMonitor, "RegisterResourceOutputs", record, raising=False)
    r = run_main()
    (component,) = [reg for reg in r.registrations if reg.type == TYPE]
    (instance,) = r.of_type(INSTANCE)
    outputs = registered[component.urn]
    assert set(outputs) == {"instance_id", "role_arn", "security_group_id", "efs_file_system_id", "dcv_url"}
    assert outputs["instance_id"] == instance.id and outputs["dcv_url"] == r.outputs["DcvUrl"]
    assert outputs["role_arn"] == r.named("test--role").state["arn"]
