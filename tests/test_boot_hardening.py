"""The real boot, attacked: links ubuntu plants in its home, a full disk, values that point
the mounts at system directories, a boot-files parameter that is not the stack's own.

The boot runs as root; every test asks the same three things afterwards: no file outside
ubuntu's home changed (byte for byte, hashed), nothing only root may read reached a file
ubuntu can read, and the desktop still came up (``ready`` on the console).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import re
import shutil
import tarfile

import pytest

from boot_sandbox import DEFAULT_VALUES, Sandbox
from cloud_init.boot_files import FILES
from cloud_init.render import shipped

SECRET = "root:$6$only-root-may-read-this$:19000:0:99999:7:::"
HOME = "home/ubuntu"
READY = "deep-learning-desktop: ready"
FSX = {
    "fsx_dns_name": "fs-0123456789abcdef0.fsx.us-east-1.amazonaws.com",
    "fsx_mount_name": "abcdef12",
    "fsx_mount_path": "/home/ubuntu/fsx",
}


def outside_home(box: Sandbox) -> dict[str, str]:
    """A hash of every file and link outside ubuntu's home (not the log or the console)."""
    skip = {box.path("/var/log/deep-learning-desktop.log"), box.console}
    out = {}
    for path in sorted(box.root.rglob("*")):
        relative = str(path.relative_to(box.root))
        if path in skip or relative == HOME or relative.startswith(HOME + "/"):
            continue
        if path.is_symlink():
            out[relative] = "-> " + str(path.readlink())
        elif path.is_file():
            out[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[relative] = "dir"
    return out


def secrets_in_home(box: Sandbox) -> list[str]:
    """Files (not links) in ubuntu's home that hold root-only text."""
    home = box.path("/home/ubuntu")
    return [str(p) for p in home.rglob("*")
            if p.is_file() and not p.is_symlink() and "only-root-may-read-this" in p.read_text(errors="replace")]


def installed(box: Sandbox, **values: str) -> None:
    """A desktop set up (its first boot), with a root-only /etc/shadow and
    an /etc/sudoers.d; no file system mounted yet (as after a reboot: the fstab lines are
    noauto, only the boot mounts)."""
    assert box.boot(**values).returncode == 0
    shadow = box.path("/etc/shadow")
    shadow.write_text(SECRET + "\n")
    shadow.chmod(0o600)
    box.path("/etc/sudoers.d").mkdir(exist_ok=True)
    (box.state / "mounted").unlink(missing_ok=True)


def plant(box: Sandbox, at: str, target: str) -> None:
    link = box.path(at)
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)
    else:
        link.unlink(missing_ok=True)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(box.path(target))


