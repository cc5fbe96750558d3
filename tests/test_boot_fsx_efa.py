"""Sandboxed boots of the real boot script with FSx for Lustre and EFA on (and off)."""

from __future__ import annotations

from pathlib import Path

import pytest

from boot_sandbox import Sandbox

FSX = {
    "fsx_dns_name": "fs-0123456789abcdef0.fsx.us-east-1.amazonaws.com",
    "fsx_mount_name": "abcdef12",
    "fsx_mount_path": "/home/ubuntu/fsx",
}
# The line AWS documents (DNS name@tcp:/mount name, type lustre, _netdev), with nofail
# so that a missing file system never holds up a boot.
FSX_LINE = ("fs-0123456789abcdef0.fsx.us-east-1.amazonaws.com@tcp:/abcdef12 /home/ubuntu/fsx lustre "
            "relatime,flock,_netdev,nofail,noauto 0 0")
KERNEL = "6.8.0-1021-aws"
CODENAMES = {"20.04": "focal", "22.04": "jammy", "24.04": "noble"}
# The repository line is per Ubuntu release, so every release; the FSx steps never read the
# architecture (AWS's repository serves both), so aarch64 once, on the newest release.
PLATFORMS = [(version, "x86_64") for version in CODENAMES] + [("24.04", "aarch64")]


def lustre_lines(box: Sandbox) -> list[str]:
    return [line for line in box.read("/etc/fstab").splitlines() if " lustre " in line]


def lustre_installs(boots) -> list[str]:
    return [name for boot in boots for name in boot.installed() if name.startswith("lustre")]


@pytest.mark.parametrize("version,arch", PLATFORMS)
def test_fsx_client_is_installed_once_and_mounted_through_one_fstab_line(sandbox, version, arch):
    box = sandbox(version=version, arch=arch)
    boots, fstabs = [], []
    for _ in range(3):
        boots.append(box.boot(**FSX))
        fstabs.append(box.read("/etc/fstab"))
    assert [b.returncode for b in boots] == [0, 0, 0], boots[0].output
    assert lustre_installs(boots) == [f"lustre-client-modules-{KERNEL}"]
    assert lustre_lines(box) == [FSX_LINE]
    assert fstabs[0] == fstabs[1] == fstabs[2]  # rewritten, never appended to
    # AWS's repository for this release, signed by AWS's key (dearmored into the keyring).
    repo = box.read("/etc/apt/sources.list.d/fsxlustreclientrepo.list")
    assert repo == ("deb [signed-by=/usr/share/keyrings/fsx-ubuntu-public-key.gpg] "
                    f"https://fsx-lustre-client-repo.s3.amazonaws.com/ubuntu {CODENAMES[version]} main\n")
    key_downloads = [c for c in boots[0].named("curl")
                     if "https://fsx-lustre-client-repo-public-keys.s3.amazonaws.com/fsx-ubuntu-public-key.asc" in c]
    assert len(key_downloads) == 1
    # Both keys AWS publishes for the repository, dearmored into that one keyring.
    dearmored = [c[-1] for c in boots[0].named("gpg") if "/fsx/" in c[-1]]
    assert [Path(a).name for a in dearmored] == ["ubuntu.asc", "main-repo.asc"]
    keyring = box.read("/usr/share/keyrings/fsx-ubuntu-public-key.gpg")
    assert "fsx/ubuntu.asc" in keyring and "fsx/main-repo.asc" in keyring
    # Mounted from the fstab line at the first later boot (the sandbox keeps it mounted after).
    target = str(box.path("/home/ubuntu/fsx"))
    assert [c[-1] for c in boots[1].named("mount") if c[-1] == target] == [target]
    assert ["-T", str(box.path("/etc/fstab"))] == [c for c in boots[1].named("mount") if c[-1] == target][0][1:3]
    assert box.mounted().count(target) == 1
    assert "deep-learning-desktop: fsx mounted at /home/ubuntu/fsx" in box.console_lines()
    assert box.path("/home/ubuntu/fsx").is_dir()


