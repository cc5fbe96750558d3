"""Spot, the budget and its cost allocation tag, Capacity Blocks and FSx client rules: the
component under Pulumi mocks."""

from __future__ import annotations

import pytest

from desktop import backup, cost_tag
from desktop.commands import offline
from desktop.config import ConfigError
from test_component import _Deployed

INSTANCE = "aws:ec2/instance:Instance"
BUDGET = "aws:budgets/budget:Budget"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG = "aws:ec2/securityGroup:SecurityGroup"
RESERVATION = "cr-0123456789abcdef0"
ROLE_NAME = "test--role-abc1234"  # what the mock account names the desktop's role


def instance_of(rendering):
    (instance,) = rendering.of_type(INSTANCE)
    return instance.inputs


# --- Spot ---------------------------------------------------------------------------

def test_spot_is_a_persistent_request_that_stops_the_desktop(rendered):
    options = instance_of(rendered(spot="true"))["instanceMarketOptions"]
    assert options == {"marketType": "spot", "spotOptions": {
        "instanceInterruptionBehavior": "stop", "spotInstanceType": "persistent"}}
    capped = instance_of(rendered(spot="true", spotMaxPrice="0.45"))["instanceMarketOptions"]
    assert capped["spotOptions"]["maxPrice"] == "0.45"


def test_on_demand_has_no_market_options(rendered):
    assert "instanceMarketOptions" not in instance_of(rendered())


def test_spot_in_a_capacity_reservation_is_refused_naming_both_keys(run_main):
    with pytest.raises(ConfigError) as caught:
        run_main(spot="true", capacityReservationId=RESERVATION)
    (problem,) = caught.value.problems
    assert problem.key == "spot" and "capacityReservationId" in problem.expected


SPOT_STATE = {"instanceMarketOptions": {"marketType": "spot", "spotOptions": {
    "instanceInterruptionBehavior": "stop", "spotInstanceType": "persistent", "maxPrice": "0.450000"}},
    "instanceLifecycle": "spot"}


@pytest.mark.parametrize("kept,config,wanted", [
    ({"instanceMarketOptions": {}}, {"spot": "true"}, "true"),  # on demand, asked onto Spot
    (SPOT_STATE, {}, "false"),  # on Spot, asked off it
])
def test_changing_spot_stops_at_the_preview_and_says_why(run_main, kept, config, wanted):
    with pytest.raises(ConfigError) as caught:
        run_main(mocks=_Deployed(kept), **config)
    (problem,) = caught.value.problems
    assert problem.key == "spot" and str(problem.value).lower() == wanted
    assert "replaces the instance" in problem.expected and "instance_market_options" in problem.expected
    assert "pulumi up --replace" in problem.expected


def test_a_spot_desktop_staying_on_spot_goes_through_and_its_price_is_compared_as_a_number(run_main):
    # EC2 reads the request's price back with six decimals.
    run_main(mocks=_Deployed(SPOT_STATE), spot="true", spotMaxPrice="0.45")
    run_main(mocks=_Deployed(SPOT_STATE), spot="true")  # unset: EC2's own cap, not compared
    with pytest.raises(ConfigError) as caught:
        run_main(mocks=_Deployed(SPOT_STATE), spot="true", spotMaxPrice="0.6")
    (problem,) = caught.value.problems
    assert (problem.key, problem.value) == ("spotMaxPrice", "0.6") and "'0.450000'" in problem.expected


# --- Capacity Blocks: decided by the reservation's type -----------------------------

def test_an_on_demand_reservation_gets_no_capacity_block_market(rendered):
    # The data source answers for an ODCR too (reservation type "default").
    i = instance_of(rendered(capacityReservationId=RESERVATION))
    assert "instanceMarketOptions" not in i
    assert i["capacityReservationSpecification"] == {"capacityReservationTarget": {"capacityReservationId": RESERVATION}}


def test_a_capacity_block_gets_the_capacity_block_market(run_main):
    mocks = offline.AccountMocks(capacity_blocks={RESERVATION: {"instanceType": "p5.48xlarge"}})
    i = instance_of(run_main(mocks=mocks, capacityReservationId=RESERVATION, instanceType="p5.48xlarge"))
    assert i["instanceMarketOptions"] == {"marketType": "capacity-block"}


