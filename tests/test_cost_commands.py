"""``status`` and ``preflight`` on Spot and budgets, against moto (the Price List API and
Cost Explorer's ListCostAllocationTags, which moto 5.2.5 lacks, through botocore's Stubber)."""

from __future__ import annotations

import datetime

from botocore.stub import ANY, Stubber

from desktop.commands import idle
from tests.moto_account import backend, client  # noqa: F401
from tests.test_idle_commands import (  # noqa: F401 - the fixtures status runs with
    aws_env, clock, console, fields, instance, pricing, run, usual_prices, BANNER, NOW, line,
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


def test_the_spot_price_is_the_latest_in_the_history(aws_env, monkeypatch):
    # EC2 answers with the price history since StartTime, in no promised order; moto's
    # history holds one fixed price per zone, so botocore's Stubber plays a real history
    # (on the real client) where the latest price is neither the first nor the highest.
    monkeypatch.setattr(idle, "_now", lambda: NOW)
    ec2 = client("ec2")
    at = datetime.datetime(2026, 11, 27, 23, 0, tzinfo=datetime.timezone.utc)

    def entry(zone, minutes, price):
        return {"AvailabilityZone": zone, "InstanceType": "g4dn.xlarge", "ProductDescription": "Linux/UNIX",
                "SpotPrice": price, "Timestamp": at + datetime.timedelta(minutes=minutes)}

    with Stubber(ec2) as stubber:
        stubber.add_response("describe_spot_price_history", {"SpotPriceHistory": [
            entry("us-east-1a", 0, "0.250000"), entry("us-east-1a", 30, "0.180000"),
            entry("us-east-1b", 45, "0.170000"), entry("us-east-1a", 10, "0.300000")]}, {
            "InstanceTypes": ["g4dn.xlarge"], "ProductDescriptions": ["Linux/UNIX"],
            "AvailabilityZone": "us-east-1a", "StartTime": ANY})
        price = idle.spot_price(ec2, "g4dn.xlarge", "us-east-1a")
    assert price.text("hour", 4) == "$0.1800/hour"
