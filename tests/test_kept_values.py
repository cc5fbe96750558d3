"""Values only a new instance can change stop `pulumi up` at the preview, whatever the key."""

from __future__ import annotations

import pytest

from desktop.config import ConfigError
from test_component import _Deployed


def test_changing_ebs_optimized_stops_at_the_preview_instead_of_replacing_the_desktop(run_main):
    # The provider replaces the instance for a new ebs_optimized (ForceNew): the root
    # volume with the person's work would go with it.
    with pytest.raises(ConfigError) as caught:
        run_main(mocks=_Deployed({"ebsOptimized": True}), ebsOptimized="false")
    (problem,) = caught.value.problems
    assert problem.key == "ebsOptimized" and problem.value is False
    assert "the desktop's own True" in problem.expected and "pulumi up --replace" in problem.expected


INSTANCE_URN = ("urn:pulumi:test::deep-learning-desktop::"
                "deep-learning-desktop:index:DeepLearningDesktop$aws:ec2/instance:Instance::test--instance")


@pytest.mark.parametrize("own, given", [(False, "false"), (True, "true")])
def test_the_desktops_own_ebs_optimized_goes_through(run_main, own, given):
    # No ConfigError (run_main would raise it), and the same instance (its URN) with the
    # value it has: nothing for the provider to replace.
    r = run_main(mocks=_Deployed({"ebsOptimized": own}), ebsOptimized=given)
    (instance,) = r.of_type("aws:ec2/instance:Instance")
    assert instance.urn == INSTANCE_URN
    assert instance.inputs["ebsOptimized"] is own
    assert instance.state["ebsOptimized"] is own
    assert "ebsOptimized" in instance.ignore_changes, "a change is stopped by the check, never planned"
