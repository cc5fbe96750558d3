"""A boot that survives a real cloud: few package transactions, retries in place, bounded
waits, a display that follows the hardware, and a baked image booted as a new instance.

Sandboxed boots of the real rendered script (tests/boot_sandbox.py). Run with ``-s`` to
see the per-scenario figures (apt-get calls and reboots, first and later boots).
"""

from __future__ import annotations

import configparser
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
for entry in (TESTS.parent, TESTS):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from boot_sandbox import INSTANCE_ID, Boot, Sandbox  # noqa: E402
from desktop.commands.operate import FAILED, boot_stage  # noqa: E402

STATE = "/var/lib/deep-learning-desktop"
RESTART_X = ["systemctl", "restart", "display-manager", "dcvserver"]
READY = "deep-learning-desktop: ready"
ENABLED = "NICE DCV server is enabled!"
DCV_OS = {"20.04": "ubuntu2004", "22.04": "ubuntu2204", "24.04": "ubuntu2404"}

SCENARIOS = {
    "24.04-x86_64-gpu-driver-ok": dict(version="24.04", arch="x86_64", gpu=1, nvidia_ok=True),
    "24.04-x86_64-no-gpu": dict(version="24.04", arch="x86_64", gpu=0),
    "22.04-x86_64-no-gpu": dict(version="22.04", arch="x86_64", gpu=0),
    "22.04-x86_64-gpu-no-driver": dict(version="22.04", arch="x86_64", gpu=1, nvidia_ok=False),
    "20.04-x86_64-gpu-no-driver": dict(version="20.04", arch="x86_64", gpu=1, nvidia_ok=False),
    "24.04-aarch64-gpu-driver-ok": dict(version="24.04", arch="aarch64", gpu=1, nvidia_ok=True),
    "22.04-aarch64-no-gpu": dict(version="22.04", arch="aarch64", gpu=0),
    "24.04-x86_64-4-gpus-driver-ok": dict(version="24.04", arch="x86_64", gpu=4, nvidia_ok=True),
}


def apt_calls(boot: Boot) -> list[list[str]]:
    return boot.named("apt-get", "apt")


def apt_installs(boot: Boot) -> list[list[str]]:
    return [call for call in apt_calls(boot) if "install" in call]


def xorg(box: Sandbox) -> str:
    return box.read("/etc/X11/xorg.conf")


