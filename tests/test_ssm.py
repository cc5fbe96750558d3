"""``python -m desktop connect --ssm`` and ``shell``: Session Manager sessions handed to a fake
``session-manager-plugin`` on PATH that records how it was called.

The instance, the account and STS are moto's. moto 5.2.5 has no StartSession or
TerminateSession, so botocore's Stubber answers those two calls on the command's own SSM
client (same region, endpoint and credentials), checking the request against the model.
"""

from __future__ import annotations

import configparser
import json
import os

import boto3
import pytest
from botocore.stub import ANY, Stubber

from desktop.commands import aws, ssm
from desktop.commands.cli import main
from tests import fake_plugin
from tests.moto_account import REGION, add_image, aws_env, client, write_stack  # noqa: F401

SESSION = {
    "SessionId": "alice-0a1b2c3d4e5f60718",
    "TokenValue": "AAEAAS3cr3tT0k3nV4lu3",
    "StreamUrl": "wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/alice-0a1b2c3d4e5f60718"
                 "?role=publish_subscribe",
}


@pytest.fixture
def instance(aws_env, tmp_path, monkeypatch):
    """A running desktop in moto, stack ``test`` in tmp_path, and a PATH with only ``bin``."""
    image = add_image("x86_64")
    found = client("ec2").run_instances(ImageId=image, InstanceType="g4dn.xlarge", MinCount=1,
                                        MaxCount=1)["Instances"][0]["InstanceId"]
    write_stack(tmp_path, {"s3Bucket": "b"}, stack="test")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    return found


@pytest.fixture
def plugin(tmp_path):
    """A fake session-manager-plugin on PATH; calling the fixture gives its recorded calls."""
    record = fake_plugin.install(tmp_path / "bin")
    return lambda: fake_plugin.calls(record)


@pytest.fixture
def session_manager(monkeypatch):
    """Stub StartSession/TerminateSession on the SSM client the command makes (moto lacks them).
    ``expect(parameters)`` plans one session; ``stubbers`` lets a test check all were used."""
    planned: list[dict] = []
    stubbers: list[Stubber] = []
    original = aws.Aws.client

    def client_of(self, service):
        made = original(self, service)
        if service == "ssm" and not any(s.client is made for s in stubbers):
            stubber = Stubber(made)
            stubber.client = made
            for parameters in planned:
                stubber.add_response("start_session", SESSION, parameters)
                stubber.add_response("terminate_session", {"SessionId": SESSION["SessionId"]},
                                     {"SessionId": SESSION["SessionId"]})
            stubber.activate()
            stubbers.append(stubber)
        return made

    monkeypatch.setattr(aws.Aws, "client", client_of)

    class Plan:
        def expect(self, parameters: dict) -> None:
            planned.append(parameters)

        def all_used(self) -> None:
            assert stubbers, "no SSM client was made"
            for stubber in stubbers:
                stubber.assert_no_pending_responses()

        @property
        def clients(self):
            return stubbers
    return Plan()


def run(capsys, *argv: str, stack: str = "test"):
    code = main([*argv, "--stack", stack, "--project-dir", os.getcwd()])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def forwarding(instance: str, port) -> dict:
    return {"Target": instance, "DocumentName": "AWS-StartPortForwardingSession",
            "Parameters": {"portNumber": ["8443"], "localPortNumber": [port]}}


# --- connect --ssm ---------------------------------------------------------------

def test_connect_ssm_hands_the_session_to_the_plugin_as_the_aws_cli_does(
        instance, plugin, session_manager, capsys, tmp_path, aws_env):
    session_manager.expect(forwarding(instance, "18443"))
    code, out, err = run(capsys, "connect", "--ssm", "--local-port", "18443", "--instance-id", instance)
    assert code == 0, err
    [call] = plugin()
    # session-manager-plugin's argv: response (here the name of the variable holding it), region,
    # operation, profile, the StartSession parameters as JSON, the SSM endpoint.
    assert call["argv"] == ["AWS_SSM_START_SESSION_RESPONSE", REGION, "StartSession", "",
                            json.dumps(forwarding(instance, "18443")), aws_env]
    assert json.loads(call["response"]) == SESSION
    assert not any(SESSION["TokenValue"] in arg for arg in call["argv"])  # never on a command line
    session_manager.all_used()  # StartSession, then TerminateSession once the plugin is done
    assert "https://localhost:18443" in out
    assert "pulumi stack output DcvPassword --show-secrets --stack test" in out
    dcv = configparser.ConfigParser()
    assert dcv.read(tmp_path / f"test-{instance}.dcv")
    assert (dcv["connect"]["host"], dcv["connect"]["port"], dcv["connect"]["transport"]) == \
        ("localhost", "18443", "websocket")


def test_connect_ssm_picks_a_free_local_port(instance, plugin, session_manager, capsys, tmp_path):
    session_manager.expect(forwarding(instance, ANY))
    code, out, err = run(capsys, "connect", "--ssm", "--instance-id", instance, "--output", "d.dcv")
    assert code == 0, err
    [call] = plugin()
    port = json.loads(call["argv"][4])["Parameters"]["localPortNumber"][0]
    assert port.isdigit() and 1024 <= int(port) <= 65535
    assert f"https://localhost:{port}" in out
    assert f"port={port}" in (tmp_path / "d.dcv").read_text()