def test_a_failing_lookup_is_a_config_error_naming_the_key(run_main):
    denied = ("operation error EC2: DescribeCapacityReservations, https response error StatusCode: 403, "
              "api error UnauthorizedOperation: You are not authorized to perform this operation.")
    mocks = offline.AccountMocks(failing_reservations={RESERVATION: denied})
    with pytest.raises(ConfigError) as caught:
        run_main(mocks=mocks, capacityReservationId=RESERVATION)
    (problem,) = caught.value.problems
    assert (problem.key, problem.value) == ("capacityReservationId", RESERVATION)
    assert "UnauthorizedOperation" in problem.expected and "ec2:DescribeCapacityReservations" in problem.expected


def test_the_capacity_exposes_the_blocks_end_for_the_agent():
    from desktop import capacity
    from desktop.config import parse
    from conftest import GOOD

    args = parse({**GOOD, "capacityReservationId": RESERVATION, "instanceType": "p5.48xlarge"}).args
    mocks = offline.AccountMocks(capacity_blocks={RESERVATION: {"endDate": "2031-02-03T04:05:00Z"}})
    found = {}

    def program():
        import pulumi
        found["capacity"] = capacity.resolve(args, pulumi.ComponentResource("test:index:T", "t"))

    offline.run(program, config={"aws:region": "us-east-1"}, mocks=mocks)
    assert found["capacity"].capacity_block and found["capacity"].end_date == "2031-02-03T04:05:00Z"


def test_a_block_desktop_tells_the_agent_when_the_block_ends_and_a_reservation_does_not(run_main, rendered):
    block = offline.AccountMocks(capacity_blocks={RESERVATION: {"endDate": "2031-02-03T04:05:00Z",
                                                               "instanceType": "p5.48xlarge"}})
    tags = instance_of(run_main(mocks=block, capacityReservationId=RESERVATION, instanceType="p5.48xlarge"))["tags"]
    assert tags["CapacityBlockEnd"] == "1927857900"  # 2031-02-03T04:05:00Z, from `date -d ... +%s`
    assert "CapacityBlockEnd" not in instance_of(rendered(capacityReservationId=RESERVATION))["tags"]


@pytest.mark.parametrize("read_back", [
    {"instanceMarketOptions": {"marketType": "capacity-block"}, "instanceLifecycle": "capacity-block"},  # PR 48701
    {"instanceMarketOptions": {}, "instanceLifecycle": "capacity-block"},  # a provider before it
])
def test_the_second_up_of_a_block_desktop_raises_nothing_whatever_the_provider_reads_back(run_main, read_back):
    mocks = _Deployed(read_back, capacity_blocks={RESERVATION: {"instanceType": "p5.48xlarge"}})
    r = run_main(mocks=mocks, capacityReservationId=RESERVATION, instanceType="p5.48xlarge")
    assert instance_of(r)["instanceMarketOptions"] == {"marketType": "capacity-block"}


def test_an_on_demand_desktop_moved_into_a_block_still_stops_at_the_preview(run_main):
    mocks = _Deployed({"instanceMarketOptions": {}, "instanceLifecycle": ""},
                      capacity_blocks={RESERVATION: {"instanceType": "p5.48xlarge"}})
    with pytest.raises(ConfigError) as caught:
        run_main(mocks=mocks, capacityReservationId=RESERVATION, instanceType="p5.48xlarge")
    assert [p.key for p in caught.value.problems] == ["capacityReservationId"]
    # The provider reads an on-demand instance's lifecycle back as "": on demand, not a blank.
    assert "it runs on demand or in an On-Demand Capacity Reservation, and moving into a Capacity Block" \
        in caught.value.problems[0].expected


# --- the budget and its tag ---------------------------------------------------------

def test_no_budget_by_default(rendered):
    assert not rendered().of_type(BUDGET)


