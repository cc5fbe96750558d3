#!/bin/bash
# Deep learning desktop boot script; cloud-init runs it on EVERY boot (see the
# cloud-config part). First boot: install GNOME + Amazon DCV, then reboot once.
# Later boots: no installs, no reboot; re-apply the values, wait for DCV, mount EFS.
# cloud_init.render puts REGION, DNS_SUFFIX, EFS_FILE_SYSTEM_ID, EFS_MOUNT_PATH,
# ROLE_ARN, SECURITY_GROUP_ID and SUBNET_ID above this text as quoted assignments,
# and the text of the files the boot installs (render.FILES: IDLE_AGENT, ...).
set -euo pipefail

# DLD_ROOT prefixes every file read or written, so tests can run this very script
# in a scratch directory with stub commands. On EC2 it is empty.
ROOT="${DLD_ROOT:-}"
CONSOLE="${DLD_CONSOLE:-$ROOT/dev/console}"
STATE_DIR="$ROOT/var/lib/deep-learning-desktop"
FIRST_BOOT_DONE="$STATE_DIR/first-boot-done"
NVIDIA_X_DONE="$STATE_DIR/nvidia-x-configured"
LOG="$ROOT/var/log/deep-learning-desktop.log"
MOTD="$ROOT/etc/motd"
USER_HOME="$ROOT/home/ubuntu"
DCV_SITE="https://d1uj6qtbmh3dt5.cloudfront.net"
NFS_OPTIONS="nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,_netdev,nofail"
FSTAB_MARK="# deep-learning-desktop EFS (rewritten at every boot)"
BASHRC_BEGIN="# >>> deep-learning-desktop (rewritten at every boot) >>>"
BASHRC_END="# <<< deep-learning-desktop <<<"
# A new mount target's DNS name can take minutes to resolve; bounded, never forever.
EFS_MOUNT_ATTEMPTS="${DLD_EFS_MOUNT_ATTEMPTS:-10}"
DCV_WAIT_ATTEMPTS="${DLD_DCV_WAIT_ATTEMPTS:-60}"
CURRENT_STAGE="start"
REPORTED=""

stage() {
  CURRENT_STAGE="$*"
  echo "deep-learning-desktop: $*"
  if [[ -w "$CONSOLE" ]]; then
    echo "deep-learning-desktop: $*" >>"$CONSOLE" || true
  fi
}

motd() {
  printf '%s\n' "$*" >"$MOTD"
}

on_exit() {
  local status="$1" during="$CURRENT_STAGE"
  if [[ "$status" -ne 0 && -z "$REPORTED" ]]; then
    stage "failed during '$during' (exit $status), see /var/log/deep-learning-desktop.log"
    motd "deep-learning-desktop setup FAILED during '$during'; see /var/log/deep-learning-desktop.log. The next boot retries."
  fi
}

fail() {
  REPORTED=1
  stage "failed: $*"
  motd "deep-learning-desktop: $*"
  exit 1
}

retry() {
  local attempts="$1" delay="$2" n=1
  shift 2
  until "$@"; do
    if ((n >= attempts)); then
      return 1
    fi
    echo "retry $n/$attempts in ${delay}s: $*"
    sleep "$delay"
    n=$((n + 1))
  done
}

# Single quotes for the POSIX shells that read the files written here.
sh_quote() {
  printf "'%s'" "${1//\'/\'\\\'\'}"
}

