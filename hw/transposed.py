"""MAC providers for the engine's *transposed* use of :class:`~ttaccel.hw.systolic.SystolicArray`.

The instruction set drains a finished tile one *column* per cycle (an A-word: the ``rows``
results of one output column), while :class:`~ttaccel.hw.systolic.SystolicArray` drains one
of its own rows per cycle. The engine therefore instantiates the array transposed: its rows
are the GEMM's output columns (``config.cols``) and its columns the tokens (``config.rows``),
its ``a`` input carries the B-word (one weight per GEMM column) and its ``w`` input the A-word
(one int8 activation per token). Array row ``j`` then holds column ``j`` of the tile, which
is exactly the A-word the drain needs, with no transpose buffer.

The providers here keep the low-bit weights cheap in that arrangement: the weight arrives on
the 8-bit ``a`` port (its code in the low ``bits`` bits, as the weight buffer stores it:
two's complement for int8/int4/int2/ternary, bit 1 = +1 for binary) and the ``lanes``
activations on the ``w`` port as ``signed(8)``. int8 x int8 is symmetric, so it reuses
:class:`~ttaccel.hw.pe.Int8Dsp` / :class:`~ttaccel.hw.pe.Int8DspPacked` unchanged (two tokens
share one weight per DSP48E1 when packed). Product ranges, accumulator widths and timing are
the base providers' (the set of products is the same).
"""

from __future__ import annotations

from amaranth import Mux, Signal, signed
from amaranth.lib import data

from ..spec.formats import BINARY, INT2, INT4, INT8, TERNARY, NumberFormat
from .pe import ACTIVATION_BITS, Int8Dsp, Int8DspPacked, MacProvider, signed_bits

__all__ = ["TransposedLowBit", "transposed_provider"]


class TransposedLowBit(MacProvider):
    """int8 activations (``w`` port) times a low-bit weight (low bits of the ``a`` port).

    int4 / int2: shift-and-add of the activation under the weight's bits; ternary: select
    ``x``, ``-x`` or 0; binary: ``x`` or ``-x``. No multiplier is inferred.
    """

    def __init__(self, *, weight_format: NumberFormat):
        if weight_format not in (INT4, INT2, TERNARY, BINARY):
            raise ValueError(
                f"Weight format must be int4, int2, ternary or binary, not {weight_format!r}"
            )
        self.weight_format = weight_format
        self.name = f"{weight_format.name}-t"

    @property
    def weight_shape(self):
        """The ``w`` port carries int8 activations in this arrangement."""
        return signed(ACTIVATION_BITS)

    def products(self, m, a, w):
        lo, hi = self.product_range()
        d = Signal(data.ArrayLayout(signed(signed_bits(lo, hi)), self.lanes))
        for lane in range(self.lanes):
            m.d.comb += d[lane].eq(self._product(a, w[lane]))
        return d, lambda q: [q[lane] for lane in range(self.lanes)]

    def _product(self, a, x):
        fmt = self.weight_format
        if fmt == BINARY:
            return Mux(a[0], x, -x)
        code = a[: fmt.bits].as_signed()
        if fmt == TERNARY:
            return Mux(code == 1, x, Mux(code == -1, -x, 0))
        terms = [Mux(code[k], x << k, 0) for k in range(fmt.bits - 1)]
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total - Mux(code[fmt.bits - 1], x << (fmt.bits - 1), 0)

    def __repr__(self) -> str:
        return f"TransposedLowBit(weight_format={self.weight_format.name})"


def transposed_provider(weight_format: NumberFormat, *, packed: bool, tokens: int) -> MacProvider:
    """The provider for an array whose ``a`` port carries ``weight_format`` weights and whose
    ``w`` port carries ``tokens`` int8 activations. ``packed`` (int8 only) shares one DSP48E1
    between two tokens; it is used only when ``tokens`` is even."""
    if weight_format == INT8:
        return Int8DspPacked() if packed and tokens % 2 == 0 else Int8Dsp()
    return TransposedLowBit(weight_format=weight_format)
