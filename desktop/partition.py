"""Where the provider runs: the AWS partition, its DNS suffix and the region.

The one place for partition facts. The component reads them from the provider
(:func:`current_partition`); the commands and the offline rendering, which have no
provider, derive them from the region (:func:`of_region`, :data:`DNS_SUFFIX`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

#: The DNS suffix of each partition's service endpoints and principals.
DNS_SUFFIX = {"aws": "amazonaws.com", "aws-cn": "amazonaws.com.cn", "aws-us-gov": "amazonaws.com"}


def of_region(region: str) -> str:
    """The partition a region belongs to (``cn-north-1`` is in ``aws-cn``)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


@dataclass(frozen=True)
class Partition:
    """Where the provider runs: partition (``aws``, ``aws-cn``, ...), DNS suffix, region."""

    name: pulumi.Output[str]
    dns_suffix: pulumi.Output[str]
    region: pulumi.Output[str]

    def managed_policy(self, name: str) -> pulumi.Output[str]:
        """The ARN of an AWS managed IAM policy in this partition."""
        return self.name.apply(lambda p: f"arn:{p}:iam::aws:policy/{name}")


def current_partition(parent: pulumi.Resource) -> Partition:
    """The provider's partition and region, read once per desktop."""
    invoke = pulumi.InvokeOutputOptions(parent=parent)
    partition = aws.get_partition_output(opts=invoke)
    return Partition(partition.partition, partition.dns_suffix, aws.get_region_output(opts=invoke).region)
