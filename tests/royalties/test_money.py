"""Money is integer minor units; every split adds up to the minor unit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from royalties.money import Money, allocate, exponent


def test_a_float_anywhere_in_a_money_path_raises():
    with pytest.raises(TypeError):
        Money(9.99, "USD")
    with pytest.raises(TypeError):
        Money(999, "USD") * 1.5
    with pytest.raises(TypeError):
        allocate(Money(100, "USD"), {"a": 0.5, "b": 0.5})
    with pytest.raises(TypeError):
        Money(True, "USD")


def test_money_is_frozen_and_refuses_mixed_currencies():
    m = Money(500, "usd")
    assert m.currency == "USD"
    with pytest.raises(AttributeError):
        m.amount_minor = 1  # type: ignore[misc]
    with pytest.raises(ValueError):
        m + Money(500, "EUR")
    assert m + Money(250, "USD") == Money(750, "USD")
    with pytest.raises(ValueError):
        Money(1, "dollars")


def test_currencies_with_zero_two_and_three_decimals():
    assert (exponent("JPY"), exponent("USD"), exponent("KWD")) == (0, 2, 3)
    assert Money(1200, "JPY").format() == "1,200 JPY"
    assert Money(123456, "USD").format() == "1,234.56 USD"
    assert Money(1234, "KWD").format() == "1.234 KWD"
    assert Money(-5, "EUR").format() == "-0.05 EUR"
    assert Money.parse("12.5", "USD") == Money(1250, "USD")
    assert Money.parse("3", "JPY") == Money(3, "JPY")
    assert Money.parse("0.125", "BHD") == Money(125, "BHD")
    with pytest.raises(ValueError):
        Money.parse("1.005", "USD")
    with pytest.raises(ValueError):
        Money.parse("1.5", "JPY")


def test_a_dollar_split_three_ways_adds_up_with_a_deterministic_tie_break():
    parts = allocate(Money(100, "USD"), {"b": 1, "a": 1, "c": 1})
    # 33 each, one cent left: the three remainders tie, the smallest key wins it.
    assert parts == {"a": Money(34, "USD"), "b": Money(33, "USD"), "c": Money(33, "USD")}
    assert allocate(Money(-100, "USD"), {"a": 1, "b": 1, "c": 1})["a"] == Money(-34, "USD")


def test_largest_remainder_goes_first():
    parts = allocate(Money(10, "EUR"), {"x": 1, "y": 2})  # 3.33 and 6.67
    assert parts == {"x": Money(3, "EUR"), "y": Money(7, "EUR")}


def test_allocate_refuses_nonsense_weights():
    with pytest.raises(ValueError):
        allocate(Money(10, "USD"), {})
    with pytest.raises(ValueError):
        allocate(Money(10, "USD"), {"a": 0})
    with pytest.raises(ValueError):
        allocate(Money(10, "USD"), {"a": -1, "b": 3})


def test_basis_point_shares_round_down():
    assert Money(999, "USD").share_bps(1500) == Money(149, "USD")
    assert Money(-999, "USD").share_bps(1500) == Money(-149, "USD")


@given(
    total=st.integers(min_value=-(10**12), max_value=10**12),
    weights=st.dictionaries(
        st.integers(min_value=0, max_value=10**6), st.integers(0, 10**6), min_size=1
    ).filter(lambda w: sum(w.values()) > 0),
    currency=st.sampled_from(["JPY", "USD", "KWD"]),
)
def test_every_split_adds_up_and_no_part_strays_a_unit_from_its_exact_share(
    total, weights, currency
):
    parts = allocate(Money(total, currency), weights)
    assert sum(p.amount_minor for p in parts.values()) == total
    denom = sum(weights.values())
    for k, w in weights.items():
        exact_num = total * w  # exact share is exact_num / denom
        assert abs(parts[k].amount_minor * denom - exact_num) < denom
    assert parts == allocate(Money(total, currency), dict(reversed(list(weights.items()))))
