#!/bin/bash
# Deep learning desktop boot script; cloud-init runs it on EVERY boot (see the
# cloud-config part). First boot: install GNOME + Amazon DCV, then reboot once.
# Later boots: no installs, no reboot; re-apply the values, wait for DCV, mount EFS.
# cloud_init.render puts REGION, DNS_SUFFIX, EFS_FILE_SYSTEM_ID, EFS_MOUNT_PATH,
# ROLE_ARN, SECURITY_GROUP_ID, SUBNET_ID, DCV_PASSWORD_PARAMETER, FSX_DNS_NAME,
# FSX_MOUNT_NAME, FSX_MOUNT_PATH, EFA and BOOT_FILES_PARAMETER above this text as quoted
# assignments. The files the boot installs (the idle agent and its units) it reads from
# the Parameter Store parameter BOOT_FILES_PARAMETER (cloud_init/boot_files.py).
set -euo pipefail

# DLD_ROOT prefixes every file read or written, so tests can run this very script
# in a scratch directory with stub commands. On EC2 it is empty.
ROOT="${DLD_ROOT:-}"
CONSOLE="${DLD_CONSOLE:-$ROOT/dev/console}"
STATE_DIR="$ROOT/var/lib/deep-learning-desktop"
FIRST_BOOT_DONE="$STATE_DIR/first-boot-done"
# First-boot attempts started on this machine; bounded, so a broken mirror or image
# never reboots the desktop forever.
ATTEMPTS_FILE="$STATE_DIR/first-boot-attempts"
MAX_ATTEMPTS="${DLD_MAX_ATTEMPTS:-3}"
# The instance this disk was set up on: another id means an image of another desktop.
INSTANCE_ID_FILE="$STATE_DIR/instance-id"
IMDS="http://169.254.169.254/latest"
LOG="$ROOT/var/log/deep-learning-desktop.log"
MOTD="$ROOT/etc/motd"
DCV_SITE="https://d1uj6qtbmh3dt5.cloudfront.net"
# noauto: systemd's fstab generator resolves links in a mount point, so a link ubuntu
# planted there would have root mount over its target before this script could look;
# only this script mounts (mount_efs, mount_fsx), after checking the mount point.
NFS_OPTIONS="nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,_netdev,nofail,noauto"
FSTAB_MARK="# deep-learning-desktop EFS (rewritten at every boot)"
BASHRC_BEGIN="# >>> deep-learning-desktop (rewritten at every boot) >>>"
BASHRC_END="# <<< deep-learning-desktop <<<"
# A new mount target's DNS name can take minutes to resolve; bounded, never forever.
EFS_MOUNT_ATTEMPTS="${DLD_EFS_MOUNT_ATTEMPTS:-10}"
DCV_WAIT_ATTEMPTS="${DLD_DCV_WAIT_ATTEMPTS:-60}"
# The role's grant on the password parameter may take a minute to apply (IAM).
DCV_PASSWORD_ATTEMPTS="${DLD_DCV_PASSWORD_ATTEMPTS:-12}"
# Like the password: the grant on the boot files' parameter may not apply at once.
BOOT_FILES_ATTEMPTS="${DLD_BOOT_FILES_ATTEMPTS:-12}"
# Which parameter version (and write time) set ubuntu's password on this machine.
DCV_PASSWORD_RECORD="$STATE_DIR/dcv-password-version"
# FSx for Lustre: AWS's Lustre client repository, the options AWS documents for fstab.
FSX_REPO="https://fsx-lustre-client-repo.s3.amazonaws.com/ubuntu"
FSX_KEY_URL="https://fsx-lustre-client-repo-public-keys.s3.amazonaws.com/fsx-ubuntu-public-key.asc"
# AWS's Ubuntu instructions import the key above; other AWS sources use this one for the same
# repository. Both go in the keyring (see add_lustre_repo).
FSX_OTHER_KEY_URL="https://fsx-lustre-client-repo-public-keys.s3.amazonaws.com/fsx-main-repo-public-key.asc"
FSX_KEYRING="/usr/share/keyrings/fsx-ubuntu-public-key.gpg"
FSX_OPTIONS="relatime,flock,_netdev,nofail,noauto"
FSX_FSTAB_MARK="# deep-learning-desktop FSx (rewritten at every boot)"
FSX_MOUNT_ATTEMPTS="${DLD_FSX_MOUNT_ATTEMPTS:-10}"
# A fresh image can take minutes to seed its snaps; a stuck seed must not hold the boot.
SNAP_SEED_TIMEOUT="${DLD_SNAP_SEED_TIMEOUT:-900}"
XORG_CONF="$ROOT/etc/X11/xorg.conf"
CURRENT_STAGE="start"
REPORTED=""

stage() {
  CURRENT_STAGE="$*"
  say "$*"
}

# A console line that is no stage of its own (a refusal, a write that failed).
say() {
  echo "deep-learning-desktop: $*"
  if [[ -w "$CONSOLE" ]]; then
    echo "deep-learning-desktop: $*" >>"$CONSOLE" || true
  fi
}

motd() {
  printf '%s\n' "$*" | write_file "$MOTD" || true
}

on_exit() {
  local status="$1" during="$CURRENT_STAGE"
  if [[ "$status" -eq 0 || -n "$REPORTED" ]]; then
    return 0
  fi
  if [[ -n "${SETTING_UP:-}" ]] && (($(attempts) < MAX_ATTEMPTS)); then
    retry_by_reboot "$during" "$status"
    return 0
  fi
  stage "failed during '$during' (exit $status), see /var/log/deep-learning-desktop.log"
  motd "deep-learning-desktop setup FAILED during '$during'; see /var/log/deep-learning-desktop.log.${SETTING_UP:+ $(give_up_advice)}"
}

attempts() {
  cat "$ATTEMPTS_FILE" 2>/dev/null || echo 0
}

give_up_advice() {
  echo "No automatic retry is left after $MAX_ATTEMPTS attempts; to try again: sudo rm $ATTEMPTS_FILE; sudo reboot"
}

