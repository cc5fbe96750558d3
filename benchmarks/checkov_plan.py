"""checkov on what the program registers: a Terraform plan JSON rendering, then `checkov -f`.

checkov has no Pulumi scanner. pulumi-aws is the Terraform AWS provider bridged, so every
registered resource's inputs are the Terraform resource's arguments in camelCase: this
script renders the offline run of a stack (desktop.commands.offline, the mocks `plan` uses)
as Terraform's plan JSON (resource type from the type token, arguments in snake_case,
nested blocks as lists), and runs checkov's Terraform-plan checks on it.

    python benchmarks/checkov_plan.py [--stack dev] [--checkov PATH] [--keep FILE] [KEY=VALUE ...]

Prints the failed checks (each accepted one with its reason, ACCEPTED) and a summary line
"checkov: N passed, M failed, K of them accepted"; exits 1 when a check fails that is not
accepted. checkov pins
many packages: install it in a venv of its own (`python3 -m venv /tmp/ckv &&
/tmp/ckv/bin/pip install checkov`), as tests/run does for .venv-checkov.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Type tokens whose Terraform name is not aws_<module>_<resource>.
TERRAFORM_TYPES = {
    "aws:ec2/instance:Instance": "aws_instance",
    "aws:ec2/securityGroup:SecurityGroup": "aws_security_group",
    "aws:ec2/eip:Eip": "aws_eip",
    "aws:ec2/networkInterface:NetworkInterface": "aws_network_interface",
}
# Maps whose keys are data (tags), not arguments.
KEEP_KEYS = {"tags", "tagsAll", "targetTags", "tagsToAdd", "variableTags"}


def terraform_type(token: str) -> str | None:
    if token in TERRAFORM_TYPES:
        return TERRAFORM_TYPES[token]
    provider, _, rest = token.partition(":")
    if provider != "aws":
        return None  # random passwords and the component itself: no AWS resource
    module, _, resource = rest.partition(":")
    module = module.split("/")[0]
    return f"aws_{module}_{snake(resource)}"


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def arguments(value, key: str = ""):
    if isinstance(value, dict):
        if key in KEEP_KEYS:
            return dict(value)
        if set(value) == {"value", "secret"} or "4dabf18193072939515e22adb298388d" in value:
            return arguments(value.get("value"), key)  # a secret's wrapper
        return {snake(k): block(arguments(v, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [arguments(v, key) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def block(value):
    """Terraform's plan JSON writes a nested block as a list of objects."""
    return [value] if isinstance(value, dict) else value


def plan(rendering) -> dict:
    resources = []
    for reg in rendering.registrations:
        kind = terraform_type(reg.type)
        if kind is None:
            continue
        name = re.sub(r"[^A-Za-z0-9_]", "_", reg.name)
        values = {k: (v if k in KEEP_KEYS else block(arguments(v, k))) for k, v in reg.inputs.items()}
        values = {snake(k): v for k, v in values.items()}
        resources.append({"address": f"{kind}.{name}", "mode": "managed", "type": kind, "name": name,
                          "provider_name": "registry.terraform.io/hashicorp/aws", "schema_version": 0,
                          "values": values})
    return {
        "format_version": "1.2", "terraform_version": "1.9.8",
        "planned_values": {"root_module": {"resources": resources}},
        "resource_changes": [{"address": r["address"], "mode": "managed", "type": r["type"], "name": r["name"],
                              "provider_name": r["provider_name"],
                              "change": {"actions": ["create"], "before": None, "after": r["values"]}}
                             for r in resources],
        "configuration": {"root_module": {"resources": [
            {"address": r["address"], "mode": "managed", "type": r["type"], "name": r["name"],
             "provider_config_key": "aws", "expressions": {}, "schema_version": 0} for r in resources]}},
    }


def render(stack: str, overrides: dict[str, str]) -> dict:
    from desktop.commands import offline, stack_file

    read = stack_file.read_stack(stack, ROOT)
    raw = {**read.raw, **overrides}
    config = {**read.other, **{f"deep-learning-desktop:{k}": v for k, v in raw.items() if v not in (None, "")}}
    return plan(offline.run_program(config, stack=stack))


#: Checks that fail on purpose, each with the reason (docs/security.md). Everything else
#: failing makes the script exit 1; CKV_AWS_88 (a public IP) is accepted only with publicIp true.
ACCEPTED = {
    "CKV_AWS_337": "the DCV password parameter is encrypted with AWS's managed aws/ssm key; a customer "
                   "managed key costs $1 a month per desktop and adds a key policy to keep right",
    "CKV_AWS_184": "EFS is encrypted with AWS's managed aws/elasticfilesystem key (encrypted=true); a "
                   "customer managed key is the account's choice, not the desktop's",
    "CKV_AWS_190": "FSx for Lustre is encrypted at rest with AWS's managed key (always on); a customer "
                   "managed key is the account's choice, not the desktop's",
    "CKV_AWS_126": "detailed monitoring bills per metric (about $2 a month per desktop); the idle agent, "
                   "not CloudWatch, decides when the desktop stops",
    "CKV2_AWS_34": "the boot-files and sagemaker-config parameters hold public code and ids, no secret; "
                   "what guards them is who may ssm:PutParameter (docs/security.md)",
    "CKV2_AWS_5": "a rendering artefact: the mocks give ids, not references, so checkov sees no "
                  "attachment; tests/test_component.py checks the instance and the mount target use the groups",
}
PUBLIC_IP = "CKV_AWS_88"


def run_checkov(checkov: str, plan_json: dict, keep: str | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(keep) if keep else Path(tmp) / "tfplan.json"
        path.write_text(json.dumps(plan_json, indent=1, default=str))
        result = subprocess.run([checkov, "-f", str(path), "--framework", "terraform_plan", "-o", "json",
                                 "--compact", "--skip-download"],
                                capture_output=True, text=True, check=False)
    report = json.loads(result.stdout or "{}")
    if isinstance(report, list):
        report = report[0]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--checkov", default=str(ROOT / ".venv-checkov" / "bin" / "checkov"))
    parser.add_argument("--keep", help="write the plan JSON here")
    parser.add_argument("overrides", nargs="*", help="config KEY=VALUE")
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.overrides)
    report = run_checkov(args.checkov, render(args.stack, overrides), args.keep)
    results = report.get("results", {})
    failed = results.get("failed_checks", [])
    public = overrides.get("publicIp", stack_public_ip(args.stack)) != "false"
    unexpected = 0
    for check in failed:
        reason = ACCEPTED.get(check["check_id"]) or (
            "publicIp is true: the desktop is reached on its public IP" if public and check["check_id"] == PUBLIC_IP
            else None)
        unexpected += reason is None
        print(f"{'accepted' if reason else 'FAILED'} {check['check_id']} {check['resource']}: "
              f"{check['check_name']}{f' ({reason})' if reason else ''}")
    print(f"checkov: {len(results.get('passed_checks', []))} passed, {len(failed)} failed, "
          f"{len(failed) - unexpected} of them accepted")
    return 1 if unexpected or not results else 0


def stack_public_ip(stack: str) -> str:
    from desktop.commands import stack_file

    return str(stack_file.read_stack(stack, ROOT).raw.get("publicIp", "true")).lower()


if __name__ == "__main__":
    sys.exit(main())
