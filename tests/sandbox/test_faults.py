"""The fault spec syntax: what parses, what it means, and the message when it does not."""

from __future__ import annotations

import pytest

from sandbox.errors import FaultSyntaxError
from sandbox.faults import FaultPlan, parse_faults


def test_full_spec_parses() -> None:
    plan = parse_faults(
        "duplicate=3, out_of_order,drop , delay=0.25,fail,generate_503=2,generate_429=1,"
        "retry_after=0"
    )
    assert plan == FaultPlan(
        duplicate=3,
        out_of_order=True,
        drop=True,
        delay=0.25,
        fail=True,
        generate_503=2,
        generate_429=1,
        retry_after=0,
    )


@pytest.mark.parametrize("text", [None, "", "  ", "none", "NONE"])
def test_no_faults(text: str | None) -> None:
    assert parse_faults(text) == FaultPlan()


def test_bare_counts_and_hyphens() -> None:
    plan = parse_faults("duplicate,generate-503,Generate_429,out-of-order")
    assert (plan.duplicate, plan.generate_503, plan.generate_429, plan.out_of_order) == (
        2,
        1,
        1,
        True,
    )


def test_generate_faults_count_503_then_429() -> None:
    plan = parse_faults("generate_503=2,generate_429=1")
    assert [plan.generate_fault(n) for n in range(1, 6)] == [503, 503, 429, None, None]


@pytest.mark.parametrize(
    "text",
    [
        "duplicate=3,delay=0.5,fail",
        "out_of_order,drop,generate_503=4,generate_429=2,retry_after=7",
        "none",
    ],
)
def test_to_text_round_trips(text: str) -> None:
    plan = parse_faults(text)
    assert parse_faults(plan.to_text()) == plan


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("explode", "unknown fault 'explode'; known faults: duplicate"),
        ("drop=yes", "fault 'drop' takes no value"),
        ("duplicate=0", "fault 'duplicate' must be between 1 and 100, got 0"),
        ("duplicate=two", "fault 'duplicate' needs a whole number, got 'two'"),
        ("duplicate=²", "needs a whole number"),
        ("delay", "fault 'delay' needs a number of seconds"),
        ("delay=-1", "fault 'delay' must be between 0 and 300 seconds"),
        ("delay=nan", "must be between 0 and 300 seconds"),
        ("delay=soon", "needs a number of seconds, got 'soon'"),
        ("retry_after", "fault 'retry_after' needs a value"),
        ("generate_503=101", "must be between 0 and 100"),
        ("drop,drop", "fault 'drop' is given twice"),
        ("drop,,fail", "empty item"),
        ("drop,none", "'none' cannot be combined"),
        ("drop," * 400, "longer than 1024 characters"),
    ],
)
def test_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(FaultSyntaxError) as excinfo:
        parse_faults(text)
    assert message in str(excinfo.value)
