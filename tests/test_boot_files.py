"""The files the boot installs travel in a Parameter Store parameter: the payload, and
what the boot does with it (installs it; keeps the old agent when it cannot read it;
refuses a payload with other members)."""

from __future__ import annotations

import base64
import gzip
import io
import tarfile

import pytest

from boot_sandbox import Sandbox
from cloud_init import split_parts, render
from cloud_init.boot_files import (
    ADVANCED_LIMIT, FILES, MEMBERS, STANDARD_LIMIT, BootFilesTooLarge, payload, texts, tier, unpack,
)
from cloud_init.render import shipped
from boot_sandbox import DEFAULT_VALUES

AGENT = "/usr/local/lib/deep-learning-desktop/idle-agent"
SERVICE = "/etc/systemd/system/deep-learning-desktop-idle.service"
TIMER = "/etc/systemd/system/deep-learning-desktop-idle.timer"
ENABLE = ["systemctl", "enable", "--now", "deep-learning-desktop-idle.timer"]
NOT_UPDATED = "deep-learning-desktop: idle agent not updated: "
REFUSED = (f"{NOT_UPDATED}{DEFAULT_VALUES['boot_files_parameter']} refused: not a tar.gz of the files "
           "deep-learning-desktop-idle.service deep-learning-desktop-idle.timer idle_agent.py; "
           "the next boot tries again")


@pytest.fixture
def box(tmp_path):
    return Sandbox(tmp_path / "sandbox", version="24.04", gpu=True, nvidia_ok=True)


def tar_payload(members: list[tuple[tarfile.TarInfo, bytes]]) -> str:
    """A payload packed by hand, for what the real builder never makes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return base64.b64encode(gzip.compress(raw.getvalue())).decode()


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = 0o755
    return info, data


def expected_members(agent: bytes = b"#!/usr/bin/python3\nprint('other agent')\n"):
    return [regular(name, agent if name == "idle_agent.py" else texts()[name].encode()) for name in MEMBERS]


def extractions(boot) -> list[list[str]]:
    """The boot's calls of tar that unpack the payload."""
    return [call for call in boot.named("tar") if "-xzf" in call and call[2].endswith("/boot-files.tgz")]


def not_updated_lines(box: Sandbox) -> list[str]:
    return [line for line in box.console_lines() if line.startswith(NOT_UPDATED)]


# --- the payload --------------------------------------------------------------

def test_the_payload_holds_exactly_the_files_with_their_modes():
    packed = unpack(payload())
    assert {name: mode for name, (mode, _) in packed.items()} == {
        "idle_agent.py": 0o755, "deep-learning-desktop-idle.service": 0o644,
        "deep-learning-desktop-idle.timer": 0o644}
    for name, (_, text) in packed.items():
        assert text == shipped(name)


def test_the_payload_is_the_same_for_the_same_files():
    """Times, owners and order are fixed: an unchanged agent never changes the parameter."""
    value = payload()
    assert payload() == value
    assert payload(dict(reversed(list(texts().items())))) == value
    data = base64.b64decode(value)
    assert data[4:8] == b"\0\0\0\0", "no time in the gzip header"
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(MEMBERS)
    assert {(m.mtime, m.uid, m.gid, m.type) for m in members} == {(0, 0, 0, tarfile.REGTYPE)}
    assert payload({**texts(), "idle_agent.py": shipped("idle_agent.py") + "# changed\n"}) != value


def test_a_payload_over_an_advanced_parameters_limit_is_refused():
    # Random text does not compress: about 7 KB of it is over 8 KB as base64.
    noise = base64.b64encode(bytes(range(256)) * 5 + __import__("os").urandom(6000)).decode()
    with pytest.raises(BootFilesTooLarge) as raised:
        payload({**texts(), "idle_agent.py": noise})
    assert isinstance(raised.value, ValueError)
    assert raised.value.size > ADVANCED_LIMIT == 8192
    assert f"{raised.value.size:,}" in str(raised.value) and "8,192" in str(raised.value)
    assert len(payload()) <= ADVANCED_LIMIT


def test_the_tier_follows_the_size():
    assert tier("x" * STANDARD_LIMIT) == "Standard"
    assert tier("x" * (STANDARD_LIMIT + 1)) == "Advanced"


def test_the_user_data_carries_the_parameters_name_not_the_files():
    _, script = split_parts(render(**DEFAULT_VALUES))
    assert f"BOOT_FILES_PARAMETER={DEFAULT_VALUES['boot_files_parameter']}\n" in script
    assert "def main" not in script and "OnUnitActiveSec" not in script


# --- the boot -----------------------------------------------------------------

