"""``python -m desktop wait | connect | stop | start`` against moto, run as a person
runs them (``AWS_ENDPOINT_URL``), with an injected clock so no test sleeps."""

from __future__ import annotations

import configparser
import json
import os
import stat
import sys

import pytest

from desktop.commands import operate, stack_file
from desktop.commands.cli import main
from desktop.commands.aws import CLIENT_CONFIG
from tests.moto_account import (  # noqa: F401
    REGION, add_image, aws_env, client, console, edit_described_instances, set_state, throttling_endpoint,
    write_stack,
)

BANNER = "[    0.000000] Linux version 6.8.0-1021-aws (buildd@lcy02-amd64-030) #23-Ubuntu SMP\n"


def stage(name: str) -> str:
    return f"[   42.1] cloud-init[1234]: deep-learning-desktop: {name}\n"


class Clock:
    """A fake monotonic clock; each sleep advances it and plays the next scripted event."""

    def __init__(self, events=()):
        self.now = 0.0
        self.events = list(events)
        self.sleeps = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.events:
            self.events.pop(0)()


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(operate, "_monotonic", fake.monotonic)
    monkeypatch.setattr(operate, "_sleep", fake.sleep)
    return fake


@pytest.fixture
def instance(aws_env, tmp_path, monkeypatch):
    """A running desktop instance with a public address, key pair my-key, in a default VPC."""
    ec2 = client("ec2")
    ec2.create_key_pair(KeyName="my-key")
    image = add_image("x86_64")
    found = ec2.run_instances(ImageId=image, InstanceType="g4dn.xlarge", KeyName="my-key",
                              MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    write_stack(tmp_path, {"s3Bucket": "b"}, stack="test")
    monkeypatch.chdir(tmp_path)
    # No Pulumi CLI unless a test puts one there.
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return found


def run(capsys, *argv: str, stack: str = "test", project_dir=None):
    project = str(project_dir or os.getcwd())
    code = main([*argv, "--stack", stack, "--project-dir", project])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def state_of(instance_id: str) -> str:
    return client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


# --- wait ----------------------------------------------------------------------

def test_wait_follows_the_boot_until_ready(instance, console, clock, capsys):
    set_state(instance, "pending")
    boot = BANNER + stage("installing gnome desktop")
    clock.events = [
        lambda: set_state(instance, "running"),
        lambda: console(instance, boot),
        lambda: console(instance, boot + stage("installing dcv server") + stage("first boot complete, rebooting")),
        # The setup reboots: its lines before the new kernel banner belong to the first boot.
        lambda: console(instance, boot + stage("installing dcv server") + stage("first boot complete, rebooting") + BANNER),
        lambda: console(instance, boot + stage("first boot complete, rebooting") + BANNER + stage("efs mounted at /home/ubuntu/efs") + stage("ready")),
    ]
    code, out, err = run(capsys, "wait", "--instance-id", instance, "--poll", "1m")
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0] == "[  0m00s] instance pending"
    assert "[  1m00s] instance running, status checks passed" in lines
    assert any("2m00s" in ln and "boot stage: installing gnome desktop" in ln for ln in lines)
    assert any("3m00s" in ln and "boot stage: first boot complete, rebooting" in ln for ln in lines)
    assert any("4m00s" in ln and "boot stage: rebooting" in ln for ln in lines)
    assert any("boot stage: ready" in ln for ln in lines)
    assert lines[-1].startswith(f"desktop {instance} is ready after 5m00s")
    assert clock.sleeps == [60.0] * 5


def test_wait_times_out_with_the_last_stage(instance, console, clock, capsys):
    console(instance, BANNER + stage("installing gnome desktop") + stage("installing dcv server"))
    code, out, err = run(capsys, "wait", "--instance-id", instance, "--timeout", "5m", "--poll", "1m")
    assert code == 1
    assert "timed out after 5m00s; last stage seen: installing dcv server" in out.splitlines()[-1]
    assert sum(clock.sleeps) == 300


def test_wait_stops_at_a_failed_boot(instance, console, clock, capsys):
    console(instance, BANNER + stage("installing dcv server")
            + stage("failed during 'installing dcv server' (exit 1), see /var/log/deep-learning-desktop.log"))
    code, out, err = run(capsys, "wait", "--instance-id", instance)
    assert code == 1
    assert out.splitlines()[-1].startswith("the boot failed after 0m00s: failed during 'installing dcv server'")
    assert clock.sleeps == []