def stages(box: Sandbox) -> list[str]:
    return [line.removeprefix("deep-learning-desktop: ") for line in box.console_lines()]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_first_and_later_boot_on_every_platform(sandbox, name, capsys):
    """At most three apt-get calls on a first boot (update, the desktop's transaction, DCV's)
    and none later; what the first boot installs and writes; ready at the later boot."""
    options = SCENARIOS[name]
    gpu, driver_works = options["gpu"] > 0, options.get("nvidia_ok", False)
    box = sandbox(**options)

    first = box.boot()
    assert first.returncode == 0, first.output
    # update, the desktop transaction, the DCV transaction: nothing else.
    assert [call[-1] if call[-1] == "update" else "install" for call in apt_calls(first)] == [
        "update", "install", "install"]
    assert first.reboots == 1
    assert box.read("/etc/motd") == ENABLED + "\n"
    assert box.path(f"{STATE}/first-boot-done").exists()
    # apt waits for the dpkg lock held by unattended upgrades; never a full upgrade.
    for call in apt_calls(first):
        assert "DPkg::Lock::Timeout=900" in call
        assert "upgrade" not in call and "dist-upgrade" not in call and "full-upgrade" not in call
    installed = first.installed()
    assert {"ubuntu-desktop-minimal", "gdm3", "nfs-common"} <= set(installed)
    deb_names = [Path(arg).name.split("_")[0] for arg in installed if arg.endswith(".deb")]
    assert sorted(deb_names) == ["nice-dcv-server", "nice-dcv-web-viewer", "nice-xdcv"]
    tarball = f"https://d1uj6qtbmh3dt5.cloudfront.net/nice-dcv-{DCV_OS[options['version']]}-{options['arch']}.tgz"
    urls = [call[-1] for call in first.named("curl") if "169.254.169.254" not in call[-1]]
    assert urls == ["https://d1uj6qtbmh3dt5.cloudfront.net/NICE-GPG-KEY", tarball]
    assert ["usermod", "-aG", "video", "dcv"] in first.calls
    assert ["systemctl", "enable", "dcvserver"] in first.calls
    if options["version"] == "24.04":
        assert ["snap", "install", "snap-store"] in first.calls
    else:
        assert "gnome-software" in installed
    drivers = first.named("ubuntu-drivers")
    assert bool(drivers) == (gpu and not driver_works)
    if drivers:
        assert drivers[0][1] == "install"
    # The dummy driver comes with every first boot: a later move to a type without a
    # GPU then only rewrites xorg.conf.
    assert "xserver-xorg-video-dummy" in installed
    if gpu and driver_works:
        assert 'Driver "nvidia"' in xorg(box) and "dummy" not in xorg(box)
    else:
        # No GPU, or a driver that works only after the reboot: the display that always works.
        assert 'Driver "dummy"' in xorg(box) and "Virtual " in xorg(box)
    gdm = configparser.ConfigParser()
    gdm.read_string(box.read("/etc/gdm3/custom.conf"))
    assert gdm["daemon"]["WaylandEnable"] == "false"

    later = box.boot()
    assert later.returncode == 0, later.output
    assert apt_calls(later) == [] and later.package_calls == [] and later.reboots == 0
    assert box.read("/etc/motd") == ENABLED + "\n"
    assert READY in box.console_lines()
    with capsys.disabled():
        print(f"\n{name}: first boot {len(apt_calls(first))} apt-get calls (+{len(drivers)} ubuntu-drivers, "
              f"{len(first.named('snap'))} snap; {len(first.package_calls)} package-manager calls, "
              f"{len(first.installs)} installs), {first.reboots} reboot; later boot {len(apt_calls(later))} "
              f"apt-get calls, {later.reboots} reboots")


@pytest.mark.parametrize("version, extra", [("24.04", set()), ("22.04", {"gnome-software"}),
                                            ("20.04", {"gnome-software"})])
def test_one_transaction_holds_the_desktop_both_displays_nfs_and_the_app_store(sandbox, version, extra):
    box = sandbox(version=version)
    first = box.boot()
    desktop, dcv = apt_installs(first)
    packages = {arg for arg in desktop[desktop.index("install") + 1:] if not arg.startswith("-")}
    assert packages == {"ubuntu-desktop-minimal", "gdm3", "nfs-common", "xserver-xorg-video-dummy"} | extra
    assert sorted(Path(arg).name.split("_")[0] for arg in dcv if arg.endswith(".deb")) == [
        "nice-dcv-server", "nice-dcv-web-viewer", "nice-xdcv"]


def test_a_gpu_without_a_driver_gets_ubuntu_drivers_in_the_same_transaction(sandbox):
    box = sandbox(version="22.04", gpu=1, nvidia_ok=False)
    first = box.boot()
    desktop, _ = apt_installs(first)
    assert "ubuntu-drivers-common" in desktop
    assert first.named("ubuntu-drivers") == [["ubuntu-drivers", "install"]]


