"""Where and how the instance is bought: on demand, in ``capacityReservationId``, or on Spot.

A Capacity Block for ML is a capacity reservation too, but EC2 launches into one only
with the ``capacity-block`` market type. Which kind a reservation is, is looked up at
deploy with ``aws.ec2.get_capacity_block_reservation``. Its provider source
(terraform-provider-aws ``ec2_capacity_block_reservation_data_source.go``) calls
DescribeCapacityReservations for the id with no type filter, so it answers for an
On-Demand Capacity Reservation as well: the answer's ``reservation_type`` decides
(``capacity-block``, else ``default`` for an ODCR). A lookup that fails (a denied
``ec2:DescribeCapacityReservations``, throttling, an id that does not exist) is a
ConfigError naming the key: guessing would launch a block as an ODCR or the reverse, and
EC2 refuses either ("The market type (purchasing) option is not valid") only after the
group, the file system and the role exist.

``spot`` asks for a persistent Spot request whose interruption stops the instance: EC2
starts it again when capacity returns, with the root volume as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from desktop.config import SETTINGS_BY_FIELD, ConfigError, DesktopArgs, Problem

CAPACITY_BLOCK = "capacity-block"
SPOT = "spot"


@dataclass(frozen=True)
class Capacity:
    """Where the instance runs: the reservation it targets (or none), whether that is a
    Capacity Block and when the block ends, and whether the instance is on Spot."""

    reservation_id: Optional[str]
    capacity_block: bool  # a Capacity Block for ML (EC2 ends it at end_date), not an ODCR
    end_date: Optional[str] = None  # a Capacity Block's end (RFC 3339, UTC), as EC2 gives it
    spot: bool = False
    spot_max_price: Optional[str] = None

    @property
    def market_type(self) -> Optional[str]:
        """The market type EC2 requires for this capacity: ``capacity-block``, ``spot``, else None (on demand)."""
        if self.capacity_block:
            return CAPACITY_BLOCK
        return SPOT if self.spot else None

    def instance_arguments(self) -> dict:
        """The ``aws.ec2.Instance`` arguments that put the instance in this capacity."""
        if not self.reservation_id:
            # "open" is EC2's own default, written out so that unsetting capacityReservationId
            # moves the desktop out of its reservation (the provider keeps a value left unset).
            arguments = dict(capacity_reservation_specification=aws.ec2.InstanceCapacityReservationSpecificationArgs(
                capacity_reservation_preference="open"))
        else:
            arguments = dict(capacity_reservation_specification=aws.ec2.InstanceCapacityReservationSpecificationArgs(
                capacity_reservation_target=aws.ec2.InstanceCapacityReservationSpecificationCapacityReservationTargetArgs(
                    capacity_reservation_id=self.reservation_id)))
        if self.capacity_block:
            arguments["instance_market_options"] = aws.ec2.InstanceInstanceMarketOptionsArgs(
                market_type=CAPACITY_BLOCK)
        elif self.spot:
            arguments["instance_market_options"] = aws.ec2.InstanceInstanceMarketOptionsArgs(
                market_type=SPOT,
                spot_options=aws.ec2.InstanceInstanceMarketOptionsSpotOptionsArgs(
                    # Stop, never terminate: the root volume holds the work. A stop needs a
                    # persistent request, which EC2 fulfils again (starting the same
                    # instance) when capacity returns.
                    instance_interruption_behavior="stop",
                    spot_instance_type="persistent",
                    # None: EC2's default cap, the on-demand price.
                    max_price=self.spot_max_price,
                ))
        return arguments


def resolve(args: DesktopArgs, parent: pulumi.Resource) -> Capacity:
    """The capacity of the config: on demand or on Spot, an On-Demand Capacity Reservation, or a Capacity Block."""
    reservation = args.capacity_reservation_id
    if not reservation:
        return Capacity(None, False, spot=args.spot, spot_max_price=args.spot_max_price)
    key = SETTINGS_BY_FIELD["capacity_reservation_id"].key
    try:
        found = aws.ec2.get_capacity_block_reservation(id=reservation, opts=pulumi.InvokeOptions(parent=parent))
    except Exception as error:  # noqa: BLE001 - whatever failed, the kind of reservation is unknown
        raise ConfigError([Problem(
            key, reservation,
            f"a capacity reservation this account can describe (looking it up failed: {_one_line(error)}); "
            "check the id, its region, and that your credentials may call ec2:DescribeCapacityReservations "
            "(`python -m desktop preflight` says more)")]) from None
    if found.reservation_type == CAPACITY_BLOCK:
        return Capacity(reservation, True, end_date=found.end_date or None)
    return Capacity(reservation, False)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300] or type(error).__name__
