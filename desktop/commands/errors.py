"""What every ``python -m desktop`` command shares: how it fails."""

from __future__ import annotations


class CommandError(Exception):
    """An expected failure: printed as one line, exit code 2, no traceback."""
