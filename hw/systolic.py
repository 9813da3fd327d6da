"""An output-stationary systolic MAC array with double-buffered accumulators.

Why output-stationary: every GEMM of a TT contraction (``spec/tt.py``: ``rows = B * ...``,
``K = r * m``, ``N = n * r'``) has many rows and a short K and N, and changes its weights
(the core) far less often than its rows. Keeping each output in a PE's accumulator means
int8 operands stream in once per tile and only finished sums stream out, so no partial sums
ever leave the array (a weight-stationary array would have to re-load weights every K x N
block and move wide partial sums down the columns), and the K loop, whose length differs per
stage, needs no reconfiguration: a tile is simply a run of beats ending in ``last``.
"""

from __future__ import annotations

import math

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .interfaces import positive_int
from .pe import MacProvider, ProcessingElement

__all__ = ["SystolicArray"]


class SystolicArray(wiring.Component):
    """``rows x cols`` output-stationary array computing tiles ``C = A @ B``.

    Parameters (keyword-only)
        ``rows``, ``cols``: the tile's output shape; ``macp``: the :class:`MacProvider` (weight
        format; ``cols`` must be a multiple of its ``lanes``); ``k_max``: the longest K a tile
        may have, which sets ``acc_bits`` so that accumulators never overflow.

    Input ``i`` (``stream``), one beat per k of a tile
        ``a``: ``ArrayLayout(macp.a_shape, rows)``, column k of A (lane r is ``A[r, k]``;
        ``a_shape`` is ``signed(8)`` except for operand-selecting providers);
        ``w``: ``ArrayLayout(weight_shape, cols)``, row k of B (lane c is ``B[k, c]``);
        ``last``: marks k = K - 1. A tile is 1 to ``k_max`` beats; the next beat starts the
        next tile.

    Output ``o`` (``stream``), ``rows`` beats per tile, in tile order
        ``acc``: ``ArrayLayout(signed(acc_bits), cols)``, row r of C (exact, never wraps);
        ``last``: marks row ``rows - 1``.

    Output ``drained_acc`` (``ArrayLayout(signed(acc_bits), cols)``)
        The ``acc`` of the row transferred on ``o`` in the cycle before (undefined after a
        cycle without a transfer). It is the same select as ``o.payload.acc`` cut into two
        levels with a register between them: ``drain_group`` entries each into one
        register per group, near the hold rows they read, then the group (see Resources).
        A consumer that registers the row anyway (the engine's drain) takes it from here a
        cycle later instead, and the wide one-cycle select into its register disappears.

    Dataflow
        PE (r, j) owns ``C[r, j*lanes : (j+1)*lanes]``. ``A`` rows enter from the left skewed by
        r cycles and hop one PE right per cycle; B's columns enter from the top skewed by j and
        hop one PE down per cycle, so PE (r, j) sees beat k at cycle ``t_k + r + j``. The flags
        (valid, first, last) travel with A.

    Hold slots and flow control
        When a PE finishes a sum it copies it into its segment of its row's next hold slot
        in the same cycle as it starts the next tile's sum, so back-to-back tiles need no
        bubble. Each row has ``hold_slots`` slots, filled by the tiles in turn; the drain
        sends full rows in order (row 0 to ``rows - 1`` of one slot, then the next slot).
        The array itself never stalls: it has no clock enable, and a bubble on the input is
        simply an invalid beat. Instead a tile's ``last`` beat is accepted only while a slot
        is free (a credit counter, ``in_flight``), so a finishing PE always finds its slot
        drained, whatever the output's back-pressure. Every control input of the array
        (``i.ready``, the PEs' flags, ``o.valid``) starts from registers and fans out to one
        row or one PE, not to the whole array.

    Throughput and latency
        One beat (``rows * cols`` MACs) per cycle. Back-to-back tiles of
        ``K >= bubble_free_k`` (``rows``) run without a single idle cycle when the output is
        always ready; shorter tiles run at the drain's rate, ``rows`` cycles per tile. Row 0
        of a tile is valid ``latency = pe_cols + 3`` cycles after its ``last`` beat is
        accepted; row r follows r cycles later.

    Resources
        ``rows * pe_cols`` PEs (see the provider's ``dsps_per_pe``), ``1 + hold_slots``
        ``acc_bits`` registers per output (accumulator and hold slots), the skew registers
        (``rows * (rows - 1) / 2`` activations, ``pe_cols * (pe_cols - 1) / 2`` weight
        groups) and a ``hold_slots * rows``-to-1 row multiplexer on the drain: for
        ``drained_acc`` in two levels, ``drain_group``-to-1 into ``drain_groups`` row
        registers, then ``drain_groups``-to-1.
    """

    def __init__(self, *, rows: int, cols: int, macp: MacProvider, k_max: int):
        self._rows = positive_int(rows, "Rows")
        self._cols = positive_int(cols, "Cols")
        if not isinstance(macp, MacProvider):
            raise TypeError(f"MAC provider must be a MacProvider, not {macp!r}")
        if cols % macp.lanes:
            raise ValueError(
                f"Cols must be a multiple of the MAC provider's {macp.lanes} lanes, not {cols!r}"
            )
        self._macp = macp
        self._k_max = positive_int(k_max, "K max")
        self._acc_bits = macp.accumulator_bits(k_max)
        super().__init__(
            {
                "i": In(stream.Signature(self.input_layout)),
                "o": Out(stream.Signature(self.output_layout)),
                "drained_acc": Out(self.output_layout["acc"].shape),
            }
        )

    rows = property(lambda self: self._rows)
    cols = property(lambda self: self._cols)
    macp = property(lambda self: self._macp)
    k_max = property(lambda self: self._k_max)
    acc_bits = property(lambda self: self._acc_bits)

    @property
    def pe_cols(self) -> int:
        """Columns of processing elements: ``cols / macp.lanes``."""
        return self._cols // self._macp.lanes

    @property
    def input_layout(self) -> data.StructLayout:
        return data.StructLayout(
            {
                "a": data.ArrayLayout(self._macp.a_shape, self._rows),
                "w": data.ArrayLayout(self._macp.weight_shape, self._cols),
                "last": 1,
            }
        )

    @property
    def output_layout(self) -> data.StructLayout:
        return data.StructLayout(
            {
                "acc": data.ArrayLayout(signed(self._acc_bits), self._cols),
                "last": 1,
            }
        )

    @property
    def latency(self) -> int:
        """Cycles from accepting a tile's ``last`` beat to its row 0 being valid (output ready)."""
        return self.pe_cols + ProcessingElement.latency

    @property
    def hold_slots(self) -> int:
        """Hold buffers per row: ``max(2, 1 + ceil((pe_cols + 4) / rows))``.

        A tile's ``last`` beat takes a slot; the slot frees two cycles after the tile's last
        row is drained (``tile_out`` is registered). With the output ready, tile
        ``i + slots`` may then be accepted ``latency + rows + 1`` cycles after tile ``i``;
        tiles of ``K >= rows`` arrive every ``K`` cycles, so
        ``(slots - 1) * rows >= latency + 1`` keeps them from ever waiting for a slot
        (and a run of shorter tiles from ever starving the drain)."""
        return max(2, 1 + -(-(self.latency + 1) // self._rows))

    @property
    def drain_group(self) -> int:
        """Hold entries (``hold_slots * rows``, in drain order) per first-level group of
        ``drained_acc``'s select: ``ceil(sqrt(entries))``, so both levels are about as wide."""
        return math.isqrt(self.hold_slots * self._rows - 1) + 1

    @property
    def drain_groups(self) -> int:
        """First-level groups of ``drained_acc``'s select, each one registered row."""
        return -(-self.hold_slots * self._rows // self.drain_group)

    @property
    def bubble_free_k(self) -> int:
        """Shortest K for which back-to-back tiles never wait when the output is always
        ready: ``rows``, since the drain sends one row per cycle."""
        return self._rows

    def elaborate(self, platform):
        m = Module()
        rows, pe_cols, lanes, slots = self._rows, self.pe_cols, self._macp.lanes, self.hold_slots

        # Processing elements: always enabled (no clock enable anywhere in the array).
        pes = [[self._macp.pe(k_max=self._k_max) for _ in range(pe_cols)] for _ in range(rows)]
        for r in range(rows):
            for j in range(pe_cols):
                m.submodules[f"pe_{r}_{j}"] = pes[r][j]
                m.d.comb += pes[r][j].en.eq(1)

        # Admission: a tile's `last` beat needs a free hold slot (a credit); other beats always
        # enter. `in_flight` counts tiles accepted and not yet drained; `slot_free` is its
        # next-state test, so `i.ready` reads a register and the input's own `last`.
        in_flight = Signal(range(slots + 1))
        slot_free = Signal(init=1)
        tile_start = Signal(init=1)
        accepted = Signal()
        tile_in = Signal()  # a `last` beat enters: the tile takes a slot
        tile_out = Signal()  # a tile's last row left in the cycle before: its slot frees
        m.d.comb += [
            self.i.ready.eq(~self.i.payload.last | slot_free),
            accepted.eq(self.i.valid & self.i.ready),
            tile_in.eq(accepted & self.i.payload.last),
        ]
        in_flight_next = in_flight + tile_in - tile_out
        m.d.sync += [in_flight.eq(in_flight_next), slot_free.eq(in_flight_next < slots)]
        with m.If(accepted):
            m.d.sync += tile_start.eq(self.i.payload.last)

        # Row inputs: A lane r and the beat's flags, delayed r cycles (skew), then one hop per PE.
        for r in range(rows):
            a = self.i.payload.a[r]
            valid, first, last = accepted, tile_start, self.i.payload.last
            for hop in range(r + pe_cols):
                if hop >= r:
                    pe = pes[r][hop - r]
                    m.d.comb += [
                        pe.a.eq(a),
                        pe.valid.eq(valid),
                        pe.first.eq(first),
                        pe.last.eq(last),
                    ]
                if hop < r + pe_cols - 1:
                    a_q = Signal(self._macp.a_shape, name=f"a_{r}_{hop}", reset_less=True)
                    valid_q = Signal(name=f"valid_{r}_{hop}")
                    first_q = Signal(name=f"first_{r}_{hop}")
                    last_q = Signal(name=f"last_{r}_{hop}")
                    m.d.sync += [a_q.eq(a), valid_q.eq(valid), first_q.eq(first), last_q.eq(last)]
                    a, valid, first, last = a_q, valid_q, first_q, last_q

        # Column inputs: the PE column's weight lanes, delayed j cycles, then one hop per row.
        w_layout = data.ArrayLayout(self._macp.weight_shape, lanes)
        for j in range(pe_cols):
            w = Signal(w_layout, name=f"w_in_{j}")
            for lane in range(lanes):
                m.d.comb += w[lane].eq(self.i.payload.w[j * lanes + lane])
            for hop in range(j + rows):
                if hop >= j:
                    m.d.comb += pes[hop - j][j].w.eq(w)
                if hop < j + rows - 1:
                    w_q = Signal(w_layout, name=f"w_{j}_{hop}", reset_less=True)
                    m.d.sync += w_q.eq(w)
                    w = w_q

        # Hold slots (the accumulators' second buffers), entry e = slot * rows + row. Each PE
        # copies a finished sum into its segment of its row's next slot (a local pointer that
        # advances with every sum, so tiles fill the slots in turn); an entry is full once its
        # last PE column has copied, and empties when the drain sends it.
        row_layout = data.ArrayLayout(signed(self._acc_bits), self._cols)
        entries = slots * rows
        hold = [
            Signal(row_layout, name=f"hold_{e // rows}_{e % rows}", reset_less=True)
            for e in range(entries)
        ]
        full = Signal(entries)
        fills = Signal(entries)  # entry e is completed this cycle
        drain_at = Signal(range(entries))
        drain_row = Signal(range(rows))
        following = Signal.like(drain_at)  # the entry drained after `drain_at`
        drained = Signal()
        m.d.comb += [
            drained.eq(self.o.valid & self.o.ready),
            following.eq(Mux(drain_at == entries - 1, 0, drain_at + 1)),
        ]
        # Registered, so the consumer's ready (through `drained`) ends at this flip-flop
        # rather than running on through the slot count into `i.ready`.
        m.d.sync += tile_out.eq(drained & (drain_row == rows - 1))
        for r in range(rows):
            for j in range(pe_cols):
                pe = pes[r][j]
                slot = Signal(range(slots), name=f"slot_{r}_{j}")
                with m.If(pe.done):
                    m.d.sync += slot.eq(Mux(slot == slots - 1, 0, slot + 1))
                    with m.Switch(slot):
                        for s in range(slots):
                            with m.Case(s):
                                for lane in range(lanes):
                                    m.d.sync += hold[s * rows + r][j * lanes + lane].eq(
                                        pe.acc[lane]
                                    )
                if j == pe_cols - 1:
                    for s in range(slots):
                        m.d.comb += fills[s * rows + r].eq(pe.done & (slot == s))
        for e in range(entries):
            leaves = drained & (drain_at == e)
            m.d.sync += full[e].eq((full[e] & ~leaves) | fills[e])
        with m.If(drained):
            m.d.sync += [
                drain_at.eq(following),
                drain_row.eq(Mux(drain_row == rows - 1, 0, drain_row + 1)),
            ]

        # Drain: full entries in order, one per cycle. `o.valid` is a register, loaded with the
        # next cycle's `full[drain_at]` (what a consumer's ready logic starts from). Both
        # candidates are formed from registers (this entry's if nothing drains, the next
        # entry's if this one does) and `o.ready` only selects between them, so the consumer's
        # ready enters the last logic level.
        o_valid = Signal(name="drain_valid")
        kept = full.bit_select(drain_at, 1) | fills.bit_select(drain_at, 1)
        moved_on = full.bit_select(following, 1) | fills.bit_select(following, 1)
        m.d.sync += o_valid.eq(Mux(drained, moved_on, kept))
        m.d.comb += self.o.valid.eq(o_valid)
        with m.Switch(drain_at):
            for e in range(entries):
                with m.Case(e):
                    m.d.comb += self.o.payload.acc.eq(hold[e])
        m.d.comb += self.o.payload.last.eq(drain_row == rows - 1)

        # `drained_acc`: the same select in two registered levels. `drain_at` is kept as
        # (group, entry in group) counters; every group's register loads its selected entry
        # each cycle, and the group number, registered alongside, picks one a cycle later.
        group, groups = self.drain_group, self.drain_groups
        in_group = Signal(range(group), name="drain_in_group")
        group_at = Signal(range(groups), name="drain_group_at")
        group_q = Signal.like(group_at, name="drain_group_q", reset_less=True)
        with m.If(drained):
            wraps = drain_at == entries - 1
            group_ends = in_group == group - 1
            m.d.sync += [
                in_group.eq(Mux(wraps | group_ends, 0, in_group + 1)),
                group_at.eq(Mux(wraps, 0, group_at + group_ends)),
            ]
        m.d.sync += group_q.eq(group_at)
        picks = []
        for g in range(groups):
            pick = Signal(row_layout, name=f"drain_pick_{g}", reset_less=True)
            members = hold[g * group : (g + 1) * group]
            with m.Switch(in_group):
                for k, entry in enumerate(members):
                    with m.Case(k) if k < len(members) - 1 else m.Default():
                        m.d.sync += pick.eq(entry)
            picks.append(pick)
        with m.Switch(group_q):
            for g, pick in enumerate(picks):
                with m.Case(g) if g < groups - 1 else m.Default():
                    m.d.comb += self.drained_acc.eq(pick)
        return m
