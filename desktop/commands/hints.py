"""The commands the program prints for a person to paste: the interpreter that runs now,
``--stack`` and ``--project-dir`` when they are not the defaults, every word quoted."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Optional

from desktop.commands.stack_file import PROJECT_DIR

DEFAULT_STACK = "dev"


def interpreter() -> str:
    """The Python that runs now, as a person types it: relative to here (``.venv/bin/python``,
    the README's), ``python``/``python3`` when that name on PATH is this very interpreter, else
    its absolute path. Not resolved through links: a virtualenv's python is a link to the
    system's, and only the link's path gives the virtualenv's packages."""
    executable = Path(os.path.abspath(sys.executable))
    try:
        relative = executable.relative_to(Path.cwd())
        return str(relative) if relative.parts and relative.parts[0] != ".." else str(executable)
    except ValueError:
        pass
    for name in ("python", "python3"):
        found = shutil.which(name)
        if found and Path(os.path.abspath(found)) == executable:
            return name
    return str(executable)


def _importable_here() -> bool:
    """Whether ``-m desktop`` finds this package from the current directory: it is here, or
    on PYTHONPATH, or installed (not found through the current directory at all)."""
    root = PROJECT_DIR
    if Path.cwd().resolve() == root:
        return True
    entries = [Path(entry).resolve() for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    if root in entries:
        return True
    return not any(Path(entry or ".").resolve() == root for entry in sys.path[:1])


def command(subcommand: str, *words: str, stack: Optional[str] = None, project_dir: Optional[Path] = None,
            always_stack: bool = False) -> str:
    """``python -m desktop SUBCOMMAND WORDS... [--stack NAME] [--project-dir DIR]``, quoted."""
    argv = [interpreter(), "-m", "desktop", *subcommand.split(), *words]
    if stack is not None and (always_stack or stack != DEFAULT_STACK):
        argv += ["--stack", stack]
    if project_dir is not None and Path(project_dir).resolve() != PROJECT_DIR:
        argv += ["--project-dir", str(Path(project_dir).resolve())]
    text = shlex.join(argv)
    if not _importable_here():
        text = f"PYTHONPATH={shlex.quote(str(PROJECT_DIR))} {text}"
    return text


def for_args(args, subcommand: str, *words: str) -> str:
    """:func:`command` with the ``--stack`` and ``--project-dir`` of the command that runs."""
    return command(subcommand, *words, stack=getattr(args, "stack", None),
                   project_dir=getattr(args, "project_dir", None))
