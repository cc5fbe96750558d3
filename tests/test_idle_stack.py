"""The idle policy on the instance, under Pulumi mocks: the tag the agent reads, the
metadata options that let it read tags, the shutdown behaviour, the keep-awake tag that
`pulumi up` leaves alone, and a stopped desktop that previews without a false error."""

from __future__ import annotations

import pytest

from desktop.commands import offline
from desktop.commands.plan import details
from desktop.config import ConfigError

INSTANCE = "aws:ec2/instance:Instance"


def instance_of(rendering):
    (instance,) = rendering.of_type(INSTANCE)
    return instance


@pytest.mark.parametrize("minutes", ["0", "10", "30", "1440"])
def test_the_idle_policy_is_a_tag_beside_the_name(rendered, minutes):
    tags = instance_of(rendered(idleStopMinutes=minutes)).inputs["tags"]
    assert tags == {"Name": "test-deep-learning-ubuntu-desktop", "IdleStopMinutes": minutes, "IdleBlockedHours": "12",
                    "DeepLearningDesktop": "test--role-abc1234"}  # the cost tag (desktop/cost_tag.py)


@pytest.mark.parametrize("hours", ["0", "1", "168"])
def test_idle_blocked_hours_is_a_tag_too(rendered, hours):
    assert instance_of(rendered(idleBlockedHours=hours)).inputs["tags"]["IdleBlockedHours"] == hours


def test_a_capacity_block_end_becomes_an_epoch_tag():
    from desktop.instance_tags import capacity_block_end_tag

    # 1796124600 is Tuesday 1 December 2026, 11:30 UTC (date -u -d @1796124600).
    for end in ("2026-12-01T11:30:00Z", "2026-12-01T12:30:00+01:00", "2026-12-01T11:30:00.000Z", "1796124600"):
        assert capacity_block_end_tag(end) == {"CapacityBlockEnd": "1796124600"}, end
    assert capacity_block_end_tag(None) == {}


def test_the_default_policy_is_thirty_minutes(rendered):
    assert instance_of(rendered()).inputs["tags"]["IdleStopMinutes"] == "30"


def test_the_agent_can_read_tags_through_imdsv2_and_a_poweroff_stops(rendered):
    i = instance_of(rendered()).inputs
    assert i["metadataOptions"]["instanceMetadataTags"] == "enabled"
    assert i["metadataOptions"]["httpTokens"] == "required"
    assert i["instanceInitiatedShutdownBehavior"] == "stop"


def test_pulumi_up_leaves_the_keep_awake_tag_alone(rendered):
    ignored = instance_of(rendered()).ignore_changes
    assert "tags.KeepAwakeUntil" in ignored and "tagsAll.KeepAwakeUntil" in ignored
    # Only that key: the policy tag and the name must still follow the config.
    assert "tags" not in ignored and "tags.IdleStopMinutes" not in ignored


@pytest.mark.parametrize("minutes, shown", [("0", "never stops itself"),
                                            ("1440", "stops itself after 1440 idle minutes"),
                                            ("30", "stops itself after 30 idle minutes")])
def test_plan_shows_the_idle_policy(rendered, minutes, shown):
    r = rendered(idleStopMinutes=minutes)
    lines = details(instance_of(r), {})
    assert any(shown in line for line in lines), lines


class _Deployed(offline.AccountMocks):
    """A desktop created earlier, as the provider reads it back (after a refresh)."""

    def __init__(self, read: dict, **account):
        super().__init__(**account)
        self.read = read

    def new_resource(self, args):
        rid, state = super().new_resource(args)
        if args.typ == INSTANCE:
            state.update(self.read)
        return rid, state


# What the provider reads for a stopped instance created with a public IP: no public IP
# association on its network interface, so associatePublicIpAddress false, no address.
STOPPED = {"instanceState": "stopped", "associatePublicIpAddress": False, "publicIp": "", "publicDns": ""}


def info(rendering):
    return [message for level, message in rendering.logs if level == "info"]


def test_a_stopped_desktop_previews_without_a_false_public_ip_error(run_main):
    r = run_main(mocks=_Deployed(STOPPED))  # publicIp true, as the desktop was created
    (note,) = [m for m in info(r) if "publicIp" in m]
    assert "the desktop is stopped" in note and "while it runs" in note


def test_a_stopped_desktop_says_public_ip_is_unchecked_even_when_the_reading_matches(run_main):
    # "false" is what every stopped desktop reads: it proves nothing, so it is not a silent pass.
    r = run_main(mocks=_Deployed(STOPPED), publicIp="false")
    assert [m for m in info(r) if "publicIp" in m and "(false)" in m]


def test_a_running_desktop_still_refuses_a_public_ip_change(run_main):
    running = {**STOPPED, "instanceState": "running", "associatePublicIpAddress": True, "publicIp": "198.51.100.7"}
    with pytest.raises(ConfigError) as caught:
        run_main(mocks=_Deployed(running), publicIp="false")
    (problem,) = caught.value.problems
    assert (problem.key, problem.value) == ("publicIp", False)
    assert "the desktop's own True" in problem.expected


def test_a_stopped_desktop_still_refuses_a_subnet_change(run_main):
    with pytest.raises(ConfigError) as caught:
        run_main(mocks=_Deployed({**STOPPED, "subnetId": "subnet-0aaaaaaaaaaaaaaaa"}))
    assert [p.key for p in caught.value.problems] == ["subnetId"]


def test_plan_names_the_keep_awake_tag_apart_from_what_keeps_the_desktop(rendered):
    lines = details(instance_of(rendered()), {})
    assert "tags set outside Pulumi, which pulumi up leaves as they are: KeepAwakeUntil" in lines
    (kept,) = [ln for ln in lines if ln.startswith("changes ignored")]
    assert "KeepAwakeUntil" not in kept and "subnetId" in kept
