"""The desktop as one Pulumi component, wired like the architecture picture."""

from __future__ import annotations

from typing import Optional

import pulumi

from desktop import (
    backup, boot_files, capacity, dcv_password, efa, identity, image, instance, lustre, network, sagemaker_config,
    storage,
)
from desktop.config import DesktopArgs
from desktop.naming import check_component_name
from desktop.partition import current_partition
from desktop.ports import DCV_PORT

TYPE = "deep-learning-desktop:index:DeepLearningDesktop"


class DeepLearningDesktop(pulumi.ComponentResource):
    """A GPU deep learning desktop: security group, EFS, IAM role, AMI, EC2 instance, and the
    copies of its work (daily root volume snapshots, AWS Backup for a created EFS); on request
    FSx for Lustre, an EFA interface and a capacity reservation.

    Every child is named ``<name>--<role>`` (:func:`desktop.naming.child_name`), so
    desktops with different names live side by side in one program; a name may not
    contain ``--``. The name also tags the resources.
    """

    instance_id: pulumi.Output[str]
    role_arn: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    efs_file_system_id: pulumi.Output[str]
    public_ip: pulumi.Output[Optional[str]]
    private_ip: pulumi.Output[str]
    host: pulumi.Output[str]
    dcv_url: pulumi.Output[str]
    ssh_command: pulumi.Output[str]
    dcv_user: pulumi.Output[str]
    dcv_password: pulumi.Output[str]
    ami_id: pulumi.Output[str]
    ami_source: pulumi.Output[str]
    efs_mount_path: pulumi.Output[str]
    fsx_file_system_id: Optional[pulumi.Output[str]]
    fsx_mount_path: Optional[pulumi.Output[str]]
    snapshots: "backup.Snapshots"  # the daily snapshot policy and its role (None at snapshotRetainCount 0)
    efs_backup_policy: object  # aws.efs.BackupPolicy of a created EFS with efsBackup, else None

    def __init__(self, name: str, args: DesktopArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_component_name(name)
        super().__init__(TYPE, name, None, opts)
        partition = current_partition(self)
        security_group_id = network.security_group(name, args, self)
        files = storage.file_system(name, args, security_group_id, self)
        role = identity.desktop_role(name, args, partition, self)
        ami = image.resolve(args, self)
        password = dcv_password.dcv_password(name, role, partition, self)
        files_for_boot = boot_files.boot_files(
            name, role, self, sagemaker_defaults(name, args, role.role.arn, security_group_id))
        fsx = lustre.file_system(name, args, security_group_id, self)
        interface = efa.interface(name, args, security_group_id, self)
        volume_tags = backup.root_volume_tags(role.role)
        desktop = instance.desktop_instance(
            name, args, image=ami, identity=role, security_group_id=security_group_id,
            storage=files, dcv_password=password, partition=partition, parent=self,
            lustre=fsx, efa=interface, capacity=capacity.resolve(args, self), root_volume_tags=volume_tags,
            boot_files=files_for_boot,
        )
        self.snapshots = backup.daily_snapshots(
            name, args, volume_tags=volume_tags, architecture=ami.architecture, partition=partition, parent=self)
        self.efs_backup_policy = backup.efs_backup(name, args, files, self)

        self.instance_id = desktop.id
        self.role_arn = role.role.arn
        self.security_group_id = security_group_id
        self.efs_file_system_id = files.file_system_id
        # An EFA desktop's public address is its Elastic IP.
        self.public_ip = interface.public_ip if interface and interface.public_ip else desktop.public_ip
        self.private_ip = desktop.private_ip
        # Without a public IP the desktop is reached over VPN or Direct Connect.
        self.host = self.public_ip if args.public_ip else desktop.private_ip
        self.dcv_url = self.host.apply(lambda h: f"https://{h}:{DCV_PORT}")
        self.ssh_command = pulumi.Output.all(self.host, desktop.id, partition.region).apply(
            lambda v: ssh_command(args, *v))
        self.dcv_user = pulumi.Output.from_input(dcv_password.DCV_USER)
        self.dcv_password = password.password
        self.ami_id = desktop.ami
        self.ami_source = ami.source
        self.efs_mount_path = pulumi.Output.from_input(args.efs_mount_path)
        # None when fsxLustre is false: the stack exports them only when on.
        self.fsx_file_system_id = fsx.file_system_id if fsx else None
        self.fsx_mount_path = pulumi.Output.from_input(args.fsx_mount_path) if fsx else None
        self.register_outputs({
            "instance_id": self.instance_id,
            "role_arn": self.role_arn,
            "security_group_id": self.security_group_id,
            "efs_file_system_id": self.efs_file_system_id,
            "dcv_url": self.dcv_url,
        })


def sagemaker_defaults(name: str, args: DesktopArgs, role_arn: pulumi.Output[str],
                       security_group_id: pulumi.Input[str]) -> pulumi.Output[str]:
    """The SageMaker SDK's defaults file of the desktop ``name`` (none with sagemakerAccess none)."""
    if args.sagemaker_access == "none":
        return pulumi.Output.from_input(sagemaker_config.NO_DEFAULTS)
    return pulumi.Output.all(role_arn, args.subnet_id, security_group_id, args.s3_bucket).apply(
        lambda v: sagemaker_config.render(desktop=name, role_arn=v[0], subnet_id=v[1], security_group_id=v[2],
                                          bucket=v[3]))


def ssh_command(args: DesktopArgs, host: str, instance_id: str, region: str) -> str:
    """How to open a shell on the desktop: SSH with the key pair (through Session Manager
    when no port is open), or a Session Manager shell without one."""
    if args.key_name is None:
        return (f"no key pair; a shell through Session Manager: `python -m desktop shell --stack "
                f"{pulumi.get_stack()}` or `aws ssm start-session --target {instance_id} --region {region}`")
    key = f"ssh -i ~/.ssh/{args.key_name}.pem"
    if args.session_manager_only:
        # AWS's documented SSH over Session Manager: port 22 stays closed.
        return (f"{key} -o ProxyCommand='aws ssm start-session --target %h --document-name AWS-StartSSHSession "
                f"--parameters portNumber=%p --region {region}' ubuntu@{instance_id}")
    return f"{key} ubuntu@{host}"
