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

from amaranth import Cat, Module, Mux, Signal, signed
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

    Dataflow
        PE (r, j) owns ``C[r, j*lanes : (j+1)*lanes]``. ``A`` rows enter from the left skewed by
        r cycles and hop one PE right per cycle; B's columns enter from the top skewed by j and
        hop one PE down per cycle, so PE (r, j) sees beat k at cycle ``t_k + r + j``. The flags
        (valid, first, last) travel with A.

    Double buffering and flow control
        When a PE finishes a sum it copies it into its row's hold register in the same cycle
        as it starts the next tile's sum, so back-to-back tiles need no bubble. Hold row r is
        "full" once its last PE has copied; the drain sends full rows in order. The whole array
        advances together (one clock enable, computed from registers only); it stalls only
        if a finishing PE would overwrite a hold row that has not been drained yet (output
        back-pressure, or tiles shorter than ``rows`` outrunning the drain). So that no tile
        can be stalled behind an incomplete row, a tile's ``last`` beat is accepted at least
        ``min_tile_spacing`` cycles after the previous one.

    Throughput and latency
        One beat (``rows * cols`` MACs) per cycle. Back-to-back tiles of
        ``K >= bubble_free_k`` run without a single idle cycle when the output is always
        ready; in general a run of tiles takes at most ``sum(max(K, bubble_free_k))``
        cycles. Row 0 of a tile is valid ``latency = pe_cols + 3`` cycles after its ``last``
        beat is accepted; row r follows r cycles later.

    Resources
        ``rows * pe_cols`` PEs (see the provider's ``dsps_per_pe``), two ``acc_bits`` registers
        per output (accumulator and hold), the skew registers (``rows * (rows - 1) / 2``
        activations, ``pe_cols * (pe_cols - 1) / 2`` weight groups) and a ``rows``-to-1 row
        multiplexer on the drain.
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
        """Cycles from accepting a tile's ``last`` beat to its row 0 being valid (no stalls)."""
        return self.pe_cols + ProcessingElement.latency

    @property
    def min_tile_spacing(self) -> int:
        """Fewest cycles between two accepted ``last`` beats.

        ``pe_cols + 1``: a tile's wave reaches hold row r only after the previous tile's row r
        has been complete for a cycle, so with the output ready it has been drained (the
        stall test reads registers only, keeping ``o.ready`` out of the array's clock enable),
        and a stall on back-pressure never freezes a half-written older row.
        ``> (rows + pe_cols - 2) / 2``: whenever a finishing PE stalls on an undrained row,
        every older tile's rows are complete, so the drain always proceeds (no deadlock).
        """
        return max(self.pe_cols + 1, (self._rows + self.pe_cols - 2) // 2 + 1)

    @property
    def bubble_free_k(self) -> int:
        """Shortest K for which back-to-back tiles never stall when the output is always
        ready: ``min_tile_spacing``, and ``rows`` since the drain sends one row per cycle."""
        return max(self._rows, self.min_tile_spacing)

    def elaborate(self, platform):
        m = Module()
        rows, pe_cols, lanes = self._rows, self.pe_cols, self._macp.lanes

        # Processing elements.
        pes = [[self._macp.pe(k_max=self._k_max) for _ in range(pe_cols)] for _ in range(rows)]
        for r in range(rows):
            for j in range(pe_cols):
                m.submodules[f"pe_{r}_{j}"] = pes[r][j]

        # Flow control: the array steps as one; see the class docstring.
        step = Signal()
        stall = Signal()
        full = Signal(rows)
        spacing = Signal(range(self.min_tile_spacing), name="spacing_left")
        tile_start = Signal(init=1)
        m.d.comb += [
            stall.eq(Cat(pes[r][0].done & full[r] for r in range(rows)).any()),
            step.eq(~stall),
            self.i.ready.eq(step & ~(self.i.payload.last & (spacing != 0))),
        ]
        accepted = Signal()
        m.d.comb += accepted.eq(self.i.valid & self.i.ready)
        with m.If(accepted):
            m.d.sync += tile_start.eq(self.i.payload.last)
        with m.If(step):
            with m.If(accepted & self.i.payload.last):
                m.d.sync += spacing.eq(self.min_tile_spacing - 1)
            with m.Elif(spacing != 0):
                m.d.sync += spacing.eq(spacing - 1)

        # Row inputs: A lane r and the beat's flags, delayed r steps (skew), then one hop per PE.
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
                        pe.en.eq(step),
                    ]
                a_q = Signal(self._macp.a_shape, name=f"a_{r}_{hop}", reset_less=True)
                valid_q = Signal(name=f"valid_{r}_{hop}")
                first_q = Signal(name=f"first_{r}_{hop}")
                last_q = Signal(name=f"last_{r}_{hop}")
                if hop < r + pe_cols - 1:
                    with m.If(step):
                        m.d.sync += [
                            a_q.eq(a),
                            valid_q.eq(valid),
                            first_q.eq(first),
                            last_q.eq(last),
                        ]
                    a, valid, first, last = a_q, valid_q, first_q, last_q

        # Column inputs: the PE column's weight lanes, delayed j steps, then one hop per row.
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
                    with m.If(step):
                        m.d.sync += w_q.eq(w)
                    w = w_q

        # Hold registers (the second accumulator buffer): written as each PE finishes.
        row_layout = data.ArrayLayout(signed(self._acc_bits), self._cols)
        hold = [Signal(row_layout, name=f"hold_{r}", reset_less=True) for r in range(rows)]
        drain_row = Signal(range(rows))
        following = Signal.like(drain_row)  # the row drained after `drain_row`
        drained = Signal()
        fills = Signal(rows)  # hold row r is written this cycle
        m.d.comb += [
            drained.eq(self.o.valid & self.o.ready),
            following.eq(Mux(drain_row == rows - 1, 0, drain_row + 1)),
            fills.eq(Cat(step & pes[r][pe_cols - 1].done for r in range(rows))),
        ]
        for r in range(rows):
            with m.If(step):
                for j in range(pe_cols):
                    with m.If(pes[r][j].done):
                        for lane in range(lanes):
                            m.d.sync += hold[r][j * lanes + lane].eq(pes[r][j].acc[lane])
            leaves = drained & (drain_row == r)
            m.d.sync += full[r].eq((full[r] & ~leaves) | fills[r])
        with m.If(drained):
            m.d.sync += drain_row.eq(following)

        # Drain: full hold rows in order, one per cycle. `o.valid` is a register, loaded
        # with the next cycle's `full[drain_row]` (what a consumer's ready logic starts from).
        # Both candidates are formed from registers (this row's if nothing drains, the next
        # row's if this one does) and `o.ready` only selects between them, so the consumer's
        # ready enters the last logic level.
        o_valid = Signal(name="drain_valid")
        kept = full.bit_select(drain_row, 1) | fills.bit_select(drain_row, 1)
        if rows == 1:
            moved_on = fills[0]  # the only row drains: full again only if written now
        else:
            moved_on = full.bit_select(following, 1) | fills.bit_select(following, 1)
        m.d.sync += o_valid.eq(Mux(drained, moved_on, kept))
        m.d.comb += self.o.valid.eq(o_valid)
        with m.Switch(drain_row):
            for r in range(rows):
                with m.Case(r):
                    m.d.comb += self.o.payload.acc.eq(hold[r])
        m.d.comb += self.o.payload.last.eq(drain_row == rows - 1)
        return m