def test_a_missing_plugin_is_a_clear_error_and_starts_no_session(instance, session_manager, capsys):
    code, out, err = run(capsys, "connect", "--ssm", "--instance-id", instance)
    assert code == 2
    assert err.startswith("error: session-manager-plugin is not installed")
    assert ssm.INSTALL_URL in err and "Traceback" not in err
    assert session_manager.clients == []  # no StartSession: no session left open


def test_a_plugin_too_old_for_the_environment_variable_is_refused(
        instance, plugin, session_manager, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_PLUGIN_VERSION", "1.2.497.0")
    code, out, err = run(capsys, "connect", "--ssm", "--instance-id", instance)
    assert code == 2
    assert "1.2.497.0 is too old" in err and ssm.INSTALL_URL in err
    assert plugin() == [] and session_manager.clients == []


def test_a_failing_plugin_exits_1_and_the_session_is_still_ended(
        instance, plugin, session_manager, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_PLUGIN_EXIT", "255")
    session_manager.expect(forwarding(instance, "18443"))
    code, out, err = run(capsys, "connect", "--ssm", "--local-port", "18443", "--instance-id", instance)
    assert code == 1
    assert "exited with code 255" in err
    session_manager.all_used()


def test_connect_ssm_to_a_stopped_desktop_fails_before_any_session(instance, plugin, session_manager, capsys):
    client("ec2").stop_instances(InstanceIds=[instance])
    code, out, err = run(capsys, "connect", "--ssm", "--instance-id", instance)
    assert code == 2 and "is stopped: start it first" in err
    assert plugin() == [] and session_manager.clients == []


# --- shell ------------------------------------------------------------------------

def test_shell_starts_a_plain_session(instance, plugin, session_manager, capsys, aws_env):
    session_manager.expect({"Target": instance})
    code, out, err = run(capsys, "shell", "--instance-id", instance)
    assert code == 0, err
    # Said before the session takes the terminal: how to become the desktop's user, how to leave.
    assert out.splitlines()[0] == (f"Shell on {instance} through Session Manager (`sudo -iu ubuntu` for the "
                                   "desktop's user); `exit` ends it.")
    [call] = plugin()
    assert call["argv"] == ["AWS_SSM_START_SESSION_RESPONSE", REGION, "StartSession", "",
                            json.dumps({"Target": instance}), aws_env]
    session_manager.all_used()


# --- the stack's account reaches the plugin ------------------------------------------

def test_the_stack_profile_goes_to_the_plugin(instance, plugin, session_manager, capsys, tmp_path, monkeypatch):
    credentials = tmp_path / "aws-credentials"
    credentials.write_text("[desk]\naws_access_key_id = desk-key\naws_secret_access_key = desk-secret\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    # The profile is the only source of credentials, and AWS_PROFILE names another one: the
    # command works only when the stack's profile wins, as it does for the provider.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_PROFILE", "someone-else")
    write_stack(tmp_path, {"s3Bucket": "b"}, stack="test")
    text = (tmp_path / "Pulumi.test.yaml").read_text().replace("config:\n", "config:\n  aws:profile: desk\n")
    (tmp_path / "Pulumi.test.yaml").write_text(text)
    session_manager.expect({"Target": instance})
    code, out, err = run(capsys, "shell", "--instance-id", instance)
    assert code == 0, err
    [call] = plugin()
    assert call["argv"][3] == "desk"


def test_an_assumed_role_reaches_the_plugin_through_its_environment(
        instance, plugin, session_manager, capsys, tmp_path, monkeypatch):
    # The person's own credentials come from a profile; the plugin must not be told of it, or
    # its SDK may take that profile's identity instead of the role's.
    (tmp_path / "aws-credentials").write_text("[mine]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_PROFILE", "mine")
    monkeypatch.setenv("AWS_DEFAULT_PROFILE", "mine")
    role = "arn:aws:iam::123456789012:role/desktop-operator"
    text = "config:\n  aws:region: us-east-1\n  aws:assumeRoles:\n" \
           f"    - roleArn: {role}\n      sessionName: laptop\n"
    (tmp_path / "Pulumi.test.yaml").write_text(text)
    session_manager.expect({"Target": instance})
    code, out, err = run(capsys, "shell", "--instance-id", instance)
    assert code == 0, err
    [call] = plugin()
    assert call["argv"][3] == ""  # no profile: the plugin's SDK then reads the environment
    env = call["env"]
    assert env["AWS_ACCESS_KEY_ID"] != "testing" and env["AWS_SESSION_TOKEN"]
    assert (env["AWS_PROFILE"], env["AWS_DEFAULT_PROFILE"]) == (None, None)
    monkeypatch.delenv("AWS_PROFILE")  # the check below uses the plugin's credentials alone
    monkeypatch.delenv("AWS_DEFAULT_PROFILE")
    sts = boto3.client("sts", region_name=REGION, aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                       aws_session_token=env["AWS_SESSION_TOKEN"])
    assert sts.get_caller_identity()["Arn"] == "arn:aws:sts::123456789012:assumed-role/desktop-operator/laptop"


@pytest.mark.parametrize("argv", [["shell", "--help"], ["connect", "--help"], ["init", "--help"]])
def test_the_new_commands_have_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    assert "--stack" in capsys.readouterr().out
