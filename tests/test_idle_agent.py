"""The idle agent, run as the boot ships it, over simulated time (faketime) in a sandbox.

Policy 10 minutes unless a test says otherwise. A "minute" runs the agent once after
advancing the clock and the /proc counters (tests/idle_sandbox.py). Runs 4 minutes
apart (within the agent's 5-minute gap) check "stays up for hours" with fewer runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from idle_sandbox import Desktop, Imds, closed_port


@pytest.fixture
def imds():
    server = Imds()
    yield server
    server.close()


@pytest.fixture
def desktop(tmp_path, imds):
    def make(**options) -> Desktop:
        options.setdefault("policy", "10")
        return Desktop(tmp_path / f"desktop{len(list(tmp_path.iterdir()))}", imds=imds, **options)

    return make


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def run_until_poweroff(box: Desktop, *, limit: int, step: float = 60, **activity) -> float | None:
    """Run minute after minute (at most `limit` runs); the simulated time of the first poweroff."""
    for _ in range(limit):
        box.minute(seconds=step, **activity)
        if box.poweroffs:
            return box.t
    return None


def test_all_quiet_powers_off_exactly_once_after_the_policys_minutes(desktop):
    box = desktop()
    box.minute()  # the first reading has no rates yet: busy
    box.minute()
    first_idle = box.t
    for _ in range(9):
        box.minute()
        assert box.poweroffs == 0, "not before 10 idle minutes"
    box.minute()
    assert box.t - first_idle == 600
    assert box.poweroffs == 1
    for _ in range(9):
        box.minute()
    assert box.poweroffs == 1, "not twice"
    assert box.console_lines() == [
        f"deep-learning-desktop: idle since {iso(first_idle)}",
        "deep-learning-desktop: stopping after 10 idle minutes",
    ]
    log = box.log_lines()
    assert len(log) == 21 and sum(" stopping " in line for line in log) == 1
    # Since boot the CPUs averaged 2 cores and the network 5 GB: the readings are differences.
    assert "cores=0.0 " in log[5] and "mbit=0.0 " in log[5] and "dcv=0 " in log[5]


def test_just_below_every_threshold_is_idle(desktop):
    """0.45 cores, 9% GPU, 9.5 Mbit/s (loopback carries 7 times more): idle, stops at the policy."""
    box = desktop()
    box.set(gpu=9)
    stopped = run_until_poweroff(box, limit=14, cores=0.45, mbit=9.5)
    assert stopped is not None
    line = next(line for line in box.log_lines() if " stopping " in line)
    assert "cores=0.45 " in line and "gpu=9 " in line and "mbit=9.5 " in line


SIGNALS = {
    "dcv client": (dict(dcv=1), {}, "dcv=1 "),
    "ssh session": (dict(ssh=1), {}, "ssh=1 "),
    "session manager": (dict(ssm=1), {}, "ssm=1 "),
    "gpu at 10%": (dict(gpu=10), {}, "gpu=10 "),
    "half a core": (dict(), dict(cores=0.5), "cores=0.5 "),
    "10 Mbit/s download": (dict(), dict(mbit=10), "mbit=10.0 "),
}


@pytest.mark.parametrize("signal_name", sorted(SIGNALS))
def test_each_busy_signal_alone_keeps_it_up_for_hours(desktop, signal_name):
    state, activity, reading = SIGNALS[signal_name]
    box = desktop()
    box.set(**state)
    # Two hours, a run every 4 minutes (the same desktop quiet would stop after 3 runs).
    assert run_until_poweroff(box, limit=30, step=240, **activity) is None
    assert reading in box.log_lines()[-1]
    assert box.console_lines() == []
    # The signal ends: the desktop stops 10 minutes later, so the signal was what held it.
    box.set(dcv=0, ssh=0, ssm=0, gpu=0)
    box.minute(seconds=240)
    idle_from = box.t
    stopped = run_until_poweroff(box, limit=5, step=240)
    assert stopped is not None and 600 <= stopped - idle_from <= 840


@pytest.mark.parametrize("case", ["dcv fails", "dcv says nonsense", "nvidia-smi fails on a gpu instance",
                                  "imds unreachable", "keep-awake file unreadable", "no IdleStopMinutes tag"])
def test_a_probe_that_cannot_tell_keeps_it_up(desktop, imds, case):
    box = desktop()
    env = {}
    if case == "dcv fails":
        box.fail("dcv")
    elif case == "dcv says nonsense":
        (box.stubs / "dcv.out").write_text("Session console not found\n")
    elif case == "nvidia-smi fails on a gpu instance":
        box.fail("nvidia-smi", 9)
    elif case == "imds unreachable":
        env = {"DLD_IMDS": closed_port()}
    elif case == "keep-awake file unreadable":
        (box.root / "var/lib/deep-learning-desktop/keep-awake/until").write_text("tomorrow\n")
    else:
        del imds.tags["IdleStopMinutes"]
    for _ in range(5):
        box.advance(240)
        done = box.run(env=env)
        assert done.returncode == 0, done.stderr
    assert box.poweroffs == 0
    assert all(" busy " in line for line in box.log_lines())
    last = box.log_lines()[-1]
    assert "unknown" in last or "no idle policy" in last
    # The probe answers again: the same desktop stops.
    box.fail("dcv", None)
    box.fail("nvidia-smi", None)
    box.set(dcv=0)
    (box.root / "var/lib/deep-learning-desktop/keep-awake/until").unlink(missing_ok=True)
    imds.tags["IdleStopMinutes"] = "10"
    assert run_until_poweroff(box, limit=5, step=240) is not None


def test_a_failing_nvidia_smi_on_an_instance_without_gpu_is_no_reason(desktop):
    box = desktop(gpu=False)
    box.fail("nvidia-smi", 9)
    assert run_until_poweroff(box, limit=14) is not None
    assert box.calls("nvidia-smi") == [], "no GPU on the bus: nvidia-smi is not even asked"


def test_the_recheck_before_stopping_sees_a_client_that_just_connected(desktop):
    box = desktop()
    for _ in range(11):
        box.minute()
    assert box.poweroffs == 0
    # The next run reaches 10 idle minutes; at its re-check a DCV client has connected.
    (box.stubs / "dcv.seq").write_text(json.dumps({"num-of-connections": 0}) + "\n"
                                       + json.dumps({"num-of-connections": 1}) + "\n")
    box.minute()
    assert box.poweroffs == 0
    assert box.console_lines()[-1] == "deep-learning-desktop: busy again (dcv 1 connected)"
    assert len(box.calls("dcv")) == 13


def test_never_in_the_first_15_minutes_after_a_boot(desktop):
    box = desktop(uptime=0)
    stopped_up = None
    for _ in range(20):
        box.minute()
        if box.poweroffs:
            stopped_up = box.up
            break
    assert stopped_up == 900
    assert any(" grace " in line for line in box.log_lines())


def test_a_new_boot_starts_the_count_over(desktop):
    box = desktop(policy="30")
    for _ in range(26):
        box.minute()
    assert box.poweroffs == 0
    box.reboot()
    stopped_up = None
    for _ in range(40):
        box.minute()
        if box.poweroffs:
            stopped_up = box.up
            break
    # First run of the boot: no rates; idle from the second (120 s): 30 minutes later.
    assert stopped_up == 120 + 30 * 60
    # A boot starts quiet: the first busy reading of a boot is no "busy again".
    assert [line.split(" since ")[0] for line in box.console_lines()] == [
        "deep-learning-desktop: idle", "deep-learning-desktop: idle",
        "deep-learning-desktop: stopping after 30 idle minutes"]


@pytest.mark.parametrize("source", ["keep-awake on the desktop", "KeepAwakeUntil tag from the laptop"])
def test_keep_awake_holds_until_it_expires(desktop, imds, source):
    box = desktop()
    box.minute()
    box.minute()
    deadline = box.t + 3600
    if source == "keep-awake on the desktop":
        done = box.keep_awake("1h")
        assert done.returncode == 0, done.stderr
    else:
        imds.tags["KeepAwakeUntil"] = str(int(deadline))
    stopped = run_until_poweroff(box, limit=25, step=240)
    # Kept up to the deadline, then 10 idle minutes (runs are 4 minutes apart).
    assert stopped is not None and deadline + 600 <= stopped <= deadline + 600 + 480
    assert f"deep-learning-desktop: busy again (keep-awake until {iso(int(deadline))})" in box.console_lines()


def test_zero_never_stops_and_a_changed_tag_counts_at_the_next_run(desktop, imds):
    box = desktop(policy="0")
    box.minute()
    box.minute()
    first_idle = box.t
    assert run_until_poweroff(box, limit=30, step=240) is None  # two quiet hours
    minutes = (box.t - first_idle) // 60
    assert box.log_lines()[-1].split()[1:3] == ["idle", f"idle={minutes}/0min"]
    imds.tags["IdleStopMinutes"] = "60"
    box.minute()
    assert box.poweroffs == 1
    assert box.console_lines()[-1] == f"deep-learning-desktop: stopping after {minutes + 1} idle minutes"


def test_a_longer_policy_set_midway_holds_the_desktop_longer(desktop, imds):
    box = desktop()
    for _ in range(9):
        box.minute()
    imds.tags["IdleStopMinutes"] = "30"
    stopped = run_until_poweroff(box, limit=30)
    assert stopped is not None
    assert box.console_lines()[-1] == "deep-learning-desktop: stopping after 30 idle minutes"


def test_console_lines_only_on_changes(desktop):
    box = desktop(policy="60")
    for _ in range(5):
        box.minute()
    quiet_since = box.t - 180
    box.set(ssh=1)
    for _ in range(5):
        box.minute()
    box.set(ssh=0)
    for _ in range(3):
        box.minute()
    assert box.console_lines() == [
        f"deep-learning-desktop: idle since {iso(quiet_since)}",
        "deep-learning-desktop: busy again (ssh 1 connected)",
        f"deep-learning-desktop: idle since {iso(box.t - 120)}",
    ]
    assert len(box.log_lines()) == 13


def test_state_survives_a_restart_and_a_run_killed_midway(desktop):
    box = desktop()
    for _ in range(6):
        box.minute()
    saved = box.state_file.read_text()
    # A run hangs in a probe and is killed (as systemd's TimeoutStartSec would).
    (box.stubs / "dcv.sleep").write_text("30")
    box.advance(60)
    command = [sys.executable, "-IS", str(box.agent)]
    asked = len(box.calls("dcv"))
    run = subprocess.Popen(command, env={**box.env(), **box.clock()}, start_new_session=True)
    # Killed once it hangs in the dcv probe (the stub logs the call, then sleeps), not
    # after a guessed delay: on a loaded machine the run may not have got that far.
    deadline = time.monotonic() + 20
    while len(box.calls("dcv")) == asked and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(box.calls("dcv")) == asked + 1 and run.poll() is None, "the run hangs in the dcv probe"
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    (box.stubs / "dcv.sleep").unlink()
    assert box.state_file.read_text() == saved
    # The count goes on from the state the last complete run left: 10 idle minutes after
    # the first idle reading, as if nothing had happened.
    first_idle = box.t - 60 - 4 * 60  # runs 2 to 6 were idle, a minute apart
    stopped = run_until_poweroff(box, limit=10)
    assert stopped == first_idle + 600


def test_a_broken_state_file_starts_afresh_without_stopping(desktop):
    box = desktop()
    for _ in range(8):
        box.minute()
    box.state_file.write_text('{"since": 1, "boot"')
    box.minute()
    assert box.poweroffs == 0
    assert "no cpu and download rates yet" in box.log_lines()[-1]
    assert run_until_poweroff(box, limit=12) is not None


def test_imds_is_asked_with_a_token(desktop, imds):
    box = desktop()
    box.minute()
    methods = [(method, path) for method, path, _ in imds.requests]
    assert methods == [("PUT", "/latest/api/token"),
                       ("GET", "/latest/meta-data/tags/instance/IdleStopMinutes"),
                       ("GET", "/latest/meta-data/tags/instance/KeepAwakeUntil")]
    assert imds.requests[0][2] and imds.requests[1][2] == imds.requests[2][2] == "imds-token-for-tests"


def test_the_log_stays_bounded(desktop):
    box = desktop()
    log = box.root / "var/log/deep-learning-desktop-idle.log"
    log.write_text("x" * 1_000_001)
    box.minute()
    assert log.with_name(log.name + ".1").stat().st_size == 1_000_001
    assert len(log.read_text().splitlines()) == 1


def test_keep_awake_command(desktop):
    box = desktop()
    until = box.root / "var/lib/deep-learning-desktop/keep-awake/until"
    done = box.keep_awake("4h")
    assert done.returncode == 0
    assert int(until.read_text()) == int(box.t) + 4 * 3600
    assert done.stdout == f"keep-awake: until {iso(int(box.t) + 4 * 3600)}\n"
    assert box.keep_awake().stdout == done.stdout
    assert box.keep_awake("1h30m").returncode == 0 and int(until.read_text()) == int(box.t) + 5400
    assert box.keep_awake("72h").returncode == 0 and int(until.read_text()) == int(box.t) + 72 * 3600
    for bad in (["73h"], ["4"], ["soon"], ["4h", "now"], ["3d1m"], ["x4h"], ["4x1h"], ["h"], ["0h"]):
        done = box.keep_awake(*bad)
        assert done.returncode == 2, bad
        assert "at most 72h" in done.stderr
        assert int(until.read_text()) == int(box.t) + 72 * 3600, "a refused value changes nothing"
    done = box.keep_awake("off")
    assert done.returncode == 0 and not until.exists()
    assert done.stdout == "keep-awake: off\n"
    assert box.keep_awake("off").returncode == 0


def test_keep_awake_does_not_follow_a_symlink(desktop):
    """ubuntu owns the directory: root must not read a file a link there points to."""
    box = desktop()
    elsewhere = box.base / "root-only"
    elsewhere.write_text(f"{box.t + 86400}\n")
    (box.root / "var/lib/deep-learning-desktop/keep-awake/until").symlink_to(elsewhere)
    box.minute()
    box.minute()
    line = box.log_lines()[-1]
    assert " busy " in line and "awake unknown" in line
    assert "keep-awake until" not in line
