"""The user data's form beyond its two parts: heredoc bodies kept whole while comments are
dropped, each part an attachment with its file name, and a gzip that is the same at every
`pulumi up` (a changed user data stops and starts the instance)."""

from __future__ import annotations

import email
import gzip
import re
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
for entry in (TESTS.parent, TESTS):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from boot_sandbox import DEFAULT_VALUES  # noqa: E402
from cloud_init import compress, decode, encode, render, split_parts  # noqa: E402

BOOT = TESTS.parent / "cloud_init" / "boot.sh"


def heredoc_bodies(text: str) -> list[str]:
    return re.findall(r"<<'EOF'\n(.*?\n)EOF\n", text, re.S)


def test_heredoc_bodies_reach_the_rendered_script_whole():
    # Comments and blank lines of the script are dropped; inside a heredoc they are
    # the content of a file (gdm3's custom.conf has blank lines, xorg.conf comments may come).
    bodies = heredoc_bodies(BOOT.read_text())
    assert len(bodies) >= 3 and any("\n\n" in body for body in bodies)
    _, script = split_parts(render(**DEFAULT_VALUES))
    assert heredoc_bodies(script) == bodies


def test_each_part_is_an_attachment_with_its_file_name():
    message = email.message_from_string(render(**DEFAULT_VALUES))
    parts = [(p.get_content_type(), p.get_content_disposition(), p.get_filename()) for p in message.get_payload()]
    assert parts == [("text/cloud-config", "attachment", "cloud-config.yaml"),
                     ("text/x-shellscript", "attachment", "deep-learning-desktop.sh")]


def test_the_gzip_is_the_same_at_every_render():
    user_data = render(**DEFAULT_VALUES)
    packed = compress(user_data)
    assert packed[:4] == b"\x1f\x8b\x08\x00" and packed[4:8] == b"\x00\x00\x00\x00"  # no name, no time
    assert encode(user_data) == encode(render(**DEFAULT_VALUES))
    assert decode(encode(user_data)) == user_data
    assert gzip.decompress(packed).decode() == user_data