# The stage must not start with "failed": `wait` on the laptop ends at such a stage,
# and this boot is not over yet.
retry_by_reboot() {
  stage "setup attempt $(attempts) of $MAX_ATTEMPTS stopped during '$1' (exit $2); rebooting to try again"
  motd "Cloud init in progress. Machine will REBOOT after cloud init is complete!! (attempt $(attempts) of $MAX_ATTEMPTS stopped during '$1'; retrying)"
  REPORTED=1
  reboot
}

fail() {
  REPORTED=1
  stage "failed: $*"
  motd "deep-learning-desktop: $*"
  exit 1
}

# Its lines go to stderr (the log all the same), so that a caller can capture stdout.
retry() {
  local attempts="$1" delay="$2" n=1
  shift 2
  until "$@"; do
    if ((n >= attempts)); then
      return 1
    fi
    echo "retry $n/$attempts in ${delay}s: $*" >&2
    sleep "$delay"
    n=$((n + 1))
  done
}

# Like retry, but each wait doubles: an apt mirror in the middle of a sync
# (Hash Sum mismatch) needs minutes, not seconds.
retry_backoff() {
  local attempts="$1" delay="$2" n=1
  shift 2
  until "$@"; do
    if ((n >= attempts)); then
      return 1
    fi
    echo "retry $n/$attempts in ${delay}s: $*"
    sleep "$delay"
    delay=$((delay * 2))
    n=$((n + 1))
  done
}

# Single quotes for the POSIX shells that read the files written here.
sh_quote() {
  printf "'%s'" "${1//\'/\'\\\'\'}"
}

# Writes stdin to a root-owned file through a fresh temporary name beside it (mktemp: no
# fixed name a link could stand in for), checked complete, synced, then renamed over it:
# a full disk or a producer that failed half-way leaves the old file whole, and says so
# on the console. $2: the mode (default: the old file's, and its owner; else 644).
# $3: a command that must accept the temporary file (the fstab keeps its root line).
# False when not written: callers inside `if` or `||` (no `set -e`) see it too.
write_file() {
  local tmp=""
  tmp="$(temp_beside "$1")" && cat >"$tmp" && commit_file "$tmp" "$@" && return 0
  rm -f "$tmp"
  say "not written: $1 (disk full, its new text incomplete, or its mode or owner not set); the old file stays"
  return 1
}

# $2: -d for a directory.
temp_beside() {
  mkdir -p "$(dirname "$1")" && mktemp ${2:+"$2"} "$1.XXXXXX"
}

commit_file() {
  local tmp="$1" path="$2" mode="${3:-}"
  [[ -s "$tmp" ]] && "${4:-true}" "$tmp" || return 1
  if [[ -z "$mode" && -e "$path" ]]; then
    chmod --reference="$path" "$tmp" && chown --reference="$path" "$tmp" || return 1
  else
    chmod "${mode:-644}" "$tmp" || return 1
  fi
  sync "$tmp" && mv -f "$tmp" "$path"
}

# Runs a command as ubuntu: what the boot does in ubuntu's home, the kernel checks as
# ubuntu's own doing, so no link ubuntu plants leads root to read or write anything.
as_ubuntu() {
  runuser -u ubuntu -- "$@"
}

# True when no part of the path ($1, on the instance) is a link.
no_link() {
  local part at="$ROOT" parts
  IFS=/ read -ra parts <<<"${1#/}"
  for part in "${parts[@]}"; do
    at+="/$part"
    [[ ! -L "$at" ]] || return 1
  done
}

# Rewrites ubuntu's file $1 (mode $2) with what the command after them prints from its old
# text on stdin: read and written as ubuntu, and never through a link (refused, said on the
# console). Never fails the boot: the next boot tries again.
edit_user_file() {
  local path="$1" mode="$2" old="" new tmp=""
  shift 2
  if ! no_link "$path" || ! as_ubuntu mkdir -p "$ROOT${path%/*}" || ! no_link "$path"; then
    say "not written: $path is a link, or lies behind one"
    return 0
  fi
  if [[ -e "$ROOT$path" ]] && ! old="$(as_ubuntu cat "$ROOT$path")"; then
    say "not written: $path is not readable as ubuntu"
    return 0
  fi
  if new="$(if [[ -n "$old" ]]; then printf '%s\n' "$old"; fi | "$@")" &&
    tmp="$(as_ubuntu mktemp "$ROOT$path.XXXXXX")" &&
    printf '%s\n' "$new" | as_ubuntu tee "$tmp" >/dev/null && [[ -s "$tmp" ]] &&
    as_ubuntu chmod "$mode" "$tmp" && as_ubuntu mv -f "$tmp" "$ROOT$path"; then
    return 0
  fi
  [[ -z "$tmp" ]] || as_ubuntu rm -f "$tmp" || true
  say "not written: $path (disk full?); the old file stays"
}

detect_platform() {
  local id version
  id="$(sed -n 's/^ID=//p' "$ROOT/etc/os-release" | tr -d '"')"
  version="$(sed -n 's/^VERSION_ID=//p' "$ROOT/etc/os-release" | tr -d '"')"
  case "$id:$version" in
    ubuntu:20.04) DCV_OS=ubuntu2004 ;;
    ubuntu:22.04) DCV_OS=ubuntu2204 ;;
    ubuntu:24.04) DCV_OS=ubuntu2404 ;;
    *) fail "unsupported release '$id $version': this desktop supports Ubuntu 20.04, 22.04 and 24.04. Nothing was installed." ;;
  esac
  ARCH="$(uname -m)"
  case "$ARCH" in
    x86_64 | aarch64) ;;
    arm64) ARCH=aarch64 ;;
    *) fail "unsupported architecture '$ARCH': this desktop supports x86_64 and aarch64. Nothing was installed." ;;
  esac
  UBUNTU_VERSION="$version"
}

