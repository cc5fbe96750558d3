"""The stack: read the config once, build the desktop, export what a person needs."""

import pulumi

from desktop import DeepLearningDesktop
from desktop.config import from_pulumi

args = from_pulumi()
desktop = DeepLearningDesktop(pulumi.get_stack(), args)

# The sample's four outputs, under their exact names.
pulumi.export("DesktopInstanceId", desktop.instance_id)
pulumi.export("DesktopRole", desktop.role_arn)
pulumi.export("DesktopSecurityGroup", desktop.security_group_id)
pulumi.export("EFSFileSystemId", desktop.efs_file_system_id)
# For the person at the keyboard.
pulumi.export("PublicIp", desktop.public_ip)
pulumi.export("PrivateIp", desktop.private_ip)
pulumi.export("DcvUrl", desktop.dcv_url)
pulumi.export("SshCommand", desktop.ssh_command)
pulumi.export("AmiId", desktop.ami_id)
pulumi.export("AmiSource", desktop.ami_source)
pulumi.export("EfsMountPath", desktop.efs_mount_path)
# The DCV login; the password is a secret: `pulumi stack output DcvPassword --show-secrets`.
pulumi.export("DcvUser", desktop.dcv_user)
pulumi.export("DcvPassword", desktop.dcv_password)
if desktop.fsx_file_system_id is not None:
    pulumi.export("FsxFileSystemId", desktop.fsx_file_system_id)
    pulumi.export("FsxMountPath", desktop.fsx_mount_path)
