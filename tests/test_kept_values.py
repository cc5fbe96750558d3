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


def test_the_desktops_own_ebs_optimized_goes_through(run_main):
    run_main(mocks=_Deployed({"ebsOptimized": False}), ebsOptimized="false")
