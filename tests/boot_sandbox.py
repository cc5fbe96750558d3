"""Run the real rendered boot script in a scratch root with stub system commands.

The script honours ``DLD_ROOT`` for every file it reads or writes; every command
that would change the machine (apt-get, systemctl, reboot, mount, ...) is a stub
on PATH that appends its argv to a calls log and behaves as ``STUB_*`` variables
say. Nothing here touches the network or the real system.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cloud_init import render, split_parts
from cloud_init.boot_files import payload
from desktop.boot_files import SAGEMAKER_CONFIG_LEAF, parameter_name
from desktop.sagemaker_config import NO_DEFAULTS
from memo import memo

#: Values of a normal stack (what the Pulumi component passes to render).
DEFAULT_VALUES = {
    "region": "us-east-1",
    "dns_suffix": "amazonaws.com",
    "efs_file_system_id": "fs-0123456789abcdef0",
    "efs_mount_path": "/home/ubuntu/efs",
    "role_arn": "arn:aws:iam::123456789012:role/dev-desktop-role-0a1b2c3",
    "security_group_id": "sg-0123456789abcdef0",
    "subnet_id": "subnet-0123456789abcdef0",
    "dcv_password_parameter": "/deep-learning-desktop/dev-desktop-role-0a1b2c3/dcv-password",
    "boot_files_parameter": "/deep-learning-desktop/dev-desktop-role-0a1b2c3/boot-files",
}

#: Every command the boot script may call that acts on the system or network.
STUBBED = (
    "apt-get apt dpkg dpkg-query snap ubuntu-drivers systemctl reboot shutdown "
    "mount umount mountpoint lspci nvidia-smi nvidia-xconfig modprobe uname curl "
    "wget gpg gpgv tar ar dcv usermod chown getent id sleep aws chpasswd fi_info systemd-machine-id-setup runuser sync"
).split()

#: The instance id the sandbox's IMDS answers (``Sandbox.instance_id`` changes it).
INSTANCE_ID = "i-0123456789abcdef0"

#: Calls that install or change packages (dpkg-query only reads: not one of them).
PACKAGE_MANAGERS = {"apt-get", "apt", "dpkg", "snap", "ubuntu-drivers"}

#: The stubs' behaviour, one bash function: ``_stub NAME ARGS...`` acts as the command NAME
#: would (its exit status is the function's). The boot's own shell gets a function of each
#: stubbed name calling it (``_ENV``, through BASH_ENV): a boot calls stubs ~60 times, and a
#: bash process for each was half the boot's CPU. A command reached through exec (timeout,
#: runuser's, a test's own wrapper) finds the same behaviour as a script on PATH (``_SCRIPT``).
#: Everything here is local, and the boot's ``set -euo pipefail`` off inside (``local -``
#: restores it): what the boot sees is only the call's exit status and output, as from a
#: process.
_LIBRARY = r"""
# `aws ssm get-parameter --query Parameter.Value` of a String parameter: the first $2 calls
# are refused (counted in $STUB_STATE/aws.$1.denied), then its value $3 ("" = ParameterNotFound).
_stub_parameter() {
  local denied=0
  [[ -f "$STUB_STATE/aws.$1.denied" ]] && read -r denied <"$STUB_STATE/aws.$1.denied"
  denied=$((denied + 1))
  if ((denied <= $2)); then
    echo "$denied" >"$STUB_STATE/aws.$1.denied"
    echo "An error occurred (AccessDeniedException) when calling the GetParameter operation" >&2
    return 254
  fi
  if [[ -z "$3" ]]; then
    echo "An error occurred (ParameterNotFound) when calling the GetParameter operation" >&2
    return 254
  fi
  printf '%s\n' "$3"
}

