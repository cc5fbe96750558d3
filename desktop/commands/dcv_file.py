"""The DCV connection file (``.dcv``) that ``connect`` and ``connect --ssm`` write."""

from __future__ import annotations

from desktop.commands.target import USER
from desktop.ports import DCV_PORT


def dcv_file(host: str, port: int = DCV_PORT, user: str = USER, transport: str = "websocket") -> str:
    """A DCV connection file (``.dcv``) for the native client, as the DCV user guide documents it."""
    return "\n".join([
        "[version]",
        "format=1.0",
        "",
        "[connect]",
        f"host={host}",
        f"port={port}",
        f"user={user}",
        "sessionid=console",  # the automatic console session the boot configures
        f"transport={transport}",
        "proxytype=SYSTEM",
        # The server's certificate is self-signed: let the client ask instead of refusing.
        "certificatevalidationpolicy=ask-user",
        "",
        "[options]",
        "promptreconnect=true",
        "",
    ])
