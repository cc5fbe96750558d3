"""``python -m desktop keep-awake | status``: the idle policy, seen and steered from the laptop.

The desktop stops itself after ``idleStopMinutes`` idle minutes (its agent reads the
instance tags ``IdleStopMinutes`` and ``KeepAwakeUntil`` through the instance metadata
service). ``keep-awake`` sets or deletes ``KeepAwakeUntil`` (CreateTags/DeleteTags), which
`pulumi up` leaves alone. ``status`` shows the state, what the desktop costs (AWS Price
List API; "unknown" when it cannot tell, never a guess) and what the agent last said.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
import time
from decimal import Decimal
from typing import Callable, NamedTuple, Optional, Union

import botocore.exceptions

from desktop.commands import aws, operate
from desktop.instance_tags import IDLE_STOP_MINUTES, KEEP_AWAKE_UNTIL
from desktop.partition import of_region

MAX_KEEP_AWAKE = 72 * 3600
OFF = "off"

# The Price List API answers from a few regions only; us-east-1 serves the whole aws partition.
PRICING_REGION = "us-east-1"

# Injected by tests, so deadlines and elapsed times do not depend on the clock.
_now: Callable[[], float] = time.time


# ---------------------------------------------------------------------------
# Small formatting helpers.

def utc(epoch: float) -> str:
    """``2026-11-28 04:00 UTC`` of an epoch time."""
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def span(seconds: float) -> str:
    """``3h05m`` (or ``2d04h10m``) of a number of seconds; ``0m`` for less than a minute."""
    minutes = int(max(0, seconds)) // 60
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d{hours:02d}h{minutes:02d}m"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


def dollars(amount: Decimal, places: int = 2) -> str:
    return f"${amount:,.{places}f}"


# ---------------------------------------------------------------------------
# keep-awake

def keep_awake_argument(text: str) -> Union[str, float]:
    """``off``, or the seconds of a duration of more than 0 and at most 72 hours (``4h``, ``90m``, ``1d``)."""
    if text.strip().lower() == OFF:
        return OFF
    seconds = operate.duration(text)
    if seconds <= 0 or seconds > MAX_KEEP_AWAKE:
        raise argparse.ArgumentTypeError(f"{text!r} is not a keep-awake time; expected more than 0 and at most "
                                         "72h (e.g. 4h, 90m, 2h30m, 1d), or off")
    return seconds


def _refuse_keep_awake(message: str):
    """A refused keep-awake argument: one line, exit 2 (not argparse's usage block)."""
    print(f"error: keep-awake: {message}", file=sys.stderr)
    sys.exit(2)


def _tags(instance: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def keep_awake_deadline(tags: dict[str, str]) -> Optional[int]:
    """The ``KeepAwakeUntil`` deadline in epoch seconds, or None when unset or unreadable."""
    try:
        return int(tags[KEEP_AWAKE_UNTIL])
    except (KeyError, ValueError):
        return None


def describe_keep_awake(tags: dict[str, str], now: float) -> str:
    deadline = keep_awake_deadline(tags)
    if KEEP_AWAKE_UNTIL in tags and deadline is None:
        return f"unreadable tag {KEEP_AWAKE_UNTIL}={tags[KEEP_AWAKE_UNTIL]!r} (the agent ignores it)"
    if deadline is None:
        return "none"
    if deadline <= now:
        return f"expired at {utc(deadline)}"
    return f"until {utc(deadline)} ({span(deadline - now)} from now)"


def _keep_awake(args: argparse.Namespace) -> int:
    target = operate.desktop(args)
    with aws.errors():
        instance = target.describe()
        state = instance["State"]["Name"]
        now = _now()
        if args.duration is None:
            print(f"keep-awake of {target.instance_id}: {describe_keep_awake(_tags(instance), now)}")
            print("(a keep-awake set on the desktop itself, with its own `keep-awake` command, is not shown here)")
            return 0
        ec2 = target.ec2()
        if args.duration == OFF:
            ec2.delete_tags(Resources=[target.instance_id], Tags=[{"Key": KEEP_AWAKE_UNTIL}])
            print(f"keep-awake of {target.instance_id} is off: it stops itself again after its idle minutes")
            return 0
        deadline = int(now + args.duration)
        ec2.create_tags(Resources=[target.instance_id], Tags=[{"Key": KEEP_AWAKE_UNTIL, "Value": str(deadline)}])
    print(f"{target.instance_id} is kept awake until {utc(deadline)} ({span(deadline - now)} from now); "
          f"`{target.hint('keep-awake', 'off')}` ends it sooner")
    if state in ("stopped", "stopping"):
        print(f"the desktop is {state}: the keep-awake counts once it runs; {_start_hint(state, target)}")
    return 0


# ---------------------------------------------------------------------------
# Prices from the AWS Price List API.

class Price(NamedTuple):
    """A price in USD, or None with the reason it is unknown."""

    usd: Optional[Decimal]
    why_unknown: str = ""

    def text(self, unit: str, places: int = 3) -> str:
        return f"{dollars(self.usd, places)}/{unit}" if self.usd is not None else f"unknown ({self.why_unknown})"


def _pricing_client(session: aws.Aws):
    """A Price List API client: it lives in us-east-1 (also ap-south-1, eu-central-1)."""
    return session.session.client("pricing", region_name=PRICING_REGION, config=aws.CLIENT_CONFIG)


def _one_price(pricing, filters: dict[str, str], unit: str) -> Price:
    """The one on-demand price per ``unit`` of the products matching ``filters``."""
    try:
        response = pricing.get_products(
            ServiceCode="AmazonEC2", MaxResults=20,
            Filters=[{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()])
    except botocore.exceptions.ClientError as error:
        return Price(None, f"the Price List API said {aws.message(error)}")
    except botocore.exceptions.BotoCoreError as error:
        return Price(None, f"the Price List API is out of reach: {error}")
    prices = set()
    for item in response.get("PriceList", []):
        product = json.loads(item) if isinstance(item, str) else item
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                if dimension.get("unit") == unit and "USD" in dimension.get("pricePerUnit", {}):
                    prices.add(Decimal(dimension["pricePerUnit"]["USD"]))
    if len(prices) == 1:
        (price,) = prices
        if price > 0:
            return Price(price)
        # A $0 on-demand price is a placeholder of the price list, not what the desktop costs.
        return Price(None, "the Price List API gives $0, which is no real on-demand price")
    if not prices:
        return Price(None, "the Price List API has no on-demand price for it")
    return Price(None, f"the Price List API gives {len(prices)} different prices")


def instance_hourly(pricing, region: str, instance_type: str) -> Price:
    """The on-demand price per hour of a Linux instance of ``instance_type`` in ``region``."""
    return _one_price(pricing, {
        "instanceType": instance_type, "regionCode": region, "operatingSystem": "Linux", "tenancy": "Shared",
        "preInstalledSw": "NA", "capacitystatus": "Used", "licenseModel": "No License required",
    }, "Hrs")


def volume_gb_month(pricing, region: str, volume_type: str) -> Price:
    """The price per GB-month of EBS ``volume_type`` storage in ``region``."""
    return _one_price(pricing, {"productFamily": "Storage", "volumeApiName": volume_type, "regionCode": region},
                      "GB-Mo")


# gp3 includes 3,000 IOPS and 125 MiB/s; more is priced apart, which is not looked up here.
GP3_BASELINE = {"Iops": 3000, "Throughput": 125}


def volume_monthly(pricing, region: str, volume: dict) -> str:
    size, kind = volume["Size"], volume["VolumeType"]
    what = f"{volume['VolumeId']}, {size} GiB {kind}"
    if kind == "gp3" and any(volume.get(k, 0) > v for k, v in GP3_BASELINE.items()):
        return f"{what}: unknown (it has IOPS or throughput beyond gp3's baseline, priced apart)"
    if kind not in ("gp2", "gp3"):
        return f"{what}: unknown (only gp2 and gp3 are priced here)"
    per_gb = volume_gb_month(pricing, region, kind)
    if per_gb.usd is None:
        return f"{what}: {per_gb.text('GB-month')}"
    return f"{what}: {dollars(per_gb.usd * size)}/month ({dollars(per_gb.usd, 3)} per GB-month), also while stopped"


# ---------------------------------------------------------------------------
# status

def idle_policy(tags: dict[str, str]) -> str:
    minutes = tags.get(IDLE_STOP_MINUTES)
    if minutes is None:
        return f"unknown (no {IDLE_STOP_MINUTES} tag: `pulumi up` sets it)"
    if minutes == "0":
        return "never stops itself (idleStopMinutes 0)"
    if minutes.isdigit():
        return f"stops itself after {minutes} idle minutes"
    return f"unknown ({IDLE_STOP_MINUTES}={minutes!r})"


def _root_volume(ec2, instance: dict) -> Optional[dict]:
    root = instance.get("RootDeviceName")
    ids = [m["Ebs"]["VolumeId"] for m in instance.get("BlockDeviceMappings", [])
           if m.get("DeviceName") == root and "Ebs" in m]
    if not ids:
        return None
    return ec2.describe_volumes(VolumeIds=ids)["Volumes"][0]


def _why_stopped(instance: dict) -> str:
    reason = instance.get("StateReason", {}).get("Code", "")
    if reason == "Client.InstanceInitiatedShutdown":
        return "it stopped itself (a shutdown from inside, as the idle agent does)"
    if reason == "Client.UserInitiatedShutdown":
        return "stopped through the API (`python -m desktop stop`, the console or the CLI)"
    return instance.get("StateTransitionReason") or ""


# The agent's lines for a probe it cannot read, and for one it reads again (cloud_init/idle_agent.py).
BLOCKED = re.compile(r"idle stop blocked: (?P<probe>\S+) unreadable \((?P<error>.*)\) since (?P<since>\S+)")
UNBLOCKED = re.compile(r"idle stop unblocked: (?P<probe>\S+) readable again")


def _agent_lines(ec2, instance_id: str) -> tuple[str, list[str]]:
    """The agent's last console line, and its probes still unreadable in this boot."""
    try:
        console = operate.console_output(ec2, instance_id)
    except botocore.exceptions.ClientError as error:
        return f"unknown (the console output: {aws.message(error)})", []
    lines = operate.idle_lines(console)
    return (lines[-1] if lines else "none on the console yet"), blocked_probes(
        operate.idle_lines(operate.current_boot(console)), _now())


def blocked_probes(lines: list[str], now: float) -> list[str]:
    """``<probe> unreadable (<error>) since <time> (<span> ago)`` of each probe that the
    agent said it cannot read, in ``lines``, and has not said it reads again."""
    still: dict[str, re.Match] = {}
    for line in lines:
        if (blocked := BLOCKED.fullmatch(line)):
            still[blocked["probe"]] = blocked
        elif (unblocked := UNBLOCKED.fullmatch(line)):
            still.pop(unblocked["probe"], None)
    said = []
    for match in still.values():
        try:
            since = datetime.datetime.fromisoformat(match["since"].replace("Z", "+00:00")).timestamp()
            ago = f" ({span(now - since)} ago)"
        except ValueError:
            ago = ""
        said.append(f"{match['probe']} unreadable ({match['error']}) since {match['since']}{ago}")
    return said


def _status(args: argparse.Namespace) -> int:
    target = operate.desktop(args)
    region = target.aws.region
    with aws.errors():
        instance = target.describe()
        ec2 = target.ec2()
        volume = _root_volume(ec2, instance)
        agent, blocked = _agent_lines(ec2, target.instance_id)
    state = instance["State"]["Name"]
    kind = instance["InstanceType"]
    tags = _tags(instance)
    now = _now()
    launched = instance["LaunchTime"].timestamp()
    if of_region(region) == "aws":
        pricing = _pricing_client(target.aws)
        hourly = instance_hourly(pricing, region, kind)
        disk = volume_monthly(pricing, region, volume) if volume else "unknown (no root EBS volume found)"
    else:
        hourly = Price(None, "the Price List API serves the aws partition only")
        disk = "unknown (the Price List API serves the aws partition only)"

    rows = [("instance", f"{target.instance_id} in {region}")]
    if instance.get("InstanceLifecycle") == "spot":
        rows.append(("market", spot_line(ec2, instance, hourly)))
    if state == "running":
        rows.append(("state", f"running since {utc(launched)} ({span(now - launched)})"))
        run_cost = (f"; this run so far {dollars(hourly.usd * Decimal(now - launched) / 3600)}"
                    if hourly.usd is not None else "")
        rows.append(("type", f"{kind}, {hourly.text('hour')} on demand{run_cost}"))
    else:
        why = _why_stopped(instance) if state in ("stopped", "stopping") else ""
        rows.append(("state", f"{state}{f': {why}' if why else ''}; last started {utc(launched)}"))
        rows.append(("type", f"{kind}, {hourly.text('hour')} on demand while it runs"))
    rows += [
        ("root volume", disk),
        ("idle policy", idle_policy(tags)),
        ("keep-awake", describe_keep_awake(tags, now)),
        ("idle agent", agent),
        # Uncertain keeps the desktop up: say which probe, and for how long already.
        *(("idle stop blocked", line) for line in blocked),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name + ':':<{width + 1}}  {value}")
    if state in ("stopped", "stopping"):
        print(f"the desktop is {state}: {_start_hint(state, target)}")
    return 0


def spot_price(ec2, instance_type: str, zone: str) -> Price:
    """The current Spot price per hour of a Linux ``instance_type`` in ``zone`` (DescribeSpotPriceHistory)."""
    try:
        history = ec2.describe_spot_price_history(
            InstanceTypes=[instance_type], ProductDescriptions=["Linux/UNIX"], AvailabilityZone=zone,
            StartTime=datetime.datetime.fromtimestamp(_now(), datetime.timezone.utc))["SpotPriceHistory"]
    except botocore.exceptions.ClientError as error:
        return Price(None, f"DescribeSpotPriceHistory said {aws.message(error)}")
    # Filtered here too: the answer may hold other zones (moto's does).
    prices = [p for p in history if p.get("AvailabilityZone") == zone]
    if not prices:
        return Price(None, f"EC2 has no Spot price for {instance_type} in {zone}")
    return Price(Decimal(max(prices, key=lambda p: p["Timestamp"])["SpotPrice"]))


def spot_line(ec2, instance: dict, on_demand: Price) -> str:
    """What ``status`` says of a Spot desktop: the market, the current Spot price, the on-demand one."""
    zone = instance.get("Placement", {}).get("AvailabilityZone", "")
    now = spot_price(ec2, instance["InstanceType"], zone)
    return (f"Spot (an interruption stops it; EC2 starts it again when capacity returns), "
            f"{now.text('hour', 4)} now in {zone}, against {on_demand.text('hour')} on demand")


def _start_hint(state: str, target: operate.Desktop) -> str:
    # EC2 refuses to start an instance that is still stopping.
    hint = f"start it: `{target.hint('start', '--wait')}`"
    return hint if state == "stopped" else f"once it is stopped, {hint}"


# ---------------------------------------------------------------------------
# The parsers.

def register(subparsers) -> None:
    """Add ``keep-awake`` and ``status`` to the ``python -m desktop`` parser."""
    common = aws.SETTINGS_HELP

    keep = subparsers.add_parser(
        "keep-awake", help="keep the desktop from stopping itself for a while (at most 72h)",
        description="Keep the desktop from stopping itself until a deadline: sets the instance tag "
                    f"{KEEP_AWAKE_UNTIL} (epoch seconds), which the desktop's idle agent reads and `pulumi up` "
                    "leaves alone. `keep-awake 4h` from now (at most 72h), `keep-awake off` ends it, no argument "
                    "shows the deadline. No SSH needed. " + common)
    keep.add_argument("duration", nargs="?", type=keep_awake_argument, metavar="DURATION|off",
                      help="how long from now, e.g. 4h, 90m, 2h30m, 1d (at most 72h); or off")
    # `-1h` is this command's refused duration, not an unknown option of `python -m desktop`:
    # argparse reads an argument as a negative number (not an option) when it matches this
    # (its default matches only -1 and -1.5) and the parser has no option that does.
    keep._negative_number_matcher = re.compile(r"^-\d")
    keep.error = _refuse_keep_awake
    operate._common(keep)
    keep.set_defaults(run=_keep_awake)

    status = subparsers.add_parser(
        "status", help="state, cost, idle policy and what the idle agent last said",
        description="Show the desktop's state and instance type, the time since its last start, its on-demand "
                    "price per hour and the cost of this run so far, the monthly cost of its root volume (AWS "
                    "Price List API, pricing:GetProducts; 'unknown' when it cannot tell), the idle policy, a "
                    "keep-awake deadline and the last line the idle agent printed on the console. " + common)
    operate._common(status)
    status.set_defaults(run=_status)
