"""Output packing: result words of low-bit codes to 64-bit stream beats.

:class:`BeatPacker` implements the output-stream format of :mod:`ttaccel.spec.isa`: per
instruction (a streaming GEMM or a STORE) its words, each ``lanes`` codes at the format's
width, packed back to back (lane 0 in the low bits, :mod:`ttaccel.spec.packing` order), the
last beat of the instruction zero padded.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..spec.formats import FORMATS
from ..spec.isa import STREAM_BITS
from .interfaces import STREAM_BEAT, positive_int
from .requant import OutFormat

__all__ = ["BeatPacker"]


class BeatPacker(wiring.Component):
    """Pack words of ``lanes`` codes into 64-bit beats.

    Parameters (keyword-only)
        ``lanes``: codes per word (the array's rows).

    Input ``i`` (``stream``), one word per transfer
        ``codes``: ``ArrayLayout(signed(8), lanes)``, legal codes of ``fmt`` in int8
        containers; ``fmt``: :class:`~ttaccel.hw.requant.OutFormat`; ``end``: the last word of
        an instruction (the beat holding its last bit is sent zero padded before any later
        word is accepted); ``final``: with ``end``, that beat carries ``last`` (TLAST).

    Output ``o`` (``stream``): :data:`~ttaccel.hw.interfaces.STREAM_BEAT`.

    ``idle``: nothing is held (no bits, no pending beat).

    Throughput and latency
        One word per cycle while a word has at most 64 bits, else one beat per cycle
        (``ceil(bits / 64)`` cycles per word); a beat leaves 4 cycles after the transfer that
        completes it (input register, placing register, gearbox register, then a 2-entry beat
        FIFO). ``i.ready`` is a register: low while the input skid holds a word (the
        input register could not take it), which happens only while the gearbox waits, so
        the packer holds one word more under back-pressure and the same cycles without.
    """

    def __init__(self, *, lanes: int):
        self._lanes = positive_int(lanes, "Lanes")
        super().__init__(
            {
                "i": In(stream.Signature(self.input_layout)),
                "o": Out(stream.Signature(STREAM_BEAT)),
                "idle": Out(1),
            }
        )

    lanes = property(lambda self: self._lanes)

    @property
    def input_layout(self) -> data.StructLayout:
        return data.StructLayout(
            {
                "codes": data.ArrayLayout(signed(8), self._lanes),
                "fmt": OutFormat,
                "end": 1,
                "final": 1,
            }
        )

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes
        word_max = lanes * 8
        cap = word_max + STREAM_BITS - 1

        # Compaction: each lane's field of the format, lane 0 lowest (binary: +1 -> 1), into
        # the input register (so no path runs from the producer through the shifter).
        word_d = Signal(word_max)
        bits_d = Signal(range(word_max + 1))
        codes = self.i.payload.codes
        with m.Switch(self.i.payload.fmt):
            for code in OutFormat:
                fmt = FORMATS[code.name.lower()]
                with m.Case(code):
                    if fmt.name == "binary":
                        fields = [~codes[n][7] for n in range(lanes)]
                    else:
                        fields = [codes[n][: fmt.bits] for n in range(lanes)]
                    m.d.comb += [word_d.eq(Cat(*fields)), bits_d.eq(lanes * fmt.bits)]
        word = Signal(word_max, name="word", reset_less=True)
        word_bits = Signal(range(word_max + 1), name="word_bits", reset_less=True)
        word_valid = Signal(name="word_valid")
        word_end = Signal(name="word_end")
        word_final = Signal(name="word_final")
        take = Signal()  # the gearbox takes the placed word
        advance = Signal()  # the registered word moves to the placing register
        placed_valid = Signal(name="placed_valid")
        # Input skid (step 50): `i.ready` is a register (`~skid_valid`), so the producer's
        # pop (the requantizer's output FIFO and the result descriptors) does not wait for
        # the gearbox's tests. A compacted word goes into the input register when that can
        # load (`word_free`), else into the skid, which moves up first when it can.
        skid = Signal(data.StructLayout({"word": word_max, "bits": len(bits_d), "end": 1,
                                         "final": 1}), name="skid", reset_less=True)  # fmt: skip
        skid_valid = Signal(name="skid_valid")
        incoming = Signal.like(skid)
        source = Signal.like(skid)  # the skid's word, else the incoming one
        word_free = Signal()  # the input register is empty or its word moves on
        m.d.comb += [
            incoming.eq(Cat(word_d, bits_d, self.i.payload.end, self.i.payload.final)),
            advance.eq(word_valid & (~placed_valid | take)),
            word_free.eq(~word_valid | ~placed_valid | take),
            self.i.ready.eq(~skid_valid),
            source.eq(Mux(skid_valid, skid, incoming)),
        ]
        with m.If(word_free):
            m.d.sync += [
                word_valid.eq(skid_valid | self.i.valid),
                word.eq(source.word),
                word_bits.eq(source.bits),
                word_end.eq(source.end),
                word_final.eq(source.final),
                skid_valid.eq(0),
            ]
        with m.Elif(self.i.valid & ~skid_valid):
            m.d.sync += [skid.eq(incoming), skid_valid.eq(1)]

        # Placing: the word shifted to where it lands in the gearbox, the bits of its
        # instruction before it mod 64 (`position`, a register): the gearbox holds those bits
        # less the whole beats that left (a word is taken only once the bits of an earlier
        # instruction have all left and fewer than 64 remain), so no barrel shift waits for
        # the gearbox's fill.
        low = (STREAM_BITS - 1).bit_length()
        position = Signal(low, name="position")
        placed = Signal(cap, name="placed", reset_less=True)
        placed_bits = Signal.like(word_bits, name="placed_bits")
        placed_end = Signal(name="placed_end")
        placed_final = Signal(name="placed_final")
        with m.If(advance):
            m.d.sync += [
                placed.eq(word << position),
                placed_bits.eq(word_bits),
                placed_end.eq(word_end),
                placed_final.eq(word_final),
                position.eq(Mux(word_end, 0, position + word_bits)),  # mod 64
            ]
        with m.If(advance | take):
            m.d.sync += placed_valid.eq(advance)

        # Beat FIFO: decouples o.ready from the gearbox (and so from i.ready).
        m.submodules.beats = beats = fifo.SyncFIFO(width=STREAM_BITS + 1, depth=2)
        m.d.comb += [
            self.o.valid.eq(beats.r_rdy),
            self.o.payload.data.eq(beats.r_data[:STREAM_BITS]),
            self.o.payload.last.eq(beats.r_data[STREAM_BITS]),
            beats.r_en.eq(self.o.ready),
        ]

        # Gearbox: `fill` valid bits in `buf` (bits above are zero); a beat leaves when 64 bits
        # are there, or the rest of an instruction's bits when it is flushing.
        buf = Signal(cap, name="buf")
        fill = Signal(range(cap + 1), name="fill")
        flushing = Signal(name="flushing")
        final = Signal(name="final")
        # Two tests of the gearbox's state are registers, computed from its next state, so
        # `take` (and the input register's `word_free`) is a function of three flip-flops and
        # the beat FIFO's `w_rdy` only: `can_emit`, a beat is there to leave;
        # `take_if_emit`, a word fits once that beat has left.
        can_emit = Signal(name="can_emit")
        take_if_emit = Signal(init=1, name="take_if_emit")
        emit = Signal()
        m.d.comb += [
            emit.eq(can_emit & beats.w_rdy),
            beats.w_en.eq(emit),
            beats.w_data.eq(Cat(buf[:STREAM_BITS], final & flushing & (fill <= STREAM_BITS))),
        ]
        fill_after = Signal.like(fill)
        buf_after = Signal.like(buf)
        m.d.comb += [
            fill_after.eq(Mux(emit, Mux(fill > STREAM_BITS, fill - STREAM_BITS, 0), fill)),
            buf_after.eq(Mux(emit, buf >> STREAM_BITS, buf)),
        ]
        flush_after = Signal()
        m.d.comb += [
            flush_after.eq(flushing & (fill_after != 0)),
            # = word_valid & (fill_after < 64) & ~flush_after: without a beat to leave, the
            # word fits (fill < 64 and nothing flushing); with one, once it has left.
            take.eq(placed_valid & Mux(can_emit, beats.w_rdy & take_if_emit, 1)),
        ]
        accept = take
        fill_next = Signal.like(fill)
        flush_next = Signal()
        fill_next_emitted = Signal.like(fill)
        m.d.comb += [
            fill_next.eq(fill_after + Mux(accept, placed_bits, 0)),
            flush_next.eq(flush_after | (accept & placed_end)),
            fill_next_emitted.eq(Mux(fill_next > STREAM_BITS, fill_next - STREAM_BITS, 0)),
        ]
        m.d.sync += [
            buf.eq(buf_after | Mux(accept, placed, Const(0, unsigned(1)))),
            fill.eq(fill_next),
            flushing.eq(flush_next),
            can_emit.eq((fill_next >= STREAM_BITS) | (flush_next & (fill_next != 0))),
            take_if_emit.eq(
                (fill_next_emitted < STREAM_BITS) & ~(flush_next & (fill_next_emitted != 0))
            ),
        ]
        with m.If(accept):
            m.d.sync += final.eq(placed_final)

        m.d.comb += self.idle.eq(
            ~skid_valid & ~word_valid & ~placed_valid & (fill == 0) & ~flushing & ~beats.r_rdy
        )
        return m
