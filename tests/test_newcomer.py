"""A newcomer's bad input: each is one line on stderr, exit code 2, the key or file named,
never a traceback; and the stack file is read as Pulumi reads it (YAML 1.2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from desktop.commands import console_text, operate, stack_file
from desktop.commands.cli import main
from tests.conftest import GOOD

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of the project's Pulumi.yaml, no AWS anywhere, no region in the environment."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no pulumi CLI
    return tmp_path


def stack_text(region_line: str = "  aws:region: us-east-1\n", **extra: str) -> str:
    lines = [f"  deep-learning-desktop:{key}: {value}\n" for key, value in GOOD.items()]
    lines += [f"  deep-learning-desktop:{key}: {value}\n" for key, value in extra.items()]
    return "config:\n" + region_line + "".join(lines)


def one_line_error(capsys, argv: list[str]) -> str:
    """Run the command; assert exit 2 and one line on stderr without a traceback; return it."""
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


# --- The stack file, read as YAML 1.2 -----------------------------------------------------

def test_the_stack_file_resolves_as_yaml_1_2(project):
    (project / "Pulumi.t.yaml").write_text(
        "config:\n  a:x: 12:30\n  a:no: no\n  a:on: on\n  a:oct: 0o17\n  a:exp: 1e3\n  a:null: ~\n"
        "  a:yes: yes\n  a:true: true\n")
    other = stack_file.read_stack("t", project).other
    assert other["a:x"] == "12:30"  # YAML 1.1: 750
    assert other["a:no"] == "no" and other["a:on"] == "on" and other["a:yes"] == "yes"  # 1.1: booleans
    assert other["a:oct"] == 15 and type(other["a:oct"]) is int  # 1.1: the string "0o17"
    assert other["a:exp"] == 1000.0 and type(other["a:exp"]) is float  # 1.1: the string "1e3"
    assert other["a:null"] is None
    assert other["a:true"] is True


def test_an_unquoted_snapshot_time_is_the_time_written(project, capsys):
    (project / "Pulumi.t.yaml").write_text(stack_text(snapshotTime="12:30"))
    assert stack_file.read_stack("t", project).parse().args.snapshot_time == "12:30"


def test_a_yaml_syntax_error_names_the_file_line_and_column(project, capsys):
    path = project / "Pulumi.t.yaml"
    path.write_text("config:\n  aws:region: us-east-1\n  deep-learning-desktop:vpcId: [vpc-1, vpc-2\n  x: y\n")
    error = one_line_error(capsys, ["plan", "--stack", "t", "--project-dir", str(project)])
    assert str(path) in error and "line 4, column 4" in error and "not valid YAML" in error
    assert "region" not in error


def test_a_stack_file_that_is_not_utf8_is_one_line(project, capsys):
    path = project / "Pulumi.t.yaml"
    path.write_bytes(stack_text().encode() + b"  deep-learning-desktop:keyName: caf\xe9\n")
    for command in ("plan", "preflight", "status"):
        error = one_line_error(capsys, [command, "--stack", "t", "--project-dir", str(project)])
        assert str(path) in error and "0xe9 is not UTF-8" in error and f"line {stack_text().count(chr(10)) + 1}:" in error


@pytest.mark.parametrize("region", ["12", "[us-east-1, eu-west-1]", "{a: b}"])
@pytest.mark.parametrize("command", ["plan", "status", "preflight"])
def test_a_region_that_is_not_a_string_is_one_line(project, capsys, command, region):
    (project / "Pulumi.t.yaml").write_text(stack_text(f"  aws:region: {region}\n"))
    error = one_line_error(capsys, [command, "--stack", "t", "--project-dir", str(project)])
    assert "aws:region" in error and "not a string" in error and "Pulumi.t.yaml" in error


# --- Stack names ----------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["init", "--bucket", "my-dl-data", "--no-ip"], ["plan"], ["preflight"], ["wait"], ["status"], ["shell"],
    ["connect"], ["snapshots"], ["keep-awake", "off"],
])
def test_a_stack_name_with_a_double_hyphen_is_refused_where_it_enters(project, capsys, argv):
    (project / "Pulumi.a--b.yaml").write_text(stack_text())  # even when its file exists
    error = one_line_error(capsys, [*argv, "--stack", "a--b", "--project-dir", str(project)])
    assert "--stack 'a--b'" in error and "may not contain '--'" in error


def test_a_qualified_stack_name_reads_the_file_of_its_last_part(project, capsys):
    (project / "Pulumi.alice.yaml").write_text(stack_text())
    assert stack_file.stack_path("my-org/alice", project).name == "Pulumi.alice.yaml"
    assert stack_file.stack_path("my-org/deep-learning-desktop/alice", project).name == "Pulumi.alice.yaml"
    assert stack_file.read_stack("my-org/alice", project).parse().args.s3_bucket == GOOD["s3Bucket"]
    error = one_line_error(capsys, ["plan", "--stack", "my-org/other-project/alice", "--project-dir", str(project)])
    assert "names project 'other-project'" in error
    error = one_line_error(capsys, ["plan", "--stack", "a/b/c/d", "--project-dir", str(project)])
    assert "is not a stack name" in error


def test_a_missing_stack_offers_init_and_never_speaks_of_a_region(project, capsys):
    for command in ("plan", "preflight", "wait", "status"):
        error = one_line_error(capsys, [command, "--stack", "alice", "--project-dir", str(project)])
        assert "no stack 'alice'" in error and "-m desktop init --stack alice" in error, error
        assert "pulumi stack init alice" in error and "region" not in error


def test_a_broken_stack_file_is_not_reported_as_no_region(project, capsys):
    (project / "Pulumi.t.yaml").write_text("config: [\n")
    for command in ("wait", "status", "preflight"):
        error = one_line_error(capsys, [command, "--stack", "t", "--project-dir", str(project)])
        assert "not valid YAML" in error and "region" not in error


def test_init_without_a_region_offers_the_region_option(project, capsys):
    error = one_line_error(capsys, ["init", "--stack", "t", "--bucket", "my-dl-data", "--no-ip",
                                    "--project-dir", str(project)])
    assert "no AWS region" in error and "--region" in error


# --- plan --out --------------------------------------------------------------------------

def test_plan_out_onto_an_existing_file_is_one_line(project, capsys):
    (project / "Pulumi.t.yaml").write_text(stack_text())
    existing = project / "plan.txt"
    existing.write_text("mine")
    error = one_line_error(capsys, ["plan", "--stack", "t", "--project-dir", str(project), "--out", str(existing)])
    assert f"--out {str(existing)!r} is an existing file" in error
    assert existing.read_text() == "mine"


def test_plan_out_under_a_path_that_cannot_be_a_directory_is_one_line(project, capsys):
    (project / "Pulumi.t.yaml").write_text(stack_text())
    blocked = project / "plan.txt"
    blocked.write_text("mine")
    error = one_line_error(capsys, ["plan", "--stack", "t", "--project-dir", str(project),
                                    "--out", str(blocked / "out")])
    assert "--out" in error and "not writable" in error and str(blocked) in error


# --- AWS answers botocore cannot parse -------------------------------------------------------

def test_an_aws_answer_that_cannot_be_parsed_ends_any_command_with_one_line(project, capsys, monkeypatch):
    import botocore.parsers
    from desktop.commands import aws

    def html(**_):
        raise botocore.parsers.ResponseParserError("Unable to parse response (syntax error), invalid XML "
                                                   "received: b'<html><body>502 Bad Gateway</body></html>'")

    original = aws.Aws.client

    def client(self, service):
        made = original(self, service)
        made.meta.events.register("before-call.ec2.DescribeInstances", html)  # as the proxy answers
        return made

    monkeypatch.setattr(aws.Aws, "client", client)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    error = one_line_error(capsys, ["stop", "--instance-id", "i-0123456789abcdef0", "--project-dir", str(project)])
    assert "not an AWS reply" in error and "502 Bad Gateway" in error


# --- The console, as the laptop reads it --------------------------------------------------

BANNER = "[    0.000000] Linux version 6.8.0-1021-aws (buildd@lcy02) #23-Ubuntu SMP\n"


@pytest.mark.parametrize("fake", [
    "hello deep-learning-desktop: ready\n",  # in the middle of a line
    "\x1b[2Kdeep-learning-desktop: ready\n",  # behind an escape sequence
    "junk\rdeep-learning-desktop: ready\n",  # drawn over another line
    "[   42.1] sshd[77]: deep-learning-desktop: ready\n",  # another program's line
    "deep-learning-desktop: ready\x1b]0;title\x07\n",  # an escape sequence after it
])
def test_no_other_line_can_make_the_desktop_ready(fake):
    console = BANNER + "deep-learning-desktop: installing dcv server\n" + fake
    assert operate.boot_stage(console) == "installing dcv server"


def test_the_projects_own_lines_are_stages():
    console = (BANNER + "deep-learning-desktop: installing dcv server\r\n"
               "[   42.1] cloud-init[1234]: deep-learning-desktop: ready\r\n")
    assert operate.boot_stage(console) == "ready"


def test_console_text_loses_its_control_characters():
    assert console_text.clean("a\x1b[31mred\x1b[0m\x07 b\x1b]0;owned\x07\u202e\x00c\r\nd\te") == "ared bc\nd\te"


# --- Hints to paste, and the outputs ------------------------------------------------------

def test_a_hint_is_the_command_a_person_can_paste(monkeypatch, tmp_path):
    import os
    import shlex
    import shutil
    import sys

    from desktop.commands import hints
    from desktop.commands.cli import build_parser

    monkeypatch.chdir(stack_file.PROJECT_DIR)
    # This very interpreter, by a name or path that works from here: relative when it lives
    # under the project (the README's .venv), never an absolute path there.
    # Compared unresolved: a venv's python links to the system's, which lacks the packages.
    inside = not os.path.relpath(sys.executable).startswith("..")
    this = os.path.abspath(sys.executable)
    argv = shlex.split(hints.command("wait", stack="dev"))
    assert argv[1:] == ["-m", "desktop", "wait"]  # the default stack goes without saying
    assert os.path.abspath(shutil.which(argv[0])) == this and not (inside and os.path.isabs(argv[0]))
    argv = shlex.split(hints.command("connect", "--ssm", stack="my-org/alice", project_dir=tmp_path))
    assert os.path.abspath(shutil.which(argv[0])) == this and argv[1:3] == ["-m", "desktop"]
    args = build_parser().parse_args(argv[3:])
    assert (args.command, args.ssm, args.stack, args.project_dir) == ("connect", True, "my-org/alice", tmp_path)


def test_the_outputs_of_a_session_manager_only_stack_say_the_way_in(run_main):
    from desktop.commands import offline
    from tests.conftest import stack_config

    r = offline.run_program({**stack_config(accessCidr=None), "aws:profile": "team dev"}, stack="test")
    assert r.outputs["DcvUrl"] == "python -m desktop connect --ssm --stack test"
    import shlex

    words = shlex.split(r.outputs["SshCommand"])  # as the shell reads it, and then ssh its ProxyCommand
    (proxy,) = [shlex.split(w.split("=", 1)[1]) for w in words if w.startswith("ProxyCommand=")]
    assert proxy[:3] == ["aws", "ssm", "start-session"]
    assert proxy[-4:] == ["--region", "us-west-2", "--profile", "team dev"]
    r = run_main()  # a port open to accessCidr: the address, and plain ssh needs no profile
    assert r.outputs["DcvUrl"].startswith("https://") and "--profile" not in r.outputs["SshCommand"]
