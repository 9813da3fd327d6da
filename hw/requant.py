"""Pipelined requantization unit: accumulators to low-bit codes, exactly as the spec.

``y = saturate(((acc + bias) * multiplier + round_bit) >> shift)`` per lane, with
``round_bit = 1 << (shift - 1)`` for ``shift > 0`` (else 0), ``>>`` arithmetic (so rounding
is half up), and saturation to the output format: bit for bit
:func:`ttaccel.spec.formats.requantize`.
"""

from __future__ import annotations

from amaranth import C, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..spec.formats import ACC_BITS, FORMATS, MAX_SHIFT, MULTIPLIER_BITS, NumberFormat
from .dsp import mult18x18d, on_ecp5
from .interfaces import credit_counter, positive_int

__all__ = ["OutFormat", "Requantizer"]

SHIFT_BITS = MAX_SHIFT.bit_length()
_BIAS_BITS = ACC_BITS
# Stage 4's range tests compare this many low bits of t: every format's thresholds
# (2 qmax + 1, 2 qmin - 2, -1) are signed 10-bit values.
_WINDOW_BITS = 10
assert all(
    -(1 << (_WINDOW_BITS - 1)) <= v < 1 << (_WINDOW_BITS - 1)
    for f in FORMATS.values()
    for v in (2 * f.qmax + 1, 2 * f.qmin - 2)
)


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


