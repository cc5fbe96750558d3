"""The tests' IAM evaluator (tests/iam_evaluation.py) replays IAM's documented examples.

Each case cites the page of the IAM User Guide it comes from
(https://docs.aws.amazon.com/IAM/latest/UserGuide/<page>).
"""

from __future__ import annotations

import pytest

from iam_evaluation import ALLOW, EXPLICIT_DENY, IMPLICIT_DENY, Request, evaluate


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


# reference_policies_evaluation-logic.html: a request is implicitly denied unless an Allow
# matches; an explicit Deny in any policy overrides any Allow.
def test_default_deny_allow_and_explicit_deny_wins():
    allow = policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    deny = policy({"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*"})
    assert evaluate([], Request("s3:GetObject", "arn:aws:s3:::b/k")) == IMPLICIT_DENY
    assert evaluate([allow], Request("s3:GetObject", "arn:aws:s3:::b/k")) == ALLOW
    assert evaluate([allow, deny], Request("s3:DeleteObject", "arn:aws:s3:::amzn-s3-demo-bucket/k")) == EXPLICIT_DENY
    assert evaluate([allow, deny], Request("s3:DeleteObject", "arn:aws:s3:::other/k")) == ALLOW


# reference_policies_elements_action.html: action names are case-insensitive, and
# "iam:*AccessKey*" matches every action with AccessKey in its name.
def test_action_wildcards_and_case():
    p = policy({"Effect": "Allow", "Action": "iam:*AccessKey*", "Resource": "*"})
    for action in ("iam:CreateAccessKey", "iam:ListAccessKeys", "IAM:deleteaccesskey"):
        assert evaluate([p], Request(action, "arn:aws:iam::123456789012:user/x")) == ALLOW
    assert evaluate([p], Request("iam:CreateUser", "arn:aws:iam::123456789012:user/x")) == IMPLICIT_DENY


# reference_policies_elements_notaction.html: "Allow NotAction iam:* Resource *" allows
# everything outside IAM; with Deny, "Deny NotAction iam:*" denies everything but IAM.
def test_not_action():
    p = policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert evaluate([p], Request("s3:GetObject", "arn:aws:s3:::b/k")) == ALLOW
    assert evaluate([p], Request("iam:CreateUser", "*")) == IMPLICIT_DENY
    d = policy({"Effect": "Allow", "Action": "*", "Resource": "*"},
               {"Effect": "Deny", "NotAction": "iam:*", "Resource": "*"})
    assert evaluate([d], Request("iam:ListUsers", "*")) == ALLOW
    assert evaluate([d], Request("ec2:RunInstances", "*")) == EXPLICIT_DENY


# reference_policies_elements_notresource.html: "Deny s3:* NotResource [HRBucket/Payroll,
# HRBucket/Payroll/*]" with "Allow s3:*" leaves only the payroll objects.
def test_not_resource():
    p = policy(
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*",
         "NotResource": ["arn:aws:s3:::HRBucket/Payroll", "arn:aws:s3:::HRBucket/Payroll/*"]},
    )
    assert evaluate([p], Request("s3:GetObject", "arn:aws:s3:::HRBucket/Payroll/jan.csv")) == ALLOW
    assert evaluate([p], Request("s3:GetObject", "arn:aws:s3:::HRBucket/Other/x")) == EXPLICIT_DENY
    # Resources are case-sensitive.
    assert evaluate([p], Request("s3:GetObject", "arn:aws:s3:::hrbucket/Payroll/jan.csv")) == EXPLICIT_DENY


# reference_policies_variables.html: "arn:aws:s3:::amzn-s3-demo-bucket/${aws:username}/*";
# with no value for the variable the statement does not match.
def test_policy_variables():
    p = policy({"Effect": "Allow", "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/${aws:username}/*"})
    assert evaluate([p], Request("s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/David/a",
                                 {"aws:username": "David"})) == ALLOW
    assert evaluate([p], Request("s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/Ana/a",
                                 {"aws:username": "David"})) == IMPLICIT_DENY
    assert evaluate([p], Request("s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/David/a")) == IMPLICIT_DENY


