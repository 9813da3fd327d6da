"""Number formats, quantization and requantization against independent Python-int references."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttaccel.spec.formats import (
    BINARY,
    FORMATS,
    INT4,
    INT8,
    MAX_SHIFT,
    TERNARY,
    Requant,
    dequantize,
    format_by_name,
    power_of_two_scale,
    quantize,
    quantize_bias,
    quantize_multiplier,
    requantize,
)


def test_format_ranges_and_lookup():
    assert (INT8.qmin, INT8.qmax, INT4.qmin, INT4.qmax) == (-128, 127, -8, 7)
    assert (TERNARY.qmin, TERNARY.qmax, TERNARY.bits) == (-1, 1, 2)
    assert BINARY.valid(np.array([-1, 0, 1])).tolist() == [True, False, True]
    assert format_by_name("int2").qmin == -2
    with pytest.raises(ValueError, match="int3"):
        format_by_name("int3")


@given(
    st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=1, max_size=50),
    st.floats(1e-3, 10.0),
    st.sampled_from(sorted(FORMATS)),
)
def test_quantize_is_round_half_even_then_clip(values, scale, name):
    fmt = FORMATS[name]
    codes = quantize(np.array(values), scale, fmt)
    for v, q in zip(values, codes.tolist(), strict=True):
        if fmt == BINARY:
            assert q == (1 if v >= 0 else -1)
        else:
            assert q == min(max(round(v / scale), fmt.qmin), fmt.qmax)  # Python round: half even


def test_quantize_ties_go_to_even():
    assert quantize(np.array([0.5, 1.5, 2.5, -0.5, -2.5]), 1.0, INT8).tolist() == [0, 2, 2, 0, -2]


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_quantize_rejects_bad_scale(bad):
    with pytest.raises(ValueError, match="scale"):
        quantize(np.ones(3), bad, INT8)


def test_dequantize_and_bias():
    assert dequantize(np.array([-2, 3]), 0.5).tolist() == [-1.0, 1.5]
    assert quantize_bias(np.array([1.0, -1e12]), 0.25).tolist() == [4, -(2**31)]


@given(
    st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=40),
    st.integers(1, 2**16 - 1),
    st.integers(0, MAX_SHIFT),
    st.sampled_from(["int8", "int4", "int2", "ternary"]),
)
def test_requantize_matches_python_ints(accs, multiplier, shift, name):
    fmt = FORMATS[name]
    got = requantize(np.array(accs, dtype=np.int64), Requant(multiplier, shift, fmt))
    for acc, y in zip(accs, got.tolist(), strict=True):
        value = acc * multiplier
        if shift:
            value = (value + (1 << (shift - 1))) // (1 << shift)  # floor division: half up
        assert y == min(max(value, fmt.qmin), fmt.qmax)


def test_requantize_rounds_half_up_and_adds_bias():
    r = Requant(1, 1)  # divide by two
    assert requantize(np.array([1, 3, -1, -3]), r).tolist() == [1, 2, 0, -1]
    assert requantize(np.array([[0, 0]]), Requant(1, 0), bias=np.array([5, -300])).tolist() == [
        [5, -128]
    ]


def test_requantize_refuses_accumulator_overflow():
    with pytest.raises(OverflowError, match="int32"):
        requantize(np.array([2**31 - 1]), Requant(1, 0), bias=np.array([1]))


@pytest.mark.parametrize(
    ("multiplier", "shift"), [(0, 0), (2**16, 0), (1, -1), (1, MAX_SHIFT + 1), (1.5, 2)]
)
def test_requant_validates(multiplier, shift):
    with pytest.raises(ValueError, match=r"multiplier|shift"):
        Requant(multiplier, shift)


@given(st.floats(2**-32, 2**15))
def test_quantize_multiplier_keeps_16_significant_bits(ratio):
    multiplier, shift = quantize_multiplier(ratio)
    assert 1 <= multiplier < 2**16 and 0 <= shift <= MAX_SHIFT
    assert abs(multiplier / 2**shift - ratio) <= ratio * 2**-16


@given(st.floats(2**-47, 2**-32))
def test_tiny_ratios_are_rounded_at_the_largest_shift(ratio):
    multiplier, shift = quantize_multiplier(ratio)
    assert shift == MAX_SHIFT or multiplier == 1
    assert abs(multiplier / 2**shift - ratio) <= 2 ** -(MAX_SHIFT + 1)


@given(st.integers(-40, 15))
def test_power_of_two_ratio_is_a_pure_shift(k):
    multiplier, shift = quantize_multiplier(2.0**k)
    assert (multiplier, shift) == ((2**k, 0) if k >= 0 else (1, -k))


@given(st.lists(st.integers(-(2**24), 2**24), min_size=1, max_size=20), st.integers(1, 30))
def test_pure_shift_equals_normalised_multiplier(accs, k):
    """The power-of-two special case computes exactly what the general form computes."""
    acc = np.array(accs)
    assert np.array_equal(requantize(acc, Requant(1, k)), requantize(acc, Requant(2**15, k + 15)))


@pytest.mark.parametrize("bad", [0.0, -2.0, float("nan"), 2.0**16, 2.0**-60])
def test_quantize_multiplier_rejects(bad):
    with pytest.raises(ValueError, match="ratio"):
        quantize_multiplier(bad)


def test_power_of_two_scale():
    assert power_of_two_scale(0.3) == 0.25
    assert power_of_two_scale(3.0) == 4.0
