"""``python -m desktop keep-awake | status`` against moto, and `wait`/`start --wait` on a
console that holds the idle agent's lines, run as a person runs them (``AWS_ENDPOINT_URL``).

moto 5.2.5 does not implement the AWS Price List API (``pricing``). The pretend account
answers GetProducts from a small price list (tests/moto_account.py); here botocore's Stubber
answers instead, on the real client, to check each request's exact filters and to play what
that list never says (a refusal, a $0 price, two prices), with GetProducts responses shaped
like the real ones (each PriceList item is a JSON string)."""

from __future__ import annotations

import datetime

import pytest
from botocore.stub import Stubber

from desktop.commands import idle, operate
from desktop.commands.aws import CLIENT_CONFIG
from desktop.commands.cli import main
from tests.moto_account import (  # noqa: F401
    REGION, add_image, aws_env, backend, client, console, price_item, set_state, throttling_endpoint, write_stack,
)
from tests.test_operate import Clock

BANNER = "[    0.000000] Linux version 6.8.0-1021-aws (buildd@lcy02-amd64-030) #23-Ubuntu SMP\n"
LAUNCH = datetime.datetime(2026, 11, 27, 22, 0, tzinfo=datetime.timezone.utc)
NOW = LAUNCH.timestamp() + 90 * 60  # 1h30m after the last start


def line(text: str) -> str:
    return f"[   42.1] cloud-init[1234]: deep-learning-desktop: {text}\n"


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(operate, "_monotonic", fake.monotonic)
    monkeypatch.setattr(operate, "_sleep", fake.sleep)
    monkeypatch.setattr(idle, "_now", lambda: NOW)
    return fake


@pytest.fixture
def instance(aws_env, tmp_path, monkeypatch):
    """A running g4dn.xlarge desktop with a 200 GiB gp3 root volume and the idle policy tag."""
    ec2 = client("ec2")
    image = add_image("x86_64")
    found = ec2.run_instances(
        ImageId=image, InstanceType="g4dn.xlarge", MinCount=1, MaxCount=1,
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 200, "VolumeType": "gp3"}}],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "IdleStopMinutes", "Value": "30"}]}],
    )["Instances"][0]["InstanceId"]
    backend("ec2").get_instance(found).launch_time = LAUNCH.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    write_stack(tmp_path, {"s3Bucket": "b"}, stack="test")
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return found


def run(capsys, *argv: str):
    code = main([*argv, "--stack", "test", "--project-dir", "."])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tags_of(instance_id: str) -> dict:
    described = client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return {t["Key"]: t["Value"] for t in described.get("Tags", [])}


# --- the Price List API, stubbed -----------------------------------------------------

G4DN = {"instanceType": "g4dn.xlarge", "regionCode": REGION, "operatingSystem": "Linux", "tenancy": "Shared",
        "preInstalledSw": "NA", "capacitystatus": "Used", "licenseModel": "No License required",
        "location": "US East (N. Virginia)", "vcpu": "4", "memory": "16 GiB", "gpu": "1"}
GP3 = {"productFamily": "Storage", "volumeApiName": "gp3", "regionCode": REGION, "location": "US East (N. Virginia)",
       "storageMedia": "SSD-backed", "volumeType": "General Purpose"}


def filters(**fields) -> list:
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in fields.items()]


def instance_query():
    wanted = {k: G4DN[k] for k in ("instanceType", "regionCode", "operatingSystem", "tenancy", "preInstalledSw",
                                   "capacitystatus", "licenseModel")}
    return {"ServiceCode": "AmazonEC2", "MaxResults": 20, "Filters": filters(**wanted)}


def volume_query():
    return {"ServiceCode": "AmazonEC2", "MaxResults": 20,
            "Filters": filters(productFamily="Storage", volumeApiName="gp3", regionCode=REGION)}


class LaterStubber:
    """Answers for the Price List client that ``status`` builds itself: queued here, then
    handed to a botocore Stubber on that real client (its region and endpoint are the
    code's own) when ``idle._pricing_client`` makes it."""

    def __init__(self):
        self.queued: list[tuple[str, tuple, dict]] = []
        self.stubbers: list[Stubber] = []
        self.clients: list = []

    def add_response(self, *args, **kwargs):
        self.queued.append(("add_response", args, kwargs))

    def add_client_error(self, *args, **kwargs):
        self.queued.append(("add_client_error", args, kwargs))

    def attach(self, made):
        stubber = Stubber(made)
        for method, args, kwargs in self.queued:
            getattr(stubber, method)(*args, **kwargs)
        self.queued = []
        stubber.activate()
        self.stubbers.append(stubber)
        self.clients.append(made)
        return made