def test_a_budget_warns_by_email_and_counts_only_this_desktop(rendered):
    r = rendered(budgetMonthlyUsd="200", budgetEmail="me@example.com")
    (budget,) = r.of_type(BUDGET)
    b = budget.inputs
    assert (b["budgetType"], b["timeUnit"], float(b["limitAmount"]), b["limitUnit"]) == ("COST", "MONTHLY", 200.0, "USD")
    assert b["costFilters"] == [{"name": "TagKeyValue", "values": [f"user:DeepLearningDesktop${ROLE_NAME}"]}]
    warnings = {(n["notificationType"], n["threshold"], n["thresholdType"], n["comparisonOperator"])
                for n in b["notifications"]}
    assert warnings == {("FORECASTED", 80, "PERCENTAGE", "GREATER_THAN"), ("ACTUAL", 100, "PERCENTAGE", "GREATER_THAN")}
    assert all(n["subscriberEmailAddresses"] == ["me@example.com"] for n in b["notifications"])


def test_everything_that_costs_money_carries_the_tag_the_budget_filters_on(rendered):
    r = rendered(fsxLustre="true", efa="true", instanceType="g5.48xlarge")
    costly = [reg for reg in r.registrations if reg.type in (
        INSTANCE, "aws:efs/fileSystem:FileSystem", "aws:fsx/lustreFileSystem:LustreFileSystem", "aws:ec2/eip:Eip")]
    assert len(costly) == 4
    for reg in costly:
        assert reg.inputs["tags"]["DeepLearningDesktop"] == ROLE_NAME, reg.name
    assert instance_of(r)["rootBlockDevice"]["tags"] == {"DeepLearningDesktop": ROLE_NAME}
    assert cost_tag.COST_TAG == backup.VOLUME_TAG  # one tag: the snapshots copy the volume's


# --- FSx for Lustre: the desktop's group admits the file servers ---------------------

def test_the_desktops_group_admits_lustre_from_the_fsx_group(rendered):
    r = rendered(fsxLustre="true")
    groups = {reg.name: reg for reg in r.of_type(SG)}
    desktop_sg, fsx_sg = r.outputs["DesktopSecurityGroup"], offline._fake("sg", "test--fsx-sg")
    assert "test--fsx-sg" in groups
    into_desktop = {(rule.inputs["fromPort"], rule.inputs["toPort"]) for rule in r.of_type(INGRESS)
                    if rule.inputs["securityGroupId"] == desktop_sg
                    and rule.inputs.get("referencedSecurityGroupId") == fsx_sg and rule.inputs["ipProtocol"] == "tcp"}
    assert into_desktop == {(988, 988), (1018, 1023)}


def test_a_given_desktop_group_gets_no_rule_from_the_program(rendered):
    r = rendered(fsxLustre="true", securityGroupId="sg-0fedcba9876543210")
    assert not [rule for rule in r.of_type(INGRESS) if rule.inputs["securityGroupId"] == "sg-0fedcba9876543210"]


# --- plan: what a stopped desktop still costs ---------------------------------------

def test_plan_prints_the_monthly_cost_of_a_stopped_desktop_with_the_tables_date(tmp_path, monkeypatch, capsys):
    from test_plan import write_stack
    from desktop.commands.cli import main
    from conftest import ROOT
    import shutil

    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "__main__.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    monkeypatch.setattr("desktop.commands.stack_file.PROJECT_DIR", tmp_path)
    monkeypatch.setattr("desktop.commands.offline.MAIN", tmp_path / "__main__.py")
    write_stack(tmp_path, ebsVolumeSize=500, snapshotRetainCount=7, fsxLustre=True, fsxStorageCapacity=1200)
    assert main(["plan", "--stack", "t"]) == 0
    out = capsys.readouterr().out
    section = out.split("While stopped it still costs ", 1)[1].split("\n\n", 1)[0]
    # 500 GiB gp3 at $0.08 = $40; 1200 GiB SCRATCH_2 at $0.14 = $168; 7 snapshots of at most
    # 500 GiB at $0.05 = up to $175: $208 to $383 in all.
    assert section.startswith("$208.00 to $383.00/month while stopped (us-east-1 list prices of 2025-06-01")
    assert "$40.00/month  root volume, 500 GiB gp3" in section
    assert "$168.00/month  FSx for Lustre SCRATCH_2 1200 GiB" in section
    assert "$0.00 to $175.00/month  7 daily snapshots" in section
