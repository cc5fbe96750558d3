"""Run the real rendered boot script in a scratch root with stub system commands.

The script honours ``DLD_ROOT`` for every file it reads or writes; every command
that would change the machine (apt-get, systemctl, reboot, mount, ...) is a stub
on PATH that appends its argv to a calls log and behaves as ``STUB_*`` variables
say. Nothing here touches the network or the real system.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cloud_init import render, split_parts

#: Values of a normal stack (what the Pulumi component passes to render).
DEFAULT_VALUES = {
    "region": "us-east-1",
    "dns_suffix": "amazonaws.com",
    "efs_file_system_id": "fs-0123456789abcdef0",
    "efs_mount_path": "/home/ubuntu/efs",
    "role_arn": "arn:aws:iam::123456789012:role/dev-desktop-role-0a1b2c3",
    "security_group_id": "sg-0123456789abcdef0",
    "subnet_id": "subnet-0123456789abcdef0",
    "dcv_password_parameter": "/deep-learning-desktop/dev-role-0a1b2c3/dcv-password",
}

#: Every command the boot script may call that acts on the system or network.
STUBBED = (
    "apt-get apt dpkg dpkg-query snap ubuntu-drivers systemctl reboot shutdown "
    "mount umount mountpoint lspci nvidia-smi nvidia-xconfig modprobe uname curl "
    "wget gpg gpgv tar ar dcv usermod chown getent id sleep aws chpasswd fi_info"
).split()

#: Calls that install or change packages.
PACKAGE_MANAGERS = {"apt-get", "apt", "dpkg", "snap", "ubuntu-drivers"}

_STUB = r"""#!/bin/bash
name="${0##*/}"
{
  printf '%s' "$name"
  for arg in "$@"; do printf '\t%s' "$arg"; done
  printf '\n'
} >>"$STUB_LOG"
# What /etc/motd said when this command last ran.
if [[ -f "$DLD_ROOT/etc/motd" ]]; then cp "$DLD_ROOT/etc/motd" "$STUB_STATE/motd.$name"; fi
if [[ " ${STUB_FAIL:-} " == *" $name "* ]]; then exit 42; fi
out=""
prev=""
for arg in "$@"; do
  case "$prev" in -o | -C) out="$arg" ;; esac
  prev="$arg"
done
case "$name" in
  uname)
    case "${1:-}" in
      -m) echo "${STUB_ARCH:-x86_64}" ;;
      -r) echo "${STUB_KERNEL:-6.8.0-1021-aws}" ;;
      *) echo Linux ;;
    esac ;;
  fi_info) [[ "${STUB_EFA_OK:-0}" == 1 ]] || exit 61 ;;
  lspci)
    if [[ "${STUB_GPU:-0}" == 1 ]]; then
      echo "00:1e.0 3D controller: NVIDIA Corporation TU104GL [Tesla T4] (rev a1)"
    fi ;;
  nvidia-smi) [[ "${STUB_NVIDIA_OK:-0}" == 1 ]] || exit 9 ;;
  curl | gpg) echo "stub content for $*" >"$out" ;;
  tar)
    for pkg in nice-dcv-server nice-dcv-web-viewer nice-xdcv; do
      echo "stub $pkg" >"$out/${pkg}_2024.0.1-1_amd64.ubuntu.deb"
    done ;;
  ar) if [[ "$1" == t ]]; then printf 'debian-binary\ncontrol.tar.xz\ndata.tar.xz\n'; fi ;;
  mountpoint) grep -qxF -- "${*: -1}" "$STUB_STATE/mounted" 2>/dev/null; exit $? ;;
  mount)
    if [[ "${STUB_MOUNT_FAIL:-0}" == 1 ]]; then exit 32; fi
    echo "${*: -1}" >>"$STUB_STATE/mounted" ;;
  dcv) exit "${STUB_DCV_RC:-0}" ;;
  aws)
    # `aws ssm get-parameter ... --output text`: the parameter's version, write time and
    # value, tab-separated; the first STUB_SSM_DENIED calls are refused as while IAM applies
    # the grant.
    denied=$(($(cat "$STUB_STATE/aws.denied" 2>/dev/null || echo 0) + 1))
    if ((denied <= ${STUB_SSM_DENIED:-0})); then
      echo "$denied" >"$STUB_STATE/aws.denied"
      echo "An error occurred (AccessDeniedException) when calling the GetParameter operation" >&2
      exit 254
    fi
    # The one query this stub knows, answered as the CLI's text output does: one line.
    query=""
    prev=""
    for arg in "$@"; do
      if [[ "$prev" == --query ]]; then query="$arg"; fi
      prev="$arg"
    done
    if [[ "$query" != "Parameter.[Version,LastModifiedDate,Value]" || " $* " != *" --with-decryption "* ]]; then
      echo "aws stub: no answer for $*" >&2
      exit 255
    fi
    printf '%s\t%s\t%s\n' "${STUB_SSM_VERSION:-1}" "${STUB_SSM_MODIFIED:-2026-01-01T00:00:00+00:00}" \
      "${STUB_SSM_VALUE:-stub-dcv-password}" ;;
  chpasswd) cat >>"$STUB_STATE/chpasswd.stdin" ;;