@pytest.fixture
def pricing(monkeypatch):
    """The real client status makes for the Price List API, with its answers stubbed."""
    later = LaterStubber()
    real = idle._pricing_client
    monkeypatch.setattr(idle, "_pricing_client", lambda session: later.attach(real(session)))
    yield later
    assert later.queued == [], "answers queued for a Price List client that was never made"
    for stubber in later.stubbers:
        stubber.assert_no_pending_responses()
        stubber.deactivate()


def usual_prices(stubber):
    stubber.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [
        price_item(G4DN, "Hrs", "0.5260000000", "Compute Instance")]}, instance_query())
    stubber.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [
        price_item(GP3, "GB-Mo", "0.0800000000", "Storage")]}, volume_query())


# --- status ----------------------------------------------------------------------------

def fields(out: str) -> dict:
    found = {}
    for text in out.splitlines():
        name, sep, value = text.partition(":  ")
        if sep:
            found[name.strip().rstrip(":")] = value.strip()
    return found


def test_status_of_a_running_desktop(instance, console, clock, pricing, capsys):
    usual_prices(pricing)
    client("ec2").create_tags(Resources=[instance], Tags=[{"Key": "KeepAwakeUntil", "Value": str(int(NOW) + 7200)}])
    console(instance, BANNER + line("ready") + line("idle since 2026-11-27 23:05 UTC")
            + line("busy again (dcv client connected)") + line("idle since 2026-11-27 23:20 UTC"))
    code, out, err = run(capsys, "status", "--instance-id", instance)
    assert code == 0, err
    shown = fields(out)
    assert shown["state"] == "running since 2026-11-27 22:00 UTC (1h30m)"
    # 1.5 hours at $0.526 an hour is $0.789.
    assert shown["type"] == "g4dn.xlarge, $0.526/hour on demand; this run so far $0.79"
    assert shown["root volume"].endswith("200 GiB gp3: $16.00/month ($0.080 per GB-month), also while stopped")
    assert shown["idle policy"] == "stops itself after 30 idle minutes"
    assert shown["keep-awake"] == "until 2026-11-28 01:30 UTC (2h00m from now)"
    assert shown["idle agent"] == "idle since 2026-11-27 23:20 UTC"
    assert "start --wait" not in out


def test_status_names_each_probe_that_still_blocks_the_idle_stop_and_for_how_long(instance, console, clock, pricing,
                                                                               capsys):
    usual_prices(pricing)
    earlier_boot = BANNER + line("idle stop blocked: ssm unreadable (ps exit 1) since 2026-11-27T20:00:00Z")
    console(instance, earlier_boot + BANNER + line("ready")
            + line("idle stop blocked: gpu unreadable (nvidia-smi exit 9) since 2026-11-27T22:30:00Z")
            + line("idle stop blocked: dcv unreadable (dcv exit 1) since 2026-11-27T22:40:00Z")
            + line("idle stop unblocked: dcv readable again") + line("idle since 2026-11-27 23:05 UTC"))
    code, out, err = run(capsys, "status", "--instance-id", instance)
    assert code == 0, err
    blocked = [text for text in out.splitlines() if text.startswith("idle stop blocked:")]
    assert blocked == ["idle stop blocked:  gpu unreadable (nvidia-smi exit 9) since 2026-11-27T22:30:00Z (1h00m ago)"]


def stopped_because(instance: str, code: str, message: str) -> None:
    """The reason EC2 gives for the stop, as EC2 spells it (not left to moto's default)."""
    from moto.ec2.models.instances import StateReason

    backend("ec2").get_instance(instance).state_reason = StateReason(f"{code}: {message}", code)


