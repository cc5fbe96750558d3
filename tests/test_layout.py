"""The house's shape: the component is a library that loads no command code."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_importing_the_component_loads_no_command_and_no_boto3():
    code = ("import json, sys, desktop; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('desktop.commands', 'boto3')))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_python_m_desktop_still_runs_the_commands():
    done = subprocess.run([sys.executable, "-m", "desktop", "--help"], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0
    for command in ("plan", "preflight", "wait", "connect", "stop", "start"):
        assert command in done.stdout
