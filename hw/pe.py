"""Low-bit multiply-accumulate processing elements and the providers that make them.

A *MAC provider* (as Tiliqua passes ``macp=`` to its filters) is handed to
:class:`~ttaccel.hw.systolic.SystolicArray`; it knows one weight format and builds the array's
processing elements, so the array never mentions bit widths or DSP tricks.

Every processing element (PE) multiplies one int8 activation by ``lanes`` weights (adjacent
output columns that share the activation) and keeps ``lanes`` accumulators. Its ports:

``a``: ``signed(8)`` activation; ``w``: ``ArrayLayout(weight_shape, lanes)`` weights, lane 0
in the low bits; ``valid`` / ``first`` / ``last``: this beat is real / starts a new sum /
ends it; ``en``: clock enable (the whole PE holds while it is low); ``acc``:
``ArrayLayout(signed(acc_bits), lanes)`` accumulators; ``done``: ``acc`` holds a finished sum.

Timing, identical for every provider: a beat presented while ``en`` is high is in ``acc`` after
``latency = 3`` enabled cycles: an operand register (DSP48E1's A/B registers, or for the
packed provider the pre-adder's AD register), a product register (MREG), then the
accumulator (PREG), so no path runs from the PE's inputs through the multiplier. ``done``
rises with the accumulator update of a ``last`` beat and stays high until
the next enabled cycle, which may already accumulate the next sum (``first`` restarts the sum
from the product, so back-to-back sums need no bubble). Throughput: one beat per enabled cycle.

Accumulators never overflow: ``accumulator_bits(k_max)`` is the smallest two's complement
width holding ``k_max`` times the extreme product of an int8 activation and a legal weight
(``k_max * -16256 .. k_max * 16384`` for int8 weights); sums of more than ``k_max`` beats are
the caller's error.

Weight encodings (``spec/formats.py``): int8 / int4 / int2 two's complement; ternary is int2
with 0b10 unused (treated as 0 here); binary is one unsigned bit, 1 for +1 and 0 for -1.
"""

from __future__ import annotations

import abc

from amaranth import Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..spec.formats import ACC_BITS, BINARY, INT2, INT4, INT8, TERNARY, NumberFormat
from .dsp import mult18x18d, on_ecp5
from .interfaces import positive_int

__all__ = [
    "ACTIVATION_BITS",
    "BinaryNegate",
    "Int8Dsp",
    "Int8DspPacked",
    "LutMultiply",
    "MacProvider",
    "ProcessingElement",
    "TernarySelect",
    "mac_provider",
    "signed_bits",
]

ACTIVATION_BITS = 8
"""Activations are int8 codes everywhere."""
_A_MIN, _A_MAX = -(2 ** (ACTIVATION_BITS - 1)), 2 ** (ACTIVATION_BITS - 1) - 1


def signed_bits(lo: int, hi: int) -> int:
    """The smallest two's complement width holding every integer in ``[lo, hi]``."""
    bits = 1
    while not (-(2 ** (bits - 1)) <= lo and hi <= 2 ** (bits - 1) - 1):
        bits += 1
    return bits


