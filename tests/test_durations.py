"""One duration grammar for the laptop and the desktop (issue 19): 30m, 4h, 1h30m, 1d.

The desktop's agent holds it (cloud_init/idle_agent.py runs alone there); the laptop's
commands import it. The desktop's own keep-awake is tested in tests/test_idle_agent.py.
"""

from __future__ import annotations

import pytest

from cloud_init.idle_agent import duration_seconds
from desktop.commands import cli


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("4h", 14400), ("1h30m", 5400), ("1d", 86400),
                                           ("2d3h4m", 2 * 86400 + 3 * 3600 + 240), ("0m", 0), (" 90m ", 5400),
                                           ("30s", 30), ("1m30s", 90), ("1d1s", 86401)])
def test_the_grammar(text, seconds):
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["30", "30S", "1.5h", "-1h", "+1h", "1h30", "1m1h", "30s1m", "h", "", "1 h", "٤h", "1H"])
def test_what_it_refuses_names_the_value_and_the_form(text):
    with pytest.raises(ValueError) as refused:
        duration_seconds(text)
    assert str(refused.value) == (f"{text!r} is not a duration: expected whole days, hours, minutes and seconds in "
                                  "that order, e.g. 30m, 4h, 1h30m, 1d or 30s (no fractions, signs or bare numbers)")


def run(capsys, *argv):
    with pytest.raises(SystemExit) as ended:
        cli.main(list(argv))
    return ended.value.code, capsys.readouterr().err


@pytest.mark.parametrize("value", ["-1h", "0s", "4", "73h", "0m"])
def test_keep_awake_on_the_laptop_refuses_in_one_line_of_its_own(capsys, value):
    code, err = run(capsys, "keep-awake", value, "--instance-id", "i-0123456789abcdef0")
    assert code == 2
    assert err.startswith("error: keep-awake: argument DURATION|off: ") and err.count("\n") == 1, err
    assert repr(value) in err


@pytest.mark.parametrize("value, why", [("0m", "'0m' is too short a poll interval; expected at least 1s"),
                                        ("0s", "'0s' is too short a poll interval; expected at least 1s"),
                                        ("0", "'0' is not a duration"), ("15", "'15' is not a duration")])
def test_wait_poll_is_at_least_a_second(capsys, value, why):
    code, err = run(capsys, "wait", "--poll", value, "--instance-id", "i-0123456789abcdef0")
    assert code == 2 and f"argument --poll: {why}" in err


def test_the_laptop_reads_durations_with_the_agents_grammar():
    parser = cli.build_parser()
    args = parser.parse_args(["wait", "--timeout", "1d", "--poll", "2m", "--instance-id", "i-0123456789abcdef0"])
    assert (args.timeout, args.poll) == (86400, 120)
    assert parser.parse_args(["wait", "--instance-id", "i-0123456789abcdef0"]).poll == 15
    assert parser.parse_args(["wait", "--poll", "1s", "--instance-id", "i-0123456789abcdef0"]).poll == 1
    keep = parser.parse_args(["keep-awake", "1h30m", "--instance-id", "i-0123456789abcdef0"])
    assert keep.duration == 5400