_stub() {
  local -
  set +euo pipefail
  local name="$1" arg motd="" rule fname fword fcount counter done_count out="" prev="" n pkg
  local query parameter denied
  shift
  {
    printf '%s' "$name"
    for arg in "$@"; do printf '\t%s' "$arg"; done
    printf '\n'
  } >>"$STUB_LOG"
  # What /etc/motd said when this command last ran (copied with builtins).
  if [[ -f "$DLD_ROOT/etc/motd" ]]; then
    IFS= read -r -d '' motd <"$DLD_ROOT/etc/motd"
    printf '%s' "$motd" >"$STUB_STATE/motd.$name"
  fi
  if [[ " ${STUB_FAIL:-} " == *" $name "* ]]; then return 42; fi
  # STUB_FAILS="name:word:count ...": the first `count` calls of `name` with `word`
  # among their arguments fail (a flaky mirror, say); later ones behave.
  for rule in ${STUB_FAILS:-}; do
    IFS=: read -r fname fword fcount <<<"$rule"
    [[ "$fname" == "$name" && " $* " == *" $fword "* ]] || continue
    counter="$STUB_STATE/fails.$fname.${fword//\//_}"  # a path as the word: no directories
    done_count=0
    [[ -f "$counter" ]] && read -r done_count <"$counter"
    if ((done_count < fcount)); then
      echo $((done_count + 1)) >"$counter"
      return 42
    fi
  done
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
    fi_info) [[ "${STUB_EFA_OK:-0}" == 1 ]] || return 61 ;;
    lspci)
      # STUB_GPU is the number of NVIDIA GPUs (0, 1, 4, ...).
      for ((n = 0; n < ${STUB_GPU:-0}; n++)); do
        echo "00:$((30 - n)).0 3D controller: NVIDIA Corporation TU104GL [Tesla T4] (rev a1)"
      done ;;
    nvidia-smi) [[ "${STUB_NVIDIA_OK:-0}" == 1 ]] || return 9 ;;
    nvidia-xconfig)
      # As the real one with --enable-all-gpus: one Device section per GPU, with its bus id.
      for arg in "$@"; do case "$arg" in --output-xconfig=*) out="${arg#*=}" ;; esac; done
      {
        echo "# nvidia-xconfig: X configuration file generated by nvidia-xconfig"
        for ((n = 0; n < ${STUB_GPU:-0}; n++)); do
          printf 'Section "Device"\n    Identifier "Device%d"\n    Driver "nvidia"\n' "$n"
          printf '    BusID "PCI:0:%d:0"\nEndSection\n' "$((30 - n))"
        done
        printf 'Section "Screen"\n    Identifier "Screen0"\n    Device "Device0"\nEndSection\n'
      } >"$out" ;;
    curl)
      case "${*: -1}" in
        http://169.254.169.254/latest/api/token) [[ "${STUB_IMDS_FAIL:-0}" == 1 ]] && return 28; echo stub-token ;;
        http://169.254.169.254/latest/meta-data/instance-id) echo "${STUB_INSTANCE_ID:-i-0123456789abcdef0}" ;;
        # A URL that fails (curl -f's exit code for an HTTP error): STUB_CURL_FAIL holds a part of it.
        *"${STUB_CURL_FAIL:-//no-failing-url//}"*) return 22 ;;
        *) echo "stub content for $*" >"$out" ;;
      esac ;;
    gpg) echo "stub content for $*" >"$out" ;;
    snap)
      # A seed that never loads: only the script's timeout ends the wait.
      if [[ "${1:-}" == wait && "${STUB_SNAP_SEED_HANG:-0}" == 1 ]]; then _stub_exec /bin/sleep 600; fi ;;
    dpkg-query)
      for arg in "$@"; do
        if [[ " ${STUB_NOT_INSTALLED:-} " == *" $arg "* ]]; then return 1; fi
      done
      if [[ " $* " == *" -f "* || "$*" == *-f=* ]]; then printf '%s' "${STUB_DCV_VERSION:-2024.0.19030-1}"; fi ;;
    tar)
      # The boot files' payload is unpacked by the real tar (it checks what the payload
      # holds); the DCV tarball is a stub.
      if [[ " $* " == *"/boot-files.tgz "* ]]; then _stub_exec /bin/tar "$@"; return; fi
      for pkg in nice-dcv-server nice-dcv-web-viewer nice-xdcv; do
        echo "stub $pkg" >"$out/${pkg}_2024.0.1-1_amd64.ubuntu.deb"
      done ;;
    ar) if [[ "$1" == t ]]; then printf 'debian-binary\ncontrol.tar.xz\ndata.tar.xz\n'; fi ;;
    mountpoint) grep -qxF -- "${*: -1}" "$STUB_STATE/mounted" 2>/dev/null; return ;;
    mount)
      if [[ "${STUB_MOUNT_FAIL:-0}" == 1 ]]; then return 32; fi
      echo "${*: -1}" >>"$STUB_STATE/mounted" ;;
    dcv) return "${STUB_DCV_RC:-0}" ;;
    aws)
      query=""
      parameter=""
      prev=""
      for arg in "$@"; do
        if [[ "$prev" == --query ]]; then query="$arg"; fi
        if [[ "$prev" == --name ]]; then parameter="$arg"; fi
        prev="$arg"
      done
      # The SageMaker defaults' parameter, by the exact name the stack gives it
      # (STUB_SAGEMAKER_CONFIG_NAME): its value, STUB_SAGEMAKER_CONFIG ("" = ParameterNotFound);
      # the first STUB_SAGEMAKER_CONFIG_DENIED calls are refused.
      if [[ "$query" == Parameter.Value && "$parameter" == */sagemaker-config ]]; then
        local limit="${STUB_SAGEMAKER_CONFIG_DENIED:-0}"
        [[ "$parameter" == "$STUB_SAGEMAKER_CONFIG_NAME" ]] || limit=999999  # another desktop's: never granted
        _stub_parameter sagemaker-config "$limit" "${STUB_SAGEMAKER_CONFIG:-}"
        return
      fi
      # The boot files' parameter (a String: no decryption): its value, STUB_BOOT_FILES (the
      # sandbox sets the real payload); the first STUB_BOOT_FILES_DENIED calls are refused.
      if [[ "$query" == Parameter.Value && " $* " != *" --with-decryption "* ]]; then
        _stub_parameter boot-files "${STUB_BOOT_FILES_DENIED:-0}" "${STUB_BOOT_FILES:-}"
        return
      fi
      # `aws ssm get-parameter ... --output text`: the parameter's version, write time and
      # value, tab-separated; the first STUB_SSM_DENIED calls are refused as while IAM applies
      # the grant.
      denied=0
      [[ -f "$STUB_STATE/aws.denied" ]] && read -r denied <"$STUB_STATE/aws.denied"
      denied=$((denied + 1))
      if ((denied <= ${STUB_SSM_DENIED:-0})); then
        echo "$denied" >"$STUB_STATE/aws.denied"
        echo "An error occurred (AccessDeniedException) when calling the GetParameter operation" >&2
        return 254
      fi
      # The password query, answered as the CLI's text output does: one line.
      if [[ "$query" != "Parameter.[Version,LastModifiedDate,Value]" || " $* " != *" --with-decryption "* ]]; then
        echo "aws stub: no answer for $*" >&2
        return 255
      fi
      printf '%s\t%s\t%s\n' "${STUB_SSM_VERSION:-1}" "${STUB_SSM_MODIFIED:-2026-01-01T00:00:00+00:00}" \
        "${STUB_SSM_VALUE:-stub-dcv-password}" ;;
    chpasswd) cat >>"$STUB_STATE/chpasswd.stdin" ;;
    runuser)
      # `runuser -u ubuntu -- command...`: the command runs here as the sandbox's own user
      # (the tests see each call; what it may touch, the kernel decides only on EC2).
      while [[ $# -gt 0 && "$1" != -- ]]; do shift; done
      shift
      _stub_exec "$@"
      return ;;
  esac
  return 0
}

# A stub process becomes the command (timeout then signals that one, not a bash waiting
# for it); a stub function runs it and returns its status.
_stub_exec() {
  if [[ -n "${_stub_process:-}" ]]; then exec "$@"; fi
  "$@"
}
"""

#: The stub on PATH, for commands started by another process than the boot's shell.
_SCRIPT = r"""#!/bin/bash
_stub_process=1
. "$STUB_LIBRARY"
_stub "${0##*/}" "$@"
"""

#: BASH_ENV: only the boot script's own shell (not the bash of a stub process, nor of a
#: wrapper the test puts around the boot) gets the functions, one per name in
#: STUB_FUNCTIONS; its children do not read this again.
_ENV = r"""
if [[ "$0" == "$STUB_BOOT_SCRIPT" ]]; then
  unset BASH_ENV
  . "$STUB_LIBRARY"
  for _stub_name in $STUB_FUNCTIONS; do
    eval "$_stub_name() { _stub $_stub_name \"\$@\"; }"
  done
  unset _stub_name
fi
"""


#: Boots run in this test process, by what determines them (the script, its environment and
#: everything in the sandbox before): the return code, the output, the calls and everything in
#: the sandbox after. Many tests start with the same boots (a first boot of the same platform,
#: say): each runs for real once per process, and the tests after get its result; a test that
#: changes anything first (a file, a value, a stub's behaviour) gets a boot of its own. The
#: boot script is deterministic given these (mktemp's names aside, which no test reads), and
#: a mutant of it is a new script: mutation/line_mutants.py's runs never see an earlier one's
#: boot, and its traced run, whose every script is another, never reuses one.
_RAN: dict[str, tuple[int, str, tuple, dict]] = {}
#: Stands for the sandbox's own path in what _RAN keeps.
_BASE = "\0sandbox\0"


#: The real payload, packed once per process (it depends only on the files).
_payload = memo(payload)


@memo
def _script(values: tuple[tuple[str, str], ...]) -> str:
    _, script = split_parts(render(**dict(values)))
    return script


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
    gpu: int = 0  # the number of NVIDIA GPUs (True = 1)
    nvidia_ok: bool = False
    kernel: str = "6.8.0-1021-aws"
    instance_id: str = INSTANCE_ID
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
        self.library = self.base / "stubs.bash"
        self.library.write_text(_LIBRARY)
        self.bash_env = self.base / "stub-env.bash"
        self.bash_env.write_text(_ENV)
        self.stub = self.bin / "stub"
        self.stub.write_text(_SCRIPT)
        self.stub.chmod(0o755)
        for name in STUBBED:
            (self.bin / name).symlink_to(self.stub)

    def script(self, **overrides: str) -> str:
        """The script part of the user data rendered with the default values and overrides."""
        return _script(tuple(sorted({**DEFAULT_VALUES, **overrides}.items())))

    def boot(self, wrap: tuple[str, ...] = (), **overrides: str) -> Boot:
        """Run the rendered boot script once, as cloud-init would at a boot; ``wrap``: a
        command line the script's own is appended to (e.g. one that fills the disk first)."""
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
            "STUB_LIBRARY": str(self.library),
            "BASH_ENV": str(self.bash_env),
            "STUB_BOOT_SCRIPT": str(path),
            # A function for each stub still on PATH (a test may have put another command there).
            "STUB_FUNCTIONS": " ".join(self._stubs_on_path()),
            "STUB_STATE": str(self.state),
            "STUB_ARCH": self.arch,
            "STUB_GPU": str(int(self.gpu)),
            "STUB_INSTANCE_ID": self.instance_id,
            "STUB_NVIDIA_OK": "1" if self.nvidia_ok else "0",
            "STUB_KERNEL": self.kernel,
            # What the boot files' parameter holds: the real files, packed by the stack's code.
            "STUB_BOOT_FILES": _payload(),
            # The SageMaker defaults' parameter: its name as the stack makes it for the role
            # (the boot derives it), and the file of a desktop without SageMaker.
            "STUB_SAGEMAKER_CONFIG_NAME": parameter_name(DEFAULT_VALUES["role_arn"].rsplit("/", 1)[-1],
                                                         SAGEMAKER_CONFIG_LEAF),
            "STUB_SAGEMAKER_CONFIG": NO_DEFAULTS,
            **self.env,
        }
        assert env["DLD_ROOT"], "the sandbox must never run the script against /"
        # The same boot (the same script, environment and sandbox contents) ran before in this
        # process: its result again, without running it (see _RAN). Not for a boot wrapped in
        # another command, or with another command than the stub on PATH: those read or write
        # outside the sandbox.
        key = None
        if not wrap and len(self._stubs_on_path()) == len(STUBBED):
            before_tree = self._tree()
            key = self._key(before_tree, env, path.read_text())
            if key in _RAN:
                returncode, output, calls, after = _RAN[key]
                self._restore(before_tree, after)
                return Boot(returncode, self._here(output), [[self._here(a) for a in call] for call in calls])
        result = subprocess.run(
            [*wrap, "/bin/bash", str(path)], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        boot = Boot(result.returncode, result.stdout + result.stderr, self._calls()[len(before) :])
        if key is not None:
            _RAN[key] = (boot.returncode, self._anywhere(boot.output),
                         tuple(tuple(self._anywhere(a) for a in call) for call in boot.calls), self._tree())
        return boot

    # --- boots run before: what a sandbox holds, without its own path ---------------

    def _anywhere(self, text: str) -> str:
        return text.replace(str(self.base), _BASE)

    def _here(self, text: str) -> str:
        return text.replace(_BASE, str(self.base))

    def _tree(self) -> dict[str, tuple]:
        """Every directory, link and file under the sandbox's base (not the script, rewritten
        at each boot), with its mode and content, the base's own path replaced."""
        tree = {}
        for directory, dirs, files in os.walk(self.base):
            for name in dirs + files:
                path = os.path.join(directory, name)
                relative = os.path.relpath(path, self.base)
                if relative == "user-script.sh":
                    continue
                stat = os.lstat(path)
                if os.path.islink(path):
                    tree[relative] = ("link", self._anywhere(os.readlink(path)))
                elif os.path.isdir(path):
                    tree[relative] = ("dir", stat.st_mode & 0o7777)
                else:
                    with open(path, "rb") as file:
                        data = file.read()
                    tree[relative] = ("file", stat.st_mode & 0o7777,
                                      data.replace(str(self.base).encode(), _BASE.encode()))
        return tree

    @staticmethod
    def _key(tree: dict[str, tuple], env: dict[str, str], script: str) -> str:
        digest = hashlib.sha256()
        base = env["HOME"]
        for part in (sorted(tree.items()), sorted((k, v.replace(base, _BASE)) for k, v in env.items()), script):
            digest.update(repr(part).encode() + b"\0")
        return digest.hexdigest()

    def _restore(self, now: dict[str, tuple], after: dict[str, tuple]) -> None:
        """Makes the sandbox hold ``after`` (it holds ``now``)."""
        for relative in sorted(set(now) - set(after), reverse=True):
            path = self.base / relative
            if now[relative][0] == "dir":
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for relative, entry in sorted(after.items()):
            if now.get(relative) == entry:
                continue
            path = self.base / relative
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                path.unlink()
            elif path.is_dir() and entry[0] != "dir":
                shutil.rmtree(path)
            if entry[0] == "link":
                path.symlink_to(self._here(entry[1]))
            elif entry[0] == "dir":
                path.mkdir(exist_ok=True)
                path.chmod(entry[1])
            else:
                path.write_bytes(entry[2].replace(_BASE.encode(), str(self.base).encode()))
                path.chmod(entry[1])

    def _stubs_on_path(self) -> list[str]:
        return [name for name in STUBBED
                if (self.bin / name).is_symlink() and (self.bin / name).readlink() == self.stub]

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
