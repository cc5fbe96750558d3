"""The boot's ``verify_deb`` on real signed packages: a ``.deb`` carrying a dpkg-sig
``_gpgbuilder`` member signed with a throwaway key, and tampered copies of it.

The function runs as the boot runs it (sourced from ``cloud_init/boot.sh`` into a bash
with ``set -euo pipefail``), with the real ``ar``, ``gpgv`` and ``sha1sum``: the sandboxed
boots stub those, so only this file runs the signed-package path. ``gpg``, ``gpgv`` and
``ar`` come from ``tests/run`` (Debian's gpg, gpgv and binutils); without them the tests fail.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOT = ROOT / "cloud_init" / "boot.sh"
MEMBERS = {
    "debian-binary": b"2.0\n",
    "control.tar.xz": b"control of nice-dcv-server 2024.0.1\n",
    "data.tar.xz": b"the files of nice-dcv-server 2024.0.1\n",
}


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is required for this test (bash tests/run installs it); install it, do not skip"
    return found


def verify_deb_source() -> str:
    """The ``verify_deb`` function as boot.sh defines it."""
    match = re.search(r"^verify_deb\(\) \{\n.*?^\}\n", BOOT.read_text(), re.M | re.S)
    assert match, "boot.sh defines verify_deb"
    return match.group(0)


class Signer:
    """A throwaway OpenPGP key in its own GNUPGHOME, with no passphrase."""

    def __init__(self, home: Path, uid: str):
        self.home = home
        home.mkdir(mode=0o700)
        self.env = {**os.environ, "GNUPGHOME": str(home)}
        self.gpg("--quick-gen-key", uid, "ed25519", "sign", "never")

    def gpg(self, *args: str, stdin: bytes | None = None) -> bytes:
        done = subprocess.run([tool("gpg"), "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", "",
                               *args], env=self.env, input=stdin, capture_output=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout

    def public_key(self) -> bytes:
        """The armored public key, as NICE publishes NICE-GPG-KEY."""
        return self.gpg("--armor", "--export")

    def clearsign(self, text: str) -> bytes:
        return self.gpg("--clearsign", stdin=text.encode())

    def close(self) -> None:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=self.env, capture_output=True, check=False)


@pytest.fixture
def gnupg_homes():
    """Short GNUPGHOME paths: gpg-agent's socket lives there, and a socket path may not be
    longer than about 100 characters (pytest's tmp_path under xdist can be)."""
    made: list[Path] = []

    def home(name: str) -> Path:
        made.append(Path(tempfile.mkdtemp(prefix="dld-gpg-")))
        return made[-1] / name

    yield home
    for directory in made:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def nice(gnupg_homes):
    signer = Signer(gnupg_homes("nice"), "Test NICE DCV <dcv@example.invalid>")
    yield signer
    signer.close()


@pytest.fixture
def stranger(gnupg_homes):
    signer = Signer(gnupg_homes("stranger"), "Someone Else <else@example.invalid>")
    yield signer
    signer.close()


def file_list(members: dict[str, bytes]) -> str:
    """dpkg-sig's signed text: each member's md5, sha1, size and name."""
    lines = [f"\t{hashlib.md5(data).hexdigest()} {hashlib.sha1(data).hexdigest()} {len(data)} {name}"
             for name, data in members.items()]
    return "Version: 4\nSigner: \nDate: Thu Jan  1 00:00:00 2026\nRole: builder\nFiles: \n" + "\n".join(lines) + "\n"


def build_deb(path: Path, members: dict[str, bytes], signature: bytes | None) -> Path:
    """An ar archive with ``members`` in order, and ``_gpgbuilder`` last when signed."""
    work = path.parent / (path.name + ".members")
    work.mkdir()
    names = list(members)
    for name, data in members.items():
        (work / name).write_bytes(data)
    if signature is not None:
        (work / "_gpgbuilder").write_bytes(signature)
        names.append("_gpgbuilder")
    done = subprocess.run([tool("ar"), "rc", str(path), *names], cwd=work, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return path


def keyring(tmp_path: Path, signer: Signer) -> Path:
    """NICE-GPG-KEY dearmored as install_dcv does it."""
    armored = tmp_path / "NICE-GPG-KEY"
    armored.write_bytes(signer.public_key())
    ring = tmp_path / "nice-dcv.gpg"
    subprocess.run([tool("gpg"), "--batch", "--yes", "--dearmor", "-o", str(ring), str(armored)],
                   env={**os.environ, "GNUPGHOME": str(tmp_path / "empty-gnupg")}, check=True, capture_output=True)
    return ring


def verify(deb: Path, ring: Path) -> subprocess.CompletedProcess:
    """Run boot.sh's verify_deb on ``deb`` in a bash as strict as the boot's, and called as
    the boot calls it: in an ``||`` list, where bash ignores ``set -e`` inside the function,
    so each of its checks must return by itself."""
    for name in ("ar", "gpgv", "sha1sum"):
        tool(name)
    script = f"set -euo pipefail\nDCV_SITE=https://dcv.example.invalid\nDCV_KEYRING={ring}\n" \
             f"{verify_deb_source()}\nverify_deb \"$1\" || exit 1\n"
    return subprocess.run(["/bin/bash", "-c", script, "verify", str(deb)], capture_output=True, text=True,
                          timeout=60, check=False, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})


def test_a_package_signed_by_nice_is_accepted(tmp_path, nice):
    deb = build_deb(tmp_path / "nice-dcv-server_2024.0.1-1_amd64.ubuntu.deb", MEMBERS,
                    nice.clearsign(file_list(MEMBERS)))
    done = verify(deb, keyring(tmp_path, nice))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"verified the NICE signature of {deb}" in done.stdout


def test_a_member_changed_after_signing_is_refused(tmp_path, nice):
    # The signature is NICE's and intact; the data no longer has the sha1 it lists.
    tampered = {**MEMBERS, "data.tar.xz": b"the files of nice-dcv-server, with a backdoor\n"}
    deb = build_deb(tmp_path / "tampered.deb", tampered, nice.clearsign(file_list(MEMBERS)))
    done = verify(deb, keyring(tmp_path, nice))
    assert done.returncode != 0
    assert "verified" not in done.stdout


def test_a_package_signed_by_another_key_is_refused(tmp_path, nice, stranger):
    # Everything matches the signed list, but the list is not signed by the NICE key.
    tampered = {**MEMBERS, "data.tar.xz": b"the files of nice-dcv-server, with a backdoor\n"}
    deb = build_deb(tmp_path / "resigned.deb", tampered, stranger.clearsign(file_list(tampered)))
    done = verify(deb, keyring(tmp_path, nice))
    assert done.returncode != 0
    assert "verified" not in done.stdout


def test_a_signed_list_edited_after_signing_is_refused(tmp_path, nice):
    tampered = {**MEMBERS, "data.tar.xz": b"the files of nice-dcv-server, with a backdoor\n"}
    signed = nice.clearsign(file_list(MEMBERS)).decode()
    edited = signed.replace(hashlib.sha1(MEMBERS["data.tar.xz"]).hexdigest(),
                            hashlib.sha1(tampered["data.tar.xz"]).hexdigest())
    assert edited != signed
    deb = build_deb(tmp_path / "edited.deb", tampered, edited.encode())
    done = verify(deb, keyring(tmp_path, nice))
    assert done.returncode != 0
    assert "verified" not in done.stdout


def test_a_download_that_is_no_package_is_refused(tmp_path, nice):
    # An error page, or a cut download: not an ar archive at all.
    deb = tmp_path / "nice-dcv-server_2024.0.1-1_amd64.ubuntu.deb"
    deb.write_bytes(b"<html>503 Service Unavailable</html>\n")
    done = verify(deb, keyring(tmp_path, nice))
    assert done.returncode == 1
    assert "verified" not in done.stdout and "WARNING" not in done.stdout


def test_an_unsigned_package_is_trusted_to_https_with_a_warning(tmp_path, nice):
    deb = build_deb(tmp_path / "unsigned.deb", MEMBERS, None)
    done = verify(deb, keyring(tmp_path, nice))
    assert done.returncode == 0, done.stderr
    assert f"WARNING: {deb} has no dpkg-sig signature; trusting HTTPS from https://dcv.example.invalid" in done.stdout


# --- the signature as the boot uses it: install_dcv in the boot sandbox -----------------

DCV_PACKAGES = ("nice-dcv-server", "nice-dcv-web-viewer", "nice-xdcv")


def dcv_debs(directory: Path, signer_for: dict[str, Signer]) -> Path:
    """The tarball's three packages, each signed by ``signer_for[name]`` over its own members."""
    directory.mkdir()
    for name in DCV_PACKAGES:
        members = {**MEMBERS, "data.tar.xz": f"the files of {name}\n".encode()}
        signed = signer_for[name].clearsign(file_list(members))
        build_deb(directory / f"{name}_2024.0.1-1_amd64.ubuntu.deb", members, signed)
    return directory


def with_real_signature_tools(box, debs: Path, ring: Path) -> None:
    """The sandbox's ar and gpgv become the real ones; its gpg dearmors NICE-GPG-KEY into
    the test's keyring, and its tar unpacks the DCV tarball into these packages (the boot
    files' payload still goes to the real tar)."""
    for name in ("ar", "gpgv"):
        (box.bin / name).unlink()
        (box.bin / name).symlink_to(tool(name))
    for name, script in {
        "gpg": f'''#!/bin/bash
if [[ "${{*: -1}}" == */NICE-GPG-KEY ]]; then
  prev=""; for arg in "$@"; do [[ "$prev" == -o ]] && cp {ring} "$arg"; prev="$arg"; done
  exit 0
fi
exec "$(dirname "$0")/stub" "$@"
''',
        "tar": f'''#!/bin/bash
if [[ " $* " == *"/nice-dcv-"*".tgz "* ]]; then
  prev=""; for arg in "$@"; do [[ "$prev" == -C ]] && cp {debs}/*.deb "$arg"/; prev="$arg"; done
  exit 0
fi
exec /bin/tar "$@"
''',
    }.items():
        (box.bin / name).unlink()
        (box.bin / name).write_text(script)
        (box.bin / name).chmod(0o755)


def dcv_installs(boot) -> list[str]:
    return [name for name in boot.installed() if "nice-" in name]


@pytest.mark.parametrize("tampered", [False, True])
def test_a_dcv_package_that_fails_its_signature_is_never_installed(sandbox, tmp_path, nice, stranger, tampered):
    # The first boot downloads the tarball; each package's signature is checked with the
    # real ar and gpgv. One package signed by another key must stop the boot before apt
    # sees any of them; the control run (all signed by NICE) installs all three.
    signers = {name: nice for name in DCV_PACKAGES}
    if tampered:
        signers["nice-dcv-web-viewer"] = stranger
    debs = dcv_debs(tmp_path / "debs", signers)
    box = sandbox(version="24.04")
    with_real_signature_tools(box, debs, keyring(tmp_path, nice))
    boot = box.boot()
    server = box.path("/var/lib/deep-learning-desktop/dcv/pkg/nice-dcv-server_2024.0.1-1_amd64.ubuntu.deb")
    if not tampered:
        assert f"verified the NICE signature of {server}" in boot.output, boot.output
        assert sorted(Path(name).name.split("_")[0] for name in dcv_installs(boot)) == sorted(DCV_PACKAGES)
        return
    assert boot.returncode != 0
    assert "nice-dcv-web-viewer_2024.0.1-1_amd64.ubuntu.deb does not match its NICE signature" in boot.output
    assert dcv_installs(boot) == [], "nothing of DCV reaches apt"
    assert box.console_lines()[-1].startswith("deep-learning-desktop: failed: ")
    assert boot.reboots == 0, "a forged package is no reason to retry"


def test_a_dcv_tarball_without_one_of_its_packages_stops_the_boot_saying_which(sandbox, tmp_path, nice):
    debs = dcv_debs(tmp_path / "debs", {name: nice for name in DCV_PACKAGES})
    (debs / "nice-xdcv_2024.0.1-1_amd64.ubuntu.deb").unlink()
    box = sandbox(version="24.04")
    with_real_signature_tools(box, debs, keyring(tmp_path, nice))
    boot = box.boot()
    assert boot.returncode != 0
    assert "nice-dcv-ubuntu2404-x86_64.tgz has no nice-xdcv package" in boot.output, boot.output
    assert dcv_installs(boot) == [], "nothing of DCV reaches apt"