def test_the_display_follows_the_instance_type_at_every_boot(sandbox):
    box = sandbox(version="24.04", gpu=1, nvidia_ok=True)
    assert box.boot().returncode == 0
    assert 'Driver "nvidia"' in xorg(box) and 'BusID "PCI:0:30:0"' in xorg(box)
    same = box.boot()
    assert RESTART_X not in same.calls

    # Stopped, moved to a type without a GPU (g4dn -> m5), started.
    box.env["STUB_GPU"] = "0"
    no_gpu = box.boot()
    assert no_gpu.returncode == 0, no_gpu.output
    assert 'Driver "dummy"' in xorg(box) and "nvidia" not in xorg(box) and "BusID" not in xorg(box)
    assert RESTART_X in no_gpu.calls
    assert no_gpu.package_calls == [] and no_gpu.reboots == 0, "the dummy driver came with the first boot"
    assert READY in box.console_lines()

    # Back to a GPU type.
    box.env["STUB_GPU"] = "1"
    back = box.boot()
    assert 'Driver "nvidia"' in xorg(box) and "dummy" not in xorg(box)
    assert RESTART_X in back.calls and back.package_calls == [] and back.reboots == 0

    # Four GPUs (g4dn.12xlarge), then one again: only bus ids this type has.
    box.env["STUB_GPU"] = "4"
    box.boot()
    assert xorg(box).count("BusID") == 4
    box.env["STUB_GPU"] = "1"
    fewer = box.boot()
    assert xorg(box).count("BusID") == 1 and 'BusID "PCI:0:30:0"' in xorg(box)
    assert RESTART_X in fewer.calls


def test_a_gpu_whose_driver_does_not_work_gets_the_dummy_display(sandbox):
    box = sandbox(version="24.04", gpu=1, nvidia_ok=True)
    box.boot()
    box.env["STUB_NVIDIA_OK"] = "0"  # moved to a GPU this driver does not support
    boot = box.boot()
    assert 'Driver "dummy"' in xorg(box) and RESTART_X in boot.calls


def test_a_desktop_from_before_the_dummy_driver_installs_it_once_when_moved_off_a_gpu(sandbox):
    box = sandbox(version="24.04", gpu=1, nvidia_ok=True)
    box.boot()
    box.env.update(STUB_GPU="0", STUB_NOT_INSTALLED="xserver-xorg-video-dummy")
    moved = box.boot()
    assert [call[-1] for call in apt_installs(moved)] == ["xserver-xorg-video-dummy"]
    assert moved.reboots == 0


def test_an_install_failing_twice_then_succeeding_is_retried_with_backoff(sandbox):
    box = sandbox(version="24.04")
    box.env["STUB_FAILS"] = "apt-get:ubuntu-desktop-minimal:2"
    first = box.boot()
    assert first.returncode == 0, first.output
    assert first.reboots == 1, "only the setup's own reboot"
    desktop = [call for call in apt_installs(first) if "ubuntu-desktop-minimal" in call]
    assert len(desktop) == 3
    # Backoff between the tries, and fresh package lists for a mirror caught mid-sync.
    assert [call[1] for call in first.named("sleep")] == ["30", "60"]
    assert [call[-1] for call in apt_calls(first)].count("update") == 3
    assert box.read("/etc/motd") == "NICE DCV server is enabled!\n"


def test_a_failed_first_boot_reboots_to_try_again_then_completes(sandbox):
    box = sandbox(version="22.04")
    box.env["STUB_FAILS"] = "apt-get:ubuntu-desktop-minimal:4"  # every try of the first boot
    failed = box.boot()
    assert failed.returncode != 0
    assert failed.reboots == 1, "retried in place, without a person"
    assert "retrying" in box.read("/etc/motd")
    # `wait` on the laptop must not end here: no stage of this boot reads as a failure.
    assert not boot_stage(box.console.read_text()).startswith(FAILED)
    assert not [line for line in stages(box) if line.startswith(FAILED)]
    assert stages(box)[-1].startswith("setup attempt 1 of 3 stopped during 'installing gnome desktop'")

    retried = box.boot()
    assert retried.returncode == 0, retried.output
    assert ["dpkg", "--configure", "-a"] in retried.calls, "an interrupted dpkg is finished first"
    assert retried.reboots == 1 and box.read("/etc/motd") == "NICE DCV server is enabled!\n"
    assert not box.path(f"{STATE}/first-boot-attempts").exists()
    later = box.boot()
    assert later.package_calls == [] and later.reboots == 0 and stages(box)[-2:] == [
        "ready", "efs mounted at /home/ubuntu/efs"]