def test_a_new_kernel_installs_its_client_module_and_nothing_else(sandbox):
    box = sandbox()
    for _ in range(2):
        assert box.boot(**FSX).returncode == 0
    box.kernel = "6.8.0-1030-aws"
    after = box.boot(**FSX)
    assert after.returncode == 0, after.output
    assert after.installed() == ["lustre-client-modules-6.8.0-1030-aws"], after.installs
    assert after.reboots == 0
    again = box.boot(**FSX)
    assert again.installs == [] and lustre_lines(box) == [FSX_LINE]


def test_a_kernel_without_a_client_module_yet_boots_without_fsx(sandbox):
    box = sandbox()
    for _ in range(2):
        assert box.boot(**FSX).returncode == 0
    box.kernel = "6.8.0-1099-aws"
    box.env["STUB_FAIL"] = "apt-get"  # the repository has no module for that kernel yet
    boot = box.boot(**FSX)
    assert boot.returncode == 0, boot.output
    assert "deep-learning-desktop: ready" in box.console_lines()
    assert any(line.startswith("deep-learning-desktop: fsx skipped: no lustre client for kernel 6.8.0-1099-aws")
               for line in box.console_lines())
    # Nothing is mounted at that boot: the line in fstab waits for its client.
    assert [call for call in boot.named("mount") if call[-1].endswith("/home/ubuntu/fsx")] == []
    assert "fsx mounted" not in boot.output
    del box.env["STUB_FAIL"]
    retry = box.boot(**FSX)
    assert retry.installed() == ["lustre-client-modules-6.8.0-1099-aws"]


def test_fsx_off_installs_nothing_and_writes_no_line(sandbox):
    box = sandbox()
    boots = [box.boot() for _ in range(3)]
    assert all(b.returncode == 0 for b in boots)
    assert lustre_installs(boots) == []
    assert lustre_lines(box) == []
    assert not box.path("/etc/apt/sources.list.d/fsxlustreclientrepo.list").exists()
    assert not any("fsx" in line for line in box.console_lines())


def test_fsx_turned_off_removes_its_fstab_line(sandbox):
    box = sandbox()
    box.boot(**FSX)
    box.boot(**FSX)
    assert lustre_lines(box) == [FSX_LINE]
    assert box.boot().returncode == 0
    assert lustre_lines(box) == []
    assert "deep-learning-desktop FSx" not in box.read("/etc/fstab")
    assert "nfs4" in box.read("/etc/fstab")  # the EFS line stays


def test_a_malformed_fsx_value_never_reaches_fstab(sandbox):
    box = sandbox()
    box.boot(**FSX)
    boot = box.boot(**{**FSX, "fsx_mount_name": "abc\n/ / ext4 defaults 0 0"})
    assert boot.returncode == 0
    assert "ext4 defaults" not in box.read("/etc/fstab")
    assert "deep-learning-desktop: fsx skipped: malformed dns name, mount name or mount path" in box.console_lines()


@pytest.mark.parametrize("works", [True, False], ids=["efa-ok", "efa-missing"])
def test_efa_on_says_on_the_console_whether_libfabric_sees_it(sandbox, works):
    box = sandbox()
    box.boot(efa="true")
    # Only a later boot looks (a first boot reboots before EFA is any use): the first boot,
    # the same for both, is run once (boot_sandbox reuses it).
    box.env["STUB_EFA_OK"] = "1" if works else "0"
    boot = box.boot(efa="true")
    assert boot.returncode == 0
    assert boot.named("fi_info") == [["fi_info", "-p", "efa"]]
    efa_lines = [line for line in box.console_lines() if line.startswith("deep-learning-desktop: efa ")]
    if works:
        assert efa_lines == ["deep-learning-desktop: efa ready (fi_info -p efa lists the provider)"]
    else:
        assert len(efa_lines) == 1 and efa_lines[0].startswith("deep-learning-desktop: efa not usable")
    # `wait` takes the last stage line: the efa line comes before "ready".
    lines = box.console_lines()
    assert lines.index(efa_lines[0]) < len(lines) - 1 - lines[::-1].index("deep-learning-desktop: ready")


