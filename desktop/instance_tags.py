"""The instance tags other parts read: the desktop's idle agent (through the instance
metadata service) and the ``python -m desktop`` commands (through EC2).

A module of its own, without pulumi_aws, so the commands import it cheaply.
"""

from __future__ import annotations

from typing import Optional

# The idle policy in minutes as a decimal string ("0" = never stop). The component sets
# it from idleStopMinutes; a change is a tag update in place, never a stop and start.
IDLE_STOP_MINUTES = "IdleStopMinutes"

# A keep-awake deadline in epoch seconds (UTC), set and deleted by `python -m desktop
# keep-awake`. The component ignores changes to it, so `pulumi up` never undoes it.
KEEP_AWAKE_UNTIL = "KeepAwakeUntil"

# Hours in which only an unreadable probe may hold the desktop up ("0" = no limit), from
# idleBlockedHours; a tag update in place like IdleStopMinutes.
IDLE_BLOCKED_HOURS = "IdleBlockedHours"

# The end of the Capacity Block the desktop runs in, in epoch seconds (UTC): the agent
# does not stop the desktop inside the block, except when idle in the 10 minutes before EC2
# begins terminating the block's instances (30 minutes before its end).
CAPACITY_BLOCK_END = "CapacityBlockEnd"


def capacity_block_end_tag(value: Optional[str]) -> dict:
    """``{"CapacityBlockEnd": "<epoch seconds>"}`` of a block's end, or ``{}`` for none.

    ``value`` is the Capacity Block lookup's ``end_date`` (ISO-8601, e.g.
    ``2026-12-01T11:30:00Z``) or epoch seconds; a new block changes the tag in place."""
    return {CAPACITY_BLOCK_END: str(epoch(value))} if value else {}


def epoch(value: str) -> int:
    """Epoch seconds of ISO-8601 (``2026-12-01T11:30:00Z``, with or without fractions, or an
    offset) or of epoch seconds already."""
    import datetime

    text = str(value).strip()
    if text.isdigit():
        return int(text)
    parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return int(parsed.timestamp())