def test_status_of_a_desktop_that_stopped_itself(instance, console, clock, pricing, capsys):
    usual_prices(pricing)
    client("ec2").stop_instances(InstanceIds=[instance])
    stopped_because(instance, "Client.InstanceInitiatedShutdown", "Instance initiated shutdown")
    console(instance, BANNER + line("ready") + line("idle since 2026-11-27 22:40 UTC")
            + line("stopping after 30 idle minutes"))
    code, out, err = run(capsys, "status", "--instance-id", instance)
    assert code == 0, err
    shown = fields(out)
    assert shown["state"].startswith("stopped: it stopped itself")
    assert shown["type"] == "g4dn.xlarge, $0.526/hour on demand while it runs"
    assert shown["idle agent"] == "stopping after 30 idle minutes"
    last = out.splitlines()[-1]
    assert last.startswith("the desktop is stopped: start it: `") and last.endswith("`")
    assert "-m desktop start --wait --instance-id " in last and " --stack test --project-dir " in last  # to paste as it is


def test_status_of_a_desktop_stopping_through_the_api_says_so(instance, console, clock, pricing, capsys):
    usual_prices(pricing)
    client("ec2").stop_instances(InstanceIds=[instance])
    stopped_because(instance, "Client.UserInitiatedShutdown", "User initiated shutdown")
    set_state(instance, "stopping")
    code, out, err = run(capsys, "status", "--instance-id", instance)
    assert code == 0, err
    assert fields(out)["state"] == ("stopping: stopped through the API (`python -m desktop stop`, the console or "
                                    "the CLI); last started 2026-11-27 22:00 UTC")
    last = out.splitlines()[-1]
    assert last.startswith("the desktop is stopping: once it is stopped, start it: `")


def test_status_says_unknown_when_the_price_list_refuses(instance, console, clock, pricing, capsys):
    for _ in range(2):
        pricing.add_client_error("get_products", service_error_code="AccessDeniedException",
                                 service_message="not authorized to perform: pricing:GetProducts", http_status_code=400)
    code, out, err = run(capsys, "status", "--instance-id", instance)
    assert code == 0, err
    shown = fields(out)
    assert shown["type"] == ("g4dn.xlarge, unknown (the Price List API said AccessDeniedException: not authorized "
                             "to perform: pricing:GetProducts) on demand")
    assert "$" not in out
    assert shown["root volume"].endswith("200 GiB gp3: unknown (the Price List API said AccessDeniedException: "
                                         "not authorized to perform: pricing:GetProducts)")


def test_a_price_of_zero_is_unknown_not_free(instance, console, clock, pricing, capsys):
    pricing.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [
        price_item(G4DN, "Hrs", "0.0000000000", "Compute Instance")]}, instance_query())
    pricing.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [
        price_item(GP3, "GB-Mo", "0.0000000000", "Storage")]}, volume_query())
    code, out, err = run(capsys, "status", "--instance-id", instance)
    assert code == 0, err
    shown = fields(out)
    assert shown["type"] == ("g4dn.xlarge, unknown (the Price List API gives $0, which is no real on-demand "
                             "price) on demand")
    assert shown["root volume"].endswith("200 GiB gp3: unknown (the Price List API gives $0, which is no real "
                                         "on-demand price)")
    assert "$0.0" not in out and "so far" not in out


def test_the_price_list_client_asks_us_east_1_for_the_stacks_region(monkeypatch):
    # The Price List API has endpoints in us-east-1 (and ap-south-1, eu-central-1) only: a
    # client in the stack's region (here eu-west-1) would not resolve. The product asked
    # for is the stack region's. The client is the one the code builds, stubbed.
    from desktop.commands import aws

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    session = aws.Aws(region="eu-west-1")
    made = idle._pricing_client(session)
    assert session.region == "eu-west-1"
    assert made.meta.region_name == "us-east-1"
    assert made.meta.endpoint_url == "https://api.pricing.us-east-1.amazonaws.com"
    wanted = {**G4DN, "regionCode": "eu-west-1", "location": "Europe (Ireland)"}
    with Stubber(made) as stubber:
        stubber.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [
            price_item(wanted, "Hrs", "0.5870000000", "Compute Instance")]},
            {"ServiceCode": "AmazonEC2", "MaxResults": 20, "Filters": filters(**{
                k: wanted[k] for k in ("instanceType", "regionCode", "operatingSystem", "tenancy",
                                       "preInstalledSw", "capacitystatus", "licenseModel")})})
        price = idle.instance_hourly(made, session.region, "g4dn.xlarge")
        stubber.assert_no_pending_responses()
    assert price.text("hour") == "$0.587/hour"


