"""``python -m desktop bake`` against moto: CreateImage of a ready desktop, its tags, the
wait until ``available``, and the refusal of a desktop that is not ready."""

from __future__ import annotations

import datetime
import io

import pytest

from desktop.commands import aws, bake
from desktop.commands.cli import main
from tests.moto_account import (  # noqa: F401
    add_image, aws_env, backend, client, console, set_state, write_stack,
)
from tests.test_operate import BANNER, Clock, stage

WHEN = datetime.datetime(2026, 11, 28, 1, 2, 3, tzinfo=datetime.timezone.utc)
DCV = "2024.0.19030-1"
READY_CONSOLE = BANNER + stage("later boot") + stage(f"dcv {DCV}") + stage("ready")


@pytest.fixture
def desktop(aws_env, tmp_path, monkeypatch):
    """A running desktop from a DLAMI, and no Pulumi CLI (the commands take --instance-id)."""
    ec2 = client("ec2")
    source = add_image("x86_64")
    found = ec2.run_instances(ImageId=source, InstanceType="g4dn.xlarge", MinCount=1, MaxCount=1)
    write_stack(tmp_path, {"s3Bucket": "b"}, stack="alice")
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(bake, "_now", lambda: WHEN)
    return found["Instances"][0]["InstanceId"], source


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(bake, "_monotonic", fake.monotonic)
    monkeypatch.setattr(bake, "_sleep", fake.sleep)
    return fake


@pytest.fixture
def requests(monkeypatch):
    """The parameters of every CreateImage the command sends (moto ignores NoReboot)."""
    sent = []
    original = aws.Aws.client

    def client_with_a_recorder(self, service):
        made = original(self, service)
        if not getattr(made, "_recorded", False):
            made.meta.events.register("provide-client-params.ec2.CreateImage",
                                      lambda params, **_: sent.append(dict(params)))
            made._recorded = True
        return made

    monkeypatch.setattr(aws.Aws, "client", client_with_a_recorder)
    return sent


