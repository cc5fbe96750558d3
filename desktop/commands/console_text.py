"""The desktop's serial console as the laptop reads it: text the desktop wrote, so nothing
of it reaches the person's terminal unfiltered and only the project's own lines count.

A stage is a whole line ``deep-learning-desktop: <stage>`` as the boot and the idle agent
write it to ``/dev/console``, or as cloud-init echoes the boot's output there
(``[   42.1] cloud-init[1234]: deep-learning-desktop: <stage>``). The same words in the
middle of another line, or behind escape sequences or a carriage return (which a terminal
would draw over the start of the line), are not a stage: no other program on the desktop
can make ``wait`` say ``ready``.
"""

from __future__ import annotations

import re
import unicodedata

PREFIX = "deep-learning-desktop:"
_STAGE_LINE = re.compile(
    r"(?:\[ *\d+\.\d+\] cloud-init\[\d+\]: )?" + re.escape(PREFIX) + r" *(?P<stage>.*?)\s*")
# ANSI escape sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), and two-byte ones.
_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]")


def clean(text: str) -> str:
    """``text`` without escape sequences and control characters (tabs and line ends kept; the
    CR of a CRLF line end is a control character)."""
    text = _ESCAPE.sub("", text)
    return "".join(ch for ch in text
                   if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))


def _printable(text: str) -> bool:
    return clean(text) == text and "\n" not in text and "\t" not in text


def stages(console: str) -> list[str]:
    """The text of every ``deep-learning-desktop: <stage>`` line of ``console``, oldest first."""
    found = []
    for line in console.split("\n"):
        line = line[:-1] if line.endswith("\r") else line  # the serial console's CR LF
        match = _STAGE_LINE.fullmatch(line)
        if match and match.group("stage") and _printable(match.group("stage")):
            found.append(match.group("stage"))
    return found