# reference_policies_condition-logic-multiple-context-keys-or-values.html: operators and
# keys are ANDed, the values of one key ORed.
def test_condition_and_of_keys_or_of_values():
    p = policy({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*", "Condition": {
        "StringEquals": {"iam:PassedToService": ["sagemaker.amazonaws.com", "glue.amazonaws.com"]},
        "StringLike": {"aws:RequestedRegion": "eu-*"}}})
    ok = {"iam:PassedToService": "glue.amazonaws.com", "aws:RequestedRegion": "eu-west-1"}
    assert evaluate([p], Request("iam:PassRole", "r", ok)) == ALLOW
    assert evaluate([p], Request("iam:PassRole", "r", {**ok, "aws:RequestedRegion": "us-east-1"})) == IMPLICIT_DENY
    assert evaluate([p], Request("iam:PassRole", "r", {**ok, "iam:PassedToService": "ec2.amazonaws.com"})) == IMPLICIT_DENY


# reference_policies_elements_condition_operators.html: a key missing from the request
# fails StringEquals/StringLike/ArnLike, satisfies the negated operators, and satisfies
# any ...IfExists operator; Null "true" means the key is absent.
def test_missing_keys_negation_if_exists_and_null():
    def decide(condition, context):
        p = policy({"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "*", "Condition": condition})
        return evaluate([p], Request("ec2:RunInstances", "*", context))

    assert decide({"StringEquals": {"ec2:InstanceType": "t2.micro"}}, {}) == IMPLICIT_DENY
    assert decide({"StringNotEquals": {"ec2:InstanceType": "t2.micro"}}, {}) == ALLOW
    assert decide({"StringNotEquals": {"ec2:InstanceType": "t2.micro"}}, {"ec2:InstanceType": "t2.micro"}) == IMPLICIT_DENY
    assert decide({"StringEqualsIfExists": {"ec2:InstanceType": ["t1.*", "t2.micro"]}}, {}) == ALLOW
    assert decide({"StringEqualsIfExists": {"ec2:InstanceType": "t2.micro"}}, {"ec2:InstanceType": "p5.48xlarge"}) == IMPLICIT_DENY
    assert decide({"Null": {"aws:TokenIssueTime": "true"}}, {}) == ALLOW
    assert decide({"Null": {"aws:TokenIssueTime": "true"}}, {"aws:TokenIssueTime": "2026-01-01"}) == IMPLICIT_DENY
    assert decide({"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:*"}},
                  {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:topic"}) == ALLOW
    assert decide({"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:*"}},
                  {"aws:SourceArn": "arn:aws:sns:us-east-1:210987654321:topic"}) == IMPLICIT_DENY
    assert decide({"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:*"}}, {}) == IMPLICIT_DENY
    # Condition keys are case-insensitive, values (StringEquals) are not.
    assert decide({"StringEquals": {"EC2:instancetype": "t2.micro"}}, {"ec2:InstanceType": "t2.micro"}) == ALLOW
    assert decide({"StringEquals": {"ec2:InstanceType": "T2.micro"}}, {"ec2:InstanceType": "t2.micro"}) == IMPLICIT_DENY
    assert decide({"StringEqualsIgnoreCase": {"ec2:InstanceType": "T2.micro"}}, {"ec2:InstanceType": "t2.micro"}) == ALLOW


def test_an_operator_it_does_not_know_is_an_error_not_a_silent_answer():
    p = policy({"Effect": "Deny", "Action": "*", "Resource": "*",
                "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}}})
    with pytest.raises(NotImplementedError, match="DateGreaterThan"):
        evaluate([p], Request("s3:GetObject", "arn:aws:s3:::b/k"))