def run(capsys, *argv):
    code = main(["bake", "--stack", "alice", "--project-dir", ".", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def images_of(instance_id: str) -> list[dict]:
    return client("ec2").describe_images(Filters=[{"Name": "source-instance-id", "Values": [instance_id]}])["Images"]


def tags(resource: dict) -> dict:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def test_a_ready_desktop_becomes_a_tagged_image_and_the_next_stack_is_told(desktop, console, clock, requests,
                                                                           capsys):
    instance_id, source = desktop
    console(instance_id, READY_CONSOLE)
    code, out, err = run(capsys, "--instance-id", instance_id, "--yes")
    assert code == 0, err
    (image,) = images_of(instance_id)
    assert image["State"] == "available"
    assert image["Name"] == "deep-learning-desktop-alice-20261128-010203"
    expected = {"Name": image["Name"], "Project": "deep-learning-desktop", "Stack": "alice",
                "SourceInstance": instance_id, "SourceAmi": source, "DcvVersion": DCV,
                "BakedAt": "2026-11-28T01:02:03Z"}
    assert tags(image) == expected
    (snapshot_id,) = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"]]
    (snapshot,) = client("ec2").describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert tags(snapshot) == expected, "the snapshots are what costs: tagged alike"
    (request,) = requests
    assert request["NoReboot"] is False, "consistent file systems: EC2 restarts the desktop for the image"
    assert f"pulumi config set amiId {image['ImageId']}" in out
    assert "restarts the desktop once" in out


def test_the_image_is_followed_until_available(desktop, console, clock, capsys, monkeypatch):
    instance_id, _ = desktop
    console(instance_id, READY_CONSOLE)
    ec2 = backend("ec2")
    created = []
    original = ec2.create_image

    def pending(*args, **kwargs):
        ami = original(*args, **kwargs)
        ami.state = "pending"
        created.append(ami)
        return ami

    monkeypatch.setattr(ec2, "create_image", pending)
    # moto's snapshots are always 100% done; EC2's copy the disk for minutes.
    from moto.ec2.models.elastic_block_store import Snapshot
    monkeypatch.setattr(Snapshot, "progress", property(lambda snapshot: "42%"))
    clock.events = [lambda: None, lambda: setattr(created[0], "state", "available")]
    code, out, err = run(capsys, "--instance-id", instance_id, "--name", "team base", "--poll", "30s", "--yes")
    assert code == 0, err
    progress = [line for line in out.splitlines() if line.startswith("[")]
    assert progress[0] == f"[  0m00s] image {created[0].id} pending, snapshot 42%"
    assert "available" in progress[-1]
    assert len(progress) == 2, "a line per change, not per poll"
    assert clock.sleeps == [30, 30]
    assert images_of(instance_id)[0]["Name"] == "team base"


@pytest.mark.parametrize("final, expected", [("failed", "the image failed"), ("pending", "timed out after 2m00s")])
def test_a_failed_or_slow_image_ends_with_exit_1(desktop, console, clock, capsys, monkeypatch, final, expected):
    instance_id, _ = desktop
    console(instance_id, READY_CONSOLE)
    ec2 = backend("ec2")
    original = ec2.create_image

    def ends(*args, **kwargs):
        ami = original(*args, **kwargs)
        ami.state = final
        return ami

    monkeypatch.setattr(ec2, "create_image", ends)
    code, out, _ = run(capsys, "--instance-id", instance_id, "--timeout", "2m", "--poll", "30s", "--yes")
    assert code == 1
    assert expected in out
    assert "pulumi config set amiId" not in out


@pytest.mark.parametrize("console_text", [
    BANNER + stage("installing gnome desktop"),
    BANNER + stage("ready") + BANNER + stage("later boot"),  # ready was the boot before
    BANNER + stage("failed during 'installing dcv server' (exit 1), see /var/log/deep-learning-desktop.log"),
    "",
])
def test_a_desktop_that_is_not_ready_is_refused_unless_forced(desktop, console, clock, capsys, console_text):
    instance_id, _ = desktop
    console(instance_id, console_text)
    code, _, err = run(capsys, "--instance-id", instance_id)
    assert code == 2 and "is not ready" in err and "--force" in err
    assert images_of(instance_id) == []
    code, _, err = run(capsys, "--instance-id", instance_id, "--force", "--yes")
    assert code == 0, err
    (image,) = images_of(instance_id)
    assert tags(image)["DcvVersion"] == "unknown"


def test_a_terminated_desktop_is_refused(desktop, console, clock, capsys):
    instance_id, _ = desktop
    client("ec2").terminate_instances(InstanceIds=[instance_id])
    code, _, err = run(capsys, "--instance-id", instance_id, "--force")
    assert code == 2 and "terminated" in err


def test_a_stopped_desktop_is_imaged_without_a_restart(desktop, console, clock, capsys):
    instance_id, _ = desktop
    console(instance_id, READY_CONSOLE)
    client("ec2").stop_instances(InstanceIds=[instance_id])
    code, out, err = run(capsys, "--instance-id", instance_id)
    assert code == 0, err
    assert "restarts" not in out and len(images_of(instance_id)) == 1


def test_a_bad_image_name_is_refused_before_anything(desktop, console, clock, capsys):
    instance_id, _ = desktop
    code, _, err = run(capsys, "--instance-id", instance_id, "--name", "no*stars")
    assert code == 2 and "--name 'no*stars'" in err
    assert images_of(instance_id) == []


def test_the_dcv_version_is_the_last_the_console_shows():
    text = stage("dcv 2023.1.1-1") + BANNER + stage("dcv 2024.0.19030-1") + stage("ready")
    assert bake.dcv_version(text) == "2024.0.19030-1"
    assert bake.dcv_version(stage("ready")) == "unknown"


def test_no_wait_returns_once_ec2_accepted_it(desktop, console, clock, capsys):
    instance_id, _ = desktop
    console(instance_id, READY_CONSOLE)
    code, out, err = run(capsys, "--instance-id", instance_id, "--no-wait", "--yes")
    assert code == 0, err
    (image,) = images_of(instance_id)
    assert clock.sleeps == [] and f"pulumi config set amiId {image['ImageId']}" in out


def test_bake_has_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bake", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--stack" in out and "--force" in out and "--name" in out
    # --no-wait leaves a pending image behind: the help says so.
    assert "--no-wait return once EC2 has accepted the request" in " ".join(out.split())


# --- the question before a restart, and --no-reboot --------------------------------------

class Terminal(io.StringIO):
    def isatty(self):
        return True


BUSY_CONSOLE = (BANNER + stage("busy again (dcv 1 connected; gpu 85%)") + BANNER + stage("later boot")
                + stage(f"dcv {DCV}") + stage("ready") + stage("idle since 2026-11-28T00:10:00Z")
                + stage("busy again (dcv 2 connected; gpu 97%)"))


def test_bake_of_a_running_desktop_without_a_terminal_and_without_yes_creates_no_image(
        desktop, console, clock, requests, capsys, monkeypatch):
    instance_id, _ = desktop
    console(instance_id, READY_CONSOLE)
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # piped input is no confirmation
    code, out, err = run(capsys, "--instance-id", instance_id)
    assert code == 2
    assert err.count("\n") == 1 and "not baked: no confirmation" in err and "--yes" in err, err
    assert "Traceback" not in err
    assert requests == [] and images_of(instance_id) == []


def test_the_question_names_what_the_restart_interrupts_and_no_means_no(desktop, console, clock, requests,
                                                                       capsys, monkeypatch):
    instance_id, _ = desktop
    console(instance_id, BUSY_CONSOLE)
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    code, out, err = run(capsys, "--instance-id", instance_id)
    assert code == 2 and "not baked" in err
    assert f"EC2 restarts desktop {instance_id}" in out
    assert "connected DCV clients" in out and "GPU jobs" in out
    # The agent's last line of this boot, not the busy line of the boot before.
    assert 'the idle agent last said "busy again (dcv 2 connected; gpu 97%)"' in out
    assert "--no-reboot" in out
    assert requests == [] and images_of(instance_id) == []


def test_yes_on_the_terminal_bakes_with_the_restart(desktop, console, clock, requests, capsys, monkeypatch):
    instance_id, _ = desktop
    # The boot before said busy; this boot's agent has said nothing yet: unknown.
    console(instance_id, BANNER + stage("busy again (dcv 1 connected)") + READY_CONSOLE)
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    code, out, err = run(capsys, "--instance-id", instance_id)
    assert code == 0, err
    (request,) = requests
    assert request["NoReboot"] is False
    assert "What is running now: unknown: the idle agent has printed nothing" in out
    assert len(images_of(instance_id)) == 1


def test_no_reboot_images_a_running_desktop_without_asking_and_says_what_that_risks(
        desktop, console, clock, requests, capsys, monkeypatch):
    instance_id, _ = desktop
    console(instance_id, READY_CONSOLE)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no terminal: it must not need one
    code, out, err = run(capsys, "--instance-id", instance_id, "--no-reboot")
    assert code == 0, err
    (request,) = requests
    assert request["NoReboot"] is True
    assert "the file systems in the image may be inconsistent" in out
    assert "restarts" not in out
    assert len(images_of(instance_id)) == 1


@pytest.mark.parametrize("state", ["pending", "stopping"])
def test_a_desktop_between_states_is_refused(desktop, console, clock, requests, capsys, state):
    # pending: its boot has not begun; stopping: an image of it is neither consistent nor current.
    instance_id, _ = desktop
    console(instance_id, READY_CONSOLE)
    set_state(instance_id, state)
    code, _, err = run(capsys, "--instance-id", instance_id, "--force", "--yes")
    assert code == 2
    assert f"instance {instance_id} is {state}: bake a running or stopped desktop" in err
    assert requests == [] and images_of(instance_id) == []
