"""Bit packing: round trips for every format and the documented lane order."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttaccel.spec.formats import BINARY, FORMATS, INT2, INT4, INT8, TERNARY
from ttaccel.spec.packing import pack, pack_words, packed_nbytes, unpack, unpack_words


def legal_codes(name):
    fmt = FORMATS[name]
    values = [v for v in range(fmt.qmin, fmt.qmax + 1) if fmt.has_zero or v != 0]
    return st.lists(st.sampled_from(values), min_size=0, max_size=200)


@pytest.mark.parametrize("name", sorted(FORMATS))
@given(data=st.data())
def test_pack_round_trips(name, data):
    fmt = FORMATS[name]
    codes = np.array(data.draw(legal_codes(name)), dtype=np.int8)
    packed = pack(codes, fmt)
    assert packed.dtype == np.uint8 and packed.size == packed_nbytes(codes.size, fmt)
    assert np.array_equal(unpack(packed, fmt, codes.size), codes)


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("word_bits", [8, 16, 32, 64])
@given(data=st.data())
def test_words_round_trip(name, word_bits, data):
    fmt = FORMATS[name]
    codes = np.array(data.draw(legal_codes(name)), dtype=np.int8)
    words = pack_words(codes, fmt, word_bits)
    assert words.dtype.itemsize * 8 == word_bits
    assert np.array_equal(unpack_words(words, fmt, codes.size, word_bits), codes)


def test_lane_order_is_lane_zero_in_low_bits():
    # Hand-computed: lane 0 occupies the least significant bits of byte 0.
    assert pack(np.array([1, -2]), INT4).tolist() == [0xE1]
    assert pack(np.array([1, -1, -2, 0]), INT2).tolist() == [0b00_10_11_01]
    assert pack(np.array([1, -1, 0, 1]), TERNARY).tolist() == [0b01_00_11_01]
    assert pack(np.array([1, -1, -1, 1, 1, 1, 1, 1, -1]), BINARY).tolist() == [0b11111001, 0]
    assert pack(np.array([-1, 2]), INT8).tolist() == [0xFF, 0x02]
    # A 16-bit word is two bytes little-endian: lanes 0-3 of int4 in the low byte first.
    assert pack_words(np.array([1, 2, 3, 4]), INT4, 16).tolist() == [0x4321]


@pytest.mark.parametrize(
    ("fmt", "codes"), [(INT4, [8]), (INT2, [-3]), (TERNARY, [2]), (BINARY, [0]), (INT8, [200])]
)
def test_pack_rejects_illegal_codes(fmt, codes):
    with pytest.raises(ValueError, match=f"not a legal {fmt.name} code"):
        pack(np.array(codes, dtype=np.int16), fmt)


def test_unpack_rejects_short_data_and_illegal_ternary():
    with pytest.raises(ValueError, match="need 2 bytes"):
        unpack(np.zeros(1, np.uint8), INT4, 3)
    with pytest.raises(ValueError, match="illegal ternary code -2"):
        unpack(np.array([0b10], np.uint8), TERNARY, 1)


def test_bad_word_width():
    with pytest.raises(ValueError, match="word_bits"):
        pack_words(np.zeros(4, np.int8), INT8, 12)
