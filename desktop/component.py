"""The desktop as one Pulumi component, wired like the architecture picture."""

from __future__ import annotations

import shlex
from typing import Optional

import pulumi

from desktop import (
    backup, boot_files, budget, capacity, dcv_password, efa, identity, image, instance, lustre, network,
    sagemaker_config, storage,
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
        role = identity.desktop_role(name, args, partition, self)
        # The root volume's tag, on everything else that costs money too (desktop/cost_tag.py).
        volume_tags = backup.root_volume_tags(role.role)
        files = storage.file_system(name, args, security_group_id, self, cost_tag=volume_tags)
        ami = image.resolve(args, self)
        password = dcv_password.dcv_password(name, role, partition, self)
        files_for_boot = boot_files.boot_files(
            name, role, self, sagemaker_defaults(name, args, role.role.arn, security_group_id))
        fsx = lustre.file_system(name, args, security_group_id, self, cost_tag=volume_tags)
        interface = efa.interface(name, args, security_group_id, self, cost_tag=volume_tags)
        where = capacity.resolve(args, self)
        desktop = instance.desktop_instance(
            name, args, image=ami, identity=role, security_group_id=security_group_id,
            storage=files, dcv_password=password, partition=partition, parent=self,
            lustre=fsx, efa=interface, capacity=where, root_volume_tags=volume_tags,
            boot_files=files_for_boot, cost_tag=volume_tags,
        )
        #: Where the instance runs (``capacity.capacity_block``, ``capacity.end_date``, ``capacity.spot``).
        self.capacity = where
        self.budget = budget.monthly_budget(name, args, role.role.name, self)
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
        # With no port open, https://<host>:8443 would be a closed door: say the way that works.
        self.dcv_url = (pulumi.Output.from_input(ssm_road(pulumi.get_stack(), "connect", "--ssm"))
                        if args.session_manager_only else self.host.apply(lambda h: f"https://{h}:{DCV_PORT}"))
        # The AWS CLI in the commands below must use the account the stack uses.
        profile = pulumi.Config("aws").get("profile")
        self.ssh_command = pulumi.Output.all(self.host, desktop.id, partition.region).apply(
            lambda v: ssh_command(args, *v, profile=profile))
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


def ssm_road(stack: str, *command: str) -> str:
    """``python -m desktop COMMAND --stack STACK``, quoted, for an output to show."""
    return shlex.join(["python", "-m", "desktop", *command, "--stack", stack])


def sagemaker_defaults(name: str, args: DesktopArgs, role_arn: pulumi.Output[str],
                       security_group_id: pulumi.Input[str]) -> pulumi.Output[str]:
    """The SageMaker SDK's defaults file of the desktop ``name`` (none with sagemakerAccess none)."""
    if args.sagemaker_access == "none":
        return pulumi.Output.from_input(sagemaker_config.NO_DEFAULTS)
    return pulumi.Output.all(role_arn, args.subnet_id, security_group_id, args.s3_bucket).apply(
        lambda v: sagemaker_config.render(desktop=name, role_arn=v[0], subnet_id=v[1], security_group_id=v[2],
                                          bucket=v[3]))


def ssh_command(args: DesktopArgs, host: str, instance_id: str, region: str, profile: Optional[str] = None) -> str:
    """How to open a shell on the desktop: SSH with the key pair (through Session Manager
    when no port is open), or a Session Manager shell without one. Every word is quoted;
    the AWS CLI commands carry the stack's ``aws:profile``."""
    account = ["--region", region, *(["--profile", profile] if profile else [])]
    if args.key_name is None:
        start = shlex.join(["aws", "ssm", "start-session", "--target", instance_id, *account])
        return (f"no key pair; a shell through Session Manager: `{ssm_road(pulumi.get_stack(), 'shell')}` "
                f"or `{start}`")
    # ~ stays outside the quotes, so that the shell expands it.
    key = f"ssh -i ~/.ssh/{shlex.quote(args.key_name + '.pem')}"
    if args.session_manager_only:
        # AWS's documented SSH over Session Manager: port 22 stays closed.
        proxy = shlex.join(["aws", "ssm", "start-session", "--target", "%h", "--document-name",
                            "AWS-StartSSHSession", "--parameters", "portNumber=%p", *account])
        return f"{key} -o ProxyCommand={shlex.quote(proxy)} {shlex.quote('ubuntu@' + instance_id)}"
    return f"{key} {shlex.quote('ubuntu@' + host)}"
