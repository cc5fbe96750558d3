"""The desktop as one Pulumi component, wired like the architecture picture."""

from __future__ import annotations

from typing import Optional

import pulumi

from desktop import identity, image, instance, network, storage
from desktop.config import DesktopArgs
from desktop.naming import check_component_name
from desktop.partition import current_partition
from desktop.ports import DCV_PORT

TYPE = "deep-learning-desktop:index:DeepLearningDesktop"


class DeepLearningDesktop(pulumi.ComponentResource):
    """A GPU deep learning desktop: security group, EFS, IAM role, AMI and EC2 instance.

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
    ami_id: pulumi.Output[str]
    ami_source: pulumi.Output[str]
    efs_mount_path: pulumi.Output[str]

    def __init__(self, name: str, args: DesktopArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_component_name(name)
        super().__init__(TYPE, name, None, opts)
        partition = current_partition(self)
        security_group_id = network.security_group(name, args, self)
        files = storage.file_system(name, args, security_group_id, self)
        role = identity.desktop_role(name, args, partition, self)
        ami = image.resolve(args, self)
        desktop = instance.desktop_instance(
            name, args, image=ami, identity=role, security_group_id=security_group_id,
            storage=files, partition=partition, parent=self,
        )

        self.instance_id = desktop.id
        self.role_arn = role.role.arn
        self.security_group_id = security_group_id
        self.efs_file_system_id = files.file_system_id
        self.public_ip = desktop.public_ip
        self.private_ip = desktop.private_ip
        # Without a public IP the desktop is reached over VPN or Direct Connect.
        self.host = desktop.public_ip if args.public_ip else desktop.private_ip
        self.dcv_url = self.host.apply(lambda h: f"https://{h}:{DCV_PORT}")
        self.ssh_command = self.host.apply(lambda h: f"ssh -i ~/.ssh/{args.key_name}.pem ubuntu@{h}")
        self.ami_id = desktop.ami
        self.ami_source = ami.source
        self.efs_mount_path = pulumi.Output.from_input(args.efs_mount_path)
        self.register_outputs({
            "instance_id": self.instance_id,
            "role_arn": self.role_arn,
            "security_group_id": self.security_group_id,
            "efs_file_system_id": self.efs_file_system_id,
            "dcv_url": self.dcv_url,
        })