esac
exit 0
"""


@dataclass
class Boot:
    """What one run of the boot script did."""

    returncode: int
    output: str
    calls: list[list[str]]

    def named(self, *names: str) -> list[list[str]]:
        """The calls of any of these commands."""
        return [call for call in self.calls if call[0] in names]

    @property
    def reboots(self) -> int:
        return len(self.named("reboot", "shutdown"))

    @property
    def package_calls(self) -> list[list[str]]:
        return [call for call in self.calls if call[0] in PACKAGE_MANAGERS]

    @property
    def installs(self) -> list[list[str]]:
        """Package installs: apt-get/apt install, dpkg -i, snap install, ubuntu-drivers."""
        return [
            call
            for call in self.package_calls
            if "install" in call or "-i" in call or "autoinstall" in call
        ]

    def installed(self) -> list[str]:
        """Every package name or file passed to an install call."""
        names = []
        for call in self.installs:
            after = call[call.index("install") + 1 :] if "install" in call else []
            names += [arg for arg in after if not arg.startswith("-")]
        return names


@dataclass
class Sandbox:
    """A scratch root with a fake /etc/os-release and a PATH of stub commands."""

    base: Path
    version: str = "24.04"
    os_id: str = "ubuntu"
    arch: str = "x86_64"
    gpu: bool = False
    nvidia_ok: bool = False
    kernel: str = "6.8.0-1021-aws"
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = self.base / "root"
        self.bin = self.base / "bin"
        self.state = self.base / "state"
        for directory in (self.root / "etc", self.root / "dev", self.root / "home/ubuntu", self.bin, self.state):
            directory.mkdir(parents=True, exist_ok=True)
        (self.root / "etc/os-release").write_text(
            f'NAME="Ubuntu"\nID={self.os_id}\nVERSION_ID="{self.version}"\n'
        )
        (self.root / "etc/fstab").write_text("LABEL=cloudimg-rootfs\t/\t ext4\tdiscard,errors=remount-ro\t0 1\n")
        self.console = self.root / "dev/console"
        self.console.write_text("")
        self.calls_log = self.state / "calls.log"
        stub = self.bin / "stub"
        stub.write_text(_STUB)
        stub.chmod(0o755)
        for name in STUBBED:
            (self.bin / name).symlink_to(stub)

    def script(self, **overrides: str) -> str:
        """The script part of the user data rendered with the default values and overrides."""
        _, script = split_parts(render(**{**DEFAULT_VALUES, **overrides}))
        return script

    def boot(self, **overrides: str) -> Boot:
        """Run the rendered boot script once, as cloud-init would at a boot."""
        path = self.base / "user-script.sh"
        path.write_text(self.script(**overrides))
        path.chmod(0o755)
        before = self._calls()
        env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(self.base),
            "LANG": "C.UTF-8",
            "DLD_ROOT": str(self.root),
            "DLD_CONSOLE": str(self.console),
            "STUB_LOG": str(self.calls_log),
            "STUB_STATE": str(self.state),
            "STUB_ARCH": self.arch,
            "STUB_GPU": "1" if self.gpu else "0",
            "STUB_NVIDIA_OK": "1" if self.nvidia_ok else "0",
            "STUB_KERNEL": self.kernel,
            **self.env,
        }
        assert env["DLD_ROOT"], "the sandbox must never run the script against /"
        result = subprocess.run(
            ["/bin/bash", str(path)], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        return Boot(result.returncode, result.stdout + result.stderr, self._calls()[len(before) :])

    def _calls(self) -> list[list[str]]:
        if not self.calls_log.exists():
            return []
        return [line.split("\t") for line in self.calls_log.read_text().splitlines()]

    def path(self, absolute: str) -> Path:
        """The sandbox file for an absolute path on the instance."""
        return self.root / absolute.lstrip("/")

    def read(self, absolute: str) -> str:
        return self.path(absolute).read_text()

    def snapshot(self) -> dict[str, bytes]:
        """Every file the script manages (not its log or the console), by path."""
        skip = {self.path("/var/log/deep-learning-desktop.log"), self.console}
        return {
            str(path.relative_to(self.root)): path.read_bytes()
            for path in sorted(self.root.rglob("*"))
            if path.is_file() and path not in skip
        }

    def mounted(self) -> list[str]:
        mounted = self.state / "mounted"
        return mounted.read_text().splitlines() if mounted.exists() else []

    def motd_seen_by(self, command: str) -> str:
        """The /etc/motd text at the last call of a stub command."""
        return (self.state / f"motd.{command}").read_text()

    def console_lines(self) -> list[str]:
        return self.console.read_text().splitlines()

    def chpasswd_input(self) -> list[str]:
        """Every line chpasswd read on its standard input, over all boots."""
        path = self.state / "chpasswd.stdin"
        return path.read_text().splitlines() if path.exists() else []