# Writes stdin to a file only through a temporary file, so a crash never
# leaves half a file, and the result is the same bytes on every run.
write_file() {
  local path="$1" mode="${2:-644}"
  mkdir -p "$(dirname "$path")"
  cat >"$path.dld-tmp"
  chmod "$mode" "$path.dld-tmp"
  mv -f "$path.dld-tmp" "$path"
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
apt_get() {
  DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=900 \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

download() {
  retry 5 20 curl -fsSL --retry 5 --retry-delay 10 --retry-connrefused -o "$2" "$1"
}

has_nvidia_gpu() {
  local devices
  devices="$(lspci -d 10de: 2>/dev/null || true)"
  [[ -n "$devices" ]]
}

# DCV's documented X setup for NVIDIA GPUs (console sessions), once per machine.
# It needs a working driver, so a driver this script installed gets it at the
# boot after the reboot (see later_boot).
configure_nvidia_x() {
  if command -v nvidia-xconfig >/dev/null; then
    nvidia-xconfig --preserve-busid --enable-all-gpus --output-xconfig="$ROOT/etc/X11/xorg.conf"
  else
    echo "nvidia-xconfig not found; X uses its own defaults"
  fi
  touch "$NVIDIA_X_DONE"
}

install_display() {
  if has_nvidia_gpu; then
    if nvidia-smi >/dev/null 2>&1; then
      stage "nvidia driver already works"
      configure_nvidia_x
    else
      # ubuntu-drivers picks the driver Ubuntu recommends for this GPU and
      # kernel (signed modules, follows kernel updates) instead of a pinned one.
      stage "installing nvidia driver"
      apt_get install ubuntu-drivers-common
      ubuntu-drivers install || ubuntu-drivers autoinstall
    fi
  else
    # No GPU: a dummy X device with a virtual screen gives DCV a desktop.
    stage "configuring dummy display"
    apt_get install xserver-xorg-video-dummy
    write_file "$ROOT/etc/X11/xorg.conf" <<'EOF'
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
  fi
}

install_desktop() {
  stage "installing gnome desktop"
  apt_get install ubuntu-desktop-minimal gdm3 nfs-common
  # The app store the README points to: "Ubuntu Software" is the gnome-software
  # deb on 20.04/22.04; on 24.04 it is App Center, shipped as the snap-store snap.
  if [[ "$UBUNTU_VERSION" == 24.04 ]]; then
    snap wait system seed.loaded
    retry 5 30 snap install snap-store
  else
    apt_get install gnome-software
  fi
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
  apt_get install "${debs[@]}"
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
    "$DNS_SUFFIX" =~ ^[a-z0-9.-]+$ && "$EFS_MOUNT_PATH" =~ ^/[^[:space:]]+$ &&
    "$EFS_MOUNT_PATH" != *..* ]]
}

write_fstab() {
  local fstab="$ROOT/etc/fstab"
  local line="$EFS_FILE_SYSTEM_ID.efs.$REGION.$DNS_SUFFIX:/ $EFS_MOUNT_PATH nfs4 $NFS_OPTIONS 0 0"
  touch "$fstab"
  # Drop our previous entry (whatever its values) and any other line for this
  # mount point, then add the current one: exactly one line, always.
  MARK="$FSTAB_MARK" MOUNT_PATH="$EFS_MOUNT_PATH" awk '
    skip { skip = 0; next }
    $0 == ENVIRON["MARK"] { skip = 1; next }
    $1 !~ /^#/ && $2 == ENVIRON["MOUNT_PATH"] { next }
    { print }' "$fstab" | {
    cat
    printf '%s\n%s\n' "$FSTAB_MARK" "$line"
  } | write_file "$fstab"
}

mount_efs() {
  local target="$ROOT$EFS_MOUNT_PATH" n
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
  chown ubuntu:ubuntu "$target" || echo "could not chown the EFS root"
  stage "efs mounted at $EFS_MOUNT_PATH"
}

# The fstab line (systemd mounts it at every boot; nofail: a missing EFS never holds
# the boot up) and the mount point. False when the values are unusable.
configure_efs() {
  stage "configuring efs"
  if ! efs_values_ok; then
    stage "efs skipped: malformed file system id, region or mount path"
    return 1
  fi
  write_fstab
  mkdir -p "$ROOT$EFS_MOUNT_PATH"
  chown ubuntu:ubuntu "$ROOT$EFS_MOUNT_PATH"
}

