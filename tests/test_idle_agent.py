"""The idle agent, run as the boot ships it, over simulated time (faketime) in a sandbox.

Policy 10 minutes unless a test says otherwise. A "minute" runs the agent once after
advancing the clock and the /proc counters (tests/idle_sandbox.py). Runs 4 minutes
apart (within the agent's 5-minute gap) check "stays up for hours" with fewer runs.
A run is a fork of the sandbox's warm interpreter; the tests with ``fork=False`` run the
agent (and keep-awake) as fresh ``python3 -IS`` processes, as the timer and a person do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
    assert all(f"{k}=0.0 " in log[5] for k in ("cores", "iowait", "rx", "tx", "disk")) and "dcv=0 " in log[5]


def test_just_below_every_threshold_is_idle(desktop):
    """0.45 cores, 0.45 in iowait, 9% GPU, 9.5 Mbit/s each way (loopback carries 7 times more),
    19 MB/s on the disk (its partition and a loop device 9 times more), and a whole core
    stolen by the hypervisor for another machine (not this desktop's work): idle, stops on time."""
    box = desktop()
    box.set(gpu=[9, 0, 3, 9])
    box.minute()
    stopped = run_until_poweroff(box, limit=14, cores=0.45, iowait=0.45, mbit=9.5, tx=9.5, disk_mb=19, steal=1.0)
    assert stopped == box.t and box.log_lines()[1].split()[1] == "idle"
    assert len(box.log_lines()) == 12, "idle from the second run, stopped 10 minutes later"
    line = box.log_lines()[-1]
    for reading in ("cores=0.45 ", "iowait=0.45 ", "gpu=9 ", "rx=9.5 ", "tx=9.5 ", "disk=19.0 "):
        assert reading in line


SIGNALS = {
    "dcv client": (dict(dcv=1), {}, "dcv=1 "),
    "ssh session": (dict(ssh=1), {}, "ssh=1 "),
    "session manager": (dict(ssm=1), {}, "ssm=1 "),
    "gpu at 10%": (dict(gpu=10), {}, "gpu=10 "),
    "half a core": (dict(), dict(cores=0.5), "cores=0.5 "),
    "10 Mbit/s download": (dict(), dict(mbit=10), "rx=10.0 "),
    "10 Mbit/s upload": (dict(), dict(tx=10), "tx=10.0 "),
    "half a core in iowait": (dict(), dict(iowait=0.5), "iowait=0.5 "),
    "20 MB/s disk": (dict(), dict(disk_mb=20), "disk=20.0 "),
    "one busy gpu of four": (dict(gpu=[0, 0, 95, 0]), {}, "gpu=95 "),
}


@pytest.mark.parametrize("signal_name", sorted(SIGNALS))
def test_each_busy_signal_alone_keeps_it_up_for_hours(desktop, signal_name):
    state, activity, reading = SIGNALS[signal_name]
    box = desktop()
    box.set(**state)
    # 90 minutes, a run every 5 minutes (the same desktop quiet would stop after 3 runs).
    assert run_until_poweroff(box, limit=18, step=300, **activity) is None
    assert reading in box.log_lines()[-1]
    assert box.console_lines() == []
    # The signal ends: the desktop stops 10 minutes later, so the signal was what held it.
    box.set(dcv=0, ssh=0, ssm=0, gpu=0)
    box.minute(seconds=240)
    idle_from = box.t
    stopped = run_until_poweroff(box, limit=5, step=240)
    assert stopped is not None and 600 <= stopped - idle_from <= 840


PROBE_FAILURES = {
    "dcv fails": "dcv unknown: dcv exit 1",
    "dcv says nonsense": "dcv unknown: Expecting value: line 1 column 1 (char 0)",
    "nvidia-smi fails with the module loaded": "gpu unknown: nvidia-smi exit 9",
    "nvidia-smi gives no utilization": "gpu unknown: nvidia-smi gave no utilization",
    "imds unreachable": "tags unknown: [Errno 111] Connection refused",
    "imds error for KeepAwakeUntil": "tags unknown: IMDS KeepAwakeUntil: HTTP 500",
    "imds refuses the token": "tags unknown: IMDS IdleStopMinutes: HTTP 401",
    "no IdleStopMinutes tag": "no idle policy: IdleStopMinutes tag missing or negative",
}


@pytest.mark.parametrize("case", sorted(PROBE_FAILURES))
def test_a_probe_that_cannot_tell_keeps_it_up(desktop, imds, case):
    box = desktop()
    box.minute()
    env = {}
    if case == "dcv fails":
        box.fail("dcv")
    elif case == "dcv says nonsense":
        (box.stubs / "dcv.out").write_text("Session console not found\n")
    elif case == "nvidia-smi fails with the module loaded":
        box.fail("nvidia-smi", 9)
    elif case == "nvidia-smi gives no utilization":
        (box.stubs / "nvidia-smi.out").write_text("[N/A]\n")  # as a GPU in MIG mode answers
    elif case == "imds unreachable":
        env = {"DLD_IMDS": closed_port()}
    elif case == "imds error for KeepAwakeUntil":
        imds.errors["KeepAwakeUntil"] = 500
    elif case == "imds refuses the token":
        imds.errors["IdleStopMinutes"] = 401
    else:
        del imds.tags["IdleStopMinutes"]
    for _ in range(5):
        box.advance(240)
        done = box.run(env=env)
        assert done.returncode == 0, done.stderr
    assert box.poweroffs == 0
    lines = box.log_lines()[1:]
    assert all(line.split()[1] == "busy" and line.endswith(" " + PROBE_FAILURES[case]) for line in lines), lines
    # The probe answers again: the same desktop stops 10 minutes after its first idle run.
    box.fail("dcv", None)
    box.fail("nvidia-smi", None)
    box.set(dcv=0, gpu=0)
    imds.errors.clear()
    imds.tags["IdleStopMinutes"] = "10"
    box.minute(seconds=240)
    first_idle = box.t
    assert run_until_poweroff(box, limit=5, step=200) == first_idle + 600


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
    # No rates at the first run; idle from uptime 120 s; its 10 minutes reached at 720 s, inside
    # the first 15 minutes: "grace" (it would stop, but not yet); at 900 s it stops.
    assert [line.split()[1] for line in box.log_lines()] == ["busy"] + ["idle"] * 10 + ["grace"] * 3 + ["stopping"]


def test_a_poweroff_that_fails_is_logged_and_the_count_starts_over(desktop):
    box = desktop()
    box.fail("systemctl", 1)
    box.minute()
    first_idle = box.t + 60
    assert run_until_poweroff(box, limit=14) == first_idle + 600
    assert [line.split()[1] for line in box.log_lines()[-2:]] == ["stopping", "poweroff-failed-1"]
    # Still up: it tries again only after another whole idle period, never at the next run.
    tried = box.t
    for _ in range(12):
        box.minute()
        if box.poweroffs == 2:
            break
    assert box.poweroffs == 2 and box.t == tried + 600


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
        # A process of its own, as a person runs the command.
        done = box.keep_awake("1h", fork=False)
        assert done.returncode == 0, done.stderr
    else:
        imds.tags["KeepAwakeUntil"] = str(int(deadline))
    stopped = run_until_poweroff(box, limit=25, step=240)
    # Kept up to the deadline, then 10 idle minutes (runs are 4 minutes apart).
    assert stopped is not None and deadline + 600 <= stopped <= deadline + 600 + 480
    assert f"deep-learning-desktop: busy again (keep-awake until {iso(int(deadline))})" in box.console_lines()


def test_the_longest_keep_awake_72_hours_is_honoured_and_a_longer_one_is_not(desktop, imds):
    """`keep-awake 72h` from the laptop, read by the agent a few seconds later: held. A tag
    further ahead than 72 hours and the minute the clocks may differ is ignored, and said."""
    box = desktop()
    box.minute()
    imds.tags["KeepAwakeUntil"] = str(int(box.t + 60 + 72 * 3600 - 5))  # set 5 s before this run
    box.minute()
    assert box.log_lines()[-1].split()[1] == "busy" and "keep-awake until " in box.log_lines()[-1]
    # The minute the clocks may differ, to the second: 72 hours and 60 s ahead is held, 61 not.
    imds.tags["KeepAwakeUntil"] = str(int(box.t + 60 + 72 * 3600 + 60))
    box.minute()
    assert box.log_lines()[-1].split()[1] == "busy" and "ignored" not in box.log_lines()[-1]
    imds.tags["KeepAwakeUntil"] = str(int(box.t + 60 + 72 * 3600 + 61))
    box.minute()
    assert "keep-awake tag KeepAwakeUntil ignored: more than 72 hours ahead" in box.log_lines()[-1]


def test_a_quick_reboot_starts_the_idle_count_over(desktop):
    """Idle 25 of its 30 minutes, then a reboot of a minute: the new boot counts its own
    30 minutes (from its first idle run), not the 5 left of the old one."""
    box = desktop(policy="30")
    box.minute()
    assert run_until_poweroff(box, limit=25) is None
    box.reboot(after_seconds=60)
    box.minute()  # the new boot's first run: no rates yet, busy
    box.minute()
    first_idle = box.t
    assert run_until_poweroff(box, limit=40) == first_idle + 1800


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


def test_an_empty_idle_tag_reads_as_0_never_and_a_word_keeps_it_up_saying_so(desktop, imds):
    """EC2 lets a tag's value be empty: read as 0, never stop (the side that loses nothing),
    not as a minute. A value that is no number ("ten") is a probe that cannot tell: the
    desktop stays up, and the log and the console name the tag."""
    box = desktop()
    imds.tags["IdleStopMinutes"] = ""
    box.minute()
    assert run_until_poweroff(box, limit=8, step=240) is None  # half an hour quiet
    state, idle = box.log_lines()[-1].split()[1:3]
    assert state == "idle" and idle.endswith("/0min"), box.log_lines()[-1]
    imds.tags["IdleStopMinutes"] = "ten"
    assert run_until_poweroff(box, limit=8, step=240) is None
    assert box.log_lines()[-1].split()[1] == "busy"
    assert box.log_lines()[-1].endswith(" tags unknown: IdleStopMinutes is not a number")
    assert any(line.startswith("deep-learning-desktop: idle stop blocked: tags unreadable "
                               "(IdleStopMinutes is not a number) since ") for line in box.console_lines())


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
    # What libfaketime made for the run (its stub shared it), which only a normal exit removes:
    # a later process with this pid would fail on it.
    for leftover in (f"faketime_shm_{run.pid}", f"sem.faketime_sem_{run.pid}"):
        Path("/dev/shm", leftover).unlink(missing_ok=True)
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
    line = box.log_lines()[-1]
    assert " busy idle=0/10min " in line and " no rates yet | state /var/lib/deep-learning-desktop/idle/state.json " \
        "unreadable (Expecting ':' delimiter: line 1 column 20 (char 19)): started afresh" in line
    # Afresh: idle from the next run, stopped 10 minutes after it.
    first_idle = box.t + 60
    assert run_until_poweroff(box, limit=14) == first_idle + 600


@pytest.mark.parametrize("state", ['[1, 2]', '{"t": "noon", "boot": 3}', '{"t": 1, "boot": "%s", "up": 1, "cpu": 5}'])
def test_a_state_of_the_wrong_shape_starts_afresh_with_a_log_line(desktop, state):
    box = desktop()
    box.minute()
    box.state_file.write_text(state.replace("%s", box.boot_id))
    box.minute()
    box.minute()
    first_idle = box.t
    assert "started afresh" in box.log_lines()[1] and box.poweroffs == 0
    assert run_until_poweroff(box, limit=12) == first_idle + 600


def test_imds_is_asked_with_a_token(desktop, imds):
    # A fresh `python3 -IS` as the timer starts it (the other tests mostly fork the zygote).
    box = desktop(fork=False)
    box.minute()
    methods = [(method, path) for method, path, _ in imds.requests]
    assert methods == [("PUT", "/latest/api/token"),
                       ("GET", "/latest/meta-data/tags/instance/IdleStopMinutes"),
                       ("GET", "/latest/meta-data/tags/instance/KeepAwakeUntil"),
                       ("GET", "/latest/meta-data/tags/instance/IdleBlockedHours"),
                       ("GET", "/latest/meta-data/tags/instance/CapacityBlockEnd"),
                       ("GET", "/latest/meta-data/spot/instance-action")]
    assert imds.requests[0][2] and {token for _, _, token in imds.requests[1:]} == {"imds-token-for-tests"}
    assert imds.hosts == ["169.254.169.254"] * 6


def test_the_log_stays_bounded(desktop):
    box = desktop(fork=False)
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
    # A data file root's agent reads: no execute bit, and nobody but its owner writes it.
    assert until.stat().st_mode & 0o133 == 0, oct(until.stat().st_mode)
    assert box.keep_awake().stdout == done.stdout
    assert box.keep_awake("1h30m").returncode == 0 and int(until.read_text()) == int(box.t) + 5400
    done = box.keep_awake("72h")
    assert done.returncode == 0 and int(until.read_text()) == int(box.t) + 72 * 3600
    assert done.stdout == f"keep-awake: until {iso(int(box.t) + 72 * 3600)}\n"
    assert box.keep_awake("1s").returncode == 0 and int(until.read_text()) == int(box.t) + 1  # the least
    assert box.keep_awake("1d").returncode == 0 and int(until.read_text()) == int(box.t) + 86400
    assert box.keep_awake("72h").returncode == 0
    for bad in (["73h"], ["4"], ["soon"], ["4h", "now"], ["3d1m"], ["x4h"], ["4x1h"], ["h"], ["0h"], ["0s"], ["30S"],
                ["1.5h"], ["-1h"], ["1m1h"], ["4٤h"]):
        done = box.keep_awake(*bad)
        assert done.returncode == 2, bad
        assert done.stderr.startswith("keep-awake: ") and done.stderr.count("\n") == 1, done.stderr
        assert "at most 72h" in done.stderr
        assert int(until.read_text()) == int(box.t) + 72 * 3600, "a refused value changes nothing"
    done = box.keep_awake("off")
    assert done.returncode == 0 and not until.exists()
    assert done.stdout == "keep-awake: off\n"
    assert box.keep_awake("off").returncode == 0


def test_keep_awake_says_off_from_the_second_the_agent_stops_holding_for_it(desktop):
    """What the command shows and what the agent does agree to the second: at the deadline
    itself the desktop is no longer held, and the command says off."""
    box = desktop()
    until = box.root / "var/lib/deep-learning-desktop/keep-awake/until"
    box.minute()
    deadline = box.t + 120
    until.write_text(f"{deadline}\n")
    box.minute()
    assert box.keep_awake().stdout == f"keep-awake: until {iso(deadline)}\n"
    assert box.log_lines()[-1].endswith(f" keep-awake until {iso(deadline)}")
    box.minute()
    assert box.t == deadline
    assert box.keep_awake().stdout == "keep-awake: off\n"
    assert box.log_lines()[-1].split()[1] == "idle", box.log_lines()[-1]


def test_keep_awake_and_the_agent_agree_on_the_furthest_deadline_to_the_second(desktop):
    """72 hours and the minute the clocks may differ: a deadline that far is held and shown;
    a second further, neither (ubuntu may write the file by hand)."""
    box = desktop()
    until = box.root / "var/lib/deep-learning-desktop/keep-awake/until"
    box.minute()
    for ahead, held in ((72 * 3600 + 60, True), (72 * 3600 + 61, False)):
        deadline = box.t + ahead
        until.write_text(f"{deadline}\n")
        shown = box.keep_awake().stdout
        assert box.run().returncode == 0  # the agent at the same second
        line = box.log_lines()[-1]
        if held:
            assert shown == f"keep-awake: until {iso(deadline)}\n"
            assert f"keep-awake until {iso(deadline)}" in line and "ignored" not in line
        else:
            assert shown == "keep-awake: off\n"
            assert line.endswith(" | keep-awake file ignored: more than 72 hours ahead")


def test_the_log_shows_each_rate_to_two_decimals(desktop):
    """The log is for tuning the thresholds from real runs: a third of a core, of a Mbit/s, of
    a MB/s shows as 0.33."""
    box = desktop()
    box.minute()
    third = 1 / 3
    box.minute(cores=third, iowait=third, mbit=third, tx=third, disk_mb=third)
    assert " cores=0.33 iowait=0.33 gpu=0 rx=0.33 tx=0.33 disk=0.33 " in box.log_lines()[-1]


def test_keep_awake_does_not_follow_a_symlink(desktop):
    """ubuntu owns the directory: root must not read a file a link there points to."""
    box = desktop()
    elsewhere = box.base / "root-only"
    target = f"{box.t + 86400}\n"
    elsewhere.write_text(target)
    (box.root / "var/lib/deep-learning-desktop/keep-awake/until").symlink_to(elsewhere)
    box.minute()
    first_idle = box.t + 60
    assert run_until_poweroff(box, limit=14) == first_idle + 600
    line = box.log_lines()[-2]
    assert " idle " in line and line.endswith(" | keep-awake file ignored: Too many levels of symbolic links")
    assert "keep-awake until" not in "\n".join(box.log_lines())
    # The command, as a person runs it there, refuses to read through the link: a failure
    # (exit 1, one line), not a usage error (2), and the link's target is left alone.
    done = box.keep_awake()
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "keep-awake: keep-awake file ignored: Too many levels of symbolic links\n"
    assert elsewhere.read_text() == target


# --- issue 18: uploads, disk work, odd machines, blocked probes; Spot; Capacity Blocks ---------------
# Runs 5 minutes apart (the agent's GAP: a longer gap starts the count over) let 90
# simulated minutes take 18 runs; the rates are averages over those 5 minutes, which a
# steady transfer or copy keeps.

def test_an_upload_or_disk_bound_work_keeps_it_up_and_it_stops_on_time_after(desktop):
    box = desktop()
    box.minute()
    # An upload to S3 at 100 Mbit/s, 0.1 core of CPU, nothing received: 90 minutes.
    assert run_until_poweroff(box, limit=18, step=300, tx=100, cores=0.1) is None
    assert box.log_lines()[-1].endswith(" upload 100.0 Mbit/s")
    # A disk-bound preparation: 1.5 cores waiting for I/O, 100 MB/s written: 90 minutes.
    assert run_until_poweroff(box, limit=18, step=300, iowait=1.5, disk_mb=100, cores=0.3) is None
    assert box.log_lines()[-1].endswith(" iowait 1.5 cores; disk 100.0 MB/s")
    assert box.console_lines() == []
    # Both end: the first quiet run is idle, and the stop comes 10 minutes after it.
    box.minute(seconds=120)
    first_idle = box.t
    assert box.log_lines()[-1].split()[1] == "idle"
    assert run_until_poweroff(box, limit=5, step=300) == first_idle + 600


def test_a_counter_reset_never_cancels_a_transfer(desktop):
    """The interface or the disk re-created (its counters from 0) while data moves: busy."""
    box = desktop()
    box.minute()
    box.rx, box.sectors = 0, 0
    box.minute(mbit=20, disk_mb=30)
    assert box.log_lines()[-1].endswith(" download 20.0 Mbit/s; disk 30.0 MB/s")


def test_a_process_name_cut_inside_a_character_is_no_reason(desktop):
    box = desktop()
    # The kernel keeps 15 bytes of `v2数据预处理.py`: the last character cut in two.
    (box.root / "proc/4242").mkdir()
    (box.root / "proc/4242/comm").write_bytes("v2数据预处理.py".encode()[:15] + b"\n")
    box.minute()
    first_idle = box.t + 60
    assert run_until_poweroff(box, limit=14) == first_idle + 600
    assert "ssm=0 " in box.log_lines()[-1] and "unknown" not in "".join(box.log_lines())


def test_a_full_state_directory_still_stops_on_time_and_says_so_once(desktop):
    box = desktop()
    box.state_file.parent.mkdir(parents=True)
    # Every write there fails as on a full disk (ENOSPC).
    Path(str(box.state_file) + ".tmp").symlink_to("/dev/full")
    box.minute()
    first_idle = box.t + 60
    assert run_until_poweroff(box, limit=14) == first_idle + 600
    assert box.console_lines()[0] == (
        "deep-learning-desktop: idle state not saved in /var/lib/deep-learning-desktop/idle/state.json "
        "([Errno 28] No space left on device): kept in /run/deep-learning-desktop-idle.json for now; "
        "the stop still works")
    assert len(box.console_lines()) == 3 and not box.state_file.exists()
    spare = box.root / "run/deep-learning-desktop-idle.json"
    assert spare.exists()
    # Room again: the state is back under /var, and the spare under /run goes.
    Path(str(box.state_file) + ".tmp").unlink()
    box.minute()
    assert box.state_file.exists() and not spare.exists()


@pytest.mark.parametrize("size", [64, 65])
def test_a_keep_awake_file_is_honoured_up_to_64_bytes(desktop, size):
    box = desktop()
    until = box.root / "var/lib/deep-learning-desktop/keep-awake/until"
    deadline = box.t + 3600
    until.write_text(f"{deadline}".ljust(size - 1) + "\n")
    assert until.stat().st_size == size
    box.minute()
    box.minute()
    if size == 64:
        assert box.log_lines()[-1].endswith(f" keep-awake until {iso(deadline)}")
    else:
        assert box.log_lines()[-1].split()[1] == "idle"
        assert box.log_lines()[-1].endswith(" | keep-awake file ignored: not a regular file of at most 64 bytes")


@pytest.mark.parametrize("kind", ["fifo", "huge number", "too long", "a directory", "not a number"])
def test_a_keep_awake_file_of_the_wrong_kind_is_ignored_and_never_hangs(desktop, kind):
    box = desktop()
    until = box.root / "var/lib/deep-learning-desktop/keep-awake/until"
    if kind == "fifo":
        os.mkfifo(until)
        why = "not a regular file of at most 64 bytes"
    elif kind == "huge number":
        until.write_text("99999999999999999999\n")
        why = None
    elif kind == "too long":
        until.write_text(str(box.t + 3600) + " " * 80 + "\n")
        why = "not a regular file of at most 64 bytes"
    elif kind == "not a number":
        until.write_text("tomorrow\n")
        why = "not a number"
    else:
        until.mkdir()
        why = "not a regular file of at most 64 bytes"
    box.minute()
    first_idle = box.t + 60
    stopped = None
    for _ in range(12):
        began = time.monotonic()
        box.minute()
        assert time.monotonic() - began < 5
        if box.poweroffs:
            stopped = box.t
            break
    assert stopped == first_idle + 600
    note = (f"keep-awake file ignored: {why}" if why else "keep-awake file ignored: more than 72 hours ahead")
    assert box.log_lines()[-1].endswith(" | " + note)


def test_no_dcv_server_means_no_dcv_client(desktop):
    box = desktop(dcv_server=False)
    box.fail("dcv")  # the dcv command would fail: it is not even asked
    box.minute()
    first_idle = box.t + 60
    assert run_until_poweroff(box, limit=14) == first_idle + 600
    assert box.calls("dcv") == [] and "dcv=0 " in box.log_lines()[-1]


@pytest.mark.parametrize("probe", ["gpu", "cpu", "net", "disk"])
def test_an_unreadable_probe_blocks_the_stop_only_for_idle_blocked_hours(desktop, imds, probe):
    """Any probe, the GPU's (nvidia-smi) or a kernel counter's (/proc/stat, /proc/net/dev,
    /proc/diskstats): without its reading the other rates still count, and the blocked
    hours still end in a stop."""
    box = desktop()
    imds.tags["IdleBlockedHours"] = "1"
    box.minute()
    if probe == "gpu":
        box.fail("nvidia-smi", 9)
        error = "nvidia-smi exit 9"
    else:
        counters = {"cpu": "proc/stat", "net": "proc/net/dev", "disk": "proc/diskstats"}[probe]
        box.unserve(counters)
        error = f"[Errno 2] No such file or directory: '{box.root}/{counters}'"
    box.minute(seconds=300)
    blocked_from = box.t
    stopped = run_until_poweroff(box, limit=14, step=300)
    assert stopped == blocked_from + 3600
    assert box.console_lines() == [
        f"deep-learning-desktop: idle stop blocked: {probe} unreadable ({error}) since {iso(blocked_from)}",
        f"deep-learning-desktop: stopping after 1h with every readable signal idle: {probe} unreadable ({error})",
    ]


def test_without_an_idle_blocked_hours_tag_a_blocked_stop_comes_after_12_hours(desktop, imds):
    box = desktop()
    box.minute()
    box.fail("nvidia-smi", 9)
    box.minute(seconds=300)
    blocked_from = box.t
    assert run_until_poweroff(box, limit=143, step=300) is None  # 11 h 55 min
    assert run_until_poweroff(box, limit=1, step=300) == blocked_from + 12 * 3600
    assert box.console_lines()[-1] == ("deep-learning-desktop: stopping after 12h with every readable signal idle: "
                                       "gpu unreadable (nvidia-smi exit 9)")


def test_a_run_up_to_10_seconds_early_completes_the_idle_minutes(desktop):
    box = desktop()
    box.minute()  # no rates yet
    box.minute()
    first_idle = box.t
    assert run_until_poweroff(box, limit=9) is None  # 9 idle minutes
    box.minute(seconds=60 - 11)
    assert box.poweroffs == 0
    box.minute(seconds=1)
    assert box.poweroffs == 1 and box.t == first_idle + 600 - 10


def test_each_boot_says_once_that_a_probe_blocks_the_stop(desktop):
    """The console of a new boot is read anew: it says again what blocks the stop, once."""
    box = desktop()
    box.fail("nvidia-smi", 9)
    box.minute()
    box.minute()
    box.reboot()
    box.minute()
    box.minute()
    assert [line.split(" since ")[0] for line in box.console_lines()
            if "blocked" in line] == ["deep-learning-desktop: idle stop blocked: gpu unreadable (nvidia-smi exit 9)"] * 2


def test_a_run_up_to_10_seconds_early_completes_the_blocked_hours(desktop, imds):
    """The timer may fire a few seconds early (its accuracy): a run 10 s short of the
    blocked hours completes them, as it completes an idle minute; 11 s short does not."""
    box = desktop()
    imds.tags["IdleBlockedHours"] = "1"
    box.minute()
    box.fail("nvidia-smi", 9)
    box.minute(seconds=300)
    blocked_from = box.t
    assert run_until_poweroff(box, limit=11, step=300) is None  # 55 minutes blocked
    box.minute(seconds=300 - 11)
    assert box.poweroffs == 0
    box.minute(seconds=1)
    assert box.poweroffs == 1 and box.t == blocked_from + 3600 - 10


def test_a_blocked_stop_waits_while_a_readable_signal_is_busy_and_0_never(desktop, imds):
    box = desktop()
    imds.tags["IdleBlockedHours"] = "1"
    box.fail("nvidia-smi", 9)
    box.set(ssh=1)
    assert run_until_poweroff(box, limit=16, step=300) is None
    box.set(ssh=0)
    imds.tags["IdleBlockedHours"] = "0"
    assert run_until_poweroff(box, limit=16, step=300) is None
    assert box.console_lines()[0].startswith("deep-learning-desktop: idle stop blocked: gpu unreadable")
    box.fail("nvidia-smi", None)
    box.minute()
    assert box.console_lines()[-2:] == ["deep-learning-desktop: idle stop unblocked: gpu readable again",
                                        f"deep-learning-desktop: idle since {iso(box.t)}"]


def test_a_spot_notice_is_said_on_the_console_and_in_dcv_within_one_run(desktop, imds):
    box = desktop()
    box.set(dcv=1)
    box.minute()
    imds.spot = '{"action": "stop", "time": "2026-11-30T08:04:00Z"}'
    (box.stubs / "dcv.seq").write_text(json.dumps({"num-of-connections": 1}) + "\n"
                                       + json.dumps([{"id": "console", "owner": "ubuntu"}]) + "\n")
    box.minute()
    line = ("spot interruption: EC2 will stop this desktop at 2026-11-30T08:04:00Z: "
            "stopping in 2 minutes: save your work")
    assert box.console_lines() == ["deep-learning-desktop: " + line]
    assert box.calls("dcv")[-1] == f"dcv notify-user --duration 120 console {line}"
    assert box.log_lines()[-1].endswith(" | " + line)
    box.minute()
    assert len(box.console_lines()) == 1, "once per notice"
    assert box.poweroffs == 0, "EC2 stops a Spot desktop, not the agent"


def test_a_spot_notice_that_does_not_parse_is_still_said(desktop, imds):
    """The person has two minutes to save their work: an odd notice body still warns them."""
    box = desktop()
    box.minute()
    imds.spot = "{not json"
    box.minute()
    line = "spot interruption: stopping in 2 minutes: save your work"
    assert box.console_lines().count("deep-learning-desktop: " + line) == 1
    assert box.calls("dcv")[-1] == f"dcv notify-user --duration 120 console {line}"


def test_an_idle_desktop_stops_as_its_capacity_blocks_window_opens_before_its_policy_would(desktop, imds):
    """Policy 60 minutes, but the block ends in 45: EC2 begins terminating its instances 30
    minutes before the end, so an idle desktop stops when the last 40 minutes begin, after
    5 idle minutes, with its work on the root volume."""
    box = desktop(policy="60")
    box.minute()
    box.minute()
    end = box.t + 45 * 60
    imds.tags["CapacityBlockEnd"] = str(end)
    assert run_until_poweroff(box, limit=10) == end - 2400
    assert box.console_lines()[-1] == (f"deep-learning-desktop: stopping idle, 40 minutes before its Capacity Block "
                                       f"ends at {iso(end)}")


def test_a_capacity_block_holds_the_desktop_until_10_minutes_before_ec2_terminates_it(desktop, imds):
    box = desktop()
    # EC2 begins terminating a block's instances 30 minutes before its end.
    end = box.t + 2 * 3600 + 60 + 1800
    imds.tags["CapacityBlockEnd"] = str(end)
    box.minute()
    # Idle for 90 minutes inside the block, 9 times the policy: no stop.
    assert run_until_poweroff(box, limit=18, step=300) is None
    assert box.log_lines()[-1].endswith(f" | in a Capacity Block until {iso(end)}: no stop before 40 minutes ahead of its end")
    assert run_until_poweroff(box, limit=10, step=300) == end - 1800 - 600
    assert box.console_lines()[-1] == "deep-learning-desktop: stopping after 105 idle minutes"


def test_runs_more_than_5_minutes_apart_never_add_up_to_an_idle_streak(desktop):
    """A gap longer than 5 minutes (a stalled timer, a suspended machine) is time nobody
    watched: each run starts the idle count afresh, so it never stops on a guess."""
    box = desktop()
    box.minute()
    assert run_until_poweroff(box, limit=12, step=301) is None
    # 5 minutes apart is watched: the same quiet desktop stops 10 minutes after the last
    # run that began a count.
    start = box.t
    assert run_until_poweroff(box, limit=12, step=300) == start + 600


def test_a_second_run_in_the_same_second_does_not_start_the_count_over(desktop):
    """A person's `systemctl start deep-learning-desktop-idle` as the timer fires: two runs
    in one second of the clock are one watch, not a gap; the stop comes on time."""
    box = desktop()
    box.minute()  # no rates yet: busy
    box.minute()
    first_idle = box.t
    box.minute()
    box.minute(seconds=0.5)  # the same second on the clock, half a second of uptime later
    assert box.log_lines()[-1].split()[0] == box.log_lines()[-2].split()[0]
    box.minute(seconds=59.5)
    assert run_until_poweroff(box, limit=10) == first_idle + 600


def test_the_log_is_moved_aside_past_a_million_bytes_one_old_file_kept(desktop):
    """Bounded: past 1,000,000 bytes the log becomes the one old file (replacing the one
    before), and a new log begins; at exactly 1,000,000 it is still written to."""
    box = desktop()
    box.minute()
    log = box.root / "var/log/deep-learning-desktop-idle.log"
    old = log.with_name(log.name + ".1")
    old.write_text("the week before\n")
    log.write_text("x" * 999_999 + "\n")
    box.minute()
    assert old.read_text() == "the week before\n"
    assert log.read_text().startswith("x" * 999_999 + "\n") and len(box.log_lines()) == 2
    box.minute()
    assert old.read_text().startswith("x" * 999_999 + "\n") and len(old.read_text().splitlines()) == 2
    assert len(box.log_lines()) == 1 and box.log_lines()[0].startswith(iso(box.t) + " ")


def test_without_the_nvidia_module_nvidia_smi_is_not_asked_and_its_failure_is_no_doubt(desktop):
    """A desktop without a GPU driver loaded (no /proc/driver/nvidia) has no GPU work to
    wait for: a broken nvidia-smi there is no reason to stay up, and is never run."""
    box = desktop(gpu=False)
    box.fail("nvidia-smi", 9)
    box.minute()
    first_idle = box.t + 60
    assert run_until_poweroff(box, limit=14) == first_idle + 600
    assert box.calls("nvidia-smi") == []


def test_the_capacity_blocks_stop_window_opens_40_minutes_before_its_end_not_a_second_sooner(desktop, imds):
    box = desktop()
    box.minute()
    # A run falls 40 minutes and 1 second before the end: still held; the next one stops.
    before = box.t + 20 * 300
    end = before + 2400 + 1
    imds.tags["CapacityBlockEnd"] = str(end)
    assert run_until_poweroff(box, limit=30, step=300) == before + 300
