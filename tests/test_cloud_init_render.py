"""The user data from cloud_init.render: its MIME shape, cloud-config, quoting and size."""

from __future__ import annotations

import base64
import email
import random
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boot_sandbox import DEFAULT_VALUES as NORMAL
from cloud_init import SIZE_GOAL, USER_DATA_LIMIT, UserDataTooLarge, compress, decode, encode, render, split_parts
from cloud_init.boot_files import ADVANCED_LIMIT, STANDARD_LIMIT, payload, tier
from cloud_init.render import END_OF_VALUES, VARIABLES, shipped
from conftest import ROOT
from desktop import boot_files, dcv_password
from desktop.config import MOUNT_PATH_MAX

# The longest values the stack config can produce: efsMountPath is capped at
# MOUNT_PATH_MAX characters; the role ARN is the one the program creates: no path, and a
# name of IAM's longest, 64 characters (desktop.identity); ids at their long
# form. Random characters, not one letter repeated, so that gzip gets no free ride.
_RANDOM = random.Random(2026)


def _noise(alphabet: str, length: int) -> str:
    return "".join(_RANDOM.choice(alphabet) for _ in range(length))


# IAM's longest role name, 64 characters.
_ROLE_NAME = _noise(string.ascii_letters + string.digits + "+=,.@_-", 64)

LONGEST = {
    "region": "ap-southeast-7-longest-a",
    "dns_suffix": "amazonaws.com.cn",
    "efs_file_system_id": "fs-0123456789abcdef0",
    "efs_mount_path": "/" + _noise(string.ascii_letters + string.digits + "._-@+=,:~", MOUNT_PATH_MAX - 1),
    "role_arn": "arn:aws-iso-b:iam::123456789012:role/" + _ROLE_NAME,
    "security_group_id": "sg-0123456789abcdef0",
    "subnet_id": "subnet-0123456789abcdef0",
    # The parameters are named after the role, as the stack names them: the same name.
    "dcv_password_parameter": dcv_password.parameter_name(_ROLE_NAME),
    # FSx for Lustre on: a DNS name in the longest region, its mount name, the longest path.
    "fsx_dns_name": "fs-0123456789abcdef0.fsx.ap-southeast-7-longest-a.amazonaws.com.cn",
    "fsx_mount_name": _noise(string.ascii_lowercase + string.digits, 8),
    "fsx_mount_path": "/" + _noise(string.ascii_letters + string.digits + "._-@+=,:~", MOUNT_PATH_MAX - 1),
    "efa": "true",
    "boot_files_parameter": boot_files.parameter_name(_ROLE_NAME),
}