write_aws_config() {
  local config="$USER_HOME/.aws/config"
  [[ "$REGION" =~ ^[a-z0-9-]+$ ]] || return 0
  mkdir -p "$(dirname "$config")"
  touch "$config"
  # Set region in [default]; keep every other line the person may have added.
  R="region = $REGION" awk '
    /^\[/ {
      if (in_default && !done) { print ENVIRON["R"]; done = 1 }
      in_default = ($0 == "[default]"); if (in_default) seen = 1
      print; next
    }
    in_default && /^[ \t]*region[ \t]*=/ { if (!done) { print ENVIRON["R"]; done = 1 }; next }
    { print }
    END { if (!seen) { print "[default]"; print ENVIRON["R"] } else if (!done) print ENVIRON["R"] }
  ' "$config" | write_file "$config" 600
  chown -R ubuntu:ubuntu "$USER_HOME/.aws"
}

# ~/.bashrc is read by every new terminal of ubuntu (GNOME Terminal, and SSH via
# ~/.profile); a marked block is rewritten, never appended twice.
write_terminal_variables() {
  local bashrc="$USER_HOME/.bashrc"
  touch "$bashrc"
  B="$BASHRC_BEGIN" E="$BASHRC_END" awk '
    $0 == ENVIRON["B"] { skip = 1; next }
    $0 == ENVIRON["E"] { skip = 0; next }
    !skip { print }' "$bashrc" | {
    cat
    echo "$BASHRC_BEGIN"
    echo "export desktop_role_arn=$(sh_quote "$ROLE_ARN")"
    echo "export desktop_sg_id=$(sh_quote "$SECURITY_GROUP_ID")"
    echo "export desktop_subnet_id=$(sh_quote "$SUBNET_ID")"
    echo "$BASHRC_END"
  } | write_file "$bashrc"
  chown ubuntu:ubuntu "$bashrc"
}

# The idle agent (cloud_init/idle_agent.py), its keep-awake command and its systemd
# units, written at every boot: an agent changed by `pulumi up` lands at the next one.
# keep-awake runs as ubuntu without sudo: it writes its deadline in a directory of ubuntu.
install_idle_agent() {
  local lib=/usr/local/lib/deep-learning-desktop units="$ROOT/etc/systemd/system"
  printf '%s' "$IDLE_AGENT" | write_file "$ROOT$lib/idle-agent" 755
  mkdir -p "$ROOT/usr/local/bin" "$STATE_DIR/idle" "$STATE_DIR/keep-awake"
  ln -sfn "$lib/idle-agent" "$ROOT/usr/local/bin/keep-awake"
  chown ubuntu:ubuntu "$STATE_DIR/keep-awake"
  printf '%s' "$IDLE_SERVICE" | write_file "$units/deep-learning-desktop-idle.service"
  printf '%s' "$IDLE_TIMER" | write_file "$units/deep-learning-desktop-idle.timer"
  systemctl daemon-reload
  systemctl enable --now deep-learning-desktop-idle.timer
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
}

wait_for_dcv() {
  local n
  for ((n = 1; n <= DCV_WAIT_ATTEMPTS; n++)); do
    if dcv describe-session console >/dev/null 2>&1; then
      stage "ready"
      return 0
    fi
    sleep 5
  done
  stage "dcv console session not up after $((DCV_WAIT_ATTEMPTS * 5))s; see /var/log/dcv/"
}

first_boot() {
  motd "Cloud init in progress. Machine will REBOOT after cloud init is complete!!"
  stage "first boot: installing"
  retry 10 30 apt_get update
  install_display
  install_desktop
  install_dcv
  apply_values
  install_idle_agent
  # Only the fstab line: the reboot follows, and EFS is mounted at the next boot.
  configure_efs || true
  motd "NICE DCV server is enabled!"
  touch "$FIRST_BOOT_DONE"
  stage "first boot complete, rebooting"
  REPORTED=1
  reboot
}

later_boot() {
  local efs=yes
  stage "later boot"
  if [[ ! -e "$NVIDIA_X_DONE" ]] && has_nvidia_gpu && nvidia-smi >/dev/null 2>&1; then
    # The driver the first boot installed works now: set X up for it, and restart
    # the display and DCV so that the console session uses it.
    stage "configuring x for the nvidia driver"
    configure_nvidia_x
    systemctl restart display-manager dcvserver
  fi
  if set_dcv_idle_timeout; then
    systemctl restart dcvserver
  fi
  apply_values
  install_idle_agent
  configure_efs || efs=""
  # DCV first: a slow or missing EFS (its bounded retries take minutes) must not
  # hold back the desktop; EFS appears in it once mounted.
  wait_for_dcv
  if [[ -n "$efs" ]]; then
    mount_efs
  fi
}

main() {
  trap 'on_exit $?' EXIT
  stage "boot script started"
  detect_platform
  mkdir -p "$STATE_DIR"
  if [[ -e "$FIRST_BOOT_DONE" ]]; then
    later_boot
  else
    first_boot
  fi
}

mkdir -p "$(dirname "$LOG")"
main "$@" 2>&1 | tee -a "$LOG"
