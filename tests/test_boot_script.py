"""Sandboxed boots of the real boot script (rendered user data, stub system commands)."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
for entry in (TESTS.parent, TESTS):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from boot_sandbox import DEFAULT_VALUES, Sandbox  # noqa: E402

IN_PROGRESS = "Cloud init in progress. Machine will REBOOT after cloud init is complete!!"
ENABLED = "NICE DCV server is enabled!"
NFS_OPTIONS = "nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,_netdev,nofail,noauto"

def fstab_entries(box: Sandbox) -> list[list[str]]:
    return [line.split() for line in box.read("/etc/fstab").splitlines() if line and not line.startswith("#")]


def terminal_variables(box: Sandbox) -> dict[str, str]:
    """What a new bash of ubuntu sees: source the real ~/.bashrc and print the variables."""
    names = ("desktop_role_arn", "desktop_sg_id", "desktop_subnet_id")
    result = subprocess.run(
        ["/bin/bash", "-c", '. "$1"; printf "%s\\0" "$desktop_role_arn" "$desktop_sg_id" "$desktop_subnet_id"',
         "_", str(box.path("/home/ubuntu/.bashrc"))],
        capture_output=True, check=True, env={"PATH": "/usr/bin:/bin"},
    )
    return dict(zip(names, result.stdout.decode().split("\0")))


# The first and a later boot on every platform: tests/test_boot_sturdy.py
# (test_first_and_later_boot_on_every_platform).


def test_first_boot_files_and_progress(sandbox):
    box = sandbox(version="24.04", gpu=True, nvidia_ok=True)
    first = box.boot()
    assert first.returncode == 0, first.output

    dcv = configparser.ConfigParser()
    dcv.read_string(box.read("/etc/dcv/dcv.conf"))
    assert dcv["session-management"]["create-session"] == "true"
    assert dcv["session-management/automatic-console-session"]["owner"] == '"ubuntu"'
    assert dcv["security"]["authentication"] == '"system"'
    assert dcv["connectivity"]["enable-quic-frontend"] == "true"
    assert dcv["clipboard"]["primary-selection-copy"] == "true"
    assert dcv["clipboard"]["primary-selection-paste"] == "true"

    efs = [e for e in fstab_entries(box) if e[1] == "/home/ubuntu/efs"]
    assert efs == [["fs-0123456789abcdef0.efs.us-east-1.amazonaws.com:/", "/home/ubuntu/efs", "nfs4", NFS_OPTIONS, "0", "0"]]
    assert fstab_entries(box)[0][1] == "/", "the root file system line is kept"
    # The reboot follows: EFS is in fstab with its mount point ready; the next boot mounts it.
    assert first.named("mount") == [] and box.mounted() == []
    assert ["chown", "-h", "ubuntu:ubuntu", str(box.path("/home/ubuntu/efs"))] in first.calls

    aws = configparser.ConfigParser()
    aws.read_string(box.read("/home/ubuntu/.aws/config"))
    assert aws["default"]["region"] == "us-east-1"
    assert terminal_variables(box) == {
        "desktop_role_arn": DEFAULT_VALUES["role_arn"],
        "desktop_sg_id": DEFAULT_VALUES["security_group_id"],
        "desktop_subnet_id": DEFAULT_VALUES["subnet_id"],
    }

    stages = [line for line in box.console_lines() if line.startswith("deep-learning-desktop: ")]
    assert len(stages) >= 6
    assert stages[-1] == "deep-learning-desktop: first boot complete, rebooting"
    log = box.read("/var/log/deep-learning-desktop.log")
    for line in stages:
        assert line in log and line in first.output


def test_x_is_set_up_for_the_nvidia_driver_once_it_works(sandbox):
    restart = ["systemctl", "restart", "display-manager", "dcvserver"]
    # A driver that works from the start: X is set up at the first boot.
    ready = sandbox(version="24.04", gpu=True, nvidia_ok=True)
    assert len(ready.boot().named("nvidia-xconfig")) == 1
    assert 'Driver "nvidia"' in ready.read("/etc/X11/xorg.conf")
    later = ready.boot()
    assert restart not in later.calls, "the same hardware: X is left alone"
    # A driver the first boot installed works only after the reboot: X is set up then, once.
    box = sandbox(version="20.04", gpu=True, nvidia_ok=False)
    first = box.boot()
    assert first.named("ubuntu-drivers") and first.named("nvidia-xconfig") == []
    box.env["STUB_NVIDIA_OK"] = "1"
    second = box.boot()
    (xconfig,) = second.named("nvidia-xconfig")
    assert "--enable-all-gpus" in xconfig and "--force-generate" in xconfig and restart in second.calls
    assert 'Driver "nvidia"' in box.read("/etc/X11/xorg.conf")
    assert second.package_calls == [] and second.reboots == 0
    third = box.boot()
    assert restart not in third.calls


def test_failed_download_reports_and_the_next_boot_retries(sandbox):
    """A failing download reboots to try again (tests/test_boot_sturdy.py bounds it); the motd says what happened."""
    box = sandbox(version="22.04")
    box.env["STUB_FAIL"] = "curl"
    failed = box.boot()
    assert failed.returncode != 0
    assert failed.reboots == 1
    assert not box.path("/var/lib/deep-learning-desktop/first-boot-done").exists()
    assert "attempt 1 of 3 stopped during 'installing dcv server'; retrying" in box.read("/etc/motd")
    downloads = [call for call in failed.named("curl") if "169.254.169.254" not in call[-1]]
    assert len(downloads) == 5, "downloads are retried, a bounded number of times"
    # The next boot retries the whole first-boot path and completes it.
    box.env["STUB_FAIL"] = ""
    retried = box.boot()
    assert retried.returncode == 0, retried.output
    assert retried.reboots == 1
    assert box.read("/etc/motd") == ENABLED + "\n"


def test_motd_says_in_progress_while_installing_and_enabled_at_the_reboot(sandbox):
    box = sandbox(version="24.04")
    assert box.boot().returncode == 0
    assert box.motd_seen_by("apt-get") == IN_PROGRESS + "\n"
    assert box.motd_seen_by("snap") == IN_PROGRESS + "\n"
    assert box.motd_seen_by("reboot") == ENABLED + "\n"


def test_apt_failure_is_retried_then_reported(sandbox):
    box = sandbox(version="24.04")
    box.env["STUB_FAIL"] = "apt-get"
    failed = box.boot()
    assert failed.returncode != 0 and failed.reboots == 1
    assert len(failed.named("apt-get")) == 10, "apt-get update is retried, a bounded number of times"
    assert "stopped during 'first boot: installing (attempt 1 of 3)'" in box.read("/etc/motd")


@pytest.mark.parametrize(
    "os_id, version, arch",
    [("ubuntu", "18.04", "x86_64"), ("ubuntu", "25.04", "x86_64"), ("debian", "12", "x86_64"), ("ubuntu", "24.04", "riscv64")],
)
def test_unsupported_platform_stops_without_installing_or_rebooting(sandbox, os_id, version, arch):
    box = sandbox(os_id=os_id, version=version, arch=arch)
    for _ in range(2):
        boot = box.boot()
        assert boot.returncode != 0
        assert boot.reboots == 0
        assert boot.package_calls == []
    motd = box.read("/etc/motd")
    assert "unsupported" in motd
    assert (arch if arch == "riscv64" else version) in motd
    log = box.read("/var/log/deep-learning-desktop.log")
    assert "unsupported" in log
    assert any("deep-learning-desktop: failed: unsupported" in line for line in box.console_lines())


def test_given_efs_and_china_partition(sandbox):
    box = sandbox(version="22.04")
    given = {"efs_file_system_id": "fs-0fedcba9", "region": "cn-north-1", "dns_suffix": "amazonaws.com.cn"}
    assert box.boot(**given).returncode == 0
    assert [e[0] for e in fstab_entries(box) if e[1] == "/home/ubuntu/efs"] == ["fs-0fedcba9.efs.cn-north-1.amazonaws.com.cn:/"]


def test_later_boot_applies_changed_values(sandbox):
    box = sandbox(version="24.04", gpu=True, nvidia_ok=True)
    assert box.boot().returncode == 0
    changed = {
        "region": "eu-west-1",
        "efs_file_system_id": "fs-0aaaabbbbccccdddd",
        "efs_mount_path": "/data/efs",
        "role_arn": "arn:aws:iam::123456789012:role/it's-$(new)",
        "security_group_id": "sg-0bbbbbbbbbbbbbbbb",
        "subnet_id": "subnet-0cccccccccccccccc",
    }
    second = box.boot(**changed)
    assert second.returncode == 0, second.output
    assert second.reboots == 0 and second.package_calls == []
    efs = [e for e in fstab_entries(box) if e[2] == "nfs4"]
    assert efs == [["fs-0aaaabbbbccccdddd.efs.eu-west-1.amazonaws.com:/", "/data/efs", "nfs4", NFS_OPTIONS, "0", "0"]]
    assert box.read("/etc/fstab").count("deep-learning-desktop EFS") == 1
    assert str(box.path("/data/efs")) in box.mounted()
    aws = configparser.ConfigParser()
    aws.read_string(box.read("/home/ubuntu/.aws/config"))
    assert aws["default"]["region"] == "eu-west-1"
    assert terminal_variables(box) == {
        "desktop_role_arn": changed["role_arn"],
        "desktop_sg_id": changed["security_group_id"],
        "desktop_subnet_id": changed["subnet_id"],
    }
    bashrc = box.read("/home/ubuntu/.bashrc")
    for name in ("desktop_role_arn", "desktop_sg_id", "desktop_subnet_id"):
        assert bashrc.count(f"export {name}=") == 1


def test_later_boot_twice_leaves_the_same_files(sandbox):
    box = sandbox(version="22.04")
    assert box.boot().returncode == 0
    assert box.boot().returncode == 0
    once = box.snapshot()
    assert box.boot().returncode == 0
    assert box.snapshot() == once


def test_existing_files_are_kept_and_old_lines_replaced(sandbox):
    box = sandbox(version="20.04", gpu=True, nvidia_ok=True)
    box.path("/home/ubuntu/.aws").mkdir(parents=True)
    box.path("/home/ubuntu/.aws/config").write_text("[default]\nregion = us-west-2\noutput = json\n\n[profile other]\nregion = ap-south-1\n")
    box.path("/home/ubuntu/.bashrc").write_text("alias ll='ls -l'\n")
    with box.path("/etc/fstab").open("a") as fstab:
        fstab.write("old-server:/export /home/ubuntu/efs nfs4 defaults 0 0\n")
    assert box.boot().returncode == 0
    aws = configparser.ConfigParser()
    aws.read_string(box.read("/home/ubuntu/.aws/config"))
    assert aws["default"]["region"] == "us-east-1"
    assert aws["default"]["output"] == "json"
    assert aws["profile other"]["region"] == "ap-south-1"
    # The person's own profiles stay theirs alone (role ARNs, SSO starts, credential processes).
    assert box.path("/home/ubuntu/.aws/config").stat().st_mode & 0o777 == 0o600
    assert box.read("/home/ubuntu/.bashrc").startswith("alias ll='ls -l'\n")
    assert [e[0] for e in fstab_entries(box) if e[1] == "/home/ubuntu/efs"] == [
        "fs-0123456789abcdef0.efs.us-east-1.amazonaws.com:/"
    ]


def test_later_boots_mount_efs_once_dcv_is_ready(sandbox):
    box = sandbox(version="24.04")
    assert box.boot().returncode == 0
    later = box.boot()
    assert later.returncode == 0 and later.reboots == 0
    assert box.mounted() == [str(box.path("/home/ubuntu/efs"))]
    lines = box.console_lines()
    assert lines.index("deep-learning-desktop: ready") < lines.index(
        "deep-learning-desktop: efs mounted at /home/ubuntu/efs")


def test_slow_efs_never_blocks_the_boot(sandbox):
    box = sandbox(version="24.04")
    box.env["STUB_MOUNT_FAIL"] = "1"
    first = box.boot()
    assert first.returncode == 0, first.output
    assert first.reboots == 1 and first.named("mount") == []
    later = box.boot()
    assert later.returncode == 0, later.output
    assert len(later.named("mount")) == 10, "bounded retries"
    assert box.mounted() == []
    lines = box.console_lines()
    gave_up = [n for n, line in enumerate(lines) if "efs not mounted yet" in line]
    assert gave_up and lines.index("deep-learning-desktop: ready") < gave_up[0], "DCV does not wait for EFS"


def test_ready_only_when_dcv_answers(sandbox):
    box = sandbox(version="22.04")
    assert box.boot().returncode == 0
    assert "deep-learning-desktop: ready" not in box.console_lines(), "not before the reboot"
    box.env["STUB_DCV_RC"] = "1"
    waiting = box.boot()
    assert waiting.returncode == 0
    assert len(waiting.named("dcv")) == 60, "a bounded wait"
    assert "deep-learning-desktop: ready" not in box.console_lines()
    box.env["STUB_DCV_RC"] = "0"
    box.boot()
    assert box.console_lines().count("deep-learning-desktop: ready") == 1


def test_malformed_efs_values_do_not_reach_fstab(sandbox):
    box = sandbox(version="22.04")
    boot = box.boot(efs_mount_path="/home/ubuntu/efs\n/evil / ext4 defaults 0 0")
    assert boot.returncode == 0, boot.output
    assert "evil" not in box.read("/etc/fstab")
    assert boot.named("mount") == []
