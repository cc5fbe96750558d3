"""``snapshot``, ``snapshots``, ``restore`` and ``image-from-snapshot`` against moto, run as a
person runs them (``AWS_ENDPOINT_URL``). moto 5.2.5 has no CreateReplaceRootVolumeTask nor
DescribeReplaceRootVolumeTasks: those two go to botocore's Stubber (``replace_root_client``)."""

from __future__ import annotations

import re
import io
import os
import time

import boto3
import pytest
from botocore.stub import ANY, Stubber

from desktop.commands import operate, snapshots
from desktop.commands.cli import main
from tests.moto_account import (  # noqa: F401
    REGION, add_image, aws_env, client, edit_described_instances, on_every_session, write_stack,
)

TAG = "DeepLearningDesktop"


class Clock:
    """A fake clock for the commands' waits: no test sleeps."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def pasted(before: str, command: str) -> "re.Pattern[str]":
    """``before`` then a command to paste: this interpreter's path, the command, and the
    instance id, stack and project directory the test ran with (desktop/commands/hints.py)."""
    return re.compile(re.escape(before) + r"`\S*python\S* -m desktop " + re.escape(command)
                      + r" --instance-id i-[0-9a-f]+ --stack test --project-dir \S+`")


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(operate, "_monotonic", fake.monotonic)
    monkeypatch.setattr(operate, "_sleep", fake.sleep)
    return fake


def root_volume_of(instance_id: str) -> str:
    instance = client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    (volume,) = [m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]
                 if m["DeviceName"] == instance["RootDeviceName"]]
    return volume


def launch(desktop: str) -> str:
    """A running desktop whose root volume carries the desktop tag, as `pulumi up` leaves it."""
    ec2 = client("ec2")
    found = ec2.run_instances(ImageId=add_image("x86_64"), InstanceType="g4dn.xlarge", MinCount=1,
                              MaxCount=1)["Instances"][0]["InstanceId"]
    ec2.create_tags(Resources=[root_volume_of(found)], Tags=[{"Key": TAG, "Value": desktop},
                                                            {"Key": "team", "Value": "vision"}])
    return found


@pytest.fixture
def desktop(aws_env, tmp_path, monkeypatch):
    write_stack(tmp_path, {"s3Bucket": "b"}, stack="test")
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "bin"  # no Pulumi CLI: the instance comes from --instance-id
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return launch("test-role-1a2b3c4")


def run(capsys, *argv: str):
    code = main([*argv, "--stack", "test", "--project-dir", os.getcwd()])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshots_of(volume_id: str) -> list[dict]:
    return client("ec2").describe_snapshots(Filters=[{"Name": "volume-id", "Values": [volume_id]}])["Snapshots"]


def tags(resource: dict) -> dict:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


# --- snapshot ----------------------------------------------------------------------

def test_snapshot_now_is_tagged_like_the_daily_ones_plus_the_note(desktop, clock, capsys):
    code, out, err = run(capsys, "snapshot", "--instance-id", desktop, "--note", "before the CUDA upgrade")
    assert code == 0, err
    (snapshot,) = snapshots_of(root_volume_of(desktop))
    t = tags(snapshot)
    assert t[TAG] == "test-role-1a2b3c4" and t["team"] == "vision"  # the volume's tags, as DLM's copy_tags
    assert t["DesktopSnapshot"] == "manual"
    assert t["DesktopNote"] == "before the CUDA upgrade"
    assert t["DesktopArchitecture"] == "x86_64"
    assert f"snapshot {snapshot['SnapshotId']}: completed 100%" in out
    assert snapshot["Description"] == "deep-learning-desktop test-role-1a2b3c4: manual: before the CUDA upgrade"
    volume = root_volume_of(desktop)
    size = client("ec2").describe_volumes(VolumeIds=[volume])["Volumes"][0]["Size"]
    assert out.splitlines()[0] == f"snapshot {snapshot['SnapshotId']} of {volume} ({size} GiB) started"
    assert f"snapshot {snapshot['SnapshotId']} completed after" in out


def test_snapshot_progress_until_completed(desktop, clock, capsys, monkeypatch):
    from moto.backends import get_backend
    from moto.core import DEFAULT_ACCOUNT_ID

    ec2 = get_backend("ec2")[DEFAULT_ACCOUNT_ID][REGION]
    original = ec2.create_snapshot

    def pending(*args, **kwargs):  # moto completes snapshots at once; AWS takes minutes
        snapshot = original(*args, **kwargs)
        snapshot.status = "pending"
        return snapshot

    monkeypatch.setattr(ec2, "create_snapshot", pending)

    def advance(seconds):
        clock.now += seconds
        clock.sleeps.append(seconds)
        for snapshot in ec2.snapshots.values():
            snapshot.status = "completed" if len(clock.sleeps) >= 2 else "pending"

    monkeypatch.setattr(operate, "_sleep", advance)
    code, out, err = run(capsys, "snapshot", "--instance-id", desktop, "--poll", "30s")
    assert code == 0, err
    assert clock.sleeps == [30.0, 30.0]
    assert "[  0m00s] snapshot" in out and "pending" in out
    assert "completed after 1m00s" in out


def test_a_snapshot_that_never_completes_times_out_with_exit_1(desktop, clock, capsys, monkeypatch):
    from moto.backends import get_backend
    from moto.core import DEFAULT_ACCOUNT_ID

    ec2 = get_backend("ec2")[DEFAULT_ACCOUNT_ID][REGION]
    original = ec2.create_snapshot

    def pending(*args, **kwargs):
        snapshot = original(*args, **kwargs)
        snapshot.status = "pending"
        return snapshot

    monkeypatch.setattr(ec2, "create_snapshot", pending)
    clock.now = 5000.0  # the wait counts from its own start, not from the clock's zero
    code, out, err = run(capsys, "snapshot", "--instance-id", desktop, "--timeout", "10m", "--poll", "4m")
    assert code == 1
    assert clock.sleeps == [240.0, 240.0, 120.0]  # the last wait is cut to the timeout
    assert out.count(": pending") == 1  # a state is said once
    (snapshot,) = snapshots_of(root_volume_of(desktop))
    assert out.splitlines()[-1] == (f"timed out after 10m00s; snapshot {snapshot['SnapshotId']} is pending 100% "
                                    "and goes on by itself: `python -m desktop snapshots` shows it")


def test_an_untagged_root_volume_asks_for_pulumi_up(aws_env, tmp_path, monkeypatch, capsys):
    write_stack(tmp_path, {"s3Bucket": "b"}, stack="test")
    monkeypatch.chdir(tmp_path)
    old = client("ec2").run_instances(ImageId=add_image("x86_64"), MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    code, out, err = run(capsys, "snapshot", "--instance-id", old)
    assert code == 2 and "has no DeepLearningDesktop tag: run `pulumi up` once" in err
    assert snapshots_of(root_volume_of(old)) == []


# --- snapshots -----------------------------------------------------------------------

def test_snapshots_lists_this_desktops_daily_and_manual_newest_first(desktop, clock, capsys, monkeypatch):
    from moto.backends import get_backend
    from moto.core import DEFAULT_ACCOUNT_ID
    import datetime

    ec2 = client("ec2")
    volume = root_volume_of(desktop)
    daily = ec2.create_snapshot(VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": [
        {"Key": TAG, "Value": "test-role-1a2b3c4"}, {"Key": "DesktopSnapshot", "Value": "daily"},
        {"Key": "aws:dlm:lifecycle-policy-id", "Value": "policy-0123456789abcdef0"}]}])["SnapshotId"]
    manual = ec2.create_snapshot(VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": [
        {"Key": TAG, "Value": "test-role-1a2b3c4"}, {"Key": "DesktopSnapshot", "Value": "manual"},
        {"Key": "DesktopNote", "Value": "works again"}]}])["SnapshotId"]
    # Another desktop's snapshot in the same account is not listed.
    other = launch("bob-role-9f8e7d6")
    foreign = ec2.create_snapshot(VolumeId=root_volume_of(other), TagSpecifications=[{
        "ResourceType": "snapshot", "Tags": [{"Key": TAG, "Value": "bob-role-9f8e7d6"}]}])["SnapshotId"]
    backend = get_backend("ec2")[DEFAULT_ACCOUNT_ID][REGION]
    day = datetime.datetime(2026, 11, 20, 5, 3, tzinfo=datetime.timezone.utc)
    backend.snapshots[daily].start_time = day
    backend.snapshots[manual].start_time = day + datetime.timedelta(days=2, hours=9)
    code, out, err = run(capsys, "snapshots", "--instance-id", desktop)
    assert code == 0, err
    lines = out.splitlines()
    rows = [ln for ln in lines if ln.startswith("  snap-")]
    assert [r.split()[0] for r in rows] == [manual, daily]
    assert "2026-11-22 14:03 UTC" in rows[0] and "manual" in rows[0] and rows[0].rstrip().endswith("works again")
    assert "2026-11-20 05:03 UTC" in rows[1] and "daily" in rows[1]
    assert "GiB" in rows[0]
    assert foreign not in out


# --- restore -------------------------------------------------------------------------

@pytest.fixture
def tasks(monkeypatch):
    """The EC2 client that runs the replace-root-volume task, stubbed (moto lacks the API)."""
    stubbed = boto3.client("ec2", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(stubbed)
    monkeypatch.setattr(snapshots, "replace_root_client", lambda target: stubbed)
    with stubber:
        yield stubber


def own_snapshot(desktop_id: str, value: str = "test-role-1a2b3c4") -> str:
    return client("ec2").create_snapshot(VolumeId=root_volume_of(desktop_id), TagSpecifications=[{
        "ResourceType": "snapshot", "Tags": [{"Key": TAG, "Value": value}]}])["SnapshotId"]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_restore_refused_at_the_prompt_changes_nothing(desktop, clock, capsys, tasks, monkeypatch):
    wanted = own_snapshot(desktop)
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    code, out, err = run(capsys, "restore", "--instance-id", desktop, "--snapshot", wanted)
    assert code == 2 and "not restored: no confirmation" in err
    assert "What will be lost: every change made on the root volume" in out
    assert len(snapshots_of(root_volume_of(desktop))) == 1  # no safety snapshot either
    tasks.assert_no_pending_responses()  # and no task: the stub had nothing queued and was not called


def test_restore_without_a_terminal_and_without_yes_refuses(desktop, clock, capsys, tasks, monkeypatch):
    wanted = own_snapshot(desktop)
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # piped input is no confirmation
    code, out, err = run(capsys, "restore", "--instance-id", desktop, "--snapshot", wanted)
    assert code == 2 and "--yes" in err
    assert len(snapshots_of(root_volume_of(desktop))) == 1


def _queue_task(tasks, desktop_id, snapshot_id, states):
    tasks.add_response("create_replace_root_volume_task", {"ReplaceRootVolumeTask": {
        "ReplaceRootVolumeTaskId": "replacevol-0123456789abcdef0", "InstanceId": desktop_id,
        "TaskState": "pending", "SnapshotId": snapshot_id}}, expected_params={
        "InstanceId": desktop_id, "SnapshotId": snapshot_id, "DeleteReplacedRootVolume": True,
        "TagSpecifications": ANY})
    for state in states:
        tasks.add_response("describe_replace_root_volume_tasks", {"ReplaceRootVolumeTasks": [{
            "ReplaceRootVolumeTaskId": "replacevol-0123456789abcdef0", "TaskState": state}]},
            expected_params={"ReplaceRootVolumeTaskIds": ["replacevol-0123456789abcdef0"]})


def test_restore_with_yes_snapshots_first_then_replaces_and_waits(desktop, clock, capsys, tasks):
    wanted = own_snapshot(desktop)
    _queue_task(tasks, desktop, wanted, ["pending", "in-progress", "succeeded"])
    code, out, err = run(capsys, "restore", "--instance-id", desktop, "--snapshot", wanted, "--yes",
                         "--poll", "20s")
    assert code == 0, err
    tasks.assert_no_pending_responses()  # the task was started with that snapshot and followed to the end
    assert clock.sleeps == [20.0, 20.0]
    assert "task replacevol-0123456789abcdef0: in-progress" in out and ": succeeded" in out
    (safety,) = [s for s in snapshots_of(root_volume_of(desktop)) if s["SnapshotId"] != wanted]
    assert tags(safety)["DesktopSnapshot"] == "before-restore"
    assert tags(safety)["DesktopNote"] == f"before restore to {wanted}"
    assert f"the previous state is snapshot {safety['SnapshotId']}" in out


def test_a_failed_replacement_exits_1(desktop, clock, capsys, tasks):
    wanted = own_snapshot(desktop)
    _queue_task(tasks, desktop, wanted, ["pending", "failed"])
    code, out, err = run(capsys, "restore", "--instance-id", desktop, "--snapshot", wanted, "--yes")
    assert code == 1 and "the replacement failed: the original root volume is still attached" in out


def test_another_desktops_snapshot_is_refused(desktop, clock, capsys, tasks):
    other = launch("bob-role-9f8e7d6")
    theirs = own_snapshot(other, "bob-role-9f8e7d6")
    code, out, err = run(capsys, "restore", "--instance-id", desktop, "--snapshot", theirs, "--yes")
    assert code == 2
    assert f"snapshot {theirs} belongs to desktop bob-role-9f8e7d6, not to this desktop (test-role-1a2b3c4)" in err
    assert "refusing" in err
    assert len(snapshots_of(root_volume_of(desktop))) == 0


def test_an_untagged_snapshot_is_refused(desktop, clock, capsys, tasks):
    bare = client("ec2").create_snapshot(VolumeId=root_volume_of(desktop))["SnapshotId"]
    code, out, err = run(capsys, "restore", "--instance-id", desktop, "--snapshot", bare, "--yes")
    assert code == 2 and "belongs to no desktop (it has no DeepLearningDesktop tag)" in err


def test_restore_of_a_stopped_desktop_says_start_it(desktop, clock, capsys, tasks):
    wanted = own_snapshot(desktop)
    client("ec2").stop_instances(InstanceIds=[desktop])
    code, out, err = run(capsys, "restore", "--instance-id", desktop, "--snapshot", wanted, "--yes")
    assert code == 2 and "is stopped" in err and "start --wait" in err


def test_restore_retags_a_new_root_volume_that_lacks_the_tag(desktop, clock, capsys, tasks, monkeypatch):
    wanted = own_snapshot(desktop)
    _queue_task(tasks, desktop, wanted, ["succeeded"])
    ec2 = client("ec2")
    volume = root_volume_of(desktop)
    original = snapshots.take_snapshot

    def and_the_volume_loses_its_tags(*args, **kwargs):
        result = original(*args, **kwargs)
        # What a replacement volume looks like when EC2 did not carry the tags over.
        ec2.delete_tags(Resources=[volume], Tags=[{"Key": TAG}, {"Key": "team"}])
        return result

    monkeypatch.setattr(snapshots, "take_snapshot", and_the_volume_loses_its_tags)
    code, out, err = run(capsys, "restore", "--instance-id", desktop, "--snapshot", wanted, "--yes")
    assert code == 0, err
    volume_tags = tags(ec2.describe_volumes(VolumeIds=[volume])["Volumes"][0])
    assert volume_tags[TAG] == "test-role-1a2b3c4" and volume_tags["team"] == "vision"
    assert f"tagged the new root volume {volume} like the old one ({TAG}, team)\n" in out


# --- image-from-snapshot ---------------------------------------------------------------

@pytest.fixture
def register_requests(monkeypatch):
    """The RegisterImage parameters sent (moto keeps only the name and description)."""
    sent = []
    on_every_session(monkeypatch, "provide-client-params.ec2.RegisterImage", lambda params, **_: sent.append(dict(params)))
    return sent


def test_image_from_a_kept_snapshot_after_the_desktop_is_gone(desktop, clock, capsys, register_requests):
    code, out, err = run(capsys, "snapshot", "--instance-id", desktop)
    assert code == 0, err
    (kept,) = snapshots_of(root_volume_of(desktop))
    client("ec2").terminate_instances(InstanceIds=[desktop])  # `pulumi destroy`
    code, out, err = run(capsys, "image-from-snapshot", "--snapshot", kept["SnapshotId"])
    assert code == 0, err
    (request,) = register_requests
    assert request["Architecture"] == "x86_64"
    assert request["EnaSupport"] is True
    assert request["VirtualizationType"] == "hvm"
    assert request["RootDeviceName"] == "/dev/sda1"
    (mapping,) = request["BlockDeviceMappings"]
    assert mapping["DeviceName"] == "/dev/sda1" and mapping["Ebs"]["SnapshotId"] == kept["SnapshotId"]
    image_id = [w for w in out.split() if w.startswith("ami-")][0]
    assert client("ec2").describe_images(ImageIds=[image_id])["Images"][0]["Name"] == request["Name"]
    assert f"pulumi config set amiId {image_id}" in out


def test_a_daily_snapshot_records_its_architecture_for_the_image(desktop, capsys, register_requests):
    arm = client("ec2").create_snapshot(VolumeId=root_volume_of(desktop), TagSpecifications=[{
        "ResourceType": "snapshot", "Tags": [{"Key": TAG, "Value": "test-role-1a2b3c4"},
                                             {"Key": "DesktopArchitecture", "Value": "arm64"}]}])["SnapshotId"]
    code, out, err = run(capsys, "image-from-snapshot", "--snapshot", arm)
    assert code == 0, err
    (request,) = register_requests
    assert request["Architecture"] == "arm64" and request["BootMode"] == "uefi"
    assert "g5g" in out


def test_an_unknown_architecture_is_asked_for(desktop, capsys, register_requests):
    bare = own_snapshot(desktop)
    client("ec2").terminate_instances(InstanceIds=[desktop])
    code, out, err = run(capsys, "image-from-snapshot", "--snapshot", bare)
    assert code == 2 and "--architecture x86_64" in err
    assert register_requests == []
    code, out, err = run(capsys, "image-from-snapshot", "--snapshot", bare, "--architecture", "x86_64")
    assert code == 0 and register_requests[0]["Architecture"] == "x86_64"


def test_a_snapshot_of_no_desktop_makes_no_image(desktop, capsys, register_requests):
    bare = client("ec2").create_snapshot(VolumeId=root_volume_of(desktop))["SnapshotId"]
    code, out, err = run(capsys, "image-from-snapshot", "--snapshot", bare, "--architecture", "x86_64")
    assert code == 2 and "is not a deep learning desktop's" in err
    assert register_requests == []


@pytest.mark.parametrize("command", ["snapshot", "snapshots", "restore", "image-from-snapshot"])
def test_every_snapshot_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0 and "--stack" in capsys.readouterr().out


def test_a_malformed_snapshot_id_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["restore", "--snapshot", "snap-xyz", "--yes"])
    assert exit_.value.code == 2 and "'snap-xyz' is not a snapshot id" in capsys.readouterr().err


# --- restore refuses without a completed copy of what it replaces -------------------------

def _later_snapshots_are(monkeypatch, status: str) -> None:
    """Snapshots created from now on stay in ``status`` (moto completes them at once)."""
    from tests.moto_account import backend

    ec2 = backend("ec2")
    original = ec2.create_snapshot

    def stays(*args, **kwargs):
        snapshot = original(*args, **kwargs)
        snapshot.status = status
        return snapshot

    monkeypatch.setattr(ec2, "create_snapshot", stays)


def _task_never_started(tasks) -> None:
    """The queued CreateReplaceRootVolumeTask answer is still waiting: restore never sent it."""
    with pytest.raises(AssertionError):
        tasks.assert_no_pending_responses()


@pytest.mark.parametrize("status, options, said", [
    ("error", [], "failed"),
    ("pending", ["--timeout", "10m", "--poll", "5m"], "timed out after 10m00s"),
])
def test_restore_stops_when_its_safety_snapshot_fails_or_times_out(desktop, clock, capsys, tasks, monkeypatch,
                                                                    status, options, said):
    # With DeleteReplacedRootVolume the current volume is deleted: without a completed copy
    # of it, the changes since the wanted snapshot would be gone for good.
    wanted = own_snapshot(desktop)
    _queue_task(tasks, desktop, wanted, ["succeeded"])
    _later_snapshots_are(monkeypatch, status)
    code, out, err = run(capsys, "restore", "--instance-id", desktop, "--snapshot", wanted, "--yes", *options)
    assert code == 1, out + err
    assert said in out
    (safety,) = [s for s in snapshots_of(root_volume_of(desktop)) if s["SnapshotId"] != wanted]
    assert f"not restored: the snapshot of the current volume ({safety['SnapshotId']}) did not complete" in out
    assert "replace-root-volume task" not in out
    _task_never_started(tasks)


@pytest.mark.parametrize("status", ["pending", "error", "recoverable"])
def test_restore_of_a_snapshot_that_is_not_completed_is_refused_before_anything(desktop, clock, capsys, tasks,
                                                                                 status):
    from tests.moto_account import backend

    wanted = own_snapshot(desktop)
    backend("ec2").snapshots[wanted].status = status  # only the wanted one is unfinished
    _queue_task(tasks, desktop, wanted, ["succeeded"])
    code, out, err = run(capsys, "restore", "--instance-id", desktop, "--snapshot", wanted, "--yes")
    assert code == 2
    assert f"snapshot {wanted} is {status}" in err and "wait until it is completed" in err
    assert [s["SnapshotId"] for s in snapshots_of(root_volume_of(desktop))] == [wanted], "no safety snapshot"
    _task_never_started(tasks)


def test_snapshots_table_is_aligned_and_says_each_snapshots_kind_size_and_state(desktop, clock, capsys,
                                                                              monkeypatch):
    from moto.backends import get_backend
    from moto.core import DEFAULT_ACCOUNT_ID
    import datetime

    ec2 = client("ec2")
    volume = root_volume_of(desktop)
    size = ec2.describe_volumes(VolumeIds=[volume])["Volumes"][0]["Size"]

    def snap(*tags):
        return ec2.create_snapshot(VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": [
            {"Key": TAG, "Value": "test-role-1a2b3c4"}, *({"Key": k, "Value": v} for k, v in tags)]}])["SnapshotId"]

    daily = snap(("aws:dlm:lifecycle-policy-id", "policy-0123456789abcdef0"))  # DLM's: no DesktopSnapshot tag
    manual = snap(("DesktopNote", "works again"))  # no kind tag, no DLM tag: a manual one
    safety = snap(("DesktopSnapshot", "before-restore"), ("DesktopNote", "before restore to snap-0"))
    backend = get_backend("ec2")[DEFAULT_ACCOUNT_ID][REGION]
    day = datetime.datetime(2026, 11, 20, 5, 3, tzinfo=datetime.timezone.utc)
    for number, snapshot_id in enumerate((daily, manual, safety)):
        backend.snapshots[snapshot_id].start_time = day + datetime.timedelta(days=number)
    listed = snapshots.desktop_snapshots

    def as_aws_says(ec2_client, desktop_id):
        # moto reports every snapshot completed at 100% and never FullSnapshotSizeInBytes; EC2
        # gives both (the data size of a completed snapshot, the progress of a pending one).
        found = listed(ec2_client, desktop_id)
        for s in found:
            if s["SnapshotId"] == manual:
                s["FullSnapshotSizeInBytes"] = 3 * 2**30 + 2**29
            if s["SnapshotId"] == safety:
                s["State"], s["Progress"] = "pending", "42%"
        return found

    monkeypatch.setattr(snapshots, "desktop_snapshots", as_aws_says)
    # On a laptop in Tokyo the dates still say UTC (the snapshotTime setting is UTC).
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        code, out, err = run(capsys, "snapshots", "--instance-id", desktop)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert code == 0, err
    volume_size = f"{size} GiB volume"
    widths = (len(daily), len("2026-11-20 05:03 UTC"), max(len(volume_size), len("3.5 GiB data")),
              len("before-restore"), len("pending 42%"))

    def row(*cells):
        return "  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + cells[5]

    *listing, last = out.splitlines()
    assert listing == [
        f"snapshots of desktop test-role-1a2b3c4 ({desktop}, root volume {volume}), newest first:",
        row("SNAPSHOT", "DATE", "SIZE", "KIND", "STATE", "NOTE"),
        row(safety, "2026-11-22 05:03 UTC", volume_size, "before-restore", "pending 42%", "before restore to snap-0"),
        row(manual, "2026-11-21 05:03 UTC", "3.5 GiB data", "manual", "completed", "works again"),
        row(daily, "2026-11-20 05:03 UTC", volume_size, "daily", "completed", ""),
    ]
    assert pasted("3 snapshots. Restore one in place: ", "restore --snapshot snap-...").fullmatch(last), last


def test_snapshots_of_a_desktop_without_any_says_when_the_first_comes(desktop, clock, capsys):
    code, out, err = run(capsys, "snapshots", "--instance-id", desktop)
    assert code == 0, err
    assert pasted("no snapshots of desktop test-role-1a2b3c4 yet: the daily one runs at snapshotTime (UTC), "
                  "or take one now with ", "snapshot").fullmatch(out.rstrip("\n")), out


def test_a_note_of_256_characters_fits_a_tag_and_257_are_refused(desktop, clock, capsys):
    code, out, err = run(capsys, "snapshot", "--instance-id", desktop, "--note", "n" * 257)
    assert code == 2 and err.strip().endswith("--note is 257 characters long; a tag holds at most 256")
    assert snapshots_of(root_volume_of(desktop)) == []
    code, out, err = run(capsys, "snapshot", "--instance-id", desktop, "--note", "n" * 256)
    assert code == 0, err
    (snapshot,) = snapshots_of(root_volume_of(desktop))
    assert tags(snapshot)["DesktopNote"] == "n" * 256
    # EC2 takes a description of at most 255 characters: the note's end is cut there.
    assert snapshot["Description"] == ("deep-learning-desktop test-role-1a2b3c4: manual: " + "n" * 256)[:255]


def test_a_snapshot_without_a_note_has_no_note(desktop, clock, capsys):
    code, out, err = run(capsys, "snapshot", "--instance-id", desktop)
    assert code == 0, err
    (snapshot,) = snapshots_of(root_volume_of(desktop))
    assert "DesktopNote" not in tags(snapshot)
    assert snapshot["Description"] == "deep-learning-desktop test-role-1a2b3c4: manual"


@pytest.mark.parametrize("typed", ["", "yes please\n", "no\n"])
def test_restore_asks_once_and_only_y_or_yes_is_a_yes(desktop, clock, capsys, tasks, monkeypatch, typed):
    wanted = own_snapshot(desktop)
    monkeypatch.setattr("sys.stdin", Terminal(typed))  # "": the terminal closed (Ctrl-D)
    code, out, err = run(capsys, "restore", "--instance-id", desktop, "--snapshot", wanted)
    assert code == 2 and "not restored: no confirmation" in err
    assert out.count(f"Replace the root volume with {wanted}? [y/N] ") == 1
    assert len(snapshots_of(root_volume_of(desktop))) == 1


def test_restore_takes_a_spelled_out_yes_at_the_prompt(desktop, clock, capsys, tasks, monkeypatch):
    wanted = own_snapshot(desktop)
    _queue_task(tasks, desktop, wanted, ["succeeded"])
    monkeypatch.setattr("sys.stdin", Terminal("  Yes \n"))
    code, out, err = run(capsys, "restore", "--instance-id", desktop, "--snapshot", wanted)
    assert code == 0, err
    tasks.assert_no_pending_responses()


def test_a_replacement_that_outlasts_the_timeout_exits_1_and_says_it_goes_on(desktop, clock, capsys, tasks):
    clock.now = 5000.0  # the waits count from their own start, not from the clock's zero
    wanted = own_snapshot(desktop)
    _queue_task(tasks, desktop, wanted, ["in-progress"] * 4)
    code, out, err = run(capsys, "restore", "--instance-id", desktop, "--snapshot", wanted, "--yes",
                         "--timeout", "60s", "--poll", "25s")
    assert code == 1, err
    tasks.assert_no_pending_responses()  # read at 0, 25, 50 and 60 s: the last wait is cut to the timeout
    assert clock.sleeps == [25.0, 25.0, 10.0]
    assert out.count("task replacevol-0123456789abcdef0: in-progress") == 1  # a state is said once
    assert out.splitlines()[-1] == ("timed out after 1m00s; task replacevol-0123456789abcdef0 is in-progress "
                                    "and goes on by itself")


def test_a_replacement_that_failed_detached_says_the_old_volume_is_detached(desktop, clock, capsys, tasks):
    wanted = own_snapshot(desktop)
    _queue_task(tasks, desktop, wanted, ["failed-detached"])
    code, out, err = run(capsys, "restore", "--instance-id", desktop, "--snapshot", wanted, "--yes")
    assert code == 1
    assert "the replacement failed-detached: the original root volume is detached; see `aws ec2 " \
           "describe-replace-root-volume-tasks --replace-root-volume-task-ids replacevol-0123456789abcdef0`" in out


def _image_from(capsys, snapshot_id, *options):
    code, out, err = run(capsys, "image-from-snapshot", "--snapshot", snapshot_id, *options)
    assert code == 0, err
    (image_id,) = {w.rstrip(",") for w in out.split() if w.startswith("ami-")}
    return image_id, out.splitlines()


def test_an_image_takes_what_the_snapshot_lacks_from_the_live_desktop(desktop, capsys, register_requests,
                                                                     monkeypatch):
    from moto.backends import get_backend
    from moto.core import DEFAULT_ACCOUNT_ID
    import datetime

    older = own_snapshot(desktop)  # the desktop tag only, as a daily snapshot of an older version carries
    get_backend("ec2")[DEFAULT_ACCOUNT_ID][REGION].snapshots[older].start_time = datetime.datetime(
        2026, 11, 20, 5, 3, tzinfo=datetime.timezone.utc)
    # moto's instances have no boot mode; EC2's say it.
    edit_described_instances(monkeypatch, lambda instance: instance.update(CurrentInstanceBootMode="uefi"))
    image_id, lines = _image_from(capsys, older)
    name = f"test-role-1a2b3c4-{older}-20261120-0503"
    assert register_requests == [{
        "Name": name,
        "Description": f"deep-learning-desktop test-role-1a2b3c4: root volume from {older}",
        "Architecture": "x86_64",  # the desktop's instance's
        "RootDeviceName": "/dev/sda1",
        "VirtualizationType": "hvm",
        "EnaSupport": True,
        "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {
            "SnapshotId": older, "DeleteOnTermination": True, "VolumeType": "gp3"}}],
        "TagSpecifications": [{"ResourceType": "image", "Tags": [
            {"Key": TAG, "Value": "test-role-1a2b3c4"}, {"Key": "DesktopSourceSnapshot", "Value": older}]}],
        "BootMode": "uefi",  # the desktop's instance's
    }]
    size = client("ec2").describe_snapshots(SnapshotIds=[older])["Snapshots"][0]["VolumeSize"]
    assert lines == [
        f"AMI {image_id} ({name}), x86_64, boot mode uefi, root volume from {older} ({size} GiB)",
        "Give it to a new stack (its instance type must be x86_64, e.g. g4dn.xlarge):",
        f"  pulumi config set amiId {image_id}",
        "The new desktop boots with that root volume's files; EFS comes back with "
        "`pulumi config set efsFileSystemId fs-...`.",
    ]


def test_an_images_default_name_keeps_the_desktops_capitals_and_replaces_what_ec2_refuses(desktop, capsys,
                                                                                          register_requests):
    from moto.backends import get_backend
    from moto.core import DEFAULT_ACCOUNT_ID
    import datetime

    named = own_snapshot(desktop, "Vision+Team:Ann")
    get_backend("ec2")[DEFAULT_ACCOUNT_ID][REGION].snapshots[named].start_time = datetime.datetime(
        2026, 11, 20, 5, 3, tzinfo=datetime.timezone.utc)
    image_id, lines = _image_from(capsys, named, "--architecture", "x86_64")
    # An AMI name takes letters, digits, ( ) [ ] space . / ' @ _ - only.
    name = f"Vision-Team-Ann-{named}-20261120-0503"
    assert register_requests[0]["Name"] == name
    assert lines[0].startswith(f"AMI {image_id} ({name}), x86_64")


def test_an_image_of_a_large_recorded_snapshot_keeps_its_device_mode_and_size(desktop, capsys, register_requests):
    ec2 = client("ec2")
    volume = ec2.create_volume(Size=300, AvailabilityZone=f"{REGION}a")["VolumeId"]
    recorded = ec2.create_snapshot(VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": [
        {"Key": TAG, "Value": "ann+bob:role"}, {"Key": "DesktopArchitecture", "Value": "arm64"},
        {"Key": "DesktopBootMode", "Value": "uefi-preferred"},
        {"Key": "DesktopRootDevice", "Value": "/dev/xvda"}]}])["SnapshotId"]
    image_id, lines = _image_from(capsys, recorded, "--name", "my-desktop (old)")
    (request,) = register_requests
    assert (request["Name"], request["Architecture"], request["BootMode"], request["RootDeviceName"]) == (
        "my-desktop (old)", "arm64", "uefi-preferred", "/dev/xvda")
    assert request["BlockDeviceMappings"][0]["DeviceName"] == "/dev/xvda"
    assert lines[1:3] == ["Give it to a new stack (its instance type must be Graviton, e.g. g5g.xlarge):",
                          f"  pulumi config set amiId {image_id}"]
    assert lines[3] == "  pulumi config set ebsVolumeSize 300    # at least the snapshot's 300 GiB"
    # Without --name, the name is made of the desktop, the snapshot and its date, in the
    # characters an AMI name may hold.
    image_id, lines = _image_from(capsys, recorded)
    assert register_requests[1]["Name"].startswith(f"ann-bob-role-{recorded}-")


def test_a_snapshot_records_the_boot_mode_and_root_device_and_no_old_note(desktop, clock, capsys, monkeypatch):
    ec2 = client("ec2")
    volume = root_volume_of(desktop)
    # A volume restored from a snapshot carries that snapshot's note: a new snapshot has its own or none.
    ec2.create_tags(Resources=[volume], Tags=[{"Key": "DesktopNote", "Value": "the restored one's note"}])
    def as_ec2_says(instance):  # moto's instances have no boot mode, and always /dev/sda1 as root device
        instance["BootMode"] = "uefi"
        instance["RootDeviceName"] = "/dev/xvda"
        for mapping in instance["BlockDeviceMappings"]:
            mapping["DeviceName"] = "/dev/xvda"

    edit_described_instances(monkeypatch, as_ec2_says)
    code, out, err = run(capsys, "snapshot", "--instance-id", desktop)
    assert code == 0, err
    (snapshot,) = snapshots_of(volume)
    t = tags(snapshot)
    assert (t["DesktopBootMode"], t["DesktopRootDevice"]) == ("uefi", "/dev/xvda")
    assert "DesktopNote" not in t


def test_a_failed_snapshot_says_why_and_exits_1(desktop, clock, capsys, monkeypatch):
    from tests.moto_account import backend

    _later_snapshots_are(monkeypatch, "recoverable")
    code, out, err = run(capsys, "snapshot", "--instance-id", desktop)
    assert code == 1
    (snapshot,) = snapshots_of(root_volume_of(desktop))
    assert out.splitlines()[-1] == f"snapshot {snapshot['SnapshotId']} failed: recoverable"


def test_restore_of_a_snapshot_that_does_not_exist_names_it_and_the_region(desktop, clock, capsys, tasks):
    code, out, err = run(capsys, "restore", "--instance-id", desktop, "--snapshot", "snap-0123456789abcdef0",
                         "--yes")
    assert code == 2
    assert f"snapshot snap-0123456789abcdef0 does not exist in {REGION} (or is not yours)" in err


def test_restore_says_what_is_lost_and_what_stays_then_each_step(desktop, clock, capsys, tasks):
    from tests.moto_account import backend
    import datetime

    ec2 = client("ec2")
    volume = root_volume_of(desktop)
    wanted = ec2.create_snapshot(VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": [
        {"Key": TAG, "Value": "test-role-1a2b3c4"}, {"Key": "DesktopNote", "Value": "works again"}]}])["SnapshotId"]
    backend("ec2").snapshots[wanted].start_time = datetime.datetime(2026, 11, 20, 5, 3, tzinfo=datetime.timezone.utc)
    _queue_task(tasks, desktop, wanted, ["succeeded"])
    code, out, err = run(capsys, "restore", "--instance-id", desktop, "--snapshot", wanted, "--yes")
    assert code == 0, err
    (safety,) = [s["SnapshotId"] for s in snapshots_of(volume) if s["SnapshotId"] != wanted]
    size = ec2.describe_volumes(VolumeIds=[volume])["Volumes"][0]["Size"]
    *steps, last = out.splitlines()
    assert steps == [
        f"Restore desktop test-role-1a2b3c4 ({desktop}) to snapshot {wanted} of 2026-11-20 05:03 UTC (works again).",
        f"What will be lost: every change made on the root volume {volume} after 2026-11-20 05:03 UTC (your home "
        "directory outside EFS, installed packages, settings), and unsaved work in open programs: the desktop "
        "restarts.",
        "What stays: EFS and your S3 bucket; the instance's id and addresses.",
        "Before the replacement, a snapshot of the current root volume is taken (kind before-restore), so the "
        "changes since then can be had back.",
        f"snapshot {safety} of {volume} ({size} GiB) started",
        f"[  0m00s] snapshot {safety}: completed 100%",
        f"snapshot {safety} completed after 0m00s",
        "replace-root-volume task replacevol-0123456789abcdef0 started",
        "[  0m00s] task replacevol-0123456789abcdef0: succeeded",
    ]
    assert pasted(f"desktop {desktop} is restored to {wanted}; the previous state is snapshot {safety}. Follow the "
                  "boot with ", "wait").fullmatch(last), last


def test_an_image_asks_the_live_desktop_for_the_boot_mode_alone_when_only_that_is_missing(desktop, capsys,
                                                                                         register_requests,
                                                                                         monkeypatch):
    # A snapshot that records its architecture but not the boot mode (taken before the
    # program recorded it): an AMI registered without the desktop's UEFI would not boot.
    recorded = client("ec2").create_snapshot(VolumeId=root_volume_of(desktop), TagSpecifications=[{
        "ResourceType": "snapshot", "Tags": [{"Key": TAG, "Value": "test-role-1a2b3c4"},
                                             {"Key": "DesktopArchitecture", "Value": "x86_64"}]}])["SnapshotId"]
    # moto's instances have no boot mode; older EC2 answers say BootMode only.
    edit_described_instances(monkeypatch, lambda instance: instance.update(BootMode="uefi"))
    _image_from(capsys, recorded)
    (request,) = register_requests
    assert (request["Architecture"], request["BootMode"]) == ("x86_64", "uefi")
