"""FSx for Lustre linked to the desktop's S3 bucket, with its own security group.

Only when ``fsxLustre`` is true. The link follows the deployment type:

- ``SCRATCH_2``: the file system's own data repository (``import_path`` and
  ``export_path`` on the bucket, ``auto_import_policy`` NEW_CHANGED_DELETED). New,
  changed and deleted objects appear in the file system by themselves; files written
  on it go back to the bucket only when exported (``lfs hsm_archive`` or an export
  data repository task): automatic export is not offered on this type.
- ``PERSISTENT_2``: a data repository association on ``/`` with automatic import and
  automatic export of new, changed and deleted files, both ways.

FSx reaches the bucket through its own service-linked role (FSx creates it), so the
desktop's role gains nothing: it only mounts the file system over the network.

The file system is kept on destroy and on replacement, as EFS is: either type may hold
files that are not (yet) in the bucket, and the desktop cannot tell. So are its security
group and the group's rules for itself (the file servers' ENIs keep using them); the rules
naming the desktop's group go, so that group can be deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import pulumi
import pulumi_aws as aws

from desktop.config import DesktopArgs
from desktop.cost_tag import with_cost_tag
from desktop.naming import child
from desktop.ports import LUSTRE_PORT, LUSTRE_PORT_RANGE

#: MB/s per TiB for PERSISTENT_2 (which requires a value): the smallest and cheapest
#: tier FSx offers (125, 250, 500, 1000). 1.2 TiB give 150 MB/s, several times what
#: one desktop's data loading needs; a larger fsxStorageCapacity scales it.
PERSISTENT_2_THROUGHPUT = 125

#: File events the PERSISTENT_2 association imports from and exports to the bucket.
EVENTS = ("NEW", "CHANGED", "DELETED")


@dataclass(frozen=True)
class Lustre:
    """The file system the desktop mounts: its id, DNS name and Lustre mount name."""

    file_system: aws.fsx.LustreFileSystem
    file_system_id: pulumi.Output[str]
    dns_name: pulumi.Output[str]
    mount_name: pulumi.Output[str]


def file_system(
    name: str, args: DesktopArgs, desktop_security_group_id: pulumi.Input[str], parent: pulumi.Resource,
    cost_tag: Optional[pulumi.Input[Mapping[str, str]]] = None,
) -> Optional[Lustre]:
    """The FSx for Lustre file system linked to ``s3Bucket``, or None when ``fsxLustre`` is false."""
    if not args.fsx_lustre:
        return None
    group_child = child(name, "fsx-sg", parent, retain_on_delete=True)
    group = aws.ec2.SecurityGroup(
        group_child.name,
        vpc_id=args.vpc_id,
        description="FSx for Lustre: Lustre from the deep learning desktop and between the file servers",
        tags={"Name": f"{name}-fsx"},
        opts=group_child.opts,
    )
    _lustre_rules(name, group.id, desktop_security_group_id, parent)
    if args.security_group_id is None:
        _client_rules(name, group.id, desktop_security_group_id, parent)
    # The bucket may be an output of the program (a library user's own bucket).
    bucket = pulumi.Output.concat("s3://", args.s3_bucket)
    scratch = args.fsx_deployment_type == "SCRATCH_2"
    lustre_child = child(name, "fsx", parent, retain_on_delete=True)
    lustre = aws.fsx.LustreFileSystem(
        lustre_child.name,
        deployment_type=args.fsx_deployment_type,
        storage_capacity=args.fsx_storage_capacity,
        subnet_ids=args.subnet_id,
        security_group_ids=[group.id],
        per_unit_storage_throughput=None if scratch else PERSISTENT_2_THROUGHPUT,
        # SCRATCH_2 links the bucket itself; PERSISTENT_2 through the association below.
        import_path=bucket if scratch else None,
        # The bucket root, so an export writes a file back under the key it came from.
        export_path=bucket if scratch else None,
        auto_import_policy="NEW_CHANGED_DELETED" if scratch else None,
        tags=with_cost_tag({"Name": name}, cost_tag),
        opts=lustre_child.opts,
    )
    if not scratch:
        # Kept with the file system: exports still pending when the stack goes are finished.
        link = child(name, "fsx-link", parent, retain_on_delete=True)
        aws.fsx.DataRepositoryAssociation(
            link.name,
            file_system_id=lustre.id,
            file_system_path="/",
            data_repository_path=bucket,
            # The bucket's listing is there from the start, not only objects changed later.
            batch_import_meta_data_on_create=True,
            # Deleting the link never deletes files on the file system.
            delete_data_in_filesystem=False,
            s3=aws.fsx.DataRepositoryAssociationS3Args(
                auto_import_policy=aws.fsx.DataRepositoryAssociationS3AutoImportPolicyArgs(events=list(EVENTS)),
                auto_export_policy=aws.fsx.DataRepositoryAssociationS3AutoExportPolicyArgs(events=list(EVENTS)),
            ),
            tags={"Name": name},
            opts=link.opts,
        )
    return Lustre(lustre, lustre.id, lustre.dns_name, lustre.mount_name)


def _lustre_rules(name: str, group_id: pulumi.Output[str], desktop_group_id: pulumi.Input[str],
                  parent: pulumi.Resource) -> None:
    """Lustre (TCP 988 and 1018-1023) in and out, between the file servers and with the desktop.

    One resource per rule, as for the desktop's group. The group's own rules stay with the
    kept file system; the desktop's go with the desktop, or its group could not be deleted.
    """
    ports = (("lustre", LUSTRE_PORT, LUSTRE_PORT), ("lustre-range", *LUSTRE_PORT_RANGE))
    peers = (("self", group_id, "the file servers", True), ("desktop", desktop_group_id, "the desktop", False))
    for peer, peer_id, who, kept in peers:
        for role, low, high in ports:
            common = dict(security_group_id=group_id, referenced_security_group_id=peer_id, ip_protocol="tcp",
                          from_port=low, to_port=high)
            inbound = child(name, f"fsx-{role}-from-{peer}", parent, retain_on_delete=kept)
            aws.vpc.SecurityGroupIngressRule(inbound.name, description=f"Lustre from {who}", opts=inbound.opts,
                                             **common)
            outbound = child(name, f"fsx-{role}-to-{peer}", parent, retain_on_delete=kept)
            aws.vpc.SecurityGroupEgressRule(outbound.name, description=f"Lustre to {who}", opts=outbound.opts,
                                            **common)


def _client_rules(name: str, group_id: pulumi.Output[str], desktop_group_id: pulumi.Input[str],
                  parent: pulumi.Resource) -> None:
    """Lustre (TCP 988 and 1018-1023) into the desktop's own group from the file system's.

    AWS's "Lustre client VPC security group rules": the client's group must admit the file
    servers too, which connect to the client after a failover or maintenance; without these
    rules those connections are dropped and the mount hangs. Separate rule resources (not
    inline rules): the two groups refer to each other, and the rules are created after both.
    Only on a group the program creates; ``preflight`` checks a given one.
    """
    for role, low, high in (("lustre", LUSTRE_PORT, LUSTRE_PORT), ("lustre-range", *LUSTRE_PORT_RANGE)):
        each = child(name, f"{role}-from-fsx", parent)
        aws.vpc.SecurityGroupIngressRule(
            each.name, security_group_id=desktop_group_id, referenced_security_group_id=group_id,
            ip_protocol="tcp", from_port=low, to_port=high, description="Lustre from the FSx file servers",
            opts=each.opts)