# Each link ubuntu could plant before a boot, and what the boot must say of it.
ATTACKS = {
    "the old fixed temp name": ("/home/ubuntu/.aws/config.dld-tmp", "/etc/sudoers.d/zz", None),
    "aws config to shadow": ("/home/ubuntu/.aws/config", "/etc/shadow", "/home/ubuntu/.aws/config is a link"),
    "aws directory to sudoers.d": ("/home/ubuntu/.aws", "/etc/sudoers.d", "/home/ubuntu/.aws/config is a link"),
    "bashrc to shadow": ("/home/ubuntu/.bashrc", "/etc/shadow", "/home/ubuntu/.bashrc is a link"),
    "efs mount point to sudoers.d": ("/home/ubuntu/efs", "/etc/sudoers.d", "the mount point /home/ubuntu/efs is a link"),
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_link_ubuntu_plants_leads_root_nowhere_and_the_desktop_comes_up(sandbox, attack):
    at, target, said = ATTACKS[attack]
    box = sandbox()
    installed(box)
    fstab = box.read("/etc/fstab")
    plant(box, at, target)
    before = outside_home(box)

    boot = box.boot()

    assert boot.returncode == 0, boot.output
    after = outside_home(box)
    if attack.startswith("efs"):
        # Our EFS line goes (systemd would mount through the link), and nothing else.
        assert box.read("/etc/fstab") == "".join(
            line + "\n" for line in fstab.splitlines() if "efs" not in line.lower())
        after["etc/fstab"] = before["etc/fstab"]
        assert not [call for call in boot.calls if call[0] in ("chown", "mount") and call[-1] == str(box.path(at))]
        assert box.mounted() == []
    assert after == before, "no file outside ubuntu's home changed"
    assert box.path(at).is_symlink(), "the link is refused, not replaced or followed"
    assert secrets_in_home(box) == []
    assert READY in box.console_lines()
    if said:
        assert any(line.startswith("deep-learning-desktop: ") and said in line for line in box.console_lines())


def test_a_link_in_place_of_the_fsx_mount_point_is_refused(sandbox):
    box = sandbox()
    installed(box, **FSX)
    plant(box, "/home/ubuntu/fsx", "/etc/sudoers.d")
    before = outside_home(box)
    boot = box.boot(**FSX)
    assert boot.returncode == 0, boot.output
    after = outside_home(box)
    assert "lustre" not in box.read("/etc/fstab"), "no fstab line through the link"
    after["etc/fstab"] = before["etc/fstab"]
    assert after == before
    assert box.mounted() == [str(box.path("/home/ubuntu/efs"))], "EFS mounted, FSx not"
    assert not [call for call in boot.calls if call[0] in ("chown", "mount") and call[-1] == str(box.path("/home/ubuntu/fsx"))]
    assert "deep-learning-desktop: refused: the mount point /home/ubuntu/fsx is a link, lies behind one or is no " \
           "directory; nothing mounted there" in box.console_lines()
    assert READY in box.console_lines()


def test_a_link_on_the_way_to_the_mount_point_is_refused(sandbox):
    box = sandbox()
    values = {"efs_mount_path": "/home/ubuntu/work/efs"}
    installed(box, **values)
    plant(box, "/home/ubuntu/work", "/etc")
    before = outside_home(box)
    boot = box.boot(**values)
    assert boot.returncode == 0
    after = outside_home(box)
    after["etc/fstab"] = before["etc/fstab"]
    assert after == before and box.mounted() == []
    assert not box.path("/etc/efs").exists()
    assert READY in box.console_lines()


def test_ubuntus_files_are_read_and_written_as_ubuntu(sandbox):
    """On EC2 the kernel then refuses what a link would reach: the sandbox runs as one user,
    so the calls show it."""
    box = sandbox()
    boot = box.boot()
    as_ubuntu = [call[4:] for call in boot.named("runuser") if call[1:4] == ["-u", "ubuntu", "--"]]
    for name in (".bashrc", ".aws/config"):
        path = str(box.path(f"/home/ubuntu/{name}"))
        assert ["cat", path] not in as_ubuntu, "a first boot has no old file to read"
        assert any(call[:2] == ["mv", "-f"] and call[-1] == path for call in as_ubuntu), name
        assert not [c for c in boot.calls if c[0] == "chown" and c[-1] == path], "nothing to chown"
    again = box.boot()
    assert ["cat", str(box.path("/home/ubuntu/.bashrc"))] in [c[4:] for c in again.named("runuser")]


# --- a full disk ----------------------------------------------------------------

# Runs the boot with the sandbox's /etc and /var/lib on one tiny tmpfs filled to the last
# page (a private mount namespace: nothing outlives the boot), then copies what they hold
# out for the test to read.
FILL = r"""
set -euo pipefail
root="$1" out="$2" full="$3" boot_path="$PATH"
shift 3
# The system's own tools here, not the sandbox's stubs (its mount only logs).
PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t tmpfs -o size=512k tmpfs "$full"
[[ "$(findmnt -n -o FSTYPE --target "$full")" == tmpfs ]] || exit 97
for d in etc var/lib; do
  mkdir -p "$full/$d"
  cp -a "$root/$d/." "$full/$d/"
  mount --bind "$full/$d" "$root/$d"
done
# Bounded: 512 KiB fill it; never more, whatever went wrong above.
dd if=/dev/zero of="$full/fill" bs=4k count=256 2>/dev/null || true
rc=0
PATH="$boot_path" "$@" || rc=$?
for d in etc var/lib; do
  mkdir -p "$out/$d"
  cp -a "$root/$d/." "$out/$d/"
done
exit "$rc"
"""

KEPT = ("/etc/fstab", "/etc/X11/xorg.conf", "/etc/dcv/dcv.conf")


def test_a_full_disk_leaves_fstab_xorg_and_dcv_conf_whole_and_says_so(sandbox):
    box = sandbox()
    installed(box)
    # What this boot would change: the display (a GPU now), dcv.conf (an old one without
    # the idle timeout), the fstab (another EFS mount path).
    box.gpu, box.nvidia_ok = 1, True
    conf = box.path("/etc/dcv/dcv.conf")
    conf.write_text("".join(line for line in conf.read_text().splitlines(keepends=True) if "idle-timeout" not in line))
    before = {path: box.path(path).read_bytes() for path in KEPT}
    out, full = box.base / "after", box.base / "full"
    full.mkdir()
    script = box.base / "fill.sh"
    script.write_text(FILL)

    boot = box.boot(wrap=("unshare", "--mount", "--propagation", "private", "bash", str(script),
                          str(box.root), str(out), str(full)), efs_mount_path="/home/ubuntu/data")

    assert boot.returncode == 0, boot.output
    assert "No space left on device" in boot.output, "the disk was full"
    for path in KEPT:
        assert (out / path.lstrip("/")).read_bytes() == before[path], f"{path} unchanged, byte for byte"
        assert any(line.startswith(f"deep-learning-desktop: not written: {box.path(path)}")
                   for line in box.console_lines()), path
    assert not list(out.joinpath("etc").rglob("*.??????")), "no temporary file left"
    assert ["systemctl", "restart", "display-manager", "dcvserver"] not in boot.calls, "X keeps its file"
    assert READY in box.console_lines()


# --- values that point the mounts at system directories --------------------------

@pytest.mark.parametrize("values", [
    {"efs_mount_path": "/etc"}, {"efs_mount_path": "/usr/local/bin"}, {"efs_mount_path": "/boot/efi"},
    {"efs_mount_path": "/home"}, {"efs_mount_path": "/"}, {"efs_mount_path": "/home/ubuntu/.ssh"},
    {**FSX, "fsx_mount_path": "/home/ubuntu/efs/fsx"}, {**FSX, "fsx_mount_path": "/home/ubuntu"},
])
def test_the_boot_refuses_a_mount_path_the_config_would_refuse(sandbox, values):
    box = sandbox()
    installed(box)
    fstab = box.read("/etc/fstab")
    before = outside_home(box)
    boot = box.boot(**values)
    assert boot.returncode == 0
    after = outside_home(box)
    if "efs_mount_path" in values:
        assert box.read("/etc/fstab") == fstab, "the earlier EFS line stays; no new one"
        assert box.mounted() == []
    else:
        assert "lustre" not in box.read("/etc/fstab")
        assert box.mounted() == [str(box.path("/home/ubuntu/efs"))]
    assert after == before
    assert not [c for c in boot.calls if c[0] in ("chown", "mount") and str(box.root) + "/" not in c[-1] + "/"
                or c[0] == "mount" and c[-1] != str(box.path("/home/ubuntu/efs"))]
    assert any(" skipped: malformed" in line for line in box.console_lines())
    assert READY in box.console_lines()


# --- the boot files -----------------------------------------------------------

AGENT = "/usr/local/lib/deep-learning-desktop/idle-agent"


def _payload(members: list[tarfile.TarInfo], data: dict[str, bytes]) -> str:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info in members:
            body = data.get(info.name, b"")
            if info.type == tarfile.REGTYPE:
                info.size = len(body)
            tar.addfile(info, io.BytesIO(body) if info.type == tarfile.REGTYPE else None)
    return base64.b64encode(gzip.compress(raw.getvalue())).decode()


def _regular(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = 0o755
    return info


def test_boot_files_from_another_parameter_than_the_stacks_own_are_refused(sandbox):
    box = sandbox()
    box.boot()
    agent = box.read(AGENT)
    box.env["STUB_BOOT_FILES"] = _payload([_regular(n) for n in sorted(FILES)], {"idle_agent.py": b"#!/bin/sh\nid\n"})
    other = "/deep-learning-desktop/someone-elses-role/boot-files"
    boot = box.boot(boot_files_parameter=other)
    assert boot.returncode == 0
    assert not [c for c in boot.named("aws") if other in c], "not even read"
    assert box.read(AGENT) == agent
    own = DEFAULT_VALUES["boot_files_parameter"]
    assert f"deep-learning-desktop: idle agent not updated: {other} refused: not this desktop's parameter {own}; " \
           "the next boot tries again" in box.console_lines()
    assert READY in box.console_lines()


@pytest.mark.parametrize("kind", ["hard link", "directory", "gzip bomb"])
def test_boot_files_with_a_hard_link_a_directory_or_too_much_data_are_refused(sandbox, kind):
    box = sandbox()
    box.boot()
    agent = box.read(AGENT)
    members = [_regular(n) for n in sorted(FILES)]
    data = {n: shipped(n).encode() for n in FILES}
    if kind == "hard link":
        members[-1].type, members[-1].linkname = tarfile.LNKTYPE, "deep-learning-desktop-idle.timer"
    elif kind == "directory":
        members[-1].type = tarfile.DIRTYPE
    else:
        data["idle_agent.py"] = b"#" * (2 * 1024 * 1024)  # compresses to a few KB
    box.env["STUB_BOOT_FILES"] = _payload(members, data)
    boot = box.boot()
    assert boot.returncode == 0
    assert box.read(AGENT) == agent
    assert not [c for c in boot.named("tar") if "-xzf" in c], "refused before extracting"
    assert any("idle agent not updated" in line and "refused" in line for line in box.console_lines())
    assert READY in box.console_lines()


def test_a_file_with_its_own_mode_gets_it_back_at_every_boot(sandbox):
    """The agent runs as root each minute: made writable by anyone (a careless chmod, or
    another tool), it is written back with its own mode at the next boot, not the mode
    the old file had."""
    box = sandbox()
    assert box.boot().returncode == 0
    agent = box.path(AGENT)
    agent.chmod(0o777)
    assert box.boot().returncode == 0
    assert agent.stat().st_mode & 0o7777 == 0o755


@pytest.mark.parametrize("step", ["tee", "chmod", "mv"])
def test_a_failed_write_in_ubuntus_home_leaves_the_old_file_and_no_temporary_one(sandbox, step):
    box = sandbox()
    assert box.boot().returncode == 0
    before = box.read("/home/ubuntu/.bashrc")
    box.env["STUB_FAILS"] = f"runuser:{step}:99"  # every such step, as ubuntu, fails (a full home, say)
    boot = box.boot()
    assert boot.returncode == 0 and READY in box.console_lines()
    assert box.read("/home/ubuntu/.bashrc") == before
    assert "deep-learning-desktop: not written: /home/ubuntu/.bashrc (disk full?); the old file stays" \
        in box.console_lines()
    home = box.path("/home/ubuntu")
    leftovers = [p.name for p in home.rglob("*") if re.fullmatch(r"(\.bashrc|config)\.\w{6}", p.name)]
    assert leftovers == []


def _awk_wrapped(box: Sandbox, program: str, then: str, status: int) -> None:
    """The awk whose program holds ``program`` has its output passed through the shell
    ``then`` and exits ``status``; any other awk is awk."""
    awk = box.bin / "awk"
    awk.write_text("#!/bin/bash\n"
                   f"if [[ \"$*\" == *'{program}'* ]]; then /usr/bin/awk \"$@\" | {then}; exit {status}; fi\n"
                   "exec /usr/bin/awk \"$@\"\n")
    awk.chmod(0o755)


def test_an_fstab_that_would_lose_its_root_line_is_never_written(sandbox):
    """Whatever goes wrong in making the new fstab (here an awk that drops the root file
    system's line, as a bug in the filter would), the check before the rename refuses it:
    a machine whose fstab lost its root line does not boot."""
    box = sandbox()
    assert box.boot().returncode == 0
    fstab = box.read("/etc/fstab")
    # fstab_without's filter (it reads MARK) loses the root line, and says nothing of it.
    _awk_wrapped(box, "MARK", "/usr/bin/grep -v cloudimg-rootfs", 0)
    boot = box.boot(efs_mount_path="/home/ubuntu/data")  # a new EFS line: fstab must change
    assert boot.returncode == 0 and READY in box.console_lines()
    assert box.read("/etc/fstab") == fstab
    assert any(line.startswith("deep-learning-desktop: not written: ") and "/etc/fstab" in line
               for line in box.console_lines())


UNIT = "/etc/systemd/system/deep-learning-desktop-idle.service"


@pytest.mark.parametrize("step", ["chmod to its own mode", "chown to the old file's owner"])
def test_a_file_whose_mode_or_owner_cannot_be_set_is_never_renamed_over_the_old_one(sandbox, step):
    """The new text is complete, but its mode or owner cannot be made right (a file system
    that refuses it): renamed over the old file it would be mktemp's 0600 root file, the
    agent not executable, a unit with the wrong owner. The old file stays, and the console
    says so."""
    box = sandbox()
    assert box.boot().returncode == 0
    path = AGENT if step.startswith("chmod") else UNIT
    box.path(path).write_text("# what an earlier boot installed\n")
    if step.startswith("chmod"):
        chmod = box.bin / "chmod"
        chmod.write_text("#!/bin/bash\n"
                         "# chmod of the agent's new text (mode 755 given) fails; any other is chmod.\n"
                         "if [[ \"$*\" == *\"/idle-agent.\"* ]]; then exit 1; fi\n"
                         "exec /bin/chmod \"$@\"\n")
        chmod.chmod(0o755)
    else:
        # The unit keeps the old file's mode and owner (no mode given): that chown fails.
        box.env["STUB_FAILS"] = f"chown:--reference={box.path(path)}:99"
    boot = box.boot()
    assert boot.returncode == 0 and READY in box.console_lines()
    assert box.read(path) == "# what an earlier boot installed\n"
    assert (f"deep-learning-desktop: not written: {box.path(path)} (disk full, its new text incomplete, "
            "or its mode or owner not set); the old file stays") in box.console_lines()
    name = box.path(path).name
    assert [p.name for p in box.path(path).parent.iterdir() if p.name.startswith(name + ".")] == []


PERSONS_LINE = "/dev/nvme1n1\t/scratch\text4\tdefaults,nofail\t0 2"


def test_an_fstab_read_that_fails_half_way_is_never_written_so_no_line_is_lost(sandbox):
    """Reading the old fstab (to drop our own line) fails after its first line (an I/O
    error, say): what was read is not taken for the whole, so the person's own mount
    further down is not lost with our new line written. The old fstab stays."""
    box = sandbox()
    assert box.boot().returncode == 0
    fstab = box.read("/etc/fstab") + PERSONS_LINE + "\n"
    box.path("/etc/fstab").write_text(fstab)
    _awk_wrapped(box, "MARK", "/usr/bin/head -n 1", 2)
    boot = box.boot(efs_mount_path="/home/ubuntu/data")  # a new EFS line: fstab must change
    assert boot.returncode == 0 and READY in box.console_lines()
    assert box.read("/etc/fstab") == fstab


def test_an_fstab_whose_root_line_cannot_be_checked_is_never_written(sandbox):
    """The check that the new fstab keeps the root file system's line cannot read the old
    one: unsure, it refuses (the new text may be right, but a wrong one does not boot)."""
    box = sandbox()
    assert box.boot().returncode == 0
    fstab = box.read("/etc/fstab")
    _awk_wrapped(box, '$2 == "/"', "/usr/bin/head -n 0", 2)
    boot = box.boot(efs_mount_path="/home/ubuntu/data")
    assert boot.returncode == 0 and READY in box.console_lines()
    assert box.read("/etc/fstab") == fstab
    assert any(line.startswith(f"deep-learning-desktop: not written: {box.path('/etc/fstab')} ")
               for line in box.console_lines())


def test_a_mount_point_in_ubuntus_home_is_made_as_ubuntu_and_one_outside_as_root(sandbox):
    """In ubuntu's home the kernel must check the mkdir as ubuntu's own doing (a link
    planted there leads nowhere); /fsx, outside it, only root may make."""
    box = sandbox()
    boot = box.boot(**{**FSX, "fsx_mount_path": "/fsx"})
    assert boot.returncode == 0, boot.output
    as_ubuntu = [call[4:] for call in boot.named("runuser") if call[1:4] == ["-u", "ubuntu", "--"]]
    assert ["mkdir", "-p", str(box.path("/home/ubuntu/efs"))] in as_ubuntu
    assert not [call for call in as_ubuntu if call[0] == "mkdir" and call[-1] == str(box.path("/fsx"))]
    assert box.path("/fsx").is_dir() and box.path("/home/ubuntu/efs").is_dir()
