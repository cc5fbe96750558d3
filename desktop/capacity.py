"""Capacity reservations: the instance runs in ``capacityReservationId`` when set.

A Capacity Block for ML is a capacity reservation too, but EC2 launches into one only
with the ``capacity-block`` market type. Which kind a reservation is, is looked up at
deploy: pulumi-aws has no data source for any capacity reservation, only
``aws.ec2.get_capacity_block_reservation``, which finds Capacity Blocks and fails for
anything else. So a reservation it finds is a Capacity Block; one it does not find is
taken for an On-Demand Capacity Reservation (and should it be neither, EC2 refuses the
launch with its own message: nothing is created in a wrong way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from desktop.config import DesktopArgs

CAPACITY_BLOCK = "capacity-block"


@dataclass(frozen=True)
class Capacity:
    """Where the instance runs: the reservation it targets (or none), and whether it is a Capacity Block."""

    reservation_id: Optional[str]
    capacity_block: bool

    @property
    def market_type(self) -> Optional[str]:
        """The market type EC2 requires for this capacity: ``capacity-block``, else None (on demand)."""
        return CAPACITY_BLOCK if self.capacity_block else None

    def instance_arguments(self) -> dict:
        """The ``aws.ec2.Instance`` arguments that put the instance in this capacity."""
        if not self.reservation_id:
            # "open" is EC2's own default, written out so that unsetting capacityReservationId
            # moves the desktop out of its reservation (the provider keeps a value left unset).
            return dict(capacity_reservation_specification=aws.ec2.InstanceCapacityReservationSpecificationArgs(
                capacity_reservation_preference="open"))
        arguments = dict(capacity_reservation_specification=aws.ec2.InstanceCapacityReservationSpecificationArgs(
            capacity_reservation_target=aws.ec2.InstanceCapacityReservationSpecificationCapacityReservationTargetArgs(
                capacity_reservation_id=self.reservation_id)))
        if self.capacity_block:
            arguments["instance_market_options"] = aws.ec2.InstanceInstanceMarketOptionsArgs(
                market_type=CAPACITY_BLOCK)
        return arguments


def resolve(args: DesktopArgs, parent: pulumi.Resource) -> Capacity:
    """The capacity of ``capacityReservationId``: none, an On-Demand Capacity Reservation, or a Capacity Block."""
    reservation = args.capacity_reservation_id
    if not reservation:
        return Capacity(None, False)
    try:
        aws.ec2.get_capacity_block_reservation(id=reservation, opts=pulumi.InvokeOptions(parent=parent))
    except Exception as error:  # noqa: BLE001 - the data source's way of saying "not a Capacity Block"
        pulumi.log.info(f"capacityReservationId {reservation} is not a Capacity Block for ML ({error}); the "
                        "desktop targets it as an On-Demand Capacity Reservation", parent)
        return Capacity(reservation, False)
    return Capacity(reservation, True)
