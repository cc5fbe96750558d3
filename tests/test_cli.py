"""``python -m desktop``: its last resort (an AWS failure no command expected is one line on
stderr), and what every command's help says."""

from __future__ import annotations

import argparse
import re

import botocore.exceptions
import pytest

from desktop.commands import plan
from desktop.commands.cli import build_parser, main


def test_an_unexpected_aws_failure_is_one_line_on_stderr_and_exit_2(monkeypatch, capsys):
    def run(args):
        print("what the command had said so far")
        raise botocore.exceptions.EndpointConnectionError(endpoint_url="https://ec2.us-east-1.amazonaws.com/")

    monkeypatch.setattr(plan, "run", run)  # any command: the handler is main's
    assert main(["plan"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "what the command had said so far\n"
    assert captured.err == ('error: cannot reach AWS (Could not connect to the endpoint URL: '
                            '"https://ec2.us-east-1.amazonaws.com/"): check the network, the region and '
                            'AWS_ENDPOINT_URL\n')


def _commands():
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return commands.choices


def test_every_option_names_its_value_for_what_it_is(capsys):
    """`--instance-id ID`, `--instance-type TYPE`, `--poll DURATION`: each option that takes
    a value says what to give, by a name chosen for it, or lists its choices; never the
    option's own name again, as argparse would spell it (`--instance-id INSTANCE_ID`)."""
    unnamed = [(name, action.option_strings[0]) for name, command in _commands().items()
               for action in command._actions
               if action.option_strings and action.nargs != 0 and action.metavar is None and action.choices is None]
    assert unnamed == []
    with pytest.raises(SystemExit):
        main(["init", "--help"])
    assert "--instance-type TYPE" in capsys.readouterr().out
    for name in ("status", "connect", "stop", "start", "restore"):
        with pytest.raises(SystemExit):
            main([name, "--help"])
        assert "--instance-id ID" in capsys.readouterr().out, name


def test_the_help_spells_aws_names_as_aws_does(capsys):
    """AMI, VPC, S3, EFS, DNS: a description lower-cased (or typed carelessly) reads as
    another word; the names of AWS's things keep their capitals in every command's help."""
    for name, command in _commands().items():
        text = command.format_help()
        lower = re.findall(r"(?<![-/.:\w])(ami|vpc|s3|efs|efa|dns|iam|ec2|dcv|fsx|ebs|sts)(?![-\w:/.])", text)
        assert lower == [], name
    assert "the AMI, the key pair, the S3 bucket, the VPC and subnet, the VPC's DNS" in \
        " ".join(_commands()["preflight"].format_help().split())