def test_a_failed_boot_offers_ssh_to_its_log_only_where_port_22_is_open(instance, console, clock, capsys):
    failed = stage("failed during 'installing dcv server' (exit 1), see /var/log/deep-learning-desktop.log")
    console(instance, BANNER + failed)
    ec2 = client("ec2")
    described = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
    host = described["PublicDnsName"]
    group = ec2.create_security_group(GroupName="desktop", Description="the desktop's",
                                      VpcId=described["VpcId"])["GroupId"]
    ec2.modify_instance_attribute(InstanceId=instance, Groups=[group])
    console_command = (f"`aws ec2 get-console-output --instance-id {instance} --latest --output text "
                       f"--region {REGION}`")

    def details():
        code, out, err = run(capsys, "wait", "--instance-id", instance)
        assert code == 1, err
        return out.splitlines()[-1].partition("Details: ")[2]

    def shell_only(text):
        return (text.startswith("`") and " -m desktop shell --instance-id " in text and " --stack test " in text
                and text.endswith(f" then `sudo cat /var/log/deep-learning-desktop.log`, or the console: "
                                  f"{console_command}") and "ssh -i" not in text)

    # A new group lets nothing in.
    assert shell_only(details())
    # UDP to every port, from anywhere, is no ssh.
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "udp", "FromPort": 0, "ToPort": 65535, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    assert shell_only(details())
    # TCP 22 open to IPv6 addresses only is ssh.
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}])
    text = details()
    assert text.startswith(f"`ssh -i ~/.ssh/my-key.pem ubuntu@{host} sudo cat /var/log/deep-learning-desktop.log` "
                           "or `") and text.endswith(console_command)


def test_wait_on_a_stopped_desktop_says_so(instance, clock, capsys):
    client("ec2").stop_instances(InstanceIds=[instance])
    code, out, err = run(capsys, "wait", "--instance-id", instance)
    assert code == 2
    assert err.startswith(f"error: instance {instance} is stopped") and "start --wait" in err


def test_an_unknown_instance_is_one_line_and_exit_2(instance, capsys):
    code, out, err = run(capsys, "wait", "--instance-id", "i-0123456789abcdef0")
    assert code == 2
    assert err.strip() == (f"error: instance i-0123456789abcdef0 does not exist in {REGION}: "
                           "check --instance-id, --stack and the region")


@pytest.mark.parametrize("console_text, expected", [
    ("", None),
    ("no stages here\n", None),
    (BANNER + stage("installing gnome desktop"), "installing gnome desktop"),
    (BANNER + stage("ready") + BANNER, "rebooting"),  # a ready of the boot before a stop
    (BANNER + stage("ready") + BANNER + stage("later boot"), "later boot"),
    ("deep-learning-desktop: ready\r\n", "ready"),
])
def test_boot_stage_reads_the_current_boot(console_text, expected):
    assert operate.boot_stage(console_text) == expected


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("1d", 86400), ("1h30m", 5400), ("4h", 14400)])
def test_durations(text, seconds):
    assert operate.duration(text) == seconds


def test_bad_duration_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["wait", "--timeout", "soon"])
    assert exit_.value.code == 2 and "'soon' is not a duration" in capsys.readouterr().err


# --- connect -------------------------------------------------------------------

# The groups and parameters the DCV user guide documents for .dcv connection files.
DCV_DOCUMENTED = {
    "version": {"format"},
    "connect": {"host", "port", "weburlpath", "sessionid", "authtoken", "user", "password", "proxytype",
                "proxyhost", "proxyport", "proxyuser", "proxypassword", "transport", "webport", "quicport",
                "certificatevalidationpolicy"},
    "options": {"fullscreen", "useallmonitors", "promptreconnect"},
}


def test_connect_prints_the_address_and_writes_a_dcv_file(instance, capsys, tmp_path):
    described = client("ec2").describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
    host = described["PublicDnsName"]  # the address EC2 gives a person: its public DNS name
    assert host.endswith(".amazonaws.com")
    code, out, err = run(capsys, "connect", "--instance-id", instance)
    assert code == 0, err
    path = tmp_path / f"test-{instance}.dcv"
    dcv = configparser.ConfigParser()
    dcv.optionxform = str  # DCV parameter names are case sensitive
    assert dcv.read(path) == [str(path)]
    assert dcv["version"]["format"] == "1.0"
    assert dcv["connect"]["host"] == host
    assert dcv["connect"]["port"] == "8443"
    assert dcv["connect"]["user"] == "ubuntu"
    # The desktop's certificate is self-signed: the client asks the person, it neither trusts nor refuses.
    assert dcv["connect"]["certificatevalidationpolicy"] == "ask-user"
    for group in dcv.sections():
        assert group in DCV_DOCUMENTED and set(dcv[group]) <= DCV_DOCUMENTED[group]
        for value in dcv[group].values():
            assert not value.startswith(('"', "'"))  # the guide: no quotes around strings
    assert f"https://{host}:8443" in out
    assert f"ssh -i ~/.ssh/my-key.pem ubuntu@{host}" in out
    # The password is the stack's: no SSH login and no `sudo passwd` step any more.
    assert "pulumi stack output DcvPassword --show-secrets --stack test" in out
    assert "passwd" not in out.replace("DcvPassword", "")
    assert str(path.name) in out


