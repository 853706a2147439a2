"""The fraud rules engine: every rule at its edges, the cap, configuration, and properties."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from steadypay.fraud.domain import Check, Facts, Verdict
from steadypay.fraud.redis_velocity import from_ms, parse_facts, to_ms
from steadypay.fraud.rules import AmountBand, FraudRules, VelocityRule, evaluate, window_label
from steadypay.money import get_currency

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
OLD_ACCOUNT = NOW - timedelta(days=400)
TINY = timedelta(microseconds=1)
DEFAULT = FraudRules()


def make_check(
    amount_minor: int = 1_000,
    *,
    currency: str = "USD",
    sender: uuid.UUID | None = None,
    receiver: uuid.UUID | None = None,
    no_receiver_user: bool = False,
    created_at: datetime = OLD_ACCOUNT,
) -> Check:
    return Check(
        transfer_id=uuid.uuid4(),
        sender_user_id=sender or uuid.uuid4(),
        receiver_user_id=None if no_receiver_user else (receiver or uuid.uuid4()),
        from_wallet_id=uuid.uuid4(),
        to_wallet_id=uuid.uuid4(),
        amount_minor=amount_minor,
        currency=get_currency(currency),
        sender_created_at=created_at,
    )


def quiet_facts(**changes: object) -> Facts:
    """History in which no rule fires: a known receiver, nothing else."""
    base: dict[str, object] = {"at": NOW, "last_to_receiver_at": NOW - timedelta(days=1)}
    base.update(changes)
    return Facts(**base)  # type: ignore[arg-type]


def reasons(check: Check, facts: Facts, rules: FraudRules = DEFAULT) -> list[str]:
    return list(evaluate(check, facts, rules).reasons)


def test_a_quiet_payment_scores_zero() -> None:
    verdict = evaluate(make_check(), quiet_facts(), DEFAULT)
    assert verdict == Verdict(0, (), "rules-2026.11")


# --- amount bands ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount_minor", "currency", "expected"),
    [
        (1, "USD", []),
        (10_000, "USD", []),  # 100.00: the top of "low"
        (10_001, "USD", ["amount_band:medium"]),
        (100_000, "USD", ["amount_band:medium"]),  # 1,000.00
        (100_001, "USD", ["amount_band:high"]),
        (1_000_000, "USD", ["amount_band:high"]),  # 10,000.00
        (1_000_001, "USD", ["amount_band:very_high"]),
        (100, "JPY", []),  # major units of the check's currency: JPY has no minor digits
        (101, "JPY", ["amount_band:medium"]),
        (100_000, "KWD", []),  # 100.000 KWD
        (100_001, "KWD", ["amount_band:medium"]),
    ],
)
def test_amount_band_edges(amount_minor: int, currency: str, expected: list[str]) -> None:
    assert reasons(make_check(amount_minor, currency=currency), quiet_facts()) == expected


def test_amount_band_points() -> None:
    scores = [
        evaluate(make_check(minor), quiet_facts(), DEFAULT).risk_score
        for minor in (10_000, 10_001, 100_001, 1_000_001)
    ]
    assert scores == [0, 10, 30, 60]


# --- velocity ----------------------------------------------------------------------------


def test_velocity_count_counts_this_check_too() -> None:
    # default: more than 10 checks in a minute; the facts hold the earlier ones
    assert reasons(make_check(), quiet_facts(counts={60: 9})) == []
    assert reasons(make_check(), quiet_facts(counts={60: 10})) == ["velocity_count:1m"]
    assert evaluate(make_check(), quiet_facts(counts={60: 10}), DEFAULT).risk_score == 30


def test_velocity_sum_includes_this_amount() -> None:
    # default: more than 20,000.00 in an hour, in the check's currency
    check = make_check(5_000)
    assert reasons(check, quiet_facts(sums_minor={3600: 1_995_000})) == []
    assert reasons(check, quiet_facts(sums_minor={3600: 1_995_001})) == ["velocity_sum:1h"]


def test_velocity_sum_threshold_is_in_major_units_of_the_currency() -> None:
    check = make_check(1, currency="JPY")
    assert reasons(check, quiet_facts(sums_minor={3600: 19_999})) == []
    assert reasons(check, quiet_facts(sums_minor={3600: 20_000})) == ["velocity_sum:1h"]


def test_velocity_without_history_is_quiet() -> None:
    assert reasons(make_check(), quiet_facts(counts={}, sums_minor={})) == []


# --- new account, first receiver, back-and-forth -----------------------------------------


def test_new_account_edges() -> None:
    seven_days = NOW - timedelta(days=7)
    assert reasons(make_check(created_at=seven_days), quiet_facts()) == []
    assert reasons(make_check(created_at=seven_days + TINY), quiet_facts()) == ["new_account"]
    assert reasons(make_check(created_at=NOW), quiet_facts()) == ["new_account"]
    assert evaluate(make_check(created_at=NOW), quiet_facts(), DEFAULT).risk_score == 15


def test_first_payment_to_receiver_edges() -> None:
    memory = timedelta(days=90)
    assert reasons(make_check(), quiet_facts(last_to_receiver_at=None)) == [
        "first_payment_to_receiver"
    ]
    assert reasons(make_check(), quiet_facts(last_to_receiver_at=NOW - memory)) == []
    assert reasons(make_check(), quiet_facts(last_to_receiver_at=NOW - memory - TINY)) == [
        "first_payment_to_receiver"
    ]
    assert reasons(make_check(no_receiver_user=True), quiet_facts(last_to_receiver_at=None)) == [
        "first_payment_to_receiver"
    ]


def test_back_and_forth_edges() -> None:
    window = timedelta(minutes=30)
    assert reasons(make_check(), quiet_facts(last_from_receiver_at=NOW)) == ["back_and_forth"]
    assert reasons(make_check(), quiet_facts(last_from_receiver_at=NOW - window)) == [
        "back_and_forth"
    ]
    assert reasons(make_check(), quiet_facts(last_from_receiver_at=NOW - window - TINY)) == []
    assert reasons(make_check(), quiet_facts(last_from_receiver_at=None)) == []


def test_back_and_forth_needs_a_receiving_user_other_than_the_sender() -> None:
    recent = quiet_facts(last_from_receiver_at=NOW)
    assert reasons(make_check(no_receiver_user=True), recent) == []
    me = uuid.uuid4()
    assert reasons(make_check(sender=me, receiver=me), recent) == []


# --- the score ---------------------------------------------------------------------------


def test_everything_fires_and_the_score_is_capped() -> None:
    facts = Facts(
        at=NOW,
        counts={60: 50, 3600: 50},
        sums_minor={60: 10**9, 3600: 10**9},
        last_to_receiver_at=None,
        last_from_receiver_at=NOW - timedelta(minutes=1),
    )
    verdict = evaluate(make_check(10**8, created_at=NOW), facts, DEFAULT)
    assert verdict.risk_score == 100  # 60 + 30 + 40 + 15 + 10 + 25 = 180, capped
    assert verdict.reasons == (
        "amount_band:very_high",
        "velocity_count:1m",
        "velocity_sum:1h",
        "new_account",
        "first_payment_to_receiver",
        "back_and_forth",
    )


def test_the_score_is_the_sum_below_the_cap() -> None:
    check = make_check(100_001, created_at=NOW)  # high (30) + new account (15)
    verdict = evaluate(check, quiet_facts(last_to_receiver_at=None), DEFAULT)
    assert verdict.risk_score == 30 + 15 + 10


def test_evaluation_is_deterministic() -> None:
    check = make_check(123_456, created_at=NOW - timedelta(days=2))
    facts = quiet_facts(counts={60: 10}, last_from_receiver_at=NOW)
    assert evaluate(check, facts, DEFAULT) == evaluate(check, facts, DEFAULT)


# --- configuration -----------------------------------------------------------------------


def test_configuration_moves_thresholds_and_points() -> None:
    rules = FraudRules(
        version="rules-test",
        amount_bands=(
            AmountBand(name="small", up_to=5, points=0),
            AmountBand(name="big", up_to=None, points=7),
        ),
        velocity=(VelocityRule(kind="count", window_s=300, over=2, points=11),),
        new_account_days=30,
        new_account_points=3,
        first_receiver_points=0,  # switched off
        back_and_forth_minutes=5,
        back_and_forth_points=4,
    )
    check = make_check(501, created_at=NOW - timedelta(days=20))
    facts = Facts(
        at=NOW,
        counts={300: 2},
        last_to_receiver_at=None,
        last_from_receiver_at=NOW - timedelta(minutes=5),
    )
    verdict = evaluate(check, facts, rules)
    assert verdict == Verdict(
        7 + 11 + 3 + 4,
        ("amount_band:big", "velocity_count:5m", "new_account", "back_and_forth"),
        "rules-test",
    )
    assert reasons(make_check(500), Facts(at=NOW, counts={300: 1}), rules) == []
    # the same check under the defaults: 5.01 is "low" (0 points), 20 days is not new
    assert reasons(check, facts, DEFAULT) == ["first_payment_to_receiver", "back_and_forth"]


def test_rules_load_from_json_like_the_environment() -> None:
    rules = FraudRules.model_validate_json(
        '{"velocity": [{"kind": "sum", "window_s": 86400, "over": 5000, "points": 20}],'
        ' "new_account_days": 1}'
    )
    assert rules.windows_s == (86_400,)
    assert rules.velocity[0].reason == "velocity_sum:1d"
    assert rules.amount_bands == DEFAULT.amount_bands


def test_default_windows() -> None:
    assert DEFAULT.windows_s == (60, 3_600)
    assert DEFAULT.max_window_s == 3_600


@pytest.mark.parametrize(
    ("seconds", "label"), [(30, "30s"), (60, "1m"), (90, "90s"), (7200, "2h"), (86400, "1d")]
)
def test_window_labels(seconds: int, label: str) -> None:
    assert window_label(seconds) == label


OPEN = {"name": "z", "up_to": None, "points": 50}


@pytest.mark.parametrize(
    ("bands", "problem"),
    [
        ([], "must end with an open band"),
        ([{"name": "a", "up_to": 10, "points": 0}], "must end with an open band"),
        ([{"name": "a", "up_to": None, "points": 0}, OPEN], "only the last amount band"),
        (
            [
                {"name": "a", "up_to": 10, "points": 0},
                {"name": "b", "up_to": 10, "points": 1},
                OPEN,
            ],
            "strictly increasing",
        ),
        ([{"name": "a", "up_to": 10, "points": 60}, OPEN], "must not decrease"),
        ([{"name": "z", "up_to": 10, "points": 0}, OPEN], "names must be unique"),
    ],
)
def test_inconsistent_bands_are_refused(bands: list[dict[str, object]], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        FraudRules.model_validate({"amount_bands": bands})


def test_invalid_rules_are_refused() -> None:
    twice = [{"kind": "count", "window_s": 60, "over": 1, "points": 1}] * 2
    with pytest.raises(ValidationError, match="differ in kind or window"):
        FraudRules.model_validate({"velocity": twice})
    with pytest.raises(ValidationError):
        FraudRules.model_validate({"new_account_points": 101})
    with pytest.raises(ValidationError):
        FraudRules.model_validate(
            {"velocity": [{"kind": "count", "window_s": 0, "over": 1, "points": 1}]}
        )
    with pytest.raises(ValidationError):
        FraudRules.model_validate({"surprise": 1})


# --- domain details the stores rely on ---------------------------------------------------


def test_fingerprint_covers_every_field() -> None:
    check = make_check()
    assert replace(check).fingerprint() == check.fingerprint()
    same_instant = check.sender_created_at.astimezone(timezone(timedelta(hours=5)))
    assert replace(check, sender_created_at=same_instant).fingerprint() == check.fingerprint()
    for name, value in [
        ("transfer_id", uuid.uuid4()),
        ("sender_user_id", uuid.uuid4()),
        ("receiver_user_id", None),
        ("from_wallet_id", uuid.uuid4()),
        ("to_wallet_id", uuid.uuid4()),
        ("amount_minor", check.amount_minor + 1),
        ("currency", get_currency("EUR")),
        ("sender_created_at", check.sender_created_at + TINY),
    ]:
        assert replace(check, **{name: value}).fingerprint() != check.fingerprint(), name


def test_checks_refuse_impossible_values() -> None:
    with pytest.raises(ValueError, match="positive"):
        make_check(0)
    with pytest.raises(ValueError, match="time zone"):
        make_check(created_at=datetime(2026, 1, 1))


def test_verdict_round_trips_and_refuses_out_of_range_scores() -> None:
    verdict = Verdict(42, ("new_account", "back_and_forth"), "rules-x")
    assert Verdict.loads(verdict.dumps()) == verdict
    with pytest.raises(ValueError, match=r"0\.\.100"):
        Verdict(101, (), "v")


def test_redis_facts_are_exact_beyond_float_precision() -> None:
    at = to_ms(NOW)
    text = f"{at},{at - 5},-,60000:3:12345678:987654321,3600000:4:9999999999:999999999"
    facts = parse_facts(text)
    assert facts.at == NOW
    assert facts.last_to_receiver_at == from_ms(at - 5)
    assert facts.last_from_receiver_at is None
    assert facts.counts == {60: 3, 3600: 4}
    assert facts.sums_minor == {60: 12_345_678_987_654_321, 3600: 9_999_999_999_999_999_999}


# --- properties --------------------------------------------------------------------------


@st.composite
def rule_sets(draw: st.DrawFn) -> FraudRules:
    n = draw(st.integers(1, 5))
    bounds = sorted(draw(st.sets(st.integers(0, 10**7), min_size=n - 1, max_size=n - 1)))
    points = sorted(draw(st.lists(st.integers(0, 100), min_size=n, max_size=n)))
    bands = tuple(
        AmountBand(name=f"b{i}", up_to=bounds[i] if i < n - 1 else None, points=points[i])
        for i in range(n)
    )
    velocity = draw(
        st.lists(
            st.builds(
                VelocityRule,
                kind=st.sampled_from(["count", "sum"]),
                window_s=st.integers(1, 86_400),
                over=st.integers(0, 10**6),
                points=st.integers(0, 100),
            ),
            max_size=4,
            unique_by=lambda rule: rule.reason,
        )
    )
    return FraudRules(
        amount_bands=bands,
        velocity=tuple(velocity),
        new_account_days=draw(st.integers(0, 60)),
        new_account_points=draw(st.integers(0, 100)),
        first_receiver_points=draw(st.integers(0, 100)),
        back_and_forth_minutes=draw(st.integers(1, 600)),
        back_and_forth_points=draw(st.integers(0, 100)),
    )


optional_offsets = st.none() | st.integers(-(10**7), 10**8).map(lambda s: timedelta(seconds=s))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[FraudRules, Check, Facts]:
    rules = draw(rule_sets())
    windows = rules.windows_s
    counts = {w: draw(st.integers(0, 10**4)) for w in windows}
    sums = {w: draw(st.integers(0, 10**16)) for w in windows}
    last_to, last_from = draw(optional_offsets), draw(optional_offsets)
    facts = Facts(
        at=NOW,
        counts=counts,
        sums_minor=sums,
        last_to_receiver_at=None if last_to is None else NOW - last_to,
        last_from_receiver_at=None if last_from is None else NOW - last_from,
    )
    age = timedelta(seconds=draw(st.integers(-(10**6), 10**9)))
    check = make_check(
        draw(st.integers(1, 10**15)),
        currency=draw(st.sampled_from(["USD", "JPY", "KWD"])),
        no_receiver_user=draw(st.booleans()),
        created_at=NOW - age,
    )
    return rules, check, facts


@given(scenarios())
def test_score_is_always_within_0_and_100(scenario: tuple[FraudRules, Check, Facts]) -> None:
    rules, check, facts = scenario
    verdict = evaluate(check, facts, rules)
    assert 0 <= verdict.risk_score <= 100
    assert len(set(verdict.reasons)) == len(verdict.reasons)
    assert (verdict.risk_score == 0) == (not verdict.reasons)
    assert verdict.model_version == rules.version


@given(scenarios(), st.integers(1, 10**15), st.integers(1, 10**15))
def test_score_is_monotone_in_the_amount(
    scenario: tuple[FraudRules, Check, Facts], a: int, b: int
) -> None:
    rules, check, facts = scenario
    low, high = sorted((a, b))
    low_score = evaluate(replace(check, amount_minor=low), facts, rules).risk_score
    high_score = evaluate(replace(check, amount_minor=high), facts, rules).risk_score
    assert low_score <= high_score


@given(st.integers(1, 10**15))
def test_default_rules_are_monotone_in_the_amount(amount: int) -> None:
    facts = quiet_facts(counts={60: 3}, sums_minor={3600: 1_000_000})
    check = make_check(amount)
    bigger = replace(check, amount_minor=amount + 1)
    assert evaluate(check, facts, DEFAULT).risk_score <= evaluate(bigger, facts, DEFAULT).risk_score