def test_a_first_boot_that_keeps_failing_gives_up_after_three_attempts(sandbox):
    box = sandbox(version="22.04")
    box.env["STUB_FAIL"] = "curl"
    boots = [box.boot() for _ in range(3)]
    assert [boot.reboots for boot in boots] == [1, 1, 0]
    assert boot_stage(box.console.read_text()).startswith(FAILED), "`wait` ends: the boot gave up"
    motd = box.read("/etc/motd")
    assert "FAILED during 'installing dcv server'" in motd and "No automatic retry is left after 3 attempts" in motd
    # Every later boot says so again, and neither installs nor reboots.
    again = box.boot()
    assert again.returncode != 0 and again.reboots == 0 and again.package_calls == [] and again.named("curl") == []
    assert stages(box)[-1].startswith("failed: the desktop setup failed 3 times")


def test_a_snap_seed_that_never_loads_holds_the_boot_only_so_long(sandbox):
    box = sandbox(version="24.04")
    box.env.update(STUB_SNAP_SEED_HANG="1", DLD_SNAP_SEED_TIMEOUT="1")
    first = box.boot()  # the sandbox kills a boot after 60 s: this one must end by itself
    assert first.returncode == 0, first.output
    assert ["snap", "wait", "system", "seed.loaded"] in first.calls
    assert not [call for call in first.named("snap") if "install" in call]
    assert any(line.startswith("snaps not seeded after 1s") for line in stages(box))
    assert first.reboots == 1 and box.read("/etc/motd") == "NICE DCV server is enabled!\n"


def test_the_dcv_version_is_on_the_console_at_every_boot(sandbox):
    box = sandbox(version="24.04")
    box.boot()
    box.boot()
    assert stages(box).count("dcv 2024.0.19030-1") == 2


OTHER = {
    "region": "eu-west-1",
    "efs_file_system_id": "fs-0aaaabbbbccccdddd",
    "efs_mount_path": "/home/ubuntu/team",
    "role_arn": "arn:aws:iam::123456789012:role/bob-desktop-role",
    "security_group_id": "sg-0bbbbbbbbbbbbbbbb",
    "subnet_id": "subnet-0cccccccccccccccc",
}


