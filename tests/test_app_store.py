"""The app store the README points to, installed by a sandboxed first boot."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
for entry in (TESTS.parent, TESTS):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from boot_sandbox import Sandbox  # noqa: E402


def test_24_04_waits_for_snapd_to_seed_before_installing_app_center(tmp_path):
    # At first boot snapd is still seeding the image's snaps; `snap install` before
    # that ends fails with "too early for operation".
    first = Sandbox(tmp_path, version="24.04").boot()
    assert first.returncode == 0, first.output
    snaps = first.named("snap")
    assert snaps[:2] == [["snap", "wait", "system", "seed.loaded"], ["snap", "install", "snap-store"]]


def test_22_04_installs_gnome_software_and_no_snap(tmp_path):
    first = Sandbox(tmp_path, version="22.04").boot()
    assert first.returncode == 0, first.output
    assert first.named("snap") == []
    assert "gnome-software" in first.installed()
