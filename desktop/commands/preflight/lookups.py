"""What the checks share: the clients and lookups more than one check needs, made once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import botocore.exceptions

from desktop.commands import aws
from desktop.commands.preflight.result import Result
from desktop.config import DesktopArgs


@dataclass
class Account:
    """The account as the checks see it; lookups are made once and kept."""

    aws: aws.Aws
    args: DesktopArgs
    _cache: dict = field(default_factory=dict)

    def ec2(self):
        return self.aws.client("ec2")

    def _once(self, key: str, fetch: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = fetch()
        return self._cache[key]

    def subnet(self) -> Optional[dict]:
        """The subnet, or None when it does not exist."""
        def fetch():
            try:
                return self.ec2().describe_subnets(SubnetIds=[self.args.subnet_id])["Subnets"][0]
            except botocore.exceptions.ClientError as error:
                if aws.code(error).startswith("InvalidSubnetID"):
                    return None
                raise
        return self._once("subnet", fetch)

    def given_group(self) -> Optional[dict]:
        """The given ``securityGroupId``, or None when it does not exist (or none is given)."""
        def fetch():
            group_id = self.args.security_group_id
            if not group_id:
                return None
            try:
                return self.ec2().describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
            except botocore.exceptions.ClientError as error:
                if aws.code(error).startswith("InvalidGroup"):
                    return None
                raise
        return self._once("given_group", fetch)

    def instance_type(self) -> Optional[dict]:
        """DescribeInstanceTypes of the configured type, or None when EC2 has no such type."""
        def fetch():
            try:
                types = self.ec2().describe_instance_types(InstanceTypes=[self.args.instance_type])
            except botocore.exceptions.ClientError as error:
                if aws.code(error) in ("InvalidInstanceType", "InvalidParameterValue"):
                    return None
                raise
            return (types.get("InstanceTypes") or [None])[0]
        return self._once("instance_type", fetch)


Check = Callable[[Account], Iterable[Result]]
