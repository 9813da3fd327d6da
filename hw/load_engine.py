"""The load engine: LOAD instructions, input-stream beats to buffer words.

A LOAD of ``count`` words into ABUF, WBUF or BIAS (word widths ``rows * 8``,
``cols * weight bits`` and 32) consumes ``ceil(count * width / 64)`` beats, words packed back
to back, lane 0 in the low bits, the last beat zero padded (:mod:`ttaccel.spec.isa`).
"""

from __future__ import annotations

import math

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..spec.accel_config import AccelConfig
from ..spec.isa import STREAM_BITS
from .dispatch import LOAD_LAYOUT
from .interfaces import STREAM_BEAT, check_config

__all__ = ["LoadEngine"]


class LoadEngine(wiring.Component):
    """Runs LOADs from its queue, one at a time, in order.

    Parameters (keyword-only): ``config``, an :class:`AccelConfig`.

    Ports
        ``q``: the load queue (:data:`~ttaccel.hw.dispatch.LOAD_LAYOUT`); ``inp``: the input
        stream; ``token_ready`` / ``token_take``: a token from the execute engine is available
        / is consumed (a LOAD with ``wait`` pops one as it starts); ``retired``: a LOAD wrote
        its last word (pulse), with ``signal`` when it pushes a token; ``idle``.
        ``abuf_*``, ``wbuf_*``, ``bias_*``: write ports (``addr``, ``data``, ``en``);
        ``abuf_grant``: the ABUF write port is free this cycle (the execute engine's results
        have priority). ``error``: TLAST on a beat that is not the LOAD's last (pulse);
        ``pc``: the index of the LOAD in progress (for errors).

    Timing
        A LOAD starts the cycle after it reaches the queue head (and its token is there),
        accepts one beat per cycle from the next cycle and writes at most one word per cycle,
        so it takes ``1 + max(beats, words) + 1`` cycles; the next LOAD starts after that.
    """

    def __init__(self, *, config: AccelConfig):
        self._config = check_config(config)
        self._widths = (config.a_word_bits, config.b_word_bits, 32)
        a_bits, b_bits, _ = self._widths
        super().__init__(
            {
                "q": In(stream.Signature(LOAD_LAYOUT)),
                "inp": In(stream.Signature(STREAM_BEAT)),
                "token_ready": In(1),
                "token_take": Out(1),
                "retired": Out(1),
                "signal": Out(1),
                "idle": Out(1),
                "abuf_addr": Out(16),
                "abuf_data": Out(a_bits),
                "abuf_en": Out(1),
                "abuf_grant": In(1),
                "wbuf_addr": Out(16),
                "wbuf_data": Out(b_bits),
                "wbuf_en": Out(1),
                "bias_addr": Out(16),
                "bias_data": Out(32),
                "bias_en": Out(1),
                "error": Out(1),
                "pc": Out(16),
            }
        )

    config = property(lambda self: self._config)

    def elaborate(self, platform):
        m = Module()
        widths = self._widths
        word_max = max(widths)
        # Room for a beat whenever `fill` could hold less than two words (so a beat is never
        # refused that the one-word-per-cycle writes could not make room for).
        cap = 2 * word_max + STREAM_BITS - 1

        # The LOAD in progress.
        active = Signal(name="active")
        target = Signal(2, name="target")
        addr = Signal(16, name="addr")
        words_left = Signal(17, name="words_left")
        beats_left = Signal(range(-(-65535 * word_max // STREAM_BITS) + 1), name="beats_left")
        # `beats_left != 0` and `beats_left == 1` as registers: `inp.ready` and the TLAST check
        # then need no wide compare (step 8: the compare fed the input stage's handshake and,
        # through it, `beats_left`'s own enable: 68.4 MHz ECP5 proxy after step 7).
        beats_some = Signal(name="beats_some")
        beats_one = Signal(name="beats_one")
        # `words_left == 1` as a register too: the last word's write retires the LOAD and
        # pushes its token, a path into the token counters. (While `active`, `words_left` is
        # at least 1: a LOAD has count >= 1 and ends with its last word.)
        words_one = Signal(name="words_one")
        signal_q = Signal(name="signal_q")
        pc = Signal(16, name="pc")

        # Start: pop the head once its token (if it waits) is there.
        head = self.q.payload
        start = Signal()
        m.d.comb += [
            start.eq(~active & self.q.valid & (~head.wait | self.token_ready)),
            self.q.ready.eq(start),
            self.token_take.eq(start & head.wait),
            self.idle.eq(~active),
            self.pc.eq(pc),
        ]
        head_bits = Signal(range(65536 * word_max + 1))
        with m.Switch(head.buffer):
            for index, width in enumerate(widths):
                with m.Case(index):
                    m.d.comb += head_bits.eq(head.count * width)
        with m.If(start):
            m.d.sync += [
                active.eq(1),
                target.eq(head.buffer),
                addr.eq(head.base),
                words_left.eq(head.count),
                words_one.eq(head.count == 1),
                beats_left.eq((head_bits + STREAM_BITS - 1) >> 6),
                beats_some.eq(head_bits != 0),
                beats_one.eq((head_bits != 0) & (head_bits <= STREAM_BITS)),
                signal_q.eq(head.signal),
                pc.eq(head.pc),
            ]

        # Gearbox: `fill` bits in `buf`; a word leaves from the bottom when it is complete.
        # A beat is placed at `fill` (a register) and the written word is removed after the
        # merge, so neither `inp.ready` nor the beat's shift depends on this cycle's write
        # (whose grant comes from the execute engine). `fill` is always a multiple of
        # `unit` (the beat and every word width are), so it is kept in units: the beat's
        # shifter has a stage per bit of `fill_units` only (4 at 8 x 8 int8, not 9).
        unit = math.gcd(STREAM_BITS, *widths)  # a power of two
        buf = Signal(cap, name="buf")
        fill_units = Signal(range(cap // unit + 1), name="fill_units")
        fill = fill_units << (unit.bit_length() - 1)
        width_units = Signal(range(word_max // unit + 1))
        with m.Switch(target):
            for index, w in enumerate(widths):
                with m.Case(index):
                    m.d.comb += width_units.eq(w // unit)
        # `fill_units >= width_units` (a word is complete) is a register, computed from the
        # next `fill_units`: the word write's enable then starts at flip-flops and the grant.
        word_ready = Signal(name="word_ready")
        write = Signal()
        m.d.comb += write.eq(active & word_ready & ((target != 0) | self.abuf_grant))
        room = fill_units <= (cap - STREAM_BITS) // unit
        m.d.comb += self.inp.ready.eq(active & beats_some & room)
        accept = Signal()
        m.d.comb += accept.eq(self.inp.valid & self.inp.ready)
        merged = Signal(cap)
        m.d.comb += merged.eq(buf | Mux(accept, self.inp.payload.data << fill, 0))
        buf_after = Signal(cap)
        m.d.comb += buf_after.eq(merged)
        with m.If(write), m.Switch(target):
            for index, w in enumerate(widths):
                with m.Case(index):
                    m.d.comb += buf_after.eq(merged >> w)
        fill_next = Signal.like(fill_units)
        m.d.comb += fill_next.eq(
            fill_units + Mux(accept, STREAM_BITS // unit, 0) - Mux(write, width_units, 0)
        )
        m.d.sync += [
            buf.eq(buf_after),
            fill_units.eq(fill_next),
            word_ready.eq(fill_next >= width_units),
        ]
        with m.If(accept):
            m.d.sync += [
                beats_left.eq(beats_left - 1),
                beats_some.eq(~beats_one),
                beats_one.eq(beats_left == 2),
            ]
            with m.If(self.inp.payload.last & ~beats_one):
                m.d.comb += self.error.eq(1)

        # Word writes.
        a_bits, b_bits, _ = widths
        m.d.comb += [
            self.abuf_addr.eq(addr),
            self.abuf_data.eq(buf[:a_bits]),
            self.abuf_en.eq(write & (target == 0)),
            self.wbuf_addr.eq(addr),
            self.wbuf_data.eq(buf[:b_bits]),
            self.wbuf_en.eq(write & (target == 1)),
            self.bias_addr.eq(addr),
            self.bias_data.eq(buf[:32]),
            self.bias_en.eq(write & (target == 2)),
        ]
        with m.If(write):
            m.d.sync += [
                addr.eq(addr + 1),
                words_left.eq(words_left - 1),
                words_one.eq(words_left == 2),
            ]
            with m.If(words_one):  # the last word: drop the padding, retire
                m.d.sync += [active.eq(0), fill_units.eq(0), buf.eq(0), word_ready.eq(0)]
                m.d.comb += [self.retired.eq(1), self.signal.eq(signal_q)]
        return m
