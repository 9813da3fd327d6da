"""Pipelined requantization unit: accumulators to low-bit codes, exactly as the spec.

``y = saturate(((acc + bias) * multiplier + round_bit) >> shift)`` per lane, with
``round_bit = 1 << (shift - 1)`` for ``shift > 0`` (else 0), ``>>`` arithmetic (so rounding
is half up), and saturation to the output format: bit for bit
:func:`ttaccel.spec.formats.requantize`.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ..spec.formats import ACC_BITS, FORMATS, MAX_SHIFT, MULTIPLIER_BITS, NumberFormat

__all__ = ["OutFormat", "Requantizer"]

SHIFT_BITS = MAX_SHIFT.bit_length()
_BIAS_BITS = ACC_BITS


class OutFormat(enum.Enum, shape=3):
    """Output code format selected per beat (the spec's format names)."""

    INT8 = 0
    INT4 = 1
    INT2 = 2
    TERNARY = 3
    BINARY = 4

    @classmethod
    def of(cls, fmt: NumberFormat) -> OutFormat:
        """The code for a :class:`~ttaccel.spec.formats.NumberFormat`."""
        return cls[fmt.name.upper()]


def _positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")
    return value


class Requantizer(wiring.Component):
    """``lanes`` requantizers in one stall-able pipeline.

    Parameters (keyword-only)
        ``lanes``: values per beat; ``acc_bits``: width of the incoming accumulators
        (1 to ``ACC_BITS`` = 32; sign-extended).

    Input ``i`` (``stream``), per beat
        ``acc``: ``ArrayLayout(signed(acc_bits), lanes)``; ``bias``:
        ``ArrayLayout(signed(32), lanes)``; ``multiplier``: ``unsigned(16)`` in [1, 65535];
        ``shift``: ``unsigned(6)`` in [0, 47]; ``out_format``: :class:`OutFormat`;
        ``last``: passed through. The constants travel with each beat, so they may change
        from one beat to the next.

    Output ``o`` (``stream``)
        ``codes``: ``ArrayLayout(signed(8), lanes)``, codes of ``out_format`` in int8 containers
        (lane 0 in the low bits, binary as -1/+1 like the spec); ``last``.

    Widths and overflow
        ``acc + bias`` is formed in 33 bits and multiplied exactly (50 bits), so nothing wraps
        even outside the spec's int32 precondition on ``acc + bias``. Saturation clips to the
        format's [qmin, qmax]; binary gives +1 for ``>= 0`` and -1 otherwise.

    Timing
        Stages: bias add, multiply (two DSP48E1 per lane), round and shift, saturate. One beat
        per cycle; ``latency = 4`` cycles from acceptance to ``o.valid`` without back-pressure.
        ``i.ready`` follows ``o.ready`` when the pipeline is full (global stall).
    """

    latency = 4

    def __init__(self, *, lanes: int, acc_bits: int = ACC_BITS):
        self._lanes = _positive_int(lanes, "Lanes")
        if (
            isinstance(acc_bits, bool)
            or not isinstance(acc_bits, int)
            or not (1 <= acc_bits <= ACC_BITS)
        ):
            raise ValueError(f"Acc bits must be an integer in [1, {ACC_BITS}], not {acc_bits!r}")
        self._acc_bits = acc_bits
        super().__init__(
            {
                "i": In(stream.Signature(self.input_layout)),
                "o": Out(stream.Signature(self.output_layout)),
            }
        )

    lanes = property(lambda self: self._lanes)
    acc_bits = property(lambda self: self._acc_bits)

    @property
    def input_layout(self) -> data.StructLayout:
        return data.StructLayout(
            {
                "acc": data.ArrayLayout(signed(self._acc_bits), self._lanes),
                "bias": data.ArrayLayout(signed(_BIAS_BITS), self._lanes),
                "multiplier": unsigned(MULTIPLIER_BITS),
                "shift": unsigned(SHIFT_BITS),
                "out_format": OutFormat,
                "last": 1,
            }
        )

    @property
    def output_layout(self) -> data.StructLayout:
        return data.StructLayout(
            {
                "codes": data.ArrayLayout(signed(8), self._lanes),
                "last": 1,
            }
        )

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes
        total_bits = _BIAS_BITS + 1
        product_bits = total_bits + MULTIPLIER_BITS
        shifted_bits = product_bits + 1

        # Global stall: every stage moves when the output register is free or drained.
        advance = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(advance),
        ]

        def stage(name, fields):
            layout = data.StructLayout({"valid": 1, **fields})
            return Signal(layout, name=name)

        total_l = data.ArrayLayout(signed(total_bits), lanes)
        product_l = data.ArrayLayout(signed(product_bits), lanes)
        shifted_l = data.ArrayLayout(signed(shifted_bits), lanes)
        s1 = stage(
            "s1",
            {
                "total": total_l,
                "multiplier": unsigned(MULTIPLIER_BITS),
                "shift": unsigned(SHIFT_BITS),
                "out_format": OutFormat,
                "last": 1,
            },
        )
        s2 = stage(
            "s2",
            {
                "product": product_l,
                "shift": unsigned(SHIFT_BITS),
                "out_format": OutFormat,
                "last": 1,
            },
        )
        s3 = stage("s3", {"shifted": shifted_l, "out_format": OutFormat, "last": 1})
        s4 = stage("s4", {"codes": data.ArrayLayout(signed(8), lanes), "last": 1})

        with m.If(advance):
            inp = self.i.payload
            # Stage 1: bias add (33 bits: never wraps).
            m.d.sync += [
                s1.valid.eq(self.i.valid),
                s1.multiplier.eq(inp.multiplier),
                s1.shift.eq(inp.shift),
                s1.out_format.eq(inp.out_format),
                s1.last.eq(inp.last),
            ]
            m.d.sync += [s1.total[n].eq(inp.acc[n] + inp.bias[n]) for n in range(lanes)]

            # Stage 2: multiply by the unsigned 16-bit multiplier (exact, 49 bits).
            m.d.sync += [
                s2.valid.eq(s1.valid),
                s2.shift.eq(s1.shift),
                s2.out_format.eq(s1.out_format),
                s2.last.eq(s1.last),
            ]
            m.d.sync += [s2.product[n].eq(s1.total[n] * s1.multiplier) for n in range(lanes)]

            # Stage 3: add the rounding bit 1 << (shift - 1) and shift right arithmetically.
            round_bit = (Const(1, 1) << s2.shift)[1:]
            m.d.sync += [
                s3.valid.eq(s2.valid),
                s3.out_format.eq(s2.out_format),
                s3.last.eq(s2.last),
            ]
            m.d.sync += [
                s3.shifted[n].eq((s2.product[n] + round_bit) >> s2.shift) for n in range(lanes)
            ]

            # Stage 4: saturate to the output format.
            qmin = Signal(signed(8))
            qmax = Signal(signed(8))
            with m.Switch(s3.out_format):
                for code in OutFormat:
                    with m.Case(code):
                        fmt = FORMATS[code.name.lower()]
                        m.d.comb += [qmin.eq(fmt.qmin), qmax.eq(fmt.qmax)]
            is_binary = s3.out_format == OutFormat.BINARY
            m.d.sync += [s4.valid.eq(s3.valid), s4.last.eq(s3.last)]
            for n in range(lanes):
                x = s3.shifted[n]
                clipped = Mux(x < qmin, qmin, Mux(x > qmax, qmax, x))
                m.d.sync += s4.codes[n].eq(Mux(is_binary, Mux(x >= 0, 1, -1), clipped))

        m.d.comb += [
            self.o.valid.eq(s4.valid),
            self.o.payload.codes.eq(s4.codes),
            self.o.payload.last.eq(s4.last),
        ]
        return m
