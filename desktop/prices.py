"""A small table of AWS list prices, for what a desktop costs while it is stopped.

``plan`` runs offline, so it cannot ask the Price List API: it uses this table and says so.
``preflight`` and ``status`` ask the Price List API for live prices (desktop/commands/idle.py).

Prices in USD, list prices of us-east-1 (N. Virginia), as published on the AWS pricing pages
on :data:`AS_OF`; other regions differ (often by 10-30%), and prices change.
"""

from __future__ import annotations

from dataclasses import dataclass

AS_OF = "2025-06-01"
REGION = "us-east-1"

#: EBS per GB-month (aws.amazon.com/ebs/pricing): gp3 (3,000 IOPS and 125 MiB/s included), gp2.
EBS_GB_MONTH = {"gp3": 0.08, "gp2": 0.10}
#: EBS snapshots, standard tier, per GB-month of the blocks they hold (incremental).
SNAPSHOT_GB_MONTH = 0.05
#: EFS Standard storage per GB-month (aws.amazon.com/efs/pricing); an empty file system costs
#: nothing: EFS has no minimum, you pay for what is stored.
EFS_STANDARD_GB_MONTH = 0.30
#: FSx for Lustre per GB-month of provisioned capacity (aws.amazon.com/fsx/lustre/pricing):
#: SCRATCH_2, and PERSISTENT_2 at 125 MB/s per TiB (the program's choice). Billed whether the
#: desktop runs or not: the file servers run until the file system is deleted.
FSX_GB_MONTH = {"SCRATCH_2": 0.140, "PERSISTENT_2": 0.145}


@dataclass(frozen=True)
class Item:
    """One thing that costs money while the desktop is stopped: what, and USD per month
    (``low`` to ``high`` when it depends on what you store)."""

    what: str
    low: float
    high: float

    def text(self) -> str:
        amount = f"${self.low:.2f}" if self.low == self.high else f"${self.low:.2f} to ${self.high:.2f}"
        return f"{amount}/month  {self.what}"


def stopped_monthly(*, volume_size: int, volume_type: str, snapshot_retain_count: int, efs_created: bool,
                    fsx_capacity: int = 0, fsx_type: str = "") -> list[Item]:
    """What stays billed every month while the desktop is stopped, from this table."""
    items = [Item(f"root volume, {volume_size} GiB {volume_type}", *(2 * [volume_size * EBS_GB_MONTH[volume_type]]))]
    if snapshot_retain_count:
        # Incremental: the first holds the used blocks, each later one the blocks changed that
        # day. At most, every kept snapshot is a full copy of the volume.
        items.append(Item(f"{snapshot_retain_count} daily snapshots (incremental: from the used blocks of the "
                          "volume up to a full copy each)", 0.0,
                          snapshot_retain_count * volume_size * SNAPSHOT_GB_MONTH))
    if efs_created:
        items.append(Item(f"EFS: ${EFS_STANDARD_GB_MONTH:.2f} per GB stored, nothing when empty", 0.0, 0.0))
    if fsx_capacity:
        fsx = fsx_capacity * FSX_GB_MONTH[fsx_type]
        items.append(Item(f"FSx for Lustre {fsx_type} {fsx_capacity} GiB (billed running or stopped)", fsx, fsx))
    return items


def summary(items: list[Item]) -> str:
    low, high = sum(i.low for i in items), sum(i.high for i in items)
    total = f"${low:.2f}" if low == high else f"${low:.2f} to ${high:.2f}"
    return f"{total}/month while stopped ({REGION} list prices of {AS_OF}; other regions differ)"