def baked(sandbox) -> Sandbox:
    """Alice's ready desktop, in use: its disk is what `bake` copies into an image."""
    box = sandbox(version="24.04", gpu=1, nvidia_ok=True)
    assert box.boot().returncode == 0 and box.boot().returncode == 0
    assert box.read(f"{STATE}/instance-id") == INSTANCE_ID + "\n"
    for directory in ("idle", "keep-awake"):
        box.path(f"{STATE}/{directory}").mkdir(parents=True, exist_ok=True)
        box.path(f"{STATE}/{directory}/since").write_text("1700000000\n")
    # Alice's password came from version 1 of her parameter, as Bob's will.
    box.path(f"{STATE}/dcv-password-version").write_text("1 2026-01-01T00:00:00+00:00\n")
    box.path("/etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    return box


def test_a_baked_image_boots_as_a_new_desktop_without_installs_or_reboots(sandbox, capsys):
    box = baked(sandbox)
    alice_efs = str(box.path("/home/ubuntu/efs"))
    assert alice_efs in box.mounted()
    box.instance_id = "i-0fedcba9876543210"  # Bob's instance, from the image, with his stack's values
    bob = box.boot(**OTHER)
    assert bob.returncode == 0, bob.output
    assert bob.installs == [] and bob.package_calls == [] and bob.reboots == 0
    assert stages(box)[-2:] == ["ready", "efs mounted at /home/ubuntu/team"]
    assert box.read(f"{STATE}/instance-id") == "i-0fedcba9876543210\n"
    # Nothing of Alice's desktop stays.
    for gone in ("idle", "keep-awake"):  # the boot makes both anew, empty, for this desktop's agent
        assert not box.path(f"{STATE}/{gone}/since").exists()
    # Alice's password version is forgotten, so Bob's stack's password is applied, although
    # its parameter is at the same version number.
    assert box.read(f"{STATE}/dcv-password-version").split()[0] == "1"
    assert bob.named("chpasswd")
    assert ["umount", "-l", alice_efs] in bob.calls
    nfs = [line for line in box.read("/etc/fstab").splitlines() if " nfs4 " in line]
    assert nfs == [line for line in nfs if line.startswith("fs-0aaaabbbbccccdddd.efs.eu-west-1.")] and len(nfs) == 1
    assert not box.path("/etc/machine-id").exists()
    assert ["systemd-machine-id-setup", f"--root={box.root}"] in bob.calls
    aws = configparser.ConfigParser()
    aws.read_string(box.read("/home/ubuntu/.aws/config"))
    assert aws["default"]["region"] == "eu-west-1"
    bashrc = box.read("/home/ubuntu/.bashrc")
    assert "subnet-0cccccccccccccccc" in bashrc and "subnet-0123456789abcdef0" not in bashrc
    # Bob's next boot is an ordinary later boot: no reset.
    again = box.boot(**OTHER)
    assert again.named("systemd-machine-id-setup") == [] and again.named("umount") == []
    with capsys.disabled():
        print(f"\nbaked image, first boot as a new instance: {len(bob.installs)} package installs, "
              f"{len(apt_calls(bob))} apt-get calls, {bob.reboots} reboots, ready reached")


def test_a_new_instance_whose_values_are_unusable_keeps_nothing_of_the_old_efs(sandbox):
    box = baked(sandbox)
    box.instance_id = "i-0fedcba9876543210"
    boot = box.boot(**{**OTHER, "efs_mount_path": "/bad path"})
    assert boot.returncode == 0, boot.output
    assert " nfs4 " not in box.read("/etc/fstab")
    aws = configparser.ConfigParser()
    aws.read_string(box.read("/home/ubuntu/.aws/config"))
    assert aws["default"]["region"] == "eu-west-1"


def test_a_silent_metadata_service_resets_nothing(sandbox):
    """Uncertain means safe: without its own id the boot cannot tell a new instance."""
    box = baked(sandbox)
    box.instance_id = "i-0fedcba9876543210"
    box.env["STUB_IMDS_FAIL"] = "1"
    boot = box.boot()
    assert boot.returncode == 0, boot.output
    assert box.path(f"{STATE}/idle").exists() and boot.named("systemd-machine-id-setup") == []
    assert box.read(f"{STATE}/instance-id") == INSTANCE_ID + "\n"


def test_a_setup_that_always_fails_still_has_the_idle_agent_running(sandbox, tmp_path):
    """The agent is installed before the long installs: a desktop whose DCV install fails
    every time still stops when idle (issue 18)."""
    from idle_sandbox import Desktop, Imds

    from cloud_init.render import shipped

    box = sandbox(version="22.04")
    box.env["STUB_FAIL"] = "curl"
    boots = [box.boot() for _ in range(3)]
    enable = ["systemctl", "enable", "--now", "deep-learning-desktop-idle.timer"]
    for boot in boots:
        assert enable in boot.calls
        assert boot.calls.index(enable) < min(i for i, call in enumerate(boot.calls) if call[0] == "curl")
    assert stages(box)[-1].startswith("failed during 'installing dcv server'")
    agent = box.path("/usr/local/lib/deep-learning-desktop/idle-agent")
    assert agent.read_text() == shipped("idle_agent.py") and agent.stat().st_mode & 0o111
    # That very file runs as the agent: a failed setup has no DCV server, and stops when idle.
    imds = Imds()
    try:
        desk = Desktop(tmp_path / "agent", imds=imds, dcv_server=False, policy="10")
        desk.minute()
        desk.advance(60)
        done = desk.run(program=agent)
        assert done.returncode == 0, done.stderr
        assert desk.log_lines()[-1].split()[1] == "idle"
    finally:
        imds.close()
