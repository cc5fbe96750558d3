"""``python -m desktop <command>``: the commands around ``pulumi up`` (see :mod:`desktop.commands`)."""

from desktop.commands.cli import entry_point

if __name__ == "__main__":
    entry_point()
