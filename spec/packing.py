"""Bit packing of low-bit lanes into bytes and bus words: one lane order everywhere.

Lane order (the contract shared with the hardware's ``ArrayLayout(signed(bits), lanes)``):
    Codes are packed in order, lane 0 in the least significant bits. A byte holds
    ``8 // bits`` lanes: lane ``i`` of byte ``j`` is code ``j * (8 // bits) + i`` and occupies
    bits ``[i * bits, (i + 1) * bits)``. A bus word of ``word_bits`` bits is the little-endian
    concatenation of ``word_bits // 8`` consecutive bytes, so lane ``i`` of a word again sits at
    bits ``[i * bits, (i + 1) * bits)``. The tail is padded with zero bits.

Field encodings (``bits`` wide, two's complement): int8, int4, int2; ternary uses the int2
encoding with 0b10 illegal; binary stores +1 as bit 1 and -1 as bit 0.
"""

from __future__ import annotations

import numpy as np

from .formats import BINARY, NumberFormat

__all__ = ["pack", "pack_words", "packed_nbytes", "unpack", "unpack_words"]


def packed_nbytes(count: int, fmt: NumberFormat) -> int:
    """Bytes needed for ``count`` codes of ``fmt`` (the last byte zero-padded)."""
    return -(-count * fmt.bits // 8)


def pack(codes: np.ndarray, fmt: NumberFormat) -> np.ndarray:
    """Pack codes (any shape, flattened in C order) into a uint8 array of ``packed_nbytes``.

    Raises ValueError naming the first offending value if a code is not legal for ``fmt``.
    """
    flat = np.asarray(codes).reshape(-1)
    if not np.issubdtype(flat.dtype, np.integer):
        raise TypeError(f"pack expects integer codes, not {flat.dtype}")
    bad = ~fmt.valid(flat)
    if bad.any():
        index = int(np.argmax(bad))
        raise ValueError(
            f"code {int(flat[index])} at index {index} is not a legal {fmt.name} code "
            f"(expected {fmt.qmin}..{fmt.qmax}{'' if fmt.has_zero else ', no zero'})"
        )
    if fmt.bits == 8:
        return flat.astype(np.int8).view(np.uint8).copy()
    field = (
        (flat > 0).astype(np.uint8)
        if fmt == BINARY
        else flat.astype(np.uint8) & ((1 << fmt.bits) - 1)
    )
    lanes = 8 // fmt.bits
    padded = np.zeros(packed_nbytes(flat.size, fmt) * lanes, dtype=np.uint8)
    padded[: flat.size] = field
    shifts = np.arange(lanes, dtype=np.uint8) * fmt.bits
    return np.bitwise_or.reduce(padded.reshape(-1, lanes) << shifts, axis=1).astype(np.uint8)


def unpack(data: np.ndarray, fmt: NumberFormat, count: int) -> np.ndarray:
    """Unpack the first ``count`` codes of ``fmt`` from uint8 ``data``; returns int8 codes.

    Raises ValueError if ``data`` is shorter than ``packed_nbytes(count, fmt)`` or holds an
    illegal code (a ternary 0b10).
    """
    data = np.asarray(data, dtype=np.uint8).reshape(-1)
    need = packed_nbytes(count, fmt)
    if data.size < need:
        raise ValueError(f"{count} {fmt.name} codes need {need} bytes, only {data.size} given")
    if fmt.bits == 8:
        return data[:count].view(np.int8).copy()
    lanes = 8 // fmt.bits
    shifts = np.arange(lanes, dtype=np.uint8) * fmt.bits
    fields = ((data[:need, None] >> shifts) & ((1 << fmt.bits) - 1)).reshape(-1)[:count]
    if fmt == BINARY:
        return np.where(fields == 1, 1, -1).astype(np.int8)
    sign = 1 << (fmt.bits - 1)
    codes = (fields.astype(np.int16) ^ sign) - sign  # sign-extend the field
    codes = codes.astype(np.int8)
    bad = ~fmt.valid(codes)
    if bad.any():
        index = int(np.argmax(bad))
        raise ValueError(f"illegal {fmt.name} code {int(codes[index])} at index {index}")
    return codes


def pack_words(codes: np.ndarray, fmt: NumberFormat, word_bits: int = 64) -> np.ndarray:
    """Pack codes into little-endian bus words of ``word_bits`` (8, 16, 32 or 64).

    Returns an unsigned array (uint8/16/32/64) of ``ceil(bytes / (word_bits // 8))`` words.
    """
    dtype = _word_dtype(word_bits)
    data = pack(codes, fmt)
    word_bytes = word_bits // 8
    padded = np.zeros(-(-data.size // word_bytes) * word_bytes, dtype=np.uint8)
    padded[: data.size] = data
    return padded.view(dtype.newbyteorder("<")).astype(dtype)


def unpack_words(
    words: np.ndarray, fmt: NumberFormat, count: int, word_bits: int = 64
) -> np.ndarray:
    """Inverse of :func:`pack_words`: the first ``count`` codes of ``fmt`` from bus words."""
    dtype = _word_dtype(word_bits)
    data = np.asarray(words, dtype=dtype).astype(dtype.newbyteorder("<")).view(np.uint8)
    return unpack(data, fmt, count)


def _word_dtype(word_bits: int) -> np.dtype:
    dtypes = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}
    if word_bits not in dtypes:
        raise ValueError(f"word_bits must be one of {sorted(dtypes)}, not {word_bits!r}")
    return np.dtype(dtypes[word_bits])
