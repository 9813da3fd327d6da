"""Integer number formats, quantization and requantization: the arithmetic contract.

Everything the hardware computes is defined here in NumPy integer arithmetic, so the
PyTorch export, the golden models, the RTL simulation and the host driver agree bit for bit.

Formats
    ``int8`` [-128, 127], ``int4`` [-8, 7], ``int2`` [-2, 1]: two's complement.
    ``ternary`` {-1, 0, 1}: stored in 2 bits (two's complement; the code 0b10 is invalid).
    ``binary`` {-1, +1}: stored in 1 bit (bit 1 means +1, bit 0 means -1); no zero.

Quantization (float -> codes)
    ``q = clip(rint(x / scale), qmin, qmax)`` with ``rint`` rounding half to even (as
    ``numpy.rint`` and ``torch.round`` do). Binary is ``q = +1 if x >= 0 else -1``. The scale is
    a positive finite float; symmetric, no zero point.

Requantization (int32 accumulator -> n-bit codes)
    ``y = saturate(((acc + bias) * multiplier + round_bit) >> shift)`` where
    ``round_bit = 1 << (shift - 1)`` if ``shift > 0`` else 0, ``>>`` is an arithmetic (floor)
    shift, so the rounding is half up (towards +inf), and ``saturate`` clips to the output
    format's [qmin, qmax]. ``acc + bias`` must fit in int32 (the accumulator width the hardware
    guarantees by construction); ``multiplier`` is unsigned in [1, 2**16 - 1] and ``shift`` in
    [0, 47], so the product fits in 48 bits (one DSP48E1 cascade).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ACC_BITS",
    "BINARY",
    "FORMATS",
    "INT2",
    "INT4",
    "INT8",
    "MAX_SHIFT",
    "MULTIPLIER_BITS",
    "TERNARY",
    "NumberFormat",
    "Requant",
    "dequantize",
    "format_by_name",
    "power_of_two_scale",
    "quantize",
    "quantize_bias",
    "quantize_multiplier",
    "requantize",
]

ACC_BITS = 32
"""Width of every accumulator and of ``acc + bias`` at the requantizer input."""
MULTIPLIER_BITS = 16
"""Requantization multipliers are unsigned integers below ``2**MULTIPLIER_BITS``."""
MAX_SHIFT = 47
"""Largest right shift: ``ACC_BITS + MULTIPLIER_BITS - 1``."""

_INT32_MIN, _INT32_MAX = -(2 ** (ACC_BITS - 1)), 2 ** (ACC_BITS - 1) - 1


@dataclass(frozen=True)
class NumberFormat:
    """A signed integer code format.

    ``bits`` is the storage width of one lane in packed data; ``qmin``/``qmax`` the legal codes.
    """

    name: str
    bits: int
    qmin: int
    qmax: int

    @property
    def has_zero(self) -> bool:
        """False only for binary, whose codes are {-1, +1}."""
        return self.name != "binary"

    @property
    def qpos(self) -> int:
        """Largest positive code, the ``Qp`` that initial scales divide by (``max|x| / Qp``)."""
        return self.qmax

    def valid(self, codes: np.ndarray) -> np.ndarray:
        """Boolean mask of the entries of ``codes`` that are legal codes of this format."""
        codes = np.asarray(codes)
        ok = (codes >= self.qmin) & (codes <= self.qmax)
        if not self.has_zero:
            ok &= codes != 0
        return ok

    def __str__(self) -> str:
        return self.name


INT8 = NumberFormat("int8", 8, -128, 127)
INT4 = NumberFormat("int4", 4, -8, 7)
INT2 = NumberFormat("int2", 2, -2, 1)
TERNARY = NumberFormat("ternary", 2, -1, 1)
BINARY = NumberFormat("binary", 1, -1, 1)
FORMATS: dict[str, NumberFormat] = {f.name: f for f in (INT8, INT4, INT2, TERNARY, BINARY)}


def format_by_name(name: str) -> NumberFormat:
    """Look up a format by name (``int8``, ``int4``, ``int2``, ``ternary``, ``binary``)."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(
            f"Unknown number format {name!r}; expected one of {sorted(FORMATS)}"
        ) from None


def _check_scale(scale: float | np.ndarray, what: str = "scale") -> np.ndarray:
    scale = np.asarray(scale, dtype=np.float64)
    if not np.all(np.isfinite(scale)) or not np.all(scale > 0):
        raise ValueError(f"{what} must be positive and finite, not {scale!r}")
    return scale


def quantize(x: np.ndarray, scale: float | np.ndarray, fmt: NumberFormat) -> np.ndarray:
    """Quantize floats to codes of ``fmt``: ``clip(rint(x / scale), qmin, qmax)``.

    ``scale`` is a positive scalar or broadcasts against ``x`` (per-channel scales). Rounding is
    half to even; values beyond the range saturate. Binary ignores the scale's size and returns
    the sign (0 maps to +1). Returns int8 codes of the same shape as ``x``.
    """
    scale = _check_scale(scale)
    x = np.asarray(x, dtype=np.float64)
    if fmt == BINARY:
        return np.where(x >= 0, 1, -1).astype(np.int8)
    return np.clip(np.rint(x / scale), fmt.qmin, fmt.qmax).astype(np.int8)


def dequantize(codes: np.ndarray, scale: float | np.ndarray) -> np.ndarray:
    """Codes back to float32: ``codes * scale``."""
    return (np.asarray(codes, dtype=np.float64) * _check_scale(scale)).astype(np.float32)


