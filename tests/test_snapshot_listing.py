"""How ``snapshots`` (and ``restore``'s choice) find a desktop's snapshots: what moto
cannot show, so botocore's Stubber answers on a real EC2 client.

moto answers DescribeSnapshots in one page and ignores ``OwnerIds`` for the account's own
snapshots; on AWS, an account with many snapshots gets several pages, and without
``OwnerIds=["self"]`` another account's public snapshot carrying the same tag value would
be listed as this desktop's (and offered to ``restore``).
"""

from __future__ import annotations

import datetime

import botocore.session
from botocore.stub import Stubber

from desktop.backup import VOLUME_TAG
from desktop.commands.snapshots import desktop_snapshots


def _snapshot(snapshot_id: str, day: int) -> dict:
    return {
        "SnapshotId": snapshot_id, "VolumeId": "vol-0123456789abcdef0", "State": "completed",
        "StartTime": datetime.datetime(2026, 11, day, 3, 0, tzinfo=datetime.timezone.utc),
        "VolumeSize": 200, "OwnerId": "123456789012",
        "Tags": [{"Key": VOLUME_TAG, "Value": "dev-desktop"}],
    }


def test_every_page_of_the_accounts_own_snapshots_is_listed_newest_first():
    ec2 = botocore.session.get_session().create_client(
        "ec2", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    asked = {"OwnerIds": ["self"], "Filters": [{"Name": f"tag:{VOLUME_TAG}", "Values": ["dev-desktop"]}]}
    with Stubber(ec2) as stub:
        # Stubber checks each request's parameters exactly: a request without
        # OwnerIds=["self"], or without the second page's token, fails the test.
        stub.add_response("describe_snapshots",
                          {"Snapshots": [_snapshot("snap-0000000000000000a", 2), _snapshot("snap-0000000000000000b", 9)],
                           "NextToken": "page-2"}, asked)
        stub.add_response("describe_snapshots", {"Snapshots": [_snapshot("snap-0000000000000000c", 5)]},
                          {**asked, "NextToken": "page-2"})
        found = desktop_snapshots(ec2, "dev-desktop")
        stub.assert_no_pending_responses()
    assert [s["SnapshotId"] for s in found] == [
        "snap-0000000000000000b", "snap-0000000000000000c", "snap-0000000000000000a"]