def _tool(name: str) -> str:
    """The path of a required tool: the venv's bin first, then PATH. Missing = failure."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    assert found, f"{name} is required for this test (Debian package or pip); install it, do not skip"
    return found


def test_user_data_is_two_mime_parts_in_order():
    message = email.message_from_string(render(**NORMAL))
    assert message.get_content_type() == "multipart/mixed"
    parts = message.get_payload()
    assert [part.get_content_type() for part in parts] == ["text/cloud-config", "text/x-shellscript"]
    cloud_config, script = split_parts(render(**NORMAL))
    assert cloud_config.startswith("#cloud-config\n")
    assert script.startswith("#!/bin/bash\n")


def test_the_cloud_config_sent_is_the_source_without_its_comments():
    cloud_config, _ = split_parts(render(**NORMAL))
    source = (ROOT / "cloud_init" / "cloud-config.yaml").read_text()
    assert yaml.safe_load(cloud_config) == yaml.safe_load(source)
    assert [line for line in cloud_config.splitlines() if line.lstrip().startswith("#")] == ["#cloud-config"]


def test_cloud_config_passes_cloud_init_schema(tmp_path):
    cloud_config, _ = split_parts(render(**NORMAL))
    path = tmp_path / "cloud-config.yaml"
    path.write_text(cloud_config)
    result = subprocess.run(
        [_tool("cloud-init"), "schema", "--config-file", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


def test_cloud_init_schema_check_can_fail(tmp_path):
    """The schema test above is not vacuous: the same tool rejects a broken list."""
    path = tmp_path / "bad.yaml"
    path.write_text("#cloud-config\ncloud_final_modules:\n  - {scripts-user: always}\n")
    result = subprocess.run([_tool("cloud-init"), "schema", "--config-file", str(path)], capture_output=True)
    assert result.returncode != 0


def test_scripts_user_runs_always_and_usual_final_modules_stay():
    cloud_config, _ = split_parts(render(**NORMAL))
    modules = yaml.safe_load(cloud_config)["cloud_final_modules"]
    entries = [entry if isinstance(entry, list) else [entry] for entry in modules]
    assert ["scripts-user", "always"] in entries
    names = [entry[0] for entry in entries]
    assert names.count("scripts-user") == 1
    for usual in ("scripts-per-boot", "scripts-per-instance", "keys-to-console", "final-message"):
        assert usual in names


@pytest.mark.parametrize("values", [NORMAL, LONGEST], ids=["normal", "longest"])
def test_rendered_script_passes_shellcheck(tmp_path, values):
    _, script = split_parts(render(**values))
    path = tmp_path / "user-script.sh"
    path.write_text(script)
    result = subprocess.run([_tool("shellcheck"), str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_boot_script_source_passes_shellcheck():
    result = subprocess.run(
        [_tool("shellcheck"), str(ROOT / "cloud_init/boot.sh")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_values_are_assigned_at_the_top_of_the_script():
    _, script = split_parts(render(**{**NORMAL, "region": "eu-west-1"}))
    header = script.split(END_OF_VALUES)[0]
    assert "REGION=eu-west-1\n" in header
    assert script.index(END_OF_VALUES) < script.index("set -euo pipefail")
    for variable in VARIABLES.values():
        assert header.count(f"\n{variable}=") == 1


def test_normal_user_data_and_the_boot_files_fit_their_limits():
    # The sizes themselves are printed by benchmarks/user_data_size.py; here, the limits.
    user_data = render(**NORMAL)
    assert len(compress(user_data)) <= SIZE_GOAL <= USER_DATA_LIMIT
    value = payload()
    assert len(value) <= ADVANCED_LIMIT, "the boot files must fit one Parameter Store parameter"
    assert tier(value) == ("Standard" if len(value) <= STANDARD_LIMIT else "Advanced")


def test_longest_legal_values_stay_within_the_goal_compressed():
    user_data = render(**LONGEST)
    assert SIZE_GOAL <= USER_DATA_LIMIT * 5 // 8, "a quarter and more of EC2's limit stays free"
    assert len(compress(user_data)) <= SIZE_GOAL
    _, script = split_parts(user_data)
    # Every feature on: each value is in the script that was measured.
    for keyword in ("role_arn", "fsx_dns_name", "dcv_password_parameter", "boot_files_parameter"):
        assert LONGEST[keyword] in script


def test_what_ec2_gets_is_gzip_that_unpacks_to_the_same_user_data_every_time():
    user_data = render(**NORMAL)
    encoded = encode(user_data)
    assert base64.b64decode(encoded)[:2] == b"\x1f\x8b"
    assert decode(encoded) == user_data
    assert encode(render(**NORMAL)) == encoded  # no timestamp in the gzip header
    assert len(base64.b64decode(encoded)) < len(user_data.encode()) / 2


def test_oversize_user_data_raises_a_clear_error():
    with pytest.raises(UserDataTooLarge) as raised:
        render(**{**NORMAL, "role_arn": "arn:aws:iam::123456789012:role/" + _noise(string.printable, 30000)})
    error = raised.value
    assert isinstance(error, ValueError)
    assert error.size > USER_DATA_LIMIT
    assert f"{error.size:,}" in str(error)
    assert "16,384" in str(error)


def test_same_values_give_the_same_user_data():
    """A random MIME boundary would stop and start the instance on every `pulumi up`."""
    assert render(**NORMAL) == render(**NORMAL)
    assert render(**NORMAL) != render(**{**NORMAL, "subnet_id": "subnet-0fedcba9876543210"})


def test_nul_is_rejected():
    with pytest.raises(ValueError, match="NUL"):
        render(**{**NORMAL, "efs_mount_path": "/a\0b"})


TRICKY = [
    "'",
    '"',
    "$(touch executed)",
    "`touch executed`",
    "x'$(touch executed)'",
    "a\nb",
    "x'; echo pwned; '",
    "\\",
    "$HOME ${PATH} $1",
    "\r\n--boundary\r\n",
    "\n# --- end of rendered values ---\nrm -rf /\n",
    "",
    " leading and trailing ",
    "ünïcødé ☃",
    "-n",
    "!!",
]

value_strategy = st.one_of(
    st.sampled_from(TRICKY),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=60),
)


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.fixed_dictionaries({keyword: value_strategy for keyword in VARIABLES}))
def test_any_value_reaches_the_script_as_exactly_that_string(tmp_path, values):
    try:
        user_data = render(**values)
    except UserDataTooLarge:
        # Refused whole, so never executed. Only non-ASCII values (which the stack config
        # never lets through) get here: they make the script part base64, a third larger.
        assert not all(value.isascii() for value in values.values())
        return
    _, script = split_parts(user_data)
    # The real end marker is the last one: a value may contain the same text.
    header = script[: script.rindex(f"\n{END_OF_VALUES}\n")]
    path = tmp_path / "header.sh"
    path.write_text(header)
    marker = tmp_path / "executed"
    variables = " ".join(f'"${variable}"' for variable in VARIABLES.values())
    result = subprocess.run(
        ["/bin/bash", "-c", f'. "$1"; printf "%s\\0" {variables}', "_", str(path)],
        capture_output=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    got = result.stdout.decode("utf-8").split("\0")[:-1]
    assert got == [values[keyword] for keyword in VARIABLES]


def test_the_script_goes_dedented_but_heredoc_bodies_byte_for_byte():
    from cloud_init.render import _strip_comments
    source = "#!/bin/bash\nf() {\n  cat <<'EOF'\n  indented body\n\tand a tab\nEOF\n  echo done\n}\n"
    assert _strip_comments(source, dedent=True) == (
        "#!/bin/bash\nf() {\ncat <<'EOF'\n  indented body\n\tand a tab\nEOF\necho done\n}\n")
    # The files the desktop gets (Python) keep their indentation.
    assert "\n    " in shipped("idle_agent.py")
