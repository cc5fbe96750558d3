"""A small IAM policy evaluator for identity-based policies, for the tests of the desktop role.

Why our own: the maintained tools checked do not evaluate a request against policies with
conditions. policy-sentry writes policies; policyuniverse expands and minimizes actions;
parliament lints; iam-ape aggregates an account's effective actions without evaluating a
request; principalmapper (pmapper) has a local simulator but its last release is from
January 2022 and it targets whole-account graphs. IAM's own simulator needs an account.

What it implements, from IAM's documentation (the tests in tests/test_iam_evaluation.py
replay the documented examples):

- evaluation: an explicit Deny in any statement wins, else an Allow, else the implicit
  (default) deny (reference_policies_evaluation-logic.html, identity-based policies only:
  no SCP, permissions boundary, session or resource policy here);
- Action / NotAction, matched case-insensitively with ``*`` and ``?``;
- Resource / NotResource, matched case-sensitively with ``*`` and ``?``, policy variables
  ``${key}`` replaced from the request context (a statement whose variable has no value
  does not match: reference_policies_variables.html);
- Condition: every operator and every key must hold (AND), any value of a key may match
  (OR); a key missing from the request fails the positive operators and satisfies the
  negated ones (``StringNotEquals``, ``ArnNotLike``, ...); ``...IfExists`` holds when the
  key is missing; ``Null``. Any other operator raises, so a policy we cannot evaluate
  never passes silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

ALLOW = "Allow"
EXPLICIT_DENY = "ExplicitDeny"
IMPLICIT_DENY = "ImplicitDeny"

_VARIABLE = re.compile(r"\$\{([^}]+)\}")


@dataclass(frozen=True)
class Request:
    """One API call: the action (``service:Name``), the resource ARN, the request context."""

    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, text: str, ignore_case: bool = False) -> bool:
    """IAM's wildcard match: ``*`` any run of characters (also none), ``?`` one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def _substitute(pattern: str, context: Mapping[str, Any]) -> str | None:
    """The pattern with its policy variables replaced; None when one has no value."""
    missing = False

    def value(match: re.Match) -> str:
        nonlocal missing
        key = match.group(1)
        if key in ("*", "?", "$"):
            return key
        found = _lookup(context, key)
        if found is None or isinstance(found, list):
            missing = True
            return ""
        return str(found)

    result = _VARIABLE.sub(value, pattern)
    return None if missing else result


def _lookup(context: Mapping[str, Any], key: str) -> Any:
    # Condition keys are case-insensitive.
    for name, value in context.items():
        if name.lower() == key.lower():
            return value
    return None


def _arn_like(pattern: str, arn: str) -> bool:
    """ArnLike: the six colon-separated fields, each matched with wildcards."""
    want = pattern.split(":", 5)
    got = arn.split(":", 5)
    if len(want) != 6 or len(got) != 6:
        return False
    return all(_glob(w, g) for w, g in zip(want, got))


_POSITIVE = {
    "StringEquals": lambda want, got: want == got,
    "StringEqualsIgnoreCase": lambda want, got: want.lower() == got.lower(),
    "StringLike": lambda want, got: _glob(want, got),
    "ArnEquals": lambda want, got: want == got,
    "ArnLike": _arn_like,
    "Bool": lambda want, got: str(want).lower() == str(got).lower(),
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def _condition_holds(operator: str, key: str, wanted: Any, context: Mapping[str, Any]) -> bool:
    present = _lookup(context, key)
    if operator == "Null":
        # "true": the key must be absent; "false": present.
        return any((present is None) == (str(w).lower() == "true") for w in _as_list(wanted))
    if_exists = operator.endswith("IfExists")
    base = operator[: -len("IfExists")] if if_exists else operator
    if base not in _POSITIVE and base not in _NEGATED:
        raise NotImplementedError(f"condition operator {operator!r} is not implemented by tests/iam_evaluation.py")
    if present is None:
        return if_exists or base in _NEGATED
    got_values = [str(v) for v in _as_list(present)]
    wants = []
    for w in _as_list(wanted):
        substituted = _substitute(str(w), context)
        if substituted is not None:
            wants.append(substituted)
    if base in _NEGATED:
        match = _POSITIVE[_NEGATED[base]]
        return not any(match(w, g) for w in wants for g in got_values)
    return any(_POSITIVE[base](w, g) for w in wants for g in got_values)


def _matches(statement: Mapping[str, Any], request: Request) -> bool:
    if "Action" in statement:
        if not any(_glob(a, request.action, ignore_case=True) for a in _as_list(statement["Action"])):
            return False
    elif any(_glob(a, request.action, ignore_case=True) for a in _as_list(statement["NotAction"])):
        return False
    resources_key = "Resource" if "Resource" in statement else "NotResource"
    patterns = [_substitute(p, request.context) for p in _as_list(statement[resources_key])]
    hit = any(p is not None and _glob(p, request.resource) for p in patterns)
    if hit != (resources_key == "Resource"):
        return False
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, wanted in keys.items():
            if not _condition_holds(operator, key, wanted, request.context):
                return False
    return True


def statements(policies: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [s for policy in policies for s in _as_list(policy["Statement"])]


def evaluate(policies: Iterable[Mapping[str, Any]], request: Request) -> str:
    """:data:`ALLOW`, :data:`EXPLICIT_DENY` or :data:`IMPLICIT_DENY` for ``request``."""
    matched = [s for s in statements(policies) if _matches(s, request)]
    if any(s["Effect"] == "Deny" for s in matched):
        return EXPLICIT_DENY
    if any(s["Effect"] == "Allow" for s in matched):
        return ALLOW
    return IMPLICIT_DENY


def allowed(policies: Iterable[Mapping[str, Any]], action: str, resource: str, **context: Any) -> bool:
    """Whether ``action`` on ``resource`` is allowed; context keys as keyword arguments with
    ``_`` for ``:`` (``iam_PassedToService=...``), or a ``context`` dict."""
    ctx = dict(context.pop("context", {}) or {})
    ctx.update({k.replace("_", ":", 1): v for k, v in context.items()})
    return evaluate(list(policies), Request(action, resource, ctx)) == ALLOW
