"""An AWS Budgets budget for one desktop's cost, when ``budgetMonthlyUsd`` and ``budgetEmail`` are set.

A monthly COST budget filtered by the cost allocation tag (:mod:`desktop.cost_tag`), which
e-mails ``budgetEmail`` when the month's forecast passes 80% of the limit and again when the
actual cost passes 100%. A budget only warns: it stops nothing. Budgets itself is free for
the first two budgets of an account with e-mail alerts (aws.amazon.com/aws-cost-management/
aws-budgets/pricing), a few cents a month beyond.
"""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_aws as aws

from desktop.config import DesktopArgs
from desktop.cost_tag import budget_filter_value
from desktop.naming import child

#: (notification type, percent of the limit): warned ahead by the forecast, then at the limit.
NOTIFICATIONS = (("FORECASTED", 80.0), ("ACTUAL", 100.0))


def monthly_budget(name: str, args: DesktopArgs, role_name: pulumi.Input[str],
                   parent: pulumi.Resource) -> Optional[aws.budgets.Budget]:
    """The budget, or None when ``budgetMonthlyUsd`` is 0."""
    if not args.budget_monthly_usd:
        return None
    budget = child(name, "budget", parent)
    return aws.budgets.Budget(
        budget.name,
        budget_type="COST",
        time_unit="MONTHLY",
        limit_amount=f"{args.budget_monthly_usd}.0",
        limit_unit="USD",
        cost_filters=[aws.budgets.BudgetCostFilterArgs(
            name="TagKeyValue", values=[pulumi.Output.from_input(role_name).apply(budget_filter_value)])],
        notifications=[
            aws.budgets.BudgetNotificationArgs(
                comparison_operator="GREATER_THAN",
                notification_type=kind,
                threshold=percent,
                threshold_type="PERCENTAGE",
                subscriber_email_addresses=[args.budget_email],
            )
            for kind, percent in NOTIFICATIONS
        ],
        opts=budget.opts,
    )
