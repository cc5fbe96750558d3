"""The boot installs the idle agent, keep-awake and their systemd units; DCV's idle disconnect."""

from __future__ import annotations

import configparser
import shutil
import subprocess

import pytest

from boot_sandbox import Sandbox
from cloud_init.boot_files import FILES, MEMBERS, payload, unpack
from cloud_init.render import shipped
from conftest import ROOT

AGENT = "/usr/local/lib/deep-learning-desktop/idle-agent"
SERVICE = "/etc/systemd/system/deep-learning-desktop-idle.service"
TIMER = "/etc/systemd/system/deep-learning-desktop-idle.timer"
ENABLE = ["systemctl", "enable", "--now", "deep-learning-desktop-idle.timer"]


@pytest.fixture
def box(tmp_path):
    return Sandbox(tmp_path / "sandbox", version="24.04", gpu=True, nvidia_ok=True)


def units(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str
    parser.read_string(shipped(name))
    return parser


def dcv_connectivity(box: Sandbox) -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read_string(box.read("/etc/dcv/dcv.conf"))
    return dict(parser["connectivity"])


def test_every_boot_installs_the_agent_keep_awake_and_the_timer(box):
    for boot in (box.boot(), box.boot()):  # the first boot, and a later one
        assert boot.returncode == 0, boot.output
        assert box.read(AGENT) == shipped("idle_agent.py")
        assert box.path(AGENT).stat().st_mode & 0o777 == 0o755
        assert box.path("/usr/local/bin/keep-awake").readlink().as_posix() == AGENT
        assert box.read(SERVICE) == shipped("deep-learning-desktop-idle.service")
        assert box.read(TIMER) == shipped("deep-learning-desktop-idle.timer")
        assert box.path("/var/lib/deep-learning-desktop/idle").is_dir()
        keep_awake = str(box.path("/var/lib/deep-learning-desktop/keep-awake"))
        assert ["chown", "ubuntu:ubuntu", keep_awake] in boot.calls
        reload = boot.calls.index(["systemctl", "daemon-reload"])
        assert boot.calls.index(ENABLE) > reload, "the units are loaded before the timer starts"


def test_the_boot_twice_leaves_the_same_files(box):
    box.boot()
    box.boot()
    before = box.snapshot()
    again = box.boot()
    assert again.returncode == 0 and ENABLE in again.calls
    assert box.snapshot() == before


def test_the_shipped_files_are_the_sources_without_comments():
    packed = unpack(payload())
    # The agent and its units only: the SageMaker defaults have their own parameter
    # (tests/test_sagemaker_config.py).
    assert sorted(packed) == ["deep-learning-desktop-idle.service", "deep-learning-desktop-idle.timer",
                              "idle_agent.py"] == list(MEMBERS)
    for name in FILES:
        source = (ROOT / "cloud_init" / name).read_text()
        kept = [line for line in source.splitlines()[1:] if line.strip() and not line.strip().startswith("#")]
        assert packed[name][1].splitlines() == source.splitlines()[:1] + kept
    compile(shipped("idle_agent.py"), "idle-agent", "exec")


def test_dcv_disconnects_idle_clients_after_an_hour_with_a_warning(box):
    box.boot()
    connectivity = dcv_connectivity(box)
    assert connectivity["idle-timeout"] == "60"
    assert connectivity["idle-timeout-warning"] == "300"
    assert connectivity["enable-quic-frontend"] == "true"
    later = box.boot()
    assert ["systemctl", "restart", "dcvserver"] not in later.calls, "nothing changed: DCV keeps running"


def test_a_desktop_set_up_before_gets_the_idle_timeout_at_its_next_boot(box):
    box.boot()
    conf = box.path("/etc/dcv/dcv.conf")
    # dcv.conf as the first boot wrote it before this change (and one set by hand).
    old = conf.read_text().replace("idle-timeout = 60\nidle-timeout-warning = 300\n", "idle-timeout = 5\n")
    conf.write_text(old)
    later = box.boot()
    assert dcv_connectivity(box)["idle-timeout"] == "60"
    assert dcv_connectivity(box)["idle-timeout-warning"] == "300"
    assert later.calls.count(["systemctl", "restart", "dcvserver"]) == 1
    assert conf.read_text().count("idle-timeout =") == 1
    settled = conf.read_text()
    again = box.boot()
    assert ["systemctl", "restart", "dcvserver"] not in again.calls
    assert conf.read_text() == settled


def test_dcv_conf_without_a_connectivity_section_gets_one(box):
    box.boot()
    conf = box.path("/etc/dcv/dcv.conf")
    conf.write_text('[security]\nauthentication = "system"\n')
    box.boot()
    assert dcv_connectivity(box) == {"idle-timeout": "60", "idle-timeout-warning": "300"}


def test_units_run_the_agent_once_a_minute_as_a_oneshot_service():
    service = units("deep-learning-desktop-idle.service")
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["ExecStart"].split() == ["/usr/bin/python3", "-IS", AGENT]
    # A run that hangs ends before the next minute's.
    assert int(service["Service"]["TimeoutStartSec"]) < 60
    assert "Install" not in service, "the timer starts it, nothing else"
    timer = units("deep-learning-desktop-idle.timer")
    assert timer["Timer"]["OnUnitActiveSec"] == "1min"
    assert timer["Timer"]["OnBootSec"] == "1min"
    assert timer["Timer"]["AccuracySec"] == "1s"
    assert timer["Install"]["WantedBy"] == "timers.target"
    assert "Unit" not in timer["Timer"], "the timer starts the service of its own name"


def test_systemd_accepts_the_units(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is required (Debian package systemd); tests/run installs it"
    names = ("deep-learning-desktop-idle.service", "deep-learning-desktop-idle.timer")
    for name in names:
        (tmp_path / name).write_text(shipped(name))
    done = subprocess.run([analyze, "verify", *(str(tmp_path / n) for n in names)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


def test_systemd_verify_can_fail(tmp_path):
    """The check above is not vacuous: a wrong service type is reported."""
    path = tmp_path / "deep-learning-desktop-idle.service"
    path.write_text(shipped("deep-learning-desktop-idle.service").replace("oneshot", "oneshoot"))
    done = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, check=False)
    assert "oneshoot" in done.stdout + done.stderr
