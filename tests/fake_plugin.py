"""A fake ``session-manager-plugin`` for the tests: prints a version (``FAKE_PLUGIN_VERSION``,
default 1.2.707.0) for ``--version``, and otherwise records each call (its arguments, the
session response it was handed and the credentials in its environment) as one JSON line,
then exits with ``FAKE_PLUGIN_EXIT`` (default 0)."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

NAME = "session-manager-plugin"


def install(directory: Path) -> Path:
    """Write the fake plugin into ``directory`` (put it on PATH); return its record file."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / NAME
    record = directory.parent / "plugin-calls.jsonl"
    script.write_text(f"""#!{sys.executable}
import json, os, sys
if sys.argv[1:] == ["--version"]:
    print(os.environ.get("FAKE_PLUGIN_VERSION", "1.2.707.0"))
    sys.exit(0)
names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE")
call = {{"argv": sys.argv[1:], "response": os.environ.get(sys.argv[1]),
         "env": {{name: os.environ.get(name) for name in names}}}}
with open({str(record)!r}, "a") as out:
    out.write(json.dumps(call) + "\\n")
sys.exit(int(os.environ.get("FAKE_PLUGIN_EXIT", "0")))
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return record


def calls(record: Path) -> list[dict]:
    """The calls the fake plugin recorded, in order."""
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]