class Requantizer(wiring.Component):
    """``lanes`` requantizers in one stall-able pipeline.

    Parameters (keyword-only)
        ``lanes``: values per beat; ``acc_bits``: width of the incoming accumulators
        (1 to ``ACC_BITS`` = 32; sign-extended); ``lead``: register stages (0 to 8) the
        caller keeps in front of ``i``, whose beats the credits count (below).

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
        Stages: bias add, multiply in two (two partial products of 17 and 16 bits of the
        sum, each one DSP48E1 or MULT18X18D, registered; then their sum), shift in two (of
        twice the product, so the rounding add moves behind it: by the multiple of 8, then
        the rest), round and range-test (registered per lane), saturate into an output FIFO.
        One beat per cycle; ``latency = 7`` cycles from acceptance to ``o.valid`` without
        back-pressure.
        The pipeline never stalls: a credit counter admits at most ``capacity`` beats into the
        pipeline and its output FIFO, and ``o`` comes from that FIFO, so no combinational path
        runs from ``o.ready`` into the pipeline's registers. With ``lead == 0``, ``i.ready``
        is ``credit``, a register: there are credits left. With ``lead > 0`` the credits are
        taken ``lead`` cycles early: the caller claims one (``claim``, while ``credit`` is
        set) as a beat enters its first lead stage, and that beat reaches ``i`` exactly
        ``lead`` cycles later, through stages that never stall; ``i.ready`` is then always
        1, and a beat on ``i`` that was not claimed may be lost. So the caller's stages need
        no enable, and its ready (``credit``) is one flip-flop.
    """

    latency = 7

    def __init__(self, *, lanes: int, acc_bits: int = ACC_BITS, lead: int = 0):
        self._lanes = positive_int(lanes, "Lanes")
        if isinstance(lead, bool) or not isinstance(lead, int) or not (0 <= lead <= 8):
            raise ValueError(f"Lead must be an integer in [0, 8], not {lead!r}")
        self._lead = lead
        if (
            isinstance(acc_bits, bool)
            or not isinstance(acc_bits, int)
            or not (1 <= acc_bits <= ACC_BITS)
        ):
            raise ValueError(f"Acc bits must be an integer in [1, {ACC_BITS}], not {acc_bits!r}")
        self._acc_bits = acc_bits
        ports = {
            "i": In(stream.Signature(self.input_layout)),
            "o": Out(stream.Signature(self.output_layout)),
            "credit": Out(1),
        }
        if lead:
            ports["claim"] = In(1)
        super().__init__(ports)

    lanes = property(lambda self: self._lanes)
    acc_bits = property(lambda self: self._acc_bits)
    lead = property(lambda self: self._lead)

    @property
    def capacity(self) -> int:
        """Beats the unit holds at most (lead stages, pipeline and output FIFO): enough
        credits for one beat per cycle (a credit returns one cycle after its beat leaves)."""
        return self.latency + 2 + self._lead

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

        # Credits: at most `capacity` beats inside (lead stages, pipeline and output FIFO),
        # so the pipeline never stalls; a credit returns when a beat leaves. `credit` is a
        # register (`credit_counter`).
        m.submodules.out_fifo = out_fifo = fifo.SyncFIFO(
            width=self.output_layout.size, depth=self.capacity
        )
        claim = self.claim if self._lead else self.i.valid
        credit = credit_counter(
            m, "credits", self.capacity, taken=claim & self.credit,
            returned=self.o.valid & self.o.ready,
        )  # fmt: skip
        m.d.comb += [self.credit.eq(credit), self.i.ready.eq(1 if self._lead else credit)]

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
        low_bits = MULTIPLIER_BITS + 1  # the sum's low part: unsigned, one 18 x 18 multiply
        # The partial products are signals of their own (registers, or a DSP's output
        # registers on the ECP5 proxy); `partial` carries the rest of the beat beside them.
        low_products = Signal(
            data.ArrayLayout(unsigned(low_bits + MULTIPLIER_BITS), lanes), name="partial_low"
        )
        high_products = Signal(
            data.ArrayLayout(signed(total_bits - low_bits + MULTIPLIER_BITS), lanes),
            name="partial_high",
        )
        partial = stage(
            "partial",
            {
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
        # Stages 3a and 3 carry the output format's saturation bounds (registered from the format,
        # so stage 4's tests start from flip-flops, not from a decode of the format).
        bounds = {
            "qmin": signed(8),
            "qmax": signed(8),
            "above_from": signed(_WINDOW_BITS),  # 2 qmax + 1
            "below_to": signed(_WINDOW_BITS),  # 2 qmin - 2
            "binary": 1,
        }
        s3a = stage("s3a", {"shifted": shifted_l, "fine": unsigned(3), **bounds, "last": 1})
        s3 = stage("s3", {"shifted": shifted_l, **bounds, "last": 1})

        inp = self.i.payload
        # Stage 1: bias add (33 bits: never wraps).
        m.d.sync += [
            s1.valid.eq(self.i.valid & self.i.ready),
            s1.multiplier.eq(inp.multiplier),
            s1.shift.eq(inp.shift),
            s1.out_format.eq(inp.out_format),
            s1.last.eq(inp.last),
        ]
        sums = [inp.acc[n] + inp.bias[n] for n in range(lanes)]
        if not on_ecp5(platform):  # on the proxy the sums go straight into the DSPs' registers
            m.d.sync += [s1.total[n].eq(sums[n]) for n in range(lanes)]

        # Stage 2: multiply by the unsigned 16-bit multiplier (exact, 49 bits) in two steps:
        # the partial products of the sum's low 17 bits (unsigned) and high 16 bits (signed)
        # are registered (one multiplier each, no adder behind it), then added. For the
        # xc7z020 the stage-1 sum and multiplier registers and these product registers map
        # into each DSP48E1's A/B and M registers; on the ECP5 proxy, whose synthesis keeps
        # registers out of MULT18X18D, the DSP's own input and output registers are
        # instantiated in their place (`hw/dsp.py`): the same cycles and products.
        m.d.sync += [
            partial.valid.eq(s1.valid),
            partial.shift.eq(s1.shift),
            partial.out_format.eq(s1.out_format),
            partial.last.eq(s1.last),
        ]
        for n in range(lanes):
            if on_ecp5(platform):  # the operands before stage 1's registers, into the DSP's
                total = Signal(signed(total_bits), name=f"total_{n}")
                m.d.comb += total.eq(sums[n])
                low = mult18x18d(m, f"mult_low_{n}", total[:low_bits], inp.multiplier, en=1,
                                 signed_a=False, signed_b=False)  # fmt: skip
                high = mult18x18d(m, f"mult_high_{n}", total[low_bits:], inp.multiplier, en=1,
                                  signed_a=True, signed_b=False)  # fmt: skip
                m.d.comb += [low_products[n].eq(low), high_products[n].eq(high)]  # truncated
            else:
                total = s1.total[n]
                m.d.sync += [
                    low_products[n].eq(total[:low_bits] * s1.multiplier),
                    high_products[n].eq(total[low_bits:].as_signed() * s1.multiplier),
                ]
        m.d.sync += [
            s2.valid.eq(partial.valid),
            s2.shift.eq(partial.shift),
            s2.out_format.eq(partial.out_format),
            s2.last.eq(partial.last),
        ]
        m.d.sync += [
            s2.product[n].eq((high_products[n] << low_bits) + low_products[n]) for n in range(lanes)
        ]

        # Stage 3: t = (2 * product) >> shift (arithmetic), in two stages of three mux levels:
        # by the multiple of 8 in `shift` (3a), then by the rest (3b). With the rounding bit
        # r = 1 << (shift - 1), (p + r) >> shift == (t + 1) >> 1 for shift >= 1, and
        # t = 2p gives p for shift 0, so no wide add sits in front of the shifter.
        m.d.sync += [s3a.valid.eq(s2.valid), s3a.last.eq(s2.last), s3a.fine.eq(s2.shift[:3])]
        with m.Switch(s2.out_format):
            for code in OutFormat:
                with m.Case(code):
                    fmt = FORMATS[code.name.lower()]
                    m.d.sync += [
                        s3a.qmin.eq(fmt.qmin),
                        s3a.qmax.eq(fmt.qmax),
                        s3a.above_from.eq(2 * fmt.qmax + 1),
                        s3a.below_to.eq(2 * fmt.qmin - 2),
                        s3a.binary.eq(code == OutFormat.BINARY),
                    ]
        coarse = Cat(C(0, 3), s2.shift[3:])
        m.d.sync += [
            s3a.shifted[n].eq((s2.product[n] << 1).as_signed() >> coarse) for n in range(lanes)
        ]
        m.d.sync += [s3.valid.eq(s3a.valid), s3.last.eq(s3a.last)]
        m.d.sync += [s3[name].eq(s3a[name]) for name in bounds]
        m.d.sync += [s3.shifted[n].eq(s3a.shifted[n] >> s3a.fine) for n in range(lanes)]

        # Stage 4: y = (t + 1) >> 1's low bits and the range tests, registered per lane; the
        # tests are on t (y > qmax <=> t >= 2 qmax + 1, y < qmin <=> t <= 2 qmin - 2,
        # y >= 0 <=> t >= -1), so only y's low bits need the add. Every threshold lies in
        # 10-bit signed range ([-258, 255]), so each test is a 10-bit compare of t's low bits,
        # used where t fits in 10 bits (its bits 9 and up all equal: `fits`) and replaced by
        # t's sign where it does not: no compare runs along t's 50 bits.
        tests = data.StructLayout(
            {"low": signed(8), "fits": 1, "negative": 1, "above": 1, "below": 1, "not_negative": 1}
        )
        s4 = stage("s4", {"lane": data.ArrayLayout(tests, lanes), **bounds, "last": 1})
        m.d.sync += [s4.valid.eq(s3.valid), s4.last.eq(s3.last)]
        m.d.sync += [s4[name].eq(s3[name]) for name in bounds]
        for n in range(lanes):
            t, lane = s3.shifted[n], s4.lane[n]
            high = t[_WINDOW_BITS - 1 :]
            window = t[:_WINDOW_BITS].as_signed()
            m.d.sync += [
                lane.low.eq((t[:9] + 1)[1:9]),
                lane.fits.eq(high.all() | ~high.any()),
                lane.negative.eq(t[-1]),
                lane.above.eq(window >= s3.above_from),
                lane.below.eq(window <= s3.below_to),
                lane.not_negative.eq(window >= -1),
            ]

        # Stage 5: saturate (or the binary sign) into the output FIFO.
        codes = Signal(self.output_layout, name="s5")  # the output FIFO's write data
        m.d.comb += [codes.last.eq(s4.last), out_fifo.w_en.eq(s4.valid), out_fifo.w_data.eq(codes)]
        for n in range(lanes):
            lane = s4.lane[n]
            above = Mux(lane.fits, lane.above, ~lane.negative)
            below = Mux(lane.fits, lane.below, lane.negative)
            clipped = Mux(below, s4.qmin, Mux(above, s4.qmax, lane.low))
            not_negative = Mux(lane.fits, lane.not_negative, ~lane.negative)
            m.d.comb += codes.codes[n].eq(Mux(s4.binary, Mux(not_negative, 1, -1), clipped))

        m.d.comb += [
            self.o.valid.eq(out_fifo.r_rdy),
            self.o.payload.eq(out_fifo.r_data),
            out_fifo.r_en.eq(self.o.ready),
        ]
        return m