def test_efa_off_does_not_look(sandbox):
    box = sandbox()
    box.boot()
    box.env["STUB_EFA_OK"] = "1"
    boot = box.boot()
    assert boot.named("fi_info") == []
    assert not any(line.startswith("deep-learning-desktop: efa") for line in box.console_lines())


@pytest.mark.parametrize("failing,kept", [("fsx-main-repo-public-key.asc", "fsx/ubuntu.asc"),
                                          ("fsx-ubuntu-public-key.asc", "fsx/main-repo.asc")])
def test_the_lustre_repository_needs_only_one_of_awss_two_keys(sandbox, failing, kept):
    box = sandbox(env={"STUB_CURL_FAIL": failing})
    assert box.boot(**FSX).returncode == 0
    keyring = box.read("/usr/share/keyrings/fsx-ubuntu-public-key.gpg")
    assert kept in keyring and keyring.count("stub content for") == 1
    assert box.read("/etc/apt/sources.list.d/fsxlustreclientrepo.list").startswith("deb [signed-by=")


def test_without_either_key_there_is_no_repository_and_the_boot_goes_on(sandbox):
    box = sandbox(env={"STUB_CURL_FAIL": "fsx-lustre-client-repo-public-keys"})
    boot = box.boot(**FSX)
    assert boot.returncode == 0
    assert not box.path("/etc/apt/sources.list.d/fsxlustreclientrepo.list").exists()
    assert not box.path("/usr/share/keyrings/fsx-ubuntu-public-key.gpg").exists()
    assert "deep-learning-desktop: fsx: neither of AWS's Lustre repository keys could be fetched" in box.console_lines()
    # No repository, so no client: apt is not asked, FSx is skipped until a later boot.
    assert lustre_installs([boot]) == [] and lustre_lines(box) == []
    assert any(line.startswith("deep-learning-desktop: fsx skipped: no lustre client") for line in box.console_lines())


@pytest.mark.parametrize("blocked", [
    "/usr/share/keyrings",  # a file: the keyring's directory cannot be made
    "/etc/apt/sources.list.d",  # a file: nor the source list's
])
def test_a_repository_file_that_cannot_be_written_means_no_client_yet(sandbox, blocked):
    # A full or broken disk fails the same way: without both files apt must not be asked
    # for the client.
    box = sandbox()
    if blocked.endswith("/"):
        box.path(blocked).mkdir(parents=True)
    else:
        box.path(blocked).parent.mkdir(parents=True, exist_ok=True)
        box.path(blocked).write_text("not a directory\n")
    boot = box.boot(**FSX)
    assert lustre_installs([boot]) == [] and lustre_lines(box) == []
    assert any(line.startswith("deep-learning-desktop: fsx skipped: no lustre client") for line in box.console_lines())


def test_a_mount_that_fails_once_is_tried_again_after_30_seconds(sandbox):
    box = sandbox()
    assert box.boot(**FSX).returncode == 0  # the first boot installs and reboots
    target = str(box.path("/home/ubuntu/fsx"))
    box.env["STUB_FAILS"] = f"mount:{target}:1"  # the file system answers at the second try
    boot = box.boot(**FSX)
    assert boot.returncode == 0, boot.output
    assert len([call for call in boot.named("mount") if call[-1] == target]) == 2
    assert ["sleep", "30"] in boot.named("sleep")
    assert "deep-learning-desktop: fsx mounted at /home/ubuntu/fsx" in box.console_lines()


def test_an_old_line_for_the_fsx_mount_path_gives_way_to_the_desktops(sandbox):
    box = sandbox()
    fstab = box.path("/etc/fstab")
    old = "fs-0aaaaaaaaaaaaaaaa.fsx.us-east-1.amazonaws.com@tcp:/zzzzzzzz /home/ubuntu/fsx lustre defaults 0 0"
    elsewhere = "nas.example.internal:/data /mnt/data nfs defaults,nofail 0 0"
    fstab.write_text(fstab.read_text() + old + "\n" + elsewhere + "\n")
    assert box.boot(**FSX).returncode == 0
    lines = box.read("/etc/fstab").splitlines()
    assert old not in lines and elsewhere in lines
    assert [line for line in lines if line.split()[1:2] == ["/home/ubuntu/fsx"]] == [FSX_LINE]