# Unattended upgrades hold the dpkg lock during the first minutes of a boot:
# wait for it (DPkg::Lock::Timeout) instead of failing. Never a full upgrade:
# it is slow and can break the AMI's NVIDIA driver (kernel and driver drift).
# Every wait is bounded: the dpkg lock (15 min), each download (Acquire timeouts).
apt_get() {
  DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=900 \
    -o Acquire::Retries=3 -o Acquire::http::Timeout=60 -o Acquire::https::Timeout=60 \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# One install transaction, retried with backoff; a failed try refreshes the package
# lists first, which is what a mirror caught mid-sync needs.
apt_install() {
  retry_backoff 4 30 apt_install_once "$@"
}

apt_install_once() {
  apt_get install "$@" && return 0
  apt_get update || true
  return 1
}

download() {
  retry 5 20 curl -fsSL --connect-timeout 20 --max-time 900 --retry 5 --retry-delay 10 --retry-connrefused \
    -o "$2" "$1"
}

has_nvidia_gpu() {
  local devices
  devices="$(lspci -d 10de: 2>/dev/null || true)"
  [[ -n "$devices" ]]
}

nvidia_works() {
  has_nvidia_gpu && timeout 120 nvidia-smi >/dev/null 2>&1
}

# X follows the hardware at every boot: the instance type may have changed while
# stopped (GPU to none, or fewer GPUs). With a working NVIDIA driver: DCV's documented
# `nvidia-xconfig --preserve-busid --enable-all-gpus`, generated afresh (--force-generate)
# from the GPUs present now, so no bus id of a GPU this type lacks stays; otherwise
# (no GPU, or a GPU without a working driver yet) a dummy display, which always works.
# True when xorg.conf changed.
# False when unchanged, or not written (the old file stays, and X with it). The new file
# is made in a fresh directory beside it: nvidia-xconfig backs up a file it overwrites.
configure_display() {
  local dir wanted
  DISPLAY_KIND=dummy
  dir="$(temp_beside "$XORG_CONF" -d)" || { say "display unchanged: no room beside $XORG_CONF"; return 1; }
  wanted="$dir/xorg.conf"
  if nvidia_works && command -v nvidia-xconfig >/dev/null &&
    nvidia-xconfig --force-generate --preserve-busid --enable-all-gpus --output-xconfig="$wanted" >/dev/null; then
    DISPLAY_KIND=nvidia
  else
    dummy_xorg_conf >"$wanted" || rm -f "$wanted"
  fi
  if cmp -s "$wanted" "$XORG_CONF"; then
    rm -rf "$dir"
    return 1
  fi
  if ! commit_file "$wanted" "$XORG_CONF" 644 has_screen; then
    rm -rf "$dir"
    say "not written: $XORG_CONF (disk full, or incomplete); the old file stays"
    return 1
  fi
  rm -rf "$dir"
  stage "display: $DISPLAY_KIND"
}

has_screen() {
  grep -q '^Section "Screen"' "$1"
}

# A desktop set up before the dummy driver came with every first boot, then moved
# to a type without a GPU: the one install a later boot may make.
ensure_dummy_driver() {
  if [[ "$DISPLAY_KIND" == dummy ]] && ! dpkg-query -W xserver-xorg-video-dummy >/dev/null 2>&1; then
    apt_install xserver-xorg-video-dummy
  fi
}

dummy_xorg_conf() {
  cat <<'EOF'
Section "Device"
    Identifier "DummyDevice"
    Driver "dummy"
    VideoRam 256000
EndSection
Section "Monitor"
    Identifier "DummyMonitor"
    HorizSync 5.0 - 1000.0
    VertRefresh 5.0 - 200.0
    Modeline "1920x1080" 148.50 1920 2008 2052 2200 1080 1084 1089 1125
EndSection
Section "Screen"
    Identifier "DummyScreen"
    Device "DummyDevice"
    Monitor "DummyMonitor"
    DefaultDepth 24
    SubSection "Display"
        Depth 24
        Modes "1920x1080"
        Virtual 4096 2160
    EndSubSection
EndSection
EOF
}

# One apt transaction for the desktop, both displays (the dummy driver too, so a
# later move to a type without a GPU needs no install), NFS and the app store.
# "Ubuntu Software" is the gnome-software deb on 20.04/22.04; on 24.04 it is App
# Center, the snap-store snap. ubuntu-drivers picks the driver Ubuntu recommends
# for this GPU and kernel (signed modules, follows kernel updates).
install_packages() {
  local packages=(ubuntu-desktop-minimal gdm3 nfs-common xserver-xorg-video-dummy) driver=""
  [[ "$UBUNTU_VERSION" == 24.04 ]] || packages+=(gnome-software)
  if has_nvidia_gpu && ! nvidia_works; then
    driver=yes
    packages+=(ubuntu-drivers-common)
  fi
  stage "installing gnome desktop"
  apt_install "${packages[@]}"
  if [[ -n "$driver" ]]; then
    stage "installing nvidia driver"
    ubuntu-drivers install || ubuntu-drivers autoinstall
  fi
}

install_app_center() {
  [[ "$UBUNTU_VERSION" == 24.04 ]] || return 0
  if ! timeout "$SNAP_SEED_TIMEOUT" snap wait system seed.loaded; then
    stage "snaps not seeded after ${SNAP_SEED_TIMEOUT}s: no App Center (sudo snap install snap-store)"
    return 0
  fi
  retry 5 30 timeout 900 snap install snap-store
}

configure_gdm() {
  # DCV console sessions need Xorg, not Wayland.
  write_file "$ROOT/etc/gdm3/custom.conf" <<'EOF'
[daemon]
WaylandEnable=false

[security]

[xdmcp]

[chooser]

[debug]
EOF
  systemctl set-default graphical.target
}

# DCV's Ubuntu .deb files may carry a dpkg-sig signature (member _gpgbuilder: a
# clearsigned list of the members' md5, sha1, size and name). If present, it must
# verify against NICE-GPG-KEY and list every member's sha1, else we refuse the
# package. If absent, we rely on HTTPS from the DCV download site alone.
verify_deb() {
  local deb="$1" members member sha1 listed
  members="$(ar t "$deb")" || return 1
  if ! grep -qx _gpgbuilder <<<"$members"; then
    echo "WARNING: $deb has no dpkg-sig signature; trusting HTTPS from $DCV_SITE"
    return 0
  fi
  ar p "$deb" _gpgbuilder >"$deb.sig" || return 1
  gpgv --keyring "$DCV_KEYRING" "$deb.sig" || return 1
  listed="$(sed -n '/^-----BEGIN PGP SIGNED/,/^-----BEGIN PGP SIGNATURE/p' "$deb.sig")"
  while read -r member; do
    [[ "$member" == _gpgbuilder ]] && continue
    sha1="$(ar p "$deb" "$member" | sha1sum | cut -d' ' -f1)" || return 1
    grep -Eq "^[[:space:]]*[0-9a-f]{32} $sha1 [0-9]+ $member\$" <<<"$listed" || return 1
  done <<<"$members"
  echo "verified the NICE signature of $deb"
}

install_dcv() {
  stage "installing dcv server"
  local work="$STATE_DIR/dcv" tgz="nice-dcv-$DCV_OS-$ARCH.tgz" name debs=()
  rm -rf "$work"
  mkdir -p "$work/pkg"
  download "$DCV_SITE/NICE-GPG-KEY" "$work/NICE-GPG-KEY"
  DCV_KEYRING="$work/nice-dcv.gpg"
  gpg --batch --yes --dearmor -o "$DCV_KEYRING" "$work/NICE-GPG-KEY"
  download "$DCV_SITE/$tgz" "$work/$tgz"
  tar -xzf "$work/$tgz" -C "$work/pkg" --strip-components=1
  for name in nice-dcv-server nice-dcv-web-viewer nice-xdcv; do
    set -- "$work/pkg/${name}_"*.deb
    [[ -f "$1" ]] || fail "$tgz has no $name package"
    verify_deb "$1" || fail "$1 does not match its NICE signature"
    debs+=("$1")
  done
  apt_install "${debs[@]}"
  rm -rf "$work"
  usermod -aG video dcv
  write_file "$ROOT/etc/dcv/dcv.conf" <<'EOF'
[license]

[log]

[session-management]
create-session = true

[session-management/automatic-console-session]
owner = "ubuntu"

[display]

[connectivity]
idle-timeout = 60
idle-timeout-warning = 300
enable-quic-frontend = true

[security]
authentication = "system"

[clipboard]
primary-selection-copy = true
primary-selection-paste = true
EOF
  systemctl enable dcvserver
}

# Values are checked again here: the fstab and the aws config are line-based,
# and a stray newline must not become a second entry.
efs_values_ok() {
  [[ "$EFS_FILE_SYSTEM_ID" =~ ^fs-[0-9a-f]+$ && "$REGION" =~ ^[a-z0-9-]+$ &&
    "$DNS_SUFFIX" =~ ^[a-z0-9.-]+$ ]] && mount_path_ok "$EFS_MOUNT_PATH"
}

# Only where the config allows (desktop/rules.py), checked again because the value comes
# from the stack: never over a system directory, never a hidden one of ubuntu's.
mount_path_ok() {
  [[ "$1" =~ ^/(home/ubuntu/|mnt/|data/|fsx/|fsx$)[A-Za-z0-9._@+=,:~/-]*$ &&
    "$1" != *//* && "$1" != */ && "$1" != */.* ]]
}

# The fstab without our entry marked $1 (whatever its values) and any other line for the
# mount point $2; false when the fstab could not be read (nothing is written then).
fstab_without() {
  [[ -e "$ROOT/etc/fstab" ]] || return 0
  MARK="$1" MOUNT_PATH="$2" awk '
    skip { skip = 0; next }
    $0 == ENVIRON["MARK"] { skip = 1; next }
    ENVIRON["MOUNT_PATH"] != "" && $1 !~ /^#/ && $2 == ENVIRON["MOUNT_PATH"] { next }
    { print }' "$ROOT/etc/fstab"
}

# A new fstab ($1) keeps every line of the old one that mounts the root file system.
keeps_root() {
  local roots
  [[ -e "$ROOT/etc/fstab" ]] || return 0
  roots="$(awk '$1 !~ /^#/ && $2 == "/"' "$ROOT/etc/fstab")" || return 1
  [[ -z "$roots" ]] || ! grep -vxFf "$1" <<<"$roots" >/dev/null
}

# Exactly one line for our file system, always; $1 and $2 as for fstab_without, $3 the line.
write_fstab() {
  local kept
  kept="$(fstab_without "$1" "$2")" || return 1
  {
    if [[ -n "$kept" ]]; then printf '%s\n' "$kept"; fi
    if [[ -n "$3" ]]; then printf '%s\n%s\n' "$1" "$3"; fi
  } | write_file "$ROOT/etc/fstab" "" keeps_root
}

# The mount point ($1, on the instance) made if missing (as ubuntu in ubuntu's home) and
# owned by ubuntu, or false with a console line when it, or a directory on the way to it,
# is a link or no directory: the mount, or the chown, would follow it elsewhere.
mount_point_ok() {
  if ! no_link "$1"; then
    :
  elif [[ "$1" == /home/ubuntu/* ]]; then
    as_ubuntu mkdir -p "$ROOT$1" || true
  else
    mkdir -p "$ROOT$1" || true
  fi
  if ! no_link "$1" || [[ ! -d "$ROOT$1" ]]; then
    say "refused: the mount point $1 is a link, lies behind one or is no directory; nothing mounted there"
    return 1
  fi
  chown -h ubuntu:ubuntu "$ROOT$1"
}

mount_efs() {
  local target="$ROOT$EFS_MOUNT_PATH" n
  mount_point_ok "$EFS_MOUNT_PATH" || return 0
  if ! mountpoint -q "$target"; then
    for ((n = 1; n <= EFS_MOUNT_ATTEMPTS; n++)); do
      if timeout 60 mount -T "$ROOT/etc/fstab" "$target"; then
        break
      fi
      if ((n == EFS_MOUNT_ATTEMPTS)); then
        stage "efs not mounted yet; systemd retries at the next boot"
        return 0
      fi
      sleep 30
    done
  fi
  # The EFS root, once mounted; an access point may forbid it, which is no failure.
  chown -h ubuntu:ubuntu "$target" || echo "could not chown the EFS root"
  stage "efs mounted at $EFS_MOUNT_PATH"
}

# The fstab line (systemd mounts it at every boot; nofail: a missing EFS never holds
# the boot up) and the mount point. False when the values are unusable.
configure_efs() {
  stage "configuring efs"
  if ! efs_values_ok; then
    stage "efs skipped: malformed file system id, region or mount path (only under /home/ubuntu/, /mnt/, /data/ or /fsx)"
    return 1
  fi
  if ! mount_point_ok "$EFS_MOUNT_PATH"; then
    write_fstab "$FSTAB_MARK" "" "" || true
    return 1
  fi
  write_fstab "$FSTAB_MARK" "$EFS_MOUNT_PATH" \
    "$EFS_FILE_SYSTEM_ID.efs.$REGION.$DNS_SUFFIX:/ $EFS_MOUNT_PATH nfs4 $NFS_OPTIONS 0 0"
}

# --- FSx for Lustre ------------------------------------------------------------
# AWS's repository builds lustre-client-modules-<kernel> for each Ubuntu kernel.
# Only the module of the running kernel is installed, never lustre-client-modules-aws:
# that one pulls in the newest kernel, and a new kernel can break the AMI's NVIDIA
# driver. A later boot on another kernel installs that kernel's module, and nothing else.
fsx_values_ok() {
  [[ "$FSX_DNS_NAME" =~ ^[a-z0-9.-]+$ && "$FSX_MOUNT_NAME" =~ ^[A-Za-z0-9_]+$ &&
    "$FSX_MOUNT_PATH/" != "$EFS_MOUNT_PATH/"* && "$EFS_MOUNT_PATH/" != "$FSX_MOUNT_PATH/"* ]] &&
    mount_path_ok "$FSX_MOUNT_PATH"
}

add_lustre_repo() {
  local list="$ROOT/etc/apt/sources.list.d/fsxlustreclientrepo.list" codename
  case "$UBUNTU_VERSION" in
    20.04) codename=focal ;;
    22.04) codename=jammy ;;
    *) codename=noble ;;
  esac
  [[ -s "$ROOT$FSX_KEYRING" && -s "$list" ]] && return 0
  # Called where `set -e` does not hold: each step says itself whether it worked.
  mkdir -p "$STATE_DIR/fsx" "$(dirname "$ROOT$FSX_KEYRING")" || return 1
  # Which of AWS's two published keys signs the repository for this release is not said in
  # one place: both are dearmored into the one keyring the source is signed-by, so apt accepts
  # the release signed by either. The documented key is fetched with retries; the other once
  # (a missing one costs a line on the console, not minutes). Neither means no repository.
  local keys=()
  if download "$FSX_KEY_URL" "$STATE_DIR/fsx/ubuntu.asc" &&
    gpg --batch --yes --dearmor -o "$STATE_DIR/fsx/ubuntu.gpg" "$STATE_DIR/fsx/ubuntu.asc"; then
    keys+=("$STATE_DIR/fsx/ubuntu.gpg")
  fi
  if curl -fsSL --connect-timeout 20 --max-time 120 -o "$STATE_DIR/fsx/main-repo.asc" "$FSX_OTHER_KEY_URL" &&
    gpg --batch --yes --dearmor -o "$STATE_DIR/fsx/main-repo.gpg" "$STATE_DIR/fsx/main-repo.asc"; then
    keys+=("$STATE_DIR/fsx/main-repo.gpg")
  fi
  if ((${#keys[@]} == 0)); then
    stage "fsx: neither of AWS's Lustre repository keys could be fetched"
    return 1
  fi
  cat "${keys[@]}" | write_file "$ROOT$FSX_KEYRING" || return 1
  echo "deb [signed-by=$FSX_KEYRING] $FSX_REPO $codename main" | write_file "$list" || return 1
  retry 10 30 apt_get update
}

# The client module for the running kernel, once per kernel (a marker per kernel).
install_lustre_client() {
  local kernel
  kernel="$(uname -r)"
  [[ -e "$STATE_DIR/lustre-client-$kernel" ]] && return 0
  stage "installing the lustre client for kernel $kernel"
  add_lustre_repo || return 1
  if ! apt_get install "lustre-client-modules-$kernel"; then
    apt_get update || true
    apt_get install "lustre-client-modules-$kernel" || return 1
  fi
  touch "$STATE_DIR/lustre-client-$kernel"
}

# One fstab line, rewritten like the EFS one; none when FSx is off.
write_fsx_fstab() {
  local line=""
  if [[ -n "$FSX_DNS_NAME" ]]; then
    line="$FSX_DNS_NAME@tcp:/$FSX_MOUNT_NAME $FSX_MOUNT_PATH lustre $FSX_OPTIONS 0 0"
  fi
  [[ -n "$line" ]] || grep -qxF "$FSX_FSTAB_MARK" "$ROOT/etc/fstab" || return 0
  write_fstab "$FSX_FSTAB_MARK" "$FSX_MOUNT_PATH" "$line"
}

# False when FSx is off or cannot be mounted at this boot (the boot goes on without it).
configure_fsx() {
  if [[ -z "$FSX_DNS_NAME" ]]; then
    write_fsx_fstab
    return 1
  fi
  stage "configuring fsx"
  if ! fsx_values_ok; then
    stage "fsx skipped: malformed dns name, mount name or mount path"
    return 1
  fi
  if ! install_lustre_client; then
    stage "fsx skipped: no lustre client for kernel $(uname -r) yet; the next boot tries again"
    return 1
  fi
  if ! mount_point_ok "$FSX_MOUNT_PATH"; then
    write_fstab "$FSX_FSTAB_MARK" "" "" || true
    return 1
  fi
  write_fsx_fstab
}

mount_fsx() {
  local target="$ROOT$FSX_MOUNT_PATH" n
  mount_point_ok "$FSX_MOUNT_PATH" || return 0
  if ! mountpoint -q "$target"; then
    for ((n = 1; n <= FSX_MOUNT_ATTEMPTS; n++)); do
      timeout 60 mount -T "$ROOT/etc/fstab" "$target" && break
      if ((n == FSX_MOUNT_ATTEMPTS)); then
        stage "fsx not mounted yet; systemd retries at the next boot"
        return 0
      fi
      sleep 30
    done
  fi
  chown -h ubuntu:ubuntu "$target" || echo "could not chown the FSx root"
  stage "fsx mounted at $FSX_MOUNT_PATH"
}

# EFA: the Deep Learning AMI carries the EFA software; say whether libfabric sees the device.
check_efa() {
  [[ "$EFA" == true ]] || return 0
  if PATH="$PATH:/opt/amazon/efa/bin" fi_info -p efa >/dev/null 2>&1; then
    stage "efa ready (fi_info -p efa lists the provider)"
  else
    stage "efa not usable: fi_info -p efa lists no provider; see /opt/amazon/efa and the EFA docs"
  fi
}

write_aws_config() {
  [[ "$REGION" =~ ^[a-z0-9-]+$ ]] || return 0
  edit_user_file /home/ubuntu/.aws/config 600 aws_config_region
}

# Set region in [default]; keep every other line the person may have added.
aws_config_region() {
  R="region = $REGION" awk '
    /^\[/ {
      if (in_default && !done) { print ENVIRON["R"]; done = 1 }
      in_default = ($0 == "[default]"); if (in_default) seen = 1
      print; next
    }
    in_default && /^[ \t]*region[ \t]*=/ { if (!done) { print ENVIRON["R"]; done = 1 }; next }
    { print }
    END { if (!seen) { print "[default]"; print ENVIRON["R"] } else if (!done) print ENVIRON["R"] }
  '
}

# ~/.bashrc is read by every new terminal of ubuntu (GNOME Terminal, and SSH via
# ~/.profile); a marked block is rewritten, never appended twice.
write_terminal_variables() {
  edit_user_file /home/ubuntu/.bashrc 644 bashrc_block
}

bashrc_block() {
  B="$BASHRC_BEGIN" E="$BASHRC_END" awk '
    $0 == ENVIRON["B"] { skip = 1; next }
    $0 == ENVIRON["E"] { skip = 0; next }
    !skip { print }' | {
    cat
    echo "$BASHRC_BEGIN"
    echo "export desktop_role_arn=$(sh_quote "$ROLE_ARN")"
    echo "export desktop_sg_id=$(sh_quote "$SECURITY_GROUP_ID")"
    echo "export desktop_subnet_id=$(sh_quote "$SUBNET_ID")"
    echo "$BASHRC_END"
  }
}

# Prints "VERSION<TAB>LAST-MODIFIED<TAB>VALUE" of the DCV password parameter on stdout,
# which the caller captures: the value never becomes an argument of any process.
read_dcv_password_parameter() {
  AWS_PAGER="" aws ssm get-parameter --region "$REGION" --name "$DCV_PASSWORD_PARAMETER" \
    --with-decryption --query 'Parameter.[Version,LastModifiedDate,Value]' --output text
}

# ubuntu's password (DCV's system authentication) from the stack's SecureString, only
# when the parameter was written since the last time: a password the person changed on
# the desktop stays until the stack writes a new one. The value lives only in this
# shell's variables and goes to chpasswd through a pipe from the printf builtin; nothing
# prints it. An unreadable parameter never fails the boot: the next boot tries again.
apply_dcv_password() {
  local reply="" written password n
  [[ -n "$DCV_PASSWORD_PARAMETER" ]] || return 0
  for ((n = 1; n <= DCV_PASSWORD_ATTEMPTS; n++)); do
    if reply="$(read_dcv_password_parameter)"; then
      break
    fi
    reply=""
    ((n == DCV_PASSWORD_ATTEMPTS)) || sleep 10
  done
  written="${reply%$'\t'*}"
  password="${reply##*$'\t'}"
  reply=""
  if [[ ! "$written" =~ ^[0-9]+$'\t'[^[:space:]]+$ || -z "$password" ]]; then
    stage "dcv password not set: $DCV_PASSWORD_PARAMETER not readable yet; the next boot tries again"
    return 0
  fi
  written="${written/$'\t'/ }"
  if [[ -f "$DCV_PASSWORD_RECORD" && "$(<"$DCV_PASSWORD_RECORD")" == "$written" ]]; then
    echo "dcv password: parameter version ${written%% *} already applied; the desktop's own password stays"
    return 0
  fi
  if printf 'ubuntu:%s\n' "$password" | chpasswd; then
    # Not recorded (disk full): the next boot sets the same password again.
    printf '%s\n' "$written" | write_file "$DCV_PASSWORD_RECORD" 600 || true
    stage "dcv password set from parameter version ${written%% *}"
  else
    stage "dcv password not set: chpasswd failed; the next boot tries again"
  fi
}

# A String parameter's value on stdout: the boot files' payload (base64 of a tar.gz,
# cloud_init/boot_files.py), the SageMaker SDK's defaults.
read_parameter() {
  AWS_PAGER="" aws ssm get-parameter --region "$REGION" --name "$1" --query Parameter.Value --output text
}

# The boot files unpacked into $1/f, or false with the reason on stdout (tar's own
# complaint goes to the log). What runs as root comes only from this stack's own parameter
# (its exact name, from the role's: desktop/boot_files.py), and only exactly the expected
# names are taken, listed before anything is extracted, each a regular file (no absolute
# path, "..", or link), all together at most BOOT_FILES_MAX bytes unpacked.
fetch_boot_files() {
  local value own
  own="$(own_parameter boot-files)"
  if [[ "$BOOT_FILES_PARAMETER" != "$own" ]]; then
    echo "$BOOT_FILES_PARAMETER refused: not this desktop's parameter $own"
    return 1
  fi
  value="$(retry "$BOOT_FILES_ATTEMPTS" 10 read_parameter "$BOOT_FILES_PARAMETER")" ||
    { echo "$BOOT_FILES_PARAMETER not readable after $BOOT_FILES_ATTEMPTS attempts"; return 1; }
  mkdir "$1/f"
  printf '%s' "$value" | base64 -d >"$1/boot-files.tgz" &&
    (($(gzip -dc "$1/boot-files.tgz" | head -c "$((BOOT_FILES_MAX + 1))" | wc -c) <= BOOT_FILES_MAX)) &&
    [[ "$(tar -tzf "$1/boot-files.tgz" | LC_ALL=C sort)" == "$(printf '%s\n' "${BOOT_FILES[@]}")" ]] &&
    [[ "$(tar -tvzf "$1/boot-files.tgz" | cut -c1 | sort -u)" == - ]] &&
    tar -xzf "$1/boot-files.tgz" --no-same-owner -C "$1/f" -- "${BOOT_FILES[@]}" &&
    [[ -z "$(find "$1/f" -mindepth 1 ! -type f)" ]] ||
    { echo "$BOOT_FILES_PARAMETER refused: not a tar.gz of the files ${BOOT_FILES[*]}"; return 1; }
}

# This desktop's own parameter $1: its exact name, from the role's (desktop/boot_files.py).
own_parameter() {
  local role="${ROLE_ARN##*/}"
  echo "/deep-learning-desktop/${role//[+=,@]/-}/$1"
}

# The payload's names, sorted as fetch_boot_files compares them.
BOOT_FILES=(deep-learning-desktop-idle.service deep-learning-desktop-idle.timer idle_agent.py)
# Bounds what a payload may unpack to (the files are ~20 KB; a gzip bomb stops here).
BOOT_FILES_MAX=1048576

# The idle agent (cloud_init/idle_agent.py), its keep-awake command and its systemd
# units, read from the parameter at every boot: an agent changed by `pulumi up` lands at
# the next one. Unreadable or refused: the agent an earlier boot installed stays (the
# desktop keeps its idle policy; a very first boot has none), and the boot goes on.
# keep-awake runs as ubuntu without sudo: it writes its deadline in a directory of ubuntu.
install_idle_agent() {
  local tmp reason lib=/usr/local/lib/deep-learning-desktop units="$ROOT/etc/systemd/system"
  [[ -n "$BOOT_FILES_PARAMETER" ]] || return 0
  tmp="$(mktemp -d "$STATE_DIR/boot-files.XXXXXX")"
  if ! reason="$(fetch_boot_files "$tmp")"; then
    stage "idle agent not updated: $reason; the next boot tries again"
    rm -rf "$tmp"
    return 0
  fi
  # A file not written (a full disk; write_file said so) keeps what an earlier boot
  # installed, and the boot goes on.
  write_file "$ROOT$lib/idle-agent" 755 <"$tmp/f/idle_agent.py" || true
  mkdir -p "$ROOT/usr/local/bin" "$STATE_DIR/idle" "$STATE_DIR/keep-awake"
  ln -sfn "$lib/idle-agent" "$ROOT/usr/local/bin/keep-awake"
  chown ubuntu:ubuntu "$STATE_DIR/keep-awake"
  write_file "$units/deep-learning-desktop-idle.service" <"$tmp/f/deep-learning-desktop-idle.service" || true
  write_file "$units/deep-learning-desktop-idle.timer" <"$tmp/f/deep-learning-desktop-idle.timer" || true
  rm -rf "$tmp"
  systemctl daemon-reload
  systemctl enable --now deep-learning-desktop-idle.timer
}

# The SageMaker SDK's defaults (YAML, desktop/sagemaker_config.py) at its admin location at
# every boot, 0644 and root's, written through a temp file beside it and renamed: a person's
# ~/.config/sagemaker/config.yaml is never touched, and wins (the SDK reads it after this).
# From its own parameter beside the boot files' one (the user data names only that one,
# checked as this desktop's own, as in fetch_boot_files). Unreadable, empty or over 8 KB
# (Parameter Store's own limit; the stack writes ~1.5 KB): the file an earlier boot wrote
# stays, and the console says so.
install_sagemaker_config() {
  local value name="${BOOT_FILES_PARAMETER%/*}/sagemaker-config"
  [[ "$BOOT_FILES_PARAMETER" == "$(own_parameter boot-files)" ]] || return 0
  if ! value="$(retry "$BOOT_FILES_ATTEMPTS" 10 read_parameter "$name")"; then
    say "sagemaker defaults not updated: $name not readable after $BOOT_FILES_ATTEMPTS attempts; the previous file stays"
  elif [[ -z "$value" ]] || (($(printf '%s\n' "$value" | wc -c) > 8192)); then
    say "sagemaker defaults not updated: $name refused: empty or over 8,192 bytes; the previous file stays"
  else
    printf '%s\n' "$value" | write_file "$ROOT/etc/xdg/sagemaker/config.yaml" 644 || true
  fi
}

# DCV disconnects a client idle for 60 minutes (warned 5 minutes before), so a person
# who walked away lets the desktop go idle. The first boot writes it in dcv.conf; a
# desktop set up before gets it here. True when dcv.conf changed.
set_dcv_idle_timeout() {
  local conf="$ROOT/etc/dcv/dcv.conf" new
  [[ -f "$conf" ]] || return 1
  new="$(awk '
    c && /^[ \t]*idle-timeout(-warning)?[ \t]*=/ { next }
    /^\[/ { c = ($0 == "[connectivity]") }
    { print }
    c && /^\[/ && !done { print "idle-timeout = 60"; print "idle-timeout-warning = 300"; done = 1 }
    END { if (!done) print "[connectivity]\nidle-timeout = 60\nidle-timeout-warning = 300" }' "$conf")"
  [[ "$new" != "$(cat "$conf")" ]] || return 1
  printf '%s\n' "$new" | write_file "$conf"
}

apply_values() {
  stage "applying values"
  write_aws_config
  write_terminal_variables
  apply_dcv_password
  install_sagemaker_config
}

wait_for_dcv() {
  local n
  for ((n = 1; n <= DCV_WAIT_ATTEMPTS; n++)); do
    if timeout 20 dcv describe-session console >/dev/null 2>&1; then
      stage "ready"
      return 0
    fi
    sleep 5
  done
  stage "dcv console session not up after $((DCV_WAIT_ATTEMPTS * 5))s; see /var/log/dcv/"
}

# The version `python -m desktop bake` tags an image with, read from the console.
report_dcv_version() {
  local version
  version="$(dpkg-query -W -f='${Version}' nice-dcv-server 2>/dev/null)" || version=""
  stage "dcv ${version:-unknown}"
}

first_boot() {
  SETTING_UP=1
  echo $(($(attempts) + 1)) >"$ATTEMPTS_FILE"
  motd "Cloud init in progress. Machine will REBOOT after cloud init is complete!!"
  stage "first boot: installing (attempt $(attempts) of $MAX_ATTEMPTS)"
  if (($(attempts) > 1)); then
    # A retry after a reboot: finish what an interrupted dpkg left half-configured.
    dpkg --configure -a || true
  fi
  # The idle agent first: a desktop whose setup fails below still stops when idle.
  install_idle_agent
  retry 10 30 apt_get update
  install_packages
  install_app_center
  configure_gdm
  install_dcv
  report_dcv_version
  configure_display || true
  apply_values
  # Only the fstab line: the reboot follows, and EFS is mounted at the next boot.
  configure_efs || true
  configure_fsx || true
  motd "NICE DCV server is enabled!"
  touch "$FIRST_BOOT_DONE"
  rm -f "$ATTEMPTS_FILE"
  record_instance_id
  stage "first boot complete, rebooting"
  REPORTED=1
  reboot
}

later_boot() {
  local efs=yes fsx=yes
  stage "later boot"
  report_dcv_version
  if configure_display; then
    ensure_dummy_driver
    # X and DCV started with the file the previous hardware wanted: restart them so
    # that the console session uses this one.
    systemctl restart display-manager dcvserver
  fi
  if set_dcv_idle_timeout; then
    systemctl restart dcvserver
  fi
  apply_values
  install_idle_agent
  configure_efs || efs=""
  configure_fsx || fsx=""
  check_efa
  # DCV first: a slow or missing EFS (its bounded retries take minutes) must not
  # hold back the desktop; EFS appears in it once mounted.
  wait_for_dcv
  if [[ -n "$efs" ]]; then
    mount_efs
  fi
  if [[ -n "$fsx" ]]; then
    mount_fsx
  fi
}

# The setup is on this disk: this boot or an earlier one finished it (a baked image
# carries it to other instances).
installed_desktop() {
  [[ -e "$FIRST_BOOT_DONE" ]] && dpkg-query -W nice-dcv-server gdm3 >/dev/null 2>&1
}

# This instance's id from IMDSv2 (a session token first); bounded, false when unknown.
instance_id_now() {
  local token id
  token="$(curl -fsS --max-time 5 --retry 3 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" \
    "$IMDS/api/token")" &&
    id="$(curl -fsS --max-time 5 --retry 3 -H "X-aws-ec2-metadata-token: $token" "$IMDS/meta-data/instance-id")" &&
    [[ "$id" =~ ^i-[0-9a-f]+$ ]] && echo "$id"
}

record_instance_id() {
  local id
  id="$(instance_id_now)" && echo "$id" | write_file "$INSTANCE_ID_FILE" || true
}

# Another instance id than the one recorded: this disk comes from an image of another
# desktop. Unknown (IMDS silent) counts as the same: the reset is for a sure move only.
is_new_instance() {
  local id
  [[ -s "$INSTANCE_ID_FILE" ]] && id="$(instance_id_now)" && [[ "$id" != "$(cat "$INSTANCE_ID_FILE")" ]]
}

# What belongs to the desktop the image was made from, not to this one. The terminal
# values and the ~/.aws/config region need nothing here: every boot rewrites them with
# this stack's values, as it writes this stack's EFS line.
reset_for_new_instance() {
  stage "new instance from an image of another desktop: resetting"
  forget_previous_efs
  rm -rf "$STATE_DIR/idle" "$STATE_DIR/keep-awake" "$STATE_DIR/dcv-password-version"
  # A new machine id (systemd derives it from the instance's own UUID); SSH host
  # keys need nothing here: cloud-init makes new ones for every new instance.
  rm -f "$ROOT/etc/machine-id"
  systemd-machine-id-setup --root="${ROOT:-/}" >/dev/null
}

# systemd may have mounted the other desktop's EFS from the image's fstab already;
# its line goes even when this stack's EFS values turn out unusable.
forget_previous_efs() {
  local fstab="$ROOT/etc/fstab" path
  path="$(grep -A1 -xF "$FSTAB_MARK" "$fstab" | awk 'NR == 2 { print $2 }')" || true
  if [[ -n "$path" ]] && mountpoint -q "$ROOT$path"; then
    umount -l "$ROOT$path" || true
  fi
  write_fstab "$FSTAB_MARK" "" "" || true
}

# Out of automatic retries: say so again at every boot, install nothing.
give_up() {
  REPORTED=1
  stage "failed: the desktop setup failed $MAX_ATTEMPTS times; see /var/log/deep-learning-desktop.log"
  motd "deep-learning-desktop setup FAILED $MAX_ATTEMPTS times; see /var/log/deep-learning-desktop.log. $(give_up_advice)"
  exit 1
}

main() {
  trap 'on_exit $?' EXIT
  stage "boot script started"
  detect_platform
  mkdir -p "$STATE_DIR"
  if installed_desktop; then
    if is_new_instance; then
      reset_for_new_instance
    fi
    record_instance_id
    later_boot
  elif (($(attempts) >= MAX_ATTEMPTS)); then
    give_up
  else
    first_boot
  fi
}

mkdir -p "$(dirname "$LOG")"
main "$@" 2>&1 | tee -a "$LOG"