def test_a_boot_that_was_refused_the_parameter_a_while_installs_the_files(box):
    box.env["STUB_BOOT_FILES_DENIED"] = "3"
    first = box.boot()
    assert first.returncode == 0, first.output
    reads = [c for c in first.named("aws") if DEFAULT_VALUES["boot_files_parameter"] in c]
    assert len(reads) == 4
    assert reads[0][1:] == ["ssm", "get-parameter", "--region", "us-east-1", "--name",
                            DEFAULT_VALUES["boot_files_parameter"], "--query", "Parameter.Value", "--output", "text"]
    assert box.read(AGENT) == shipped("idle_agent.py")
    assert box.read(SERVICE) == shipped("deep-learning-desktop-idle.service")
    assert not not_updated_lines(box)
    assert not list(box.path("/var/lib/deep-learning-desktop").glob("boot-files.*")), "the scratch is gone"


def test_an_unreadable_parameter_keeps_the_agent_installed_before(box):
    assert box.boot().returncode == 0  # first boot: installs, reboots
    before = {path: box.read(path) for path in (AGENT, SERVICE, TIMER)}
    box.env["STUB_BOOT_FILES"] = ""  # ParameterNotFound, at every attempt
    later = box.boot()
    assert later.returncode == 0, later.output
    assert {path: box.read(path) for path in (AGENT, SERVICE, TIMER)} == before
    assert box.path(AGENT).stat().st_mode & 0o777 == 0o755
    assert ENABLE not in later.calls
    assert len([c for c in later.named("aws") if DEFAULT_VALUES["boot_files_parameter"] in c]) == 12, "bounded retries"
    assert not_updated_lines(box) == [
        f"{NOT_UPDATED}{DEFAULT_VALUES['boot_files_parameter']} not readable after 12 attempts; "
        "the next boot tries again"]
    assert "deep-learning-desktop: ready" in box.console_lines(), "the boot goes on"
    assert not any(line.startswith("deep-learning-desktop: failed") for line in box.console_lines())


def test_a_first_boot_without_the_parameter_goes_on_without_an_agent(box):
    box.env["STUB_BOOT_FILES"] = ""
    first = box.boot()
    assert first.returncode == 0, first.output
    assert first.reboots == 1
    assert not box.path(AGENT).exists() and ENABLE not in first.calls
    assert len(not_updated_lines(box)) == 1


def test_a_changed_payload_lands_at_the_next_boot(box):
    box.boot()
    box.env["STUB_BOOT_FILES"] = tar_payload(expected_members(b"#!/usr/bin/python3\nprint('new')\n"))
    later = box.boot()
    assert later.returncode == 0, later.output
    assert box.read(AGENT) == "#!/usr/bin/python3\nprint('new')\n"
    assert ENABLE in later.calls


@pytest.mark.parametrize("bad", [
    "../../etc/passwd", "/etc/passwd", "idle_agent.py/../../../passwd", "./passwd",
])
def test_a_member_outside_the_expected_names_is_refused_and_nothing_is_written(box, bad):
    box.boot()
    before = box.read(AGENT)
    box.env["STUB_BOOT_FILES"] = tar_payload(expected_members() + [regular(bad, b"root::0:0::/root:/bin/bash\n")])
    later = box.boot()
    assert later.returncode == 0, later.output
    assert box.read(AGENT) == before
    assert not [p for p in box.base.rglob("passwd")], "nothing is written outside"
    assert not extractions(later), "refused on its list of members, before extracting anything"
    assert not_updated_lines(box) == [REFUSED]


def test_a_member_that_is_a_link_is_refused(box):
    box.boot()
    before = box.read(AGENT)
    link = tarfile.TarInfo("idle_agent.py")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
    members = [m for m in expected_members() if m[0].name != "idle_agent.py"] + [(link, b"")]
    box.env["STUB_BOOT_FILES"] = tar_payload(sorted(members, key=lambda m: m[0].name))
    later = box.boot()
    assert later.returncode == 0
    assert box.read(AGENT) == before
    assert not extractions(later), "the names are right: refused on the members' types, before extracting"
    assert not_updated_lines(box) == [REFUSED]


@pytest.mark.parametrize("value,complaint", [
    ("not base64 at all!", "base64: invalid input"),
    (base64.b64encode(b"plain text, no tar").decode(), "gzip: stdin: not in gzip format"),
])
def test_a_payload_that_does_not_decode_is_refused(box, value, complaint):
    box.boot()
    before = box.read(AGENT)
    box.env["STUB_BOOT_FILES"] = value
    later = box.boot()
    assert later.returncode == 0
    assert box.read(AGENT) == before
    assert not_updated_lines(box) == [REFUSED]
    assert complaint in later.output, "the tool's own complaint is in the log"


def test_no_parameter_name_means_no_files_and_no_read(box):
    boot = box.boot(boot_files_parameter="")
    assert boot.returncode == 0
    assert not [c for c in boot.named("aws") if "Parameter.Value" in c]
    assert not box.path(AGENT).exists() and not not_updated_lines(box)
