"""What a check says: PASS, WARN or FAIL and a line for a person."""

from __future__ import annotations

from typing import NamedTuple

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"


class Result(NamedTuple):
    """The outcome of one check: PASS, WARN or FAIL and a line for a person."""

    status: str
    text: str

    def __str__(self) -> str:
        return f"{self.status}  {self.text}"
