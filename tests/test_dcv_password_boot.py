"""The boot sets ubuntu's DCV password from the stack's SecureString: once per parameter
version, through chpasswd's standard input, and never where anyone could read it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
for entry in (TESTS.parent, TESTS):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from boot_sandbox import DEFAULT_VALUES, Sandbox  # noqa: E402

PARAMETER = DEFAULT_VALUES["dcv_password_parameter"]
RECORD = "/var/lib/deep-learning-desktop/dcv-password-version"
FIRST = "Fq7#kR2-xW9@pL4=mZ1^"
SECOND = "Hb3!tN8_vC5%yD6+qS0?"


@pytest.fixture
def box(tmp_path):
    box = Sandbox(tmp_path / "box")
    box.env.update(STUB_SSM_VALUE=FIRST, STUB_SSM_VERSION="1", STUB_SSM_MODIFIED="2026-11-28T00:00:00+00:00",
                   DLD_DCV_PASSWORD_ATTEMPTS="3")
    return box


def test_the_password_is_applied_once_per_parameter_version(box):
    boots = [box.boot(), box.boot()]  # first boot (installs, reboots), then a later boot
    assert box.chpasswd_input() == [f"ubuntu:{FIRST}"]
    # The stack rotates the password: a new parameter version.
    box.env.update(STUB_SSM_VALUE=SECOND, STUB_SSM_VERSION="2", STUB_SSM_MODIFIED="2026-11-29T00:00:00+00:00")
    boots.append(box.boot())
    assert [b.returncode for b in boots] == [0, 0, 0]
    assert box.chpasswd_input() == [f"ubuntu:{FIRST}", f"ubuntu:{SECOND}"]
    assert [len(b.named("chpasswd")) for b in boots] == [1, 0, 1]
    assert box.read(RECORD) == "2 2026-11-29T00:00:00+00:00\n"
    assert oct(box.path(RECORD).stat().st_mode & 0o777) == "0o600"
    assert "deep-learning-desktop: dcv password set from parameter version 2" in box.console_lines()


def test_a_password_changed_on_the_desktop_survives_reboots(box):
    box.boot()
    for _ in range(3):
        assert box.boot().named("chpasswd") == []
    assert box.chpasswd_input() == [f"ubuntu:{FIRST}"]


def test_a_recreated_parameter_at_version_1_again_is_new_to_the_machine(box):
    # `pulumi up --replace` on the parameter starts again at version 1, written later.
    box.boot()
    box.env.update(STUB_SSM_VALUE=SECOND, STUB_SSM_MODIFIED="2026-12-01T00:00:00+00:00")
    box.boot()
    assert box.chpasswd_input() == [f"ubuntu:{FIRST}", f"ubuntu:{SECOND}"]


def test_the_password_appears_in_no_argument_log_console_or_file(box):
    boots = [box.boot(), box.boot()]
    box.env.update(STUB_SSM_VALUE=SECOND, STUB_SSM_VERSION="2")
    boots.append(box.boot())
    assert len(box.chpasswd_input()) == 2  # both were really read
    places = {
        "command lines": box.calls_log.read_text(),
        "boot log": box.read("/var/log/deep-learning-desktop.log"),
        "console": box.console.read_text(),
        "script output": "".join(b.output for b in boots),
        "user data script": box.script(),
    }
    for path in list(box.root.rglob("*")) + list(box.state.rglob("*")):
        if path.is_file() and path.name != "chpasswd.stdin":
            places[str(path)] = path.read_text(errors="replace")
    for secret in (FIRST, SECOND):
        leaks = [where for where, text in places.items() if secret in text]
        assert leaks == [], f"the password is in {leaks}"
    # It was asked for as a SecureString, decrypted, by name, in the stack's region.
    (call, *_) = password_reads(boots[0])
    assert call[:3] == ["aws", "ssm", "get-parameter"]
    assert call[call.index("--name") + 1] == PARAMETER and call[call.index("--region") + 1] == "us-east-1"
    assert "--with-decryption" in call and call[call.index("--output") + 1] == "text"


def password_reads(boot) -> list[list[str]]:
    """The boot's reads of the password parameter (the boot files' parameter is read too)."""
    return [call for call in boot.named("aws") if PARAMETER in call]


def test_a_parameter_not_readable_yet_is_retried_then_the_boot_goes_on(box):
    # IAM applies the role's grant a little late: two refusals, then the value.
    box.env["STUB_SSM_DENIED"] = "2"
    boot = box.boot()
    assert boot.returncode == 0 and boot.reboots == 1
    assert len(password_reads(boot)) == 3
    assert box.chpasswd_input() == [f"ubuntu:{FIRST}"]


def test_a_parameter_never_readable_leaves_the_password_and_says_so(box):
    box.env["STUB_SSM_DENIED"] = "1000"
    first = box.boot()
    assert first.returncode == 0 and first.reboots == 1  # the boot itself completes
    assert len(password_reads(first)) == 3 and box.chpasswd_input() == []
    # Ten seconds between the attempts, none after the last: the boot goes on at once.
    reads = [n for n, call in enumerate(first.calls) if call in password_reads(first)]
    assert first.calls[reads[0]:reads[-1]].count(["sleep", "10"]) == 2
    assert first.calls[reads[-1] + 1:reads[-1] + 2] != [["sleep", "10"]]
    assert not box.path(RECORD).exists()
    assert (f"deep-learning-desktop: dcv password not set: {PARAMETER} not readable yet; the next boot tries again"
            in box.console_lines())
    # Readable at the next boot: set then.
    box.env["STUB_SSM_DENIED"] = "0"
    (box.state / "aws.denied").unlink()
    assert box.boot().returncode == 0
    assert box.chpasswd_input() == [f"ubuntu:{FIRST}"]


def test_a_failed_chpasswd_is_tried_again_at_the_next_boot(box):
    box.env["STUB_FAIL"] = "chpasswd"
    assert box.boot().returncode == 0
    assert not box.path(RECORD).exists()
    assert "deep-learning-desktop: dcv password not set: chpasswd failed; the next boot tries again" \
        in box.console_lines()
    box.env["STUB_FAIL"] = ""
    box.boot()
    assert box.read(RECORD).startswith("1 ")


def test_without_a_parameter_the_password_is_left_alone(box):
    boots = [box.boot(dcv_password_parameter=""), box.boot(dcv_password_parameter="")]
    assert all(b.returncode == 0 and password_reads(b) == [] and b.named("chpasswd") == [] for b in boots)
    assert not box.path(RECORD).exists()
