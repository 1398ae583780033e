"""Exact decimals: parsing, writing back, rescaling, and sums at the real extremes."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from candlevault.domain.decimals import (
    Precision,
    decimals_in,
    format_units,
    parse_units,
    rescale,
    to_decimal,
)
from candlevault.domain.errors import BadValue

BIG = Context(prec=120)  # the test oracle must not round where our ints do not
scales = st.integers(0, 18)
# up to 1e30 units: a month of a meme coin's quote volume at 8 decimals is ~1e22
units = st.integers(-(10**30), 10**30)


@given(units, scales, st.booleans())
def test_writing_then_parsing_gives_the_same_units(value: int, scale: int, fixed: bool) -> None:
    assert parse_units(format_units(value, scale, fixed), scale) == value


@given(units, scales)
def test_fixed_text_is_what_decimal_writes(value: int, scale: int) -> None:
    text = format_units(value, scale, fixed=True)
    assert text == f"{Decimal(value).scaleb(-scale, context=BIG):.{scale}f}"
    assert decimals_in(text) == scale


@given(units, scales)
def test_stripped_text_has_no_trailing_zero(value: int, scale: int) -> None:
    text = format_units(value, scale, fixed=False)
    assert Decimal(text) == Decimal(value).scaleb(-scale, context=BIG)
    if "." in text:
        assert not text.endswith("0")
        assert not text.endswith(".")


@given(st.decimals(allow_nan=False, allow_infinity=False, places=8), st.integers(8, 20))
def test_parsing_agrees_with_decimal(value: Decimal, scale: int) -> None:
    text = f"{value:f}"
    assert parse_units(text, scale) == int(value.scaleb(scale, context=BIG))
    assert to_decimal(parse_units(text, scale), scale) == value


@pytest.mark.parametrize(
    ("text", "scale", "expected"),
    [
        ("0.01000000", 8, 1_000_000),
        ("78153.00", 2, 7_815_300),
        ("25000", 2, 2_500_000),  # Bybit writes whole numbers bare
        ("0", 8, 0),
        ("1.500000000", 8, 150_000_000),  # extra zeros are fine
        ("-3.5", 1, -35),
    ],
)
def test_exchange_strings(text: str, scale: int, expected: int) -> None:
    assert parse_units(text, scale) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "-",
        ".",
        "1.",
        ".5",
        "+1",
        "1e5",
        "1E-8",
        "nan",
        "inf",
        " 1",
        "1 ",
        "1_000",
        "１",
        "1.2.3",
        "0x10",
        "--1",
        "1,5",
    ],
)
def test_malformed_strings_are_refused_naming_the_value(bad: str) -> None:
    with pytest.raises(BadValue) as caught:
        parse_units(bad, 8)
    assert repr(bad) in str(caught.value)


@pytest.mark.parametrize("bad", [1.0, 1, None, b"1"])
def test_non_strings_are_refused(bad: object) -> None:
    with pytest.raises(BadValue, match="never a float"):
        parse_units(bad, 8)  # type: ignore[arg-type]


def test_more_significant_decimals_than_the_scale_are_refused() -> None:
    with pytest.raises(BadValue, match="more than 2 decimals"):
        parse_units("1.005", 2)


@given(units, st.integers(0, 12), st.integers(0, 12))
def test_rescale_rounds_half_to_even_like_decimal(value: int, src: int, dst: int) -> None:
    exact = Decimal(value).scaleb(-src, context=BIG)
    expected = exact.quantize(Decimal(1).scaleb(-dst), rounding=ROUND_HALF_EVEN, context=BIG)
    assert rescale(value, src, dst) == int(expected.scaleb(dst, context=BIG))


@given(st.lists(st.integers(10**19, 10**22), min_size=1, max_size=50_000))
def test_sums_past_int64_and_28_digits_stay_exact(values: list[int]) -> None:
    """A month of BTCUSDT quote volume at 8 decimals is 1e19..1e22 units per row."""
    total = sum(values)
    with localcontext(BIG):
        assert Decimal(total) == sum((Decimal(v) for v in values), Decimal(0))
    text = format_units(total, 8)
    assert parse_units(text, 8) == total


def test_precision_refuses_absurd_scales() -> None:
    with pytest.raises(BadValue, match="price precision"):
        Precision(-1, 8, 8)
    with pytest.raises(BadValue, match="quote precision"):
        Precision(8, 8, 31)
