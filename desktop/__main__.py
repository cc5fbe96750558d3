"""``python -m desktop <command>``: the commands around ``pulumi up``.

Each command module has ``register(subparsers)``, which adds its parser and sets
``run=function(args) -> int``. Expected failures end as one line on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from desktop import operate, plan, preflight
from desktop.cli import CommandError
from desktop.config import ConfigError, StackNotFound

COMMANDS = (plan, preflight, operate)


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
        return args.run(args)
    except (ConfigError, CommandError, StackNotFound) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        # The reader went away (`plan | head`): stop quietly. Point stdout at devnull so
        # that the flush at exit does not fail again (the Python documentation's recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
