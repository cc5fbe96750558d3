"""Choosing the AMI's SSM parameter for the instance type's architecture."""

import pytest

from desktop.image import architecture_of, ssm_parameter_for

DLAMI = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"


@pytest.mark.parametrize("supported,arch", [
    (["arm64"], "arm64"), (["x86_64", "i386"], "x86_64"), (["x86_64"], "x86_64"),
    (["x86_64_mac"], "x86_64"), ([], "x86_64"), (None, "x86_64"),
])
def test_architecture_of_supported_architectures(supported, arch):
    assert architecture_of(supported) == arch


def test_the_dlami_parameter_follows_the_architecture_both_ways():
    arm = ssm_parameter_for(DLAMI, "arm64")
    assert arm == DLAMI.replace("/x86_64/", "/arm64/")
    assert ssm_parameter_for(arm, "x86_64") == DLAMI
    assert ssm_parameter_for(DLAMI, "x86_64") == DLAMI


def test_other_parameters_are_left_alone():
    own = "/my-team/ami/x86_64/desktop"
    assert ssm_parameter_for(own, "arm64") == own
    # Only the architecture segment changes, not a later "x86_64" in the name.
    tricky = "/aws/service/deeplearning/ami/x86_64/x86_64-thing/latest/ami-id"
    assert ssm_parameter_for(tricky, "arm64") == "/aws/service/deeplearning/ami/arm64/x86_64-thing/latest/ami-id"
