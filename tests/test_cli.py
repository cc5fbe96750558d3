"""``python -m desktop``'s last resort: an AWS failure no command expected is one line on stderr."""

from __future__ import annotations

import botocore.exceptions

from desktop.commands import plan
from desktop.commands.cli import main


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
