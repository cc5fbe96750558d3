"""``python -m desktop <command>``: the commands around ``pulumi up``.

Each command module has ``register(subparsers)``, which adds its parser and sets
``run=function(args) -> int``. Expected failures end as one line on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from desktop.commands import aws, bake, idle, init, operate, plan, preflight, snapshots, ssm
from desktop.commands.errors import CommandError
from desktop.commands.stack_file import stack_name
from desktop.config import ConfigError

COMMANDS = (init, plan, preflight, operate, ssm, idle, snapshots, bake)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m desktop",
        description="Plan, check, follow and connect to a deep learning desktop on AWS.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "stack", None) is not None:
            stack_name(args.stack)  # where the name enters: the rule the component applies
        return args.run(args)
    except (ConfigError, CommandError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except aws.AWS_FAILURES as error:
        # An AWS failure no command expected (an answer botocore cannot parse: an HTML page from a
        # proxy, ResponseParserError): one line, whatever the command had done so far stays said.
        print(f"error: {aws.explain(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def entry_point() -> None:
    """``python -m desktop``: run :func:`main` and exit with its code."""
    try:
        sys.exit(main())
    except BrokenPipeError:
        # The reader went away (`plan | head`): stop quietly. Point stdout at devnull so
        # that the flush at exit does not fail again (the Python documentation's recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