class MacProvider(abc.ABC):
    """Makes processing elements for one weight format; see the module docstring.

    Subclasses set ``weight_format`` and ``lanes`` and implement :meth:`products` (the
    per-lane products of the product register, from the operand register); they may override
    :meth:`operands` (what the operand register holds, by default ``a`` and ``w`` as they
    are).
    """

    #: Weight codes this provider multiplies.
    weight_format: NumberFormat
    #: Output columns (weights) per activation and PE.
    lanes: int = 1
    #: Short name used in build directories and reports.
    name: str

    @property
    def a_shape(self) -> Shape:
        """Shape of the ``a`` port: ``signed(8)``, an activation (a provider that selects its
        operand, :class:`~ttaccel.hw.sparse.SparseSelect`, carries more)."""
        return signed(ACTIVATION_BITS)

    @property
    def weight_shape(self) -> Shape:
        """Shape of one weight lane: ``signed(bits)``, or ``unsigned(1)`` for binary."""
        if self.weight_format == BINARY:
            return unsigned(1)
        return signed(self.weight_format.bits)

    def product_range(self) -> tuple[int, int]:
        """Smallest and largest product of an int8 activation and a legal weight."""
        fmt = self.weight_format
        corners = [a * w for a in (_A_MIN, _A_MAX) for w in (fmt.qmin, fmt.qmax)]
        return min(corners), max(corners)

    def accumulator_bits(self, k_max: int) -> int:
        """Accumulator width for sums of up to ``k_max`` products: never overflows.

        Raises ValueError if that exceeds the spec's ``ACC_BITS`` (32): the requantizer and
        the golden models take int32 accumulators.
        """
        k_max = positive_int(k_max, "K max")
        lo, hi = self.product_range()
        bits = signed_bits(k_max * lo, k_max * hi)
        if bits > ACC_BITS:
            limit = (2 ** (ACC_BITS - 1) - 1) // max(-lo, hi)
            raise ValueError(
                f"K max must be at most {limit} for {self.weight_format.name} weights "
                f"({ACC_BITS}-bit accumulators), not {k_max!r}"
            )
        return bits

    @property
    def dsps_per_pe(self) -> int:
        """DSP48E1 multipliers one PE is meant to use (0: LUTs only)."""
        return 0

    def pe(self, *, k_max: int) -> ProcessingElement:
        """A processing element whose accumulators hold sums of up to ``k_max`` products."""
        return ProcessingElement(provider=self, k_max=k_max)

    def stages(self, m, a, w, en, platform):
        """The PE's operand and product stages for ``platform``: returns the product register
        (its value the enabled cycle after the operand register's) and ``lane_products``,
        which turns it into the per-lane products the accumulators add.

        By default the operand register holds :meth:`operands` and the product register
        :meth:`products` of it, both enabled by ``en``; a provider may map both registers into
        a DSP primitive on a platform that needs it (:class:`Int8DspPacked` on the ECP5 proxy,
        ``hw/dsp.py``), with the same timing and results.
        """
        operands_d, split = self.operands(m, a, w)
        operands = Signal.like(operands_d, name="operands", reset_less=True)
        with m.If(en):
            m.d.sync += operands.eq(operands_d)
        product_d, lane_products = self.products(m, *split(operands))
        product = Signal.like(product_d, name="product", reset_less=True)
        with m.If(en):
            m.d.sync += product.eq(product_d)
        return product, lane_products

    def operands(self, m: Module, a: Signal, w: data.View) -> tuple[Signal, object]:
        """Stage-1 (operand register) input from activation ``a`` and weights ``w``.

        Returns ``(register_d, split)``: ``register_d`` (driven in ``m.d.comb``) is what the
        operand register loads, and ``split(q)`` maps its registered copy to the ``(a, w)``
        that :meth:`products` takes. Default: ``a`` and ``w`` unchanged."""
        layout = data.StructLayout({"a": signed(ACTIVATION_BITS), "w": w.shape()})
        d = Signal(layout)
        m.d.comb += [d.a.eq(a), d.w.eq(w)]
        return d, lambda q: (q.a, q.w)

    @abc.abstractmethod
    def products(self, m: Module, a, w) -> tuple[Signal, list]:
        """Stage-2 logic from the operand register's ``a`` and ``w`` (see :meth:`operands`),
        built in ``m``.

        Returns ``(register_d, lane_products)``: ``register_d`` is a signal (driven in
        ``m.d.comb``) that the product register loads, and ``lane_products(q)`` maps the
        registered copy ``q`` to the ``lanes`` signed products the accumulators add."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _OneProductPerLane(MacProvider):
    """Providers whose product register is simply one product per lane."""

    def lane_product(self, m: Module, a: Signal, w: Signal) -> Signal:
        raise NotImplementedError

    def products(self, m, a, w):
        lo, hi = self.product_range()
        shape = signed(signed_bits(lo, hi))
        reg_layout = data.ArrayLayout(shape, self.lanes)
        d = Signal(reg_layout)
        for lane in range(self.lanes):
            m.d.comb += d[lane].eq(self.lane_product(m, a, w[lane]))

        def lane_products(q):
            return [q[lane] for lane in range(self.lanes)]

        return d, lane_products


class Int8Dsp(_OneProductPerLane):
    """int8 x int8 on one DSP48E1 per MAC (a plain ``*``; yosys maps it with MREG/PREG)."""

    weight_format = INT8
    name = "int8"

    @property
    def dsps_per_pe(self) -> int:
        return 1

    def lane_product(self, m, a, w):
        return a * w


class Int8DspPacked(MacProvider):
    """Two int8 x int8 MACs sharing one activation on one DSP48E1 multiplier (25 x 18).

    The two weights are packed into one 25-bit operand ``w1 * 2**16 + w0`` (in
    ``[-8388736, 8323199]``, inside 25-bit two's complement) and multiplied by the 8-bit
    activation: ``p = a * w1 * 2**16 + a * w0``. The low product ``a * w0`` lies in
    ``[-16256, 16384]`` and so fits 16-bit two's complement: it is ``p[0:16]`` sign-extended.
    The high product is ``(p >> 16) + p[15]``: an arithmetic shift floors, which borrows one
    from the high field whenever the low product is negative, and ``p[15]`` (the low product's
    sign) pays it back. Products are split before accumulating, so each lane keeps its own
    full-width accumulator and nothing limits K but ``k_max``. Two MACs per DSP48E1.
    """

    weight_format = INT8
    lanes = 2
    name = "int8x2"
    FIELD_BITS = 16

    @property
    def dsps_per_pe(self) -> int:
        return 1

    def operands(self, m, a, w):
        # The pre-add, registered as DSP48E1's AD register (its D and A registers are the
        # array's weight skew registers).
        d = Signal(data.StructLayout({"a": signed(ACTIVATION_BITS), "packed": signed(25)}))
        m.d.comb += [d.a.eq(a), d.packed.eq((w[1] << self.FIELD_BITS) + w[0])]
        return d, lambda q: (q.a, q.packed)

    def products(self, m, a, packed):
        d = Signal(signed(25 + ACTIVATION_BITS))
        m.d.comb += d.eq(packed * a)
        f = self.FIELD_BITS

        def lane_products(q):
            low = q[:f].as_signed()
            high = (q[f:].as_signed() + q[f - 1]).as_signed()
            return [low, high]

        return d, lane_products

    def stages(self, m, a, w, en, platform):
        """On the ECP5 proxy (``hw/dsp.py``): the 25-bit packed weight's low 18 bits
        (unsigned) and high 7 (signed) times the activation in two MULT18X18D, whose input and
        output registers are the operand and product stages; ``lane_products`` recombines
        them as the accumulators add (lane 0: the low product's low 16 bits; lane 1:
        ``4 * P_hi + (P_lo >> 16) + P_lo[15]``, the same split as :meth:`products` makes of
        ``P = P_hi * 2**18 + P_lo``). Elsewhere the default (one DSP48E1 on the xc7z020)."""
        if not on_ecp5(platform):
            return super().stages(m, a, w, en, platform)
        packed = Signal(signed(25), name="packed")
        m.d.comb += packed.eq((w[1] << self.FIELD_BITS) + w[0])
        low = mult18x18d(m, "mult_lo", packed[:18], a, en=en, signed_a=False, signed_b=True)
        high = mult18x18d(m, "mult_hi", packed[18:], a, en=en, signed_a=True, signed_b=True)
        # u18 x s8 fits 26-bit two's complement, s7 x s8 16-bit.
        product = Signal(data.StructLayout({"low": signed(26), "high": signed(16)}),
                         name="product")  # fmt: skip
        m.d.comb += [product.low.eq(low[:26].as_signed()), product.high.eq(high[:16].as_signed())]
        f = self.FIELD_BITS

        def lane_products(q):
            return [q.low[:f].as_signed(), (q.high << 2) + (q.low >> f) + q.low[f - 1]]

        return product, lane_products


class LutMultiply(_OneProductPerLane):
    """int8 x int4 or int8 x int2 as shift-and-add in LUTs: no DSP48E1.

    ``a * w = sum_k w[k] * (a << k) - w[bits-1] * (a << (bits-1))``, written with selects
    and adders so that synthesis never infers a multiplier.
    """

    name = "lut"

    def __init__(self, *, weight_format: NumberFormat):
        if weight_format not in (INT4, INT2):
            raise ValueError(f"Weight format must be int4 or int2, not {weight_format!r}")
        self.weight_format = weight_format
        self.name = weight_format.name

    def lane_product(self, m, a, w):
        bits = self.weight_format.bits
        terms = [Mux(w[k], a << k, 0) for k in range(bits - 1)]
        total = terms[0] if terms else 0
        for term in terms[1:]:
            total = total + term
        return total - Mux(w[bits - 1], a << (bits - 1), 0)

    def __repr__(self) -> str:
        return f"LutMultiply(weight_format={self.weight_format.name})"


class TernarySelect(_OneProductPerLane):
    """int8 x ternary {-1, 0, +1}: select ``a``, ``-a`` or 0. No multiplier."""

    weight_format = TERNARY
    name = "ternary"

    def lane_product(self, m, a, w):
        return Mux(w == 1, a, Mux(w == -1, -a, 0))


class BinaryNegate(_OneProductPerLane):
    """int8 x binary {-1, +1} (bit 1 is +1): ``a`` or ``-a``. No multiplier."""

    weight_format = BINARY
    name = "binary"

    def lane_product(self, m, a, w):
        return Mux(w, a, -a)


def mac_provider(weight_format: NumberFormat, *, packed: bool = False) -> MacProvider:
    """The provider for ``weight_format``; ``packed`` picks two int8 MACs per DSP48E1."""
    if packed and weight_format != INT8:
        raise ValueError(f"Packed MACs exist only for int8 weights, not {weight_format.name}")
    if weight_format == INT8:
        return Int8DspPacked() if packed else Int8Dsp()
    if weight_format in (INT4, INT2):
        return LutMultiply(weight_format=weight_format)
    if weight_format == TERNARY:
        return TernarySelect()
    if weight_format == BINARY:
        return BinaryNegate()
    raise ValueError(f"Unknown weight format {weight_format!r}")


class ProcessingElement(wiring.Component):
    """One low-bit MAC processing element; see the module docstring for ports and timing.

    Parameters (keyword-only): ``provider``, a :class:`MacProvider`; ``k_max``, the longest
    sum the accumulators must hold without overflow (sets ``acc_bits``).
    """

    latency = 3

    def __init__(self, *, provider: MacProvider, k_max: int):
        if not isinstance(provider, MacProvider):
            raise TypeError(f"Provider must be a MacProvider, not {provider!r}")
        self._provider = provider
        self._k_max = positive_int(k_max, "K max")
        self._acc_bits = provider.accumulator_bits(k_max)
        lanes = provider.lanes
        super().__init__(
            {
                "a": In(provider.a_shape),
                "w": In(data.ArrayLayout(provider.weight_shape, lanes)),
                "valid": In(1),
                "first": In(1),
                "last": In(1),
                "en": In(1),
                "acc": Out(data.ArrayLayout(signed(self._acc_bits), lanes)),
                "done": Out(1),
            }
        )

    @property
    def provider(self) -> MacProvider:
        return self._provider

    @property
    def k_max(self) -> int:
        return self._k_max

    @property
    def acc_bits(self) -> int:
        return self._acc_bits

    @property
    def lanes(self) -> int:
        return self._provider.lanes

    def elaborate(self, platform):
        m = Module()

        # Stages 1 and 2: the operand register (DSP48E1 A/B or AD) and the product register
        # (MREG), from the provider (a DSP primitive's own registers where the platform needs
        # it), with the beat's flags alongside.
        product, lane_products = self._provider.stages(m, self.a, self.w, self.en, platform)
        o_valid = Signal(name="o_valid")
        o_first = Signal(name="o_first")
        o_last = Signal(name="o_last")
        p_valid = Signal(name="p_valid")
        p_first = Signal(name="p_first")
        p_last = Signal(name="p_last")
        with m.If(self.en):
            m.d.sync += [
                o_valid.eq(self.valid),
                o_first.eq(self.first),
                o_last.eq(self.last),
                p_valid.eq(o_valid),
                p_first.eq(o_first),
                p_last.eq(o_last),
            ]

        # Stage 3: accumulators (DSP48E1 PREG); `first` restarts the sum from the product.
        acc = Signal.like(self.acc, name="acc_q", reset_less=True)
        done = Signal(name="done_q")
        m.d.comb += [self.acc.eq(acc), self.done.eq(done)]
        with m.If(self.en):
            m.d.sync += done.eq(p_valid & p_last)
            with m.If(p_valid):
                for lane, term in enumerate(lane_products(product)):
                    m.d.sync += acc[lane].eq(Mux(p_first, 0, acc[lane]) + term)
        return m