def test_status_never_guesses_between_two_prices(instance, console, clock, pricing, capsys):
    pricing.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [
        price_item(G4DN, "Hrs", "0.5260000000", "Compute Instance"),
        price_item({**G4DN, "marketoption": "OnDemand"}, "Hrs", "0.6000000000", "Compute Instance")]},
        instance_query())
    pricing.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": []}, volume_query())
    code, out, err = run(capsys, "status", "--instance-id", instance)
    assert code == 0, err
    shown = fields(out)
    assert shown["type"] == "g4dn.xlarge, unknown (the Price List API gives 2 different prices) on demand"
    assert shown["root volume"].endswith("unknown (the Price List API has no on-demand price for it)")


def test_status_without_the_policy_tag_says_so(instance, console, clock, pricing, capsys):
    usual_prices(pricing)
    client("ec2").delete_tags(Resources=[instance], Tags=[{"Key": "IdleStopMinutes"}])
    code, out, err = run(capsys, "status", "--instance-id", instance)
    assert fields(out)["idle policy"] == "unknown (no IdleStopMinutes tag: `pulumi up` sets it)"
    assert fields(out)["idle agent"] == "none on the console yet"


def test_status_of_an_unknown_instance_is_exit_2(instance, capsys):
    code, out, err = run(capsys, "status", "--instance-id", "i-0123456789abcdef0")
    assert code == 2 and err.startswith("error: instance i-0123456789abcdef0 does not exist")


@pytest.mark.parametrize("tag, shown", [("0", "never stops itself (idleStopMinutes 0)"),
                                        ("1440", "stops itself after 1440 idle minutes"),
                                        ("soon", "unknown (IdleStopMinutes='soon')")])
def test_idle_policy_text(tag, shown):
    assert idle.idle_policy({"IdleStopMinutes": tag}) == shown


# --- keep-awake -------------------------------------------------------------------------

def test_keep_awake_sets_shows_and_ends_the_deadline(instance, clock, capsys):
    code, out, err = run(capsys, "keep-awake", "4h", "--instance-id", instance)
    assert code == 0, err
    assert tags_of(instance)["KeepAwakeUntil"] == str(int(NOW) + 4 * 3600)
    assert "kept awake until 2026-11-28 03:30 UTC (4h00m from now)" in out
    code, out, err = run(capsys, "keep-awake", "--instance-id", instance)
    assert code == 0 and "until 2026-11-28 03:30 UTC (4h00m from now)" in out
    assert tags_of(instance)["KeepAwakeUntil"] == str(int(NOW) + 4 * 3600)  # showing changes nothing
    code, out, err = run(capsys, "keep-awake", "off", "--instance-id", instance)
    assert code == 0 and "KeepAwakeUntil" not in tags_of(instance)
    assert tags_of(instance)["IdleStopMinutes"] == "30"  # the policy stays
    code, out, err = run(capsys, "keep-awake", "--instance-id", instance)
    assert out.startswith(f"keep-awake of {instance}: none")


def test_keep_awake_accepts_exactly_72_hours(instance, clock, capsys):
    code, out, err = run(capsys, "keep-awake", "72h", "--instance-id", instance)
    assert code == 0, err
    assert tags_of(instance)["KeepAwakeUntil"] == str(int(NOW) + 72 * 3600)


LONGER = "at most 72h"
NOT_A_DURATION = "is not a duration: expected whole days, hours, minutes and seconds"


@pytest.mark.parametrize("given, said", [("72h1m", LONGER), ("73h", LONGER), ("0m", LONGER), ("0", NOT_A_DURATION),
                                         ("soon", NOT_A_DURATION), ("-1h", NOT_A_DURATION)])
def test_keep_awake_refuses_what_is_not_from_a_second_to_72_hours(given, said, instance, clock, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["keep-awake", given, "--instance-id", instance, "--stack", "test", "--project-dir", "."])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: keep-awake: argument DURATION|off: {given!r} is not a " in err
    assert said in err
    assert "KeepAwakeUntil" not in tags_of(instance)


def test_keep_awake_on_a_stopped_desktop_says_how_to_start_it(instance, clock, capsys):
    client("ec2").stop_instances(InstanceIds=[instance])
    code, out, err = run(capsys, "keep-awake", "2h", "--instance-id", instance)
    assert code == 0, err
    assert "the desktop is stopped" in out and " -m desktop start --wait --instance-id " in out


