"""The instance tags other parts read: the desktop's idle agent (through the instance
metadata service) and the ``python -m desktop`` commands (through EC2).

A module of its own, without pulumi_aws, so the commands import it cheaply.
"""

from __future__ import annotations

# The idle policy in minutes as a decimal string ("0" = never stop). The component sets
# it from idleStopMinutes; a change is a tag update in place, never a stop and start.
IDLE_STOP_MINUTES = "IdleStopMinutes"

# A keep-awake deadline in epoch seconds (UTC), set and deleted by `python -m desktop
# keep-awake`. The component ignores changes to it, so `pulumi up` never undoes it.
KEEP_AWAKE_UNTIL = "KeepAwakeUntil"