def test_connect_reaches_a_public_ip_that_has_no_dns_name(instance, capsys, tmp_path, monkeypatch):
    # In a VPC without DNS hostnames EC2 gives a public IP and an empty PublicDnsName; moto
    # always names the address, so its answer loses the name on the way back.
    described = client("ec2").describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
    public_ip = described["PublicIpAddress"]
    edit_described_instances(monkeypatch, lambda found: found.update(PublicDnsName=""))
    code, out, err = run(capsys, "connect", "--instance-id", instance)
    assert code == 0, err
    assert f"DCV address:     https://{public_ip}:8443  (a browser, or the DCV client)" in out.splitlines()
    assert f"host={public_ip}" in (tmp_path / f"test-{instance}.dcv").read_text().split()
    last = out.splitlines()[-1]
    assert last.startswith("Port 8443 not open to you? `") and last.endswith(
        f" -m desktop connect --ssm --instance-id {instance} --stack test --project-dir {tmp_path.resolve()}` reaches "
        "DCV through Session "
        "Manager.")
    assert "no public address" not in out


def test_connect_to_a_stopped_desktop_fails(instance, capsys):
    client("ec2").stop_instances(InstanceIds=[instance])
    code, out, err = run(capsys, "connect", "--instance-id", instance)
    assert code == 2 and "is stopped: start it first" in err


def test_connect_takes_the_region_from_the_stack(instance, capsys, tmp_path, monkeypatch):
    far = client("ec2", "eu-west-1")
    image = add_image("x86_64", region="eu-west-1")
    far_instance = far.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    write_stack(tmp_path, {"s3Bucket": "b"}, stack="far", region="eu-west-1")
    code, out, err = run(capsys, "connect", "--instance-id", far_instance, "--output", "far.dcv", stack="far")
    assert code == 0, err
    assert (tmp_path / "far.dcv").is_file()
    code, out, err = run(capsys, "connect", "--instance-id", far_instance)  # stack "test": us-east-1
    assert code == 2 and "does not exist in us-east-1" in err


def test_without_a_stack_region_aws_region_is_honoured(instance, capsys, tmp_path, monkeypatch):
    far = client("ec2", "eu-west-1")
    image = add_image("x86_64", region="eu-west-1")
    far_instance = far.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    write_stack(tmp_path, {"s3Bucket": "b"}, stack="anywhere", region=None)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    code, out, err = run(capsys, "connect", "--instance-id", far_instance, "--output", "far.dcv", stack="anywhere")
    assert code == 0, err


# --- stop and start --------------------------------------------------------------

def test_stop_and_start_again(instance, console, clock, capsys):
    code, out, err = run(capsys, "stop", "--instance-id", instance, "--wait", "--poll", "1m")
    assert code == 0, err
    assert state_of(instance) == "stopped"
    assert f"instance {instance} is stopped" in out
    before = BANNER + stage("ready") + BANNER + stage("efs mounted at /home/ubuntu/efs") + stage("ready")
    console(instance, before)
    # EC2 shows the new boot's console a little after the start.
    clock.events = [lambda: console(instance, before + BANNER + stage("efs mounted at /home/ubuntu/efs")
                                    + stage("ready"))]
    code, out, err = run(capsys, "start", "--instance-id", instance, "--wait", "--poll", "1m")
    assert code == 0, err
    assert state_of(instance) == "running"
    assert "EFS is mounted again" in out and f"desktop {instance} is ready after 1m00s" in out


def test_stop_wait_times_out_naming_the_state_it_is_stuck_in(instance, clock, capsys):
    # moto stops at once; EC2 may stay `stopping` for minutes (moto keeps the state set here).
    set_state(instance, "stopping")
    code, out, err = run(capsys, "stop", "--instance-id", instance, "--wait", "--timeout", "2m", "--poll", "1m")
    assert code == 1, err
    assert out.splitlines()[0] == f"instance {instance} is already stopping"
    assert clock.sleeps == [60, 60]
    assert out.splitlines()[-1] == "timed out after 2m00s; the instance is stopping"