def test_keep_awake_on_a_stopping_desktop_says_to_start_it_once_stopped(instance, clock, capsys):
    # EC2 refuses to start an instance that is still stopping: the hint waits for `stopped`.
    set_state(instance, "stopping")
    code, out, err = run(capsys, "keep-awake", "2h", "--instance-id", instance)
    assert code == 0, err
    last = out.splitlines()[-1]
    assert last.startswith("the desktop is stopping: the keep-awake counts once it runs; once it is stopped, "
                           "start it: `") and " -m desktop start --wait --instance-id " in last


def test_an_expired_deadline_is_shown_as_expired():
    assert idle.describe_keep_awake({"KeepAwakeUntil": str(int(NOW) - 60)}, NOW) == "expired at 2026-11-27 23:29 UTC"


@pytest.mark.parametrize("command", [["keep-awake", "1h"], ["status"]])
def test_throttling_is_one_line_and_exit_2(command, instance, throttling_endpoint, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", throttling_endpoint.url)
    code, out, err = run(capsys, *command, "--instance-id", instance)
    assert code == 2 and err.startswith("error: AWS is throttling DescribeInstances even after retries")
    assert throttling_endpoint.requests == ["DescribeInstances"] * CLIENT_CONFIG.retries["total_max_attempts"]


# --- the idle agent's console lines are no boot stages -----------------------------------

@pytest.mark.parametrize("after", ["idle since 2026-11-27 23:05 UTC", "busy again (gpu 87%)",
                                   "stopping after 30 idle minutes"])
def test_boot_stage_skips_the_idle_agent_lines(after):
    assert operate.boot_stage(BANNER + line("ready") + line(after)) == "ready"
    # and a previous boot that ended with them is still an older boot
    assert operate.boot_stage(BANNER + line("ready") + line(after) + BANNER) == "rebooting"


def test_wait_sees_ready_behind_the_idle_agent_lines(instance, console, clock, capsys):
    console(instance, BANNER + line("ready") + line("idle since 2026-11-27 23:05 UTC")
            + line("busy again (ssh session)"))
    code, out, err = run(capsys, "wait", "--instance-id", instance)
    assert code == 0, err
    assert out.splitlines()[-1].startswith(f"desktop {instance} is ready after 0m00s")


def test_start_wait_ignores_the_previous_boots_console(instance, console, clock, capsys):
    """A desktop that stopped itself: its console still ends with the last boot's `ready` and
    the agent's lines until EC2 shows the new boot."""
    client("ec2").stop_instances(InstanceIds=[instance])
    previous = BANNER + line("ready") + line("idle since 2026-11-27 22:40 UTC") + line("stopping after 30 idle minutes")
    console(instance, previous)
    clock.events = [
        lambda: None,  # 1m00s: EC2 still shows the previous boot
        lambda: console(instance, previous + BANNER + line("efs mounted at /home/ubuntu/efs")),
        lambda: console(instance, previous + BANNER + line("efs mounted at /home/ubuntu/efs") + line("ready")),
    ]
    code, out, err = run(capsys, "start", "--instance-id", instance, "--wait", "--poll", "1m")
    assert code == 0, err
    lines = out.splitlines()
    assert not any("boot stage: ready" in ln for ln in lines if "0m00s" in ln or "1m00s" in ln)
    assert any("2m00s" in ln and "boot stage: efs mounted" in ln for ln in lines)
    assert lines[-1].startswith(f"desktop {instance} is ready after 3m00s")


def test_wait_and_connect_on_a_stopped_desktop_say_how_to_start_it(instance, clock, capsys):
    client("ec2").stop_instances(InstanceIds=[instance])
    for command in ("wait", "connect"):
        code, out, err = run(capsys, command, "--instance-id", instance)
        assert code == 2 and "is stopped" in err and " -m desktop start --wait --instance-id " in err


# The word of each description that tells a person what the command needs or touches.
@pytest.mark.parametrize("command, said", [("keep-awake", "KeepAwakeUntil"), ("status", "pricing:GetProducts")])
def test_the_commands_have_help_and_are_listed(command, said, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    text = capsys.readouterr().out
    assert exit_.value.code == 0 and "--stack" in text and said in text
    with pytest.raises(SystemExit):
        main(["--help"])
    assert command in capsys.readouterr().out
