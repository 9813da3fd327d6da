"""The N:M sparse GEMM mode: PEs that select their activation by index, and the group
assembler that gives every array beat the ``M`` activations of its group.

Design (``AccelConfig.sparse_nm = (N, M)``, ``M = 2 N``; the ISA's side is :mod:`ttaccel.spec.isa`,
"Sparse GEMMs")
=====================================================================================

*Which operand is sparse.* The weights (the B operand): in every group of ``M`` consecutive
reduction steps, at most ``N`` weights of an output column are non-zero (2:4 keeps half).
The activations are dense int8 and stay as they are in ABUF, so a sparse layer reads the
same A-words as its dense counterpart and its results feed the next layer unchanged.

*WBUF format.* A B-word keeps ``cols`` lanes; in a sparse build each lane is the kept
weight's code (its low ``weight bits``) with its ``log2(M)``-bit index in the group above it
(``StructLayout({"code", "index"})`` per lane, lane 0 in the low bits, the order of
:func:`ttaccel.spec.isa.pack_b_words`). Group ``g`` of every column of a column tile is the
``N`` consecutive B-words ``g*N .. g*N + N - 1``: each B-word is one array beat, so a tile of
reduction ``k`` is ``k * N / M`` beats (half for 2:4) where a dense tile is ``k``.

*Activations per beat.* Beat ``b`` of group ``g`` may name any of the group's ``M`` A-words, so
the array is fed whole groups. The execute engine reads two A-words per beat (words ``2b``
and ``2b + 1`` of the tile's reduction, from ABUF and from its second copy, the one
``b_from_abuf`` also uses), which over a group's ``N`` beats is exactly the group's ``M``
words: ABUF bandwidth matches the halved beat count, which is why ``M / N`` is 2.
:class:`GroupAssembler` sits between the operand FIFO and the array: it collects a group's
first ``N - 1`` operand entries in registers and, with the last one, loads the group (``M``
activations per token) and the group's ``N`` weight words into an output bank, from which
the array takes the ``N`` beats on consecutive cycles while the next group fills. One beat
per cycle in steady state; a beat reaches the array :attr:`GroupAssembler.latency` = 2 cycles
after its entry reached the FIFO head (the fill register, then the output bank).

*Selection.* The activations travel down the (transposed) array's token columns as groups of
``M`` int8 values (the skew and hop registers are ``M`` times wider) and the weight travels
along its output-column row with its index; each PE's :class:`SparseSelect` provider muxes
the indexed activation of each of its token lanes into its operand register and multiplies
exactly as the dense provider does: one MAC per PE lane per beat, the same DSP48E1 or LUT
multiplier.

*Dense GEMMs on a sparse build* run unchanged in cycles per tile: their entry (one A-word,
one B-word whose index bits are ignored) is a one-beat group whose activation sits at slot
``M - 2`` and whose index is forced to ``M - 2``; it passes the assembler in one cycle.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .interfaces import positive_int
from .pe import ACTIVATION_BITS, MacProvider

__all__ = ["GroupAssembler", "SparseSelect"]


def _group_size(group: object) -> int:
    group = positive_int(group, "Group")
    if group not in (2, 4, 8):
        raise ValueError(f"Group must be 2, 4 or 8, not {group!r}")
    return group


class SparseSelect(MacProvider):
    """A provider whose PEs pick each activation lane out of a group of ``group`` by index.

    Ports (seen by :class:`~ttaccel.hw.pe.ProcessingElement`): ``a`` is
    ``StructLayout({"a": inner.a_shape, "index": unsigned(log2 group)})`` (the weight, in the
    engine's transposed array, and its index), each ``w`` lane is
    ``ArrayLayout(inner.weight_shape, group)``. The operand register loads
    ``inner.operands(a.a, [w[lane][a.index] for lane])``; products, accumulator widths,
    DSP use and timing are ``inner``'s.
    """

    def __init__(self, *, inner: MacProvider, group: int):
        if not isinstance(inner, MacProvider):
            raise TypeError(f"Inner provider must be a MacProvider, not {inner!r}")
        self._inner = inner
        self._group = _group_size(group)
        self.weight_format = inner.weight_format
        self.lanes = inner.lanes
        self.name = f"{inner.name}-select{self._group}"

    inner = property(lambda self: self._inner)
    group = property(lambda self: self._group)

    @property
    def index_bits(self) -> int:
        return (self._group - 1).bit_length()

    @property
    def a_shape(self):
        return data.StructLayout({"a": self._inner.a_shape, "index": unsigned(self.index_bits)})

    @property
    def weight_shape(self):
        return data.ArrayLayout(self._inner.weight_shape, self._group)

    def product_range(self) -> tuple[int, int]:
        return self._inner.product_range()

    @property
    def dsps_per_pe(self) -> int:
        return self._inner.dsps_per_pe

    def operands(self, m, a, w):
        chosen = Signal(data.ArrayLayout(self._inner.weight_shape, self.lanes), name="chosen")
        for lane in range(self.lanes):
            m.d.comb += chosen[lane].eq(w[lane][a.index])
        return self._inner.operands(m, a.a, chosen)

    def products(self, m, a, w):
        return self._inner.products(m, a, w)

    def __repr__(self) -> str:
        return f"SparseSelect(inner={self._inner!r}, group={self._group})"


class GroupAssembler(wiring.Component):
    """Operand entries (two A-words and one weight word per beat) -> array beats that carry a
    whole group of ``group`` activations per token; see the module docstring.

    Parameters (keyword-only): ``beat_layout``, the array's input layout (``a``: the weight
    lanes of a :class:`SparseSelect` array, ``w``: ``tokens`` lanes of ``group`` int8,
    ``last``); ``tokens``; ``group`` (``M``: 2, 4 or 8; ``N = M / 2`` beats per group);
    ``macs_shape``, the shape of the per-beat MAC count that travels with each beat.

    Ports
        ``i`` (``stream``, :attr:`entry_layout`): ``pair``, the beat's two A-words (words
        ``2s``, ``2s + 1`` of its group for beat ``s``); ``weights``, the beat's weight lanes
        with their indices; ``sparse``: part of a sparse group; ``group_end``: the group's
        last beat (always set for a dense beat, a one-beat group whose activation is
        ``pair[0]`` at slot ``M - 2``, where its index must point); ``last``, ``macs``.
        ``o`` (``stream``): ``beat`` (``beat_layout``) and ``macs``.

    Timing: one beat per cycle in steady state; an entry's beat is at ``o`` ``latency`` = 2
    cycles after the entry is at ``i`` for a sparse group (fill register, output bank), 1 for
    a dense beat. ``i.ready`` is high for a non-final entry of a group (its fill slot is
    always free: the previous group's final entry emptied the fill registers); for a final
    entry, while the output bank is empty or sends its last beat.
    """

    latency = 2

    def __init__(self, *, beat_layout: data.StructLayout, tokens: int, group: int, macs_shape):
        self._beat_layout = beat_layout
        self._tokens = positive_int(tokens, "Tokens")
        self._group = _group_size(group)
        self._macs_shape = macs_shape
        word = data.ArrayLayout(signed(ACTIVATION_BITS), self._tokens)
        self._entry_layout = data.StructLayout(
            {
                "pair": data.ArrayLayout(word, 2),
                "weights": beat_layout["a"].shape,
                "sparse": 1,
                "group_end": 1,
                "last": 1,
                "macs": macs_shape,
            }
        )
        out_layout = data.StructLayout({"beat": beat_layout, "macs": macs_shape})
        super().__init__(
            {
                "i": In(stream.Signature(self._entry_layout)),
                "o": Out(stream.Signature(out_layout)),
            }
        )

    entry_layout = property(lambda self: self._entry_layout)
    group = property(lambda self: self._group)

    @property
    def beats_per_group(self) -> int:
        """``N = M / 2``."""
        return self._group // 2

    def elaborate(self, platform):
        m = Module()
        beats, tokens = self.beats_per_group, self._tokens
        entry = self.i.payload
        slot = data.StructLayout(
            {"weights": self._entry_layout["weights"].shape, "last": 1, "macs": self._macs_shape}
        )

        # Fill registers: a group's first N - 1 entries (A-word pairs and their beats).
        fill_pairs = [
            Signal(self._entry_layout["pair"].shape, name=f"fill_pair_{s}", reset_less=True)
            for s in range(beats - 1)
        ]
        fill_beats = [
            Signal(slot, name=f"fill_beat_{s}", reset_less=True) for s in range(beats - 1)
        ]
        filled = Signal(range(beats), name="filled")

        # Output bank: the group's activations per token and its N beats.
        group_layout = data.ArrayLayout(
            data.ArrayLayout(signed(ACTIVATION_BITS), self._group), tokens
        )
        bank = Signal(group_layout, name="bank", reset_less=True)
        bank_beats = Signal(data.ArrayLayout(slot, beats), name="bank_beats", reset_less=True)
        at = Signal(range(beats), name="bank_at")  # the beat offered now
        offered = Signal(name="bank_valid")

        current = bank_beats[at]
        m.d.comb += [
            self.o.valid.eq(offered),
            self.o.payload.beat.a.eq(current.weights),
            self.o.payload.beat.w.eq(bank),
            self.o.payload.beat.last.eq(current.last),
            self.o.payload.macs.eq(current.macs),
        ]
        sent = self.o.valid & self.o.ready
        bank_free = ~offered | (sent & (at == beats - 1))
        m.d.comb += self.i.ready.eq(~entry.group_end | bank_free)
        taken = self.i.valid & self.i.ready

        # The output bank steps through its beats ...
        with m.If(sent):
            with m.If(at == beats - 1):
                m.d.sync += offered.eq(0)
            with m.Else():
                m.d.sync += at.eq(at + 1)
        # ... and loads a group with its final entry (a dense beat: a group of one).
        with m.If(taken & entry.group_end):
            for r in range(tokens):
                for s in range(beats):
                    pair = entry.pair if s == beats - 1 else fill_pairs[s]
                    for h in range(2):
                        m.d.sync += bank[r][2 * s + h].eq(pair[h][r])
            for s in range(beats - 1):
                m.d.sync += bank_beats[s].eq(fill_beats[s])
            m.d.sync += [
                bank_beats[beats - 1].weights.eq(entry.weights),
                bank_beats[beats - 1].last.eq(entry.last),
                bank_beats[beats - 1].macs.eq(entry.macs),
                at.eq(Mux(entry.sparse, 0, beats - 1)),
                offered.eq(1),
                filled.eq(0),
            ]
        # A group's other entries go to the fill registers.
        with m.If(taken & ~entry.group_end):
            with m.Switch(filled):
                for s in range(beats - 1):
                    with m.Case(s):
                        m.d.sync += [
                            fill_pairs[s].eq(entry.pair),
                            fill_beats[s].weights.eq(entry.weights),
                            fill_beats[s].last.eq(entry.last),
                            fill_beats[s].macs.eq(entry.macs),
                        ]
            m.d.sync += filled.eq(filled + 1)
        return m