def quantize_bias(bias: np.ndarray, acc_scale: float) -> np.ndarray:
    """Quantize a float bias to int32 at the accumulator's scale (``input_scale * weight_scale``).

    ``rint(bias / acc_scale)`` saturated to the int32 range.
    """
    acc_scale = float(_check_scale(acc_scale, "accumulator scale"))
    q = np.rint(np.asarray(bias, dtype=np.float64) / acc_scale)
    return np.clip(q, _INT32_MIN, _INT32_MAX).astype(np.int32)


@dataclass(frozen=True)
class Requant:
    """Integer requantization constants: ``y = sat(((acc + bias) * multiplier + rnd) >> shift)``.

    ``multiplier / 2**shift`` approximates the real ratio ``acc_scale / out_scale``.
    """

    multiplier: int
    shift: int
    out_format: NumberFormat = INT8

    def __post_init__(self) -> None:
        if not isinstance(self.multiplier, int) or not 1 <= self.multiplier < 2**MULTIPLIER_BITS:
            raise ValueError(
                f"Requant multiplier must be an integer in [1, {2**MULTIPLIER_BITS - 1}], "
                f"not {self.multiplier!r}"
            )
        if not isinstance(self.shift, int) or not 0 <= self.shift <= MAX_SHIFT:
            raise ValueError(
                f"Requant shift must be an integer in [0, {MAX_SHIFT}], not {self.shift!r}"
            )

    @property
    def ratio(self) -> float:
        """The real factor these constants implement: ``multiplier / 2**shift``."""
        return self.multiplier / 2**self.shift

    @classmethod
    def from_ratio(cls, ratio: float, out_format: NumberFormat = INT8) -> Requant:
        """Constants that best approximate ``ratio`` (see :func:`quantize_multiplier`)."""
        multiplier, shift = quantize_multiplier(ratio)
        return cls(multiplier, shift, out_format)


def quantize_multiplier(ratio: float) -> tuple[int, int]:
    """Approximate a positive real ``ratio`` by ``multiplier / 2**shift``.

    Exact powers of two give ``multiplier = 2**j`` (``j >= 0``) with ``shift = 0``, or
    ``multiplier = 1`` with ``shift = k`` for ``2**-k``: a pure shift, the power-of-two-scale
    special case. Otherwise the multiplier is normalised into [2**15, 2**16) for 16 significant
    bits (relative error at most 2**-16) when ``ratio >= 2**-32``; below that the shift is
    capped at ``MAX_SHIFT`` and the absolute error is at most ``2**-(MAX_SHIFT + 1)``.

    Raises ValueError when ``ratio`` is not positive and finite, rounds to 2**16 or more, or is
    so small that the multiplier would round to zero.
    """
    ratio = float(ratio)
    if not math.isfinite(ratio) or ratio <= 0:
        raise ValueError(f"requantization ratio must be positive and finite, not {ratio!r}")
    if ratio >= 2**MULTIPLIER_BITS - 0.5:
        raise ValueError(
            f"requantization ratio {ratio!r} does not fit a {MULTIPLIER_BITS}-bit multiplier"
        )
    mantissa, exponent = math.frexp(ratio)  # ratio = mantissa * 2**exponent, mantissa in [0.5, 1)
    if mantissa == 0.5:  # exact power of two, ratio = 2**k
        k = exponent - 1
        if k >= 0:
            return 2**k, 0
        if -k > MAX_SHIFT:
            _too_small(ratio)
        return 1, -k
    # ratio * 2**(16 - exponent) lies in [2**15, 2**16): 16 significant bits.
    shift = max(0, min(MULTIPLIER_BITS - exponent, MAX_SHIFT))
    multiplier = round(ratio * 2**shift)
    if multiplier >= 2**MULTIPLIER_BITS:  # rounding carried into a 17th bit
        multiplier, shift = round(ratio * 2 ** (shift - 1)), shift - 1
    if multiplier < 1:
        _too_small(ratio)
    return int(multiplier), int(shift)


def _too_small(ratio: float) -> None:
    raise ValueError(
        f"requantization ratio {ratio!r} is below 2**-{MAX_SHIFT}: its multiplier would be zero"
    )


def power_of_two_scale(scale: float) -> float:
    """Round a positive scale to the nearest power of two in the log domain."""
    scale = float(_check_scale(scale))
    return 2.0 ** round(math.log2(scale))


def requantize(
    acc: np.ndarray,
    requant: Requant,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """Requantize int32 accumulators to codes of ``requant.out_format``.

    ``acc``: integer array (..., N); ``bias``: int32 array broadcasting against it (usually
    shape (N,)) or None. Computes ``sat(((acc + bias) * multiplier + rnd) >> shift)`` exactly
    (see the module docstring). Raises OverflowError if ``acc + bias`` leaves the int32 range:
    the hardware's accumulators are 32 bits wide and the caller must keep within them.
    Returns int8 codes.
    """
    total = np.asarray(acc, dtype=np.int64)
    if bias is not None:
        total = total + np.asarray(bias, dtype=np.int64)
    if total.size and (total.min() < _INT32_MIN or total.max() > _INT32_MAX):
        raise OverflowError(
            f"accumulator + bias out of the int{ACC_BITS} range: "
            f"[{int(total.min())}, {int(total.max())}]"
        )
    product = total * np.int64(requant.multiplier)  # |product| < 2**47: exact in int64
    if requant.shift > 0:
        product = product + np.int64(1 << (requant.shift - 1))
    shifted = product >> np.int64(requant.shift)
    fmt = requant.out_format
    if fmt == BINARY:
        return np.where(shifted >= 0, 1, -1).astype(np.int8)
    return np.clip(shifted, fmt.qmin, fmt.qmax).astype(np.int8)
