"""``preflight`` on Spot, prices and the budget's tag, against moto (Cost Explorer's
ListCostAllocationTags, which moto 5.2.5 lacks, through botocore's Stubber)."""

from __future__ import annotations

# --- preflight ----------------------------------------------------------------------

import botocore.session  # noqa: E402
from botocore.stub import Stubber  # noqa: E402

from desktop.commands.preflight import Account, FAIL, PASS, WARN, check_cost_tag  # noqa: E402
from desktop.config import parse  # noqa: E402
from tests.moto_account import set_ec2_quota  # noqa: E402
from tests.moto_account import moto_module  # noqa: E402,F401
from tests.test_preflight import account, line, preflight  # noqa: E402,F401

G_SPOT = "L-3819A6DF"


def test_preflight_of_a_spot_desktop_reports_the_spot_quota_and_the_spot_price(preflight):
    set_ec2_quota(G_SPOT, 0)
    result = preflight(spot="true")
    line(result, "PASS", "Spot offers g4dn.xlarge in us-east-1a at")
    line(result, "FAIL", "Spot vCPU quota 'All G and VT Spot Instance Requests' (L-3819A6DF) is 0",
         "g4dn.xlarge needs 4", "--quota-code L-3819A6DF")
    set_ec2_quota(G_SPOT, 64)
    line(preflight(spot="true"), "PASS", "Spot vCPU quota 'All G and VT Spot Instance Requests' (L-3819A6DF) is 64")
    assert "Spot" not in preflight().out  # on demand: no Spot lines


def test_preflight_of_spot_where_ec2_has_no_spot_price_fails_saying_what_to_change(preflight, account):
    # moto, like EC2, has no g4dn.xlarge in us-east-1e, so no Spot price there either.
    result = preflight(spot="true", subnetId=account.subnet_1e)
    assert result.code == 1
    line(result, "FAIL", "spot is true but EC2 has no Spot price for g4dn.xlarge in us-east-1e: EC2 offers no Spot "
         "capacity for it there; pick another zone's subnet or instanceType, or set spot false")


def test_preflight_prints_the_hourly_price_and_the_stopped_cost(preflight):
    result = preflight()
    # The pretend account's Price List API has the type's list price (tests/moto_account.py);
    # the monthly cost of what stays comes from the table.
    line(result, "PASS", "g4dn.xlarge costs $0.526/hour on demand in us-east-1 while it runs",
         "stopped it still costs $16.00 to $86.00/month while stopped")
    # A type the price list does not price is "unknown", never a guess.
    line(preflight(instanceType="g5.xlarge"), "PASS",
         "g5.xlarge costs unknown (the Price List API has no on-demand price for it) on demand in us-east-1")


def _tag_check(status):
    """check_cost_tag with Cost Explorer stubbed: moto 5.2.5 has no ListCostAllocationTags."""
    made = botocore.session.get_session().create_client(
        "ce", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    stubber = Stubber(made)
    tags = [{"TagKey": "DeepLearningDesktop", "Type": "UserDefined", "Status": status}] if status else []
    stubber.add_response("list_cost_allocation_tags", {"CostAllocationTags": tags},
                         {"TagKeys": ["DeepLearningDesktop"], "Type": "UserDefined"})

    class Session:
        def client(self, *a, **k):
            return made

    class Aws:
        session = Session()

    args = parse({"s3Bucket": "my-dl-data", "vpcId": "vpc-0123456789abcdef0", "subnetId": "subnet-0123456789abcdef0",
                  "budgetMonthlyUsd": "200", "budgetEmail": "me@example.com"}).args
    with stubber:
        return list(check_cost_tag(Account(Aws(), args)))


def test_the_budgets_tag_must_be_active():
    (active,) = _tag_check("Active")
    assert active.status == PASS
    (inactive,) = _tag_check("Inactive")
    assert inactive.status == FAIL and "update-cost-allocation-tags-status" in inactive.text
    (unknown,) = _tag_check(None)
    assert unknown.status == WARN and "TagKey=DeepLearningDesktop,Status=Active" in unknown.text
