"""``status`` and ``preflight`` on Spot and budgets, against moto (the Price List API and
Cost Explorer's ListCostAllocationTags, which moto 5.2.5 lacks, through botocore's Stubber)."""

from __future__ import annotations

from tests.moto_account import backend, client  # noqa: F401
from tests.test_idle_commands import (  # noqa: F401 - the fixtures status runs with
    aws_env, clock, console, fields, instance, pricing, run, usual_prices, BANNER, line,
)


def test_status_of_a_spot_desktop_says_spot_and_both_prices(instance, console, clock, pricing, capsys):
    usual_prices(pricing)
    backend("ec2").get_instance(instance).lifecycle = "spot"  # moto sets it only for its own Spot requests
    console(instance, BANNER + line("ready"))
    code, out, err = run(capsys, "status", "--instance-id", instance)
    assert code == 0, err
    zone = client("ec2").describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0][
        "Placement"]["AvailabilityZone"]
    market = fields(out)["market"]
    # moto's price history says $0.00001 for every type and zone.
    assert market.startswith("Spot (an interruption stops it")
    assert market.endswith(f"$0.0000/hour now in {zone}, against $0.526/hour on demand")


def test_status_of_an_on_demand_desktop_has_no_market_line(instance, console, clock, pricing, capsys):
    usual_prices(pricing)
    console(instance, BANNER + line("ready"))
    code, out, _ = run(capsys, "status", "--instance-id", instance)
    assert code == 0 and "market" not in fields(out)
