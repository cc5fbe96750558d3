"""The cost allocation tag: one tag, the same on every resource of a desktop that costs money.

The key is the root volume's :data:`desktop.backup.VOLUME_TAG` (``DeepLearningDesktop``) and
the value the desktop role's name, as on the root volume: unique in the account for the
desktop's whole life (see :func:`desktop.backup.root_volume_tags`), and already on every
snapshot, which Data Lifecycle Manager copies the volume's tags to. The instance, the EFS
and FSx file systems the program creates and the EFA's Elastic IP carry it too, so Cost
Explorer and a budget can sum this desktop's cost.

Billing sees a tag only once it is *activated* as a cost allocation tag, once per account
(Billing console, "Cost allocation tags", or Cost Explorer's UpdateCostAllocationTagsStatus);
until then the budget, filtered by it, counts nothing. ``preflight`` checks that.
"""

from __future__ import annotations

from typing import Mapping, Optional

import pulumi

#: The tag's key; the same as desktop.backup.VOLUME_TAG (kept equal by a test).
COST_TAG = "DeepLearningDesktop"


def with_cost_tag(tags: Mapping[str, str], cost_tag: Optional[pulumi.Input[Mapping[str, str]]]):
    """``tags`` and the cost tag (``{COST_TAG: <role name>}``), or ``tags`` alone without one."""
    if cost_tag is None:
        return dict(tags)
    return pulumi.Output.from_input(cost_tag).apply(lambda extra: {**tags, **extra})


def budget_filter_value(role_name: str) -> str:
    """The value of AWS Budgets' ``TagKeyValue`` cost filter for this tag: ``user:<key>$<value>``
    (``user:`` marks a tag users define, as opposed to ``aws:`` ones AWS sets)."""
    return f"user:{COST_TAG}${role_name}"