def test_stop_wait_takes_its_last_look_at_the_timeout_not_a_poll_after(instance, clock, capsys):
    set_state(instance, "stopping")
    code, out, err = run(capsys, "stop", "--instance-id", instance, "--wait", "--timeout", "2m", "--poll", "45s")
    assert code == 1, err
    assert clock.sleeps == [45, 45, 30]
    assert out.splitlines()[-1] == "timed out after 2m00s; the instance is stopping"


def test_start_without_wait_says_what_next(instance, capsys):
    client("ec2").stop_instances(InstanceIds=[instance])
    code, out, err = run(capsys, "start", "--instance-id", instance)
    assert code == 0 and state_of(instance) == "running"
    assert "python -m desktop wait" in out


# --- which desktop: the Pulumi CLI, or --instance-id -------------------------------

def fake_pulumi(directory, outputs=None, fail: str = ""):
    """A ``pulumi`` executable that records its arguments and prints ``outputs``."""
    script = directory / "pulumi"
    record = directory / "pulumi-args"
    # Only shell builtins: PATH holds nothing but this directory.
    if fail:
        body = f'printf "%s\\n" "error: {fail}" >&2\nexit 255\n'
    else:
        body = f"printf '%s\\n' '{json.dumps(outputs)}'\n"
    script.write_text(f"#!/bin/sh\necho \"$@\" > '{record}'\n{body}")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return record


def test_the_instance_comes_from_pulumi_stack_output(instance, capsys, tmp_path):
    record = fake_pulumi(tmp_path / "bin", {"DesktopInstanceId": instance, "DcvUrl": "https://x:8443"})
    code, out, err = run(capsys, "stop")
    assert code == 0, err
    assert record.read_text().split() == ["stack", "output", "--json", "--stack", "test"]
    assert state_of(instance) == "stopped"


def test_a_failing_pulumi_is_one_line_and_exit_2(instance, capsys, tmp_path):
    fake_pulumi(tmp_path / "bin", fail="no stack named 'test' found")
    code, out, err = run(capsys, "stop")
    assert code == 2
    assert err.strip().splitlines() == [
        "error: `pulumi stack output --json --stack test` failed: error: no stack named 'test' found"]


def test_without_pulumi_the_instance_id_is_needed(instance, capsys):
    code, out, err = run(capsys, "connect")
    assert code == 2 and "--instance-id" in err and "Pulumi CLI is not on PATH" in err


@pytest.mark.parametrize("command", ["wait", "connect", "stop", "start"])
def test_throttling_after_retries_is_one_line_and_exit_2(command, instance, throttling_endpoint, monkeypatch,
                                                         capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", throttling_endpoint.url)
    code, out, err = run(capsys, command, "--instance-id", instance)
    assert code == 2
    assert err.startswith("error: AWS is throttling DescribeInstances even after retries "
                          "(RequestLimitExceeded: Request limit exceeded.)")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    # every try the client allows, then one line
    assert throttling_endpoint.requests == ["DescribeInstances"] * CLIENT_CONFIG.retries["total_max_attempts"]


@pytest.mark.parametrize("command", ["preflight", "wait", "connect", "stop", "start"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "--stack" in capsys.readouterr().out


def test_the_options_a_person_sets_are_explained(capsys):
    with pytest.raises(SystemExit):
        main(["connect", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # as argparse wraps it
    assert "where to write the .dcv file (default: ./<stack>-<instance id>.dcv)" in text
    assert "{websocket,quic}" in text
    with pytest.raises(SystemExit):
        main(["wait", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--poll DURATION time between two looks at the instance (default: 15 seconds; e.g. 1m)" in text


def test_connect_refuses_a_transport_dcv_does_not_know(instance, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["connect", "--instance-id", instance, "--transport", "udp", "--stack", "test"])
    assert exit_.value.code == 2
    assert "argument --transport: invalid choice: 'udp' (choose from " in capsys.readouterr().err
    assert not list(tmp_path.glob("*.dcv"))


def test_runs_as_a_module(instance, tmp_path):
    """``python -m desktop`` in a fresh process: no traceback, one line, exit 2."""
    import subprocess

    done = subprocess.run([sys.executable, "-m", "desktop", "connect", "--stack", "test",
                           "--project-dir", str(tmp_path)],
                          cwd=stack_file.PROJECT_DIR, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("error: which desktop?") and "Traceback" not in done.stderr
