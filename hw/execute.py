"""The execute engine: GEMM and STORE instructions on the output-stationary array.

Pipeline of a GEMM (one beat = one reduction step ``kk`` of one tile)::

    address generator -> ABUF / WBUF read (1 cycle) -> SystolicArray (transposed, see
    hw/transposed.py) -> drain (column select and bias read, the bias word in the BIAS
    memory's output register, then in a fabric register) -> Requantizer -> ABUF write or
    BeatPacker -> output stream

The address generator walks the ISA's fixed loop order ``for p: for q: for t: for kk`` with
adders only: ``A(p, q, kk) = a_base + p*a_outer + q*a_inner + kk*a_k``,
``B(t, kk) = b_base + t*b_tile + kk*b_k``, the results' and the bias entries' addresses
(``bias_base + p*bias_outer + c``) as running sums. A *tile descriptor* (result
address of its first column, bias address, valid columns, requantization, flags) enters a FIFO
with the tile's first beat and is used as the array drains the tile, one column (an A-word of
``rows`` accumulators) per cycle; columns ``c >= n`` are dropped there. A result descriptor
FIFO travels beside the requantizer.

Ordering (:mod:`ttaccel.spec.isa`): a GEMM starts when at most one earlier GEMM has results
outstanding (none with ``fence``); a STORE when none has. A GEMM retires -- and pushes its
token -- when its last result leaves the requantizer for ABUF (the write, from a register,
lands in the next cycle, before anything that waits for the GEMM can read it) or is accepted
by the packer; a STORE when its last word is accepted by the packer.

Timing: the generator issues one beat per cycle; a GEMM without ``fence`` that is at the queue
head (with its token) when the previous GEMM issues its last beat issues its first beat in the
next cycle (no idle cycle); otherwise the next instruction starts one cycle after it becomes
ready. Operands reach the array three cycles after their addresses (the buffers' read, a
register of each word straight from the block RAM, then the operand FIFO). Back-to-back
tiles never stall while ``k >= SystolicArray.bubble_free_k`` and the drain keeps up
(``valid columns`` words, or ``ceil(words * rows * bits / 64)`` beats to the stream, per
tile).
"""

from __future__ import annotations

import operator
from functools import reduce
from types import SimpleNamespace

from amaranth import Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..spec.accel_config import AccelConfig
from .dispatch import exec_layout
from .gearbox import BeatPacker
from .interfaces import STREAM_BEAT, StreamFIFO, check_config, credit_counter
from .requant import Requantizer
from .sparse import GroupAssembler, SparseSelect
from .systolic import SystolicArray
from .transposed import transposed_provider

__all__ = ["ExecuteEngine"]

_OPERAND_SLOTS = 5
"""Operand FIFO entries: a credit is out for four cycles (issue, read, read register, FIFO)
at full rate."""
_DRAIN_STAGES = 3  # d1, d2 and d3 of the drain: the requantizer's lead stages
_TILE_SLOTS = 8  # tile descriptors queued between the address generator and the drain


class ExecuteEngine(wiring.Component):
    """Runs GEMMs and STOREs from its queue in order; see the module docstring.

    Parameters (keyword-only): ``config``, an :class:`AccelConfig`.

    Ports
        ``q``: the execute queue (:data:`~ttaccel.hw.dispatch.EXEC_LAYOUT`);
        ``token_ready`` / ``token_take``: a token from the load engine is available / is
        consumed (``wait``); ``retired`` (pulse) with ``signal`` and ``signal_pc``; ``idle``:
        nothing in progress or in flight and every output beat sent.
        Buffer ports (addresses 16 bits), each a :class:`~.memory.RegisteredReadMemory`'s
        read: ``*_en`` reads the word at ``*_addr``, ``*_data_en`` takes the read word into
        the output register ``*_data`` (so a word read in cycle t and taken in cycle t + 1 is
        on ``*_data`` in cycle t + 2). ``a_*`` ABUF read (A operands, STORE words); ``b2_*``
        ABUF read for ``b_from_abuf`` (when the configuration allows it: rows == cols, int8
        weights); ``w_*`` WBUF read; ``bias_*`` BIAS read. The ``w``, ``b2`` and ``bias``
        words are taken every cycle (no ``*_data_en`` port: the engine ties it to 1).
        ``res_*``: ABUF write of results (from registers, the cycle after a result leaves
        the requantizer; it has priority over LOADs).
        ``out``: the output stream. ``mac_fire`` / ``macs``: a beat entered the array, worth
        ``macs`` lane-MACs (``rows * valid columns``).
    """

    def __init__(self, *, config: AccelConfig):
        self._config = check_config(config)
        self._b_from_abuf = config.supports_b_from_abuf
        self._sparse = config.sparse_nm is not None
        a_bits, b_bits = config.a_word_bits, config.b_word_bits
        ports = {
            "q": In(stream.Signature(exec_layout(config))),
            "token_ready": In(1),
            "token_take": Out(1),
            "retired": Out(1),
            "signal": Out(1),
            "signal_pc": Out(16),
            "idle": Out(1),
            "a_addr": Out(16),
            "a_en": Out(1),
            "a_data_en": Out(1),
            "a_data": In(a_bits),
            "w_addr": Out(16),
            "w_en": Out(1),
            "w_data": In(b_bits),
            "bias_addr": Out(16),
            "bias_en": Out(1),
            "bias_data": In(32),
            "res_addr": Out(16),
            "res_data": Out(a_bits),
            "res_en": Out(1),
            "out": Out(stream.Signature(STREAM_BEAT)),
            "mac_fire": Out(1),
            "macs": Out(range(config.lanes + 1)),
        }
        if self.has_b2:
            ports.update({"b2_addr": Out(16), "b2_en": Out(1), "b2_data": In(a_bits)})
        super().__init__(ports)

    config = property(lambda self: self._config)
    has_b_from_abuf = property(lambda self: self._b_from_abuf)

    @property
    def has_b2(self) -> bool:
        """The second ABUF read port (``b2_*``) exists: for ``b_from_abuf`` or, in a
        ``sparse_nm`` build, a sparse beat's second A-word (:mod:`.sparse`)."""
        return self._b_from_abuf or self._sparse

    def elaborate(self, platform):
        m = Module()
        n = SimpleNamespace()  # the signals the blocks below share
        self._blocks(m, n)
        self._sequencer(m, n)
        self._operands(m, n)
        self._drain(m, n)
        self._outputs(m, n)
        return m

    def _blocks(self, m, n):
        """The datapath blocks (array, requantizer, packer) and the descriptor FIFOs."""
        cfg = self._config
        rows, cols, wf = cfg.rows, cfg.cols, cfg.weight_format
        # Datapath blocks: the array transposed (its rows are the GEMM's columns).
        provider = transposed_provider(wf, packed=cfg.dsp_packing, tokens=rows)
        if self._sparse:  # each PE selects its activation out of an N:M group (hw/sparse.py)
            provider = SparseSelect(inner=provider, group=cfg.sparse_nm[1])
        m.submodules.array = array = SystolicArray(
            rows=cols, cols=rows, macp=provider, k_max=cfg.max_k
        )
        m.submodules.requant = requant = Requantizer(
            lanes=rows, acc_bits=array.acc_bits, lead=_DRAIN_STAGES
        )
        m.submodules.packer = packer = BeatPacker(lanes=rows)

        tile_layout = data.StructLayout(
            {
                "out_base": 17,
                "out_col": 16,
                "bias_base": 16,
                "bias_en": 1,
                "valid": range(cols + 1),
                "dst": 1,
                "multiplier": 16,
                "shift": 6,
                "out_format": 3,
                "last": 1,
                "signal": 1,
                "final": 1,
                "pc": 16,
            }
        )
        result_layout = data.StructLayout(
            {
                "dst": 1,
                "addr": 16,
                "out_format": 3,
                "last": 1,
                "signal": 1,
                "final": 1,
                "pc": 16,
            }
        )
        # Both descriptor FIFOs keep their head in a register (`registered_head`): the drain
        # (column count, result and bias addresses) and the ABUF-or-stream choice (`dst`)
        # read flip-flops, not a LUT-RAM read. The tile queue has no bypass: a descriptor
        # reaches the drain three cycles after its tile's first beat (it is pushed from a
        # register, below), long before the tile's first column leaves the array, and its
        # write enable does not depend on the drain's ready chain (`tiles.o.ready`, from
        # the requantizer's `credit`).
        m.submodules.tiles = tiles = StreamFIFO(
            layout=tile_layout, depth=_TILE_SLOTS, registered_head=True, bypass=False
        )
        # The result descriptors' head is a register (`registered_head`): `dst` decides the
        # ABUF write and the packer input without a LUT-RAM read in the path. A descriptor
        # enters as its beat enters the requantizer and leaves as the beat leaves it, and the
        # queue holds `requant.capacity`, so it has room whenever the requantizer has a
        # credit: the drain tests `requant.credit` (a register) only. Its head alternates
        # between two registers (`two_heads`, step 49): the pop (`res_fire`, from the
        # requantizer's output FIFO level, `dst` and the packer's ready) reaches the slots'
        # flags, not the enables of the head's flip-flops (047b9af's routed worst path).
        m.submodules.results = results = StreamFIFO(
            layout=result_layout, depth=requant.capacity, registered_head=True, two_heads=True
        )
        n.array = array
        n.packer = packer
        n.requant = requant
        n.result_layout = result_layout
        n.results = results
        n.tiles = tiles

    def _sequencer(self, m, n):
        """The instruction in progress and the address generator (one beat per cycle)."""
        cfg = self._config
        cols = cfg.cols
        tiles = n.tiles
        # -- control ------------------------------------------------------------------------
        g = Signal(exec_layout(cfg), name="instr")  # the GEMM or STORE in progress
        head = self.q.payload
        gemms_out = Signal(range(4), name="gemms_out")  # started, not yet retired
        gemm_retire = Signal()
        gemm_start = Signal()
        m.d.sync += gemms_out.eq(gemms_out + gemm_start - gemm_retire)
        in_gemm = Signal()
        in_store = Signal()
        store_done = Signal()

        # Address generator state.
        kk = Signal(16, name="kk")
        cols_left = Signal(17, name="cols_left")  # n less the tile's first column
        qi = Signal(16, name="qi")
        pi = Signal(16, name="pi")
        a_p, a_pq, a_ptr = (Signal(17, name=n) for n in ("a_p", "a_pq", "a_ptr"))
        b_t, b_ptr = Signal(17, name="b_t"), Signal(17, name="b_ptr")
        o_p, o_pq, o_t = (Signal(17, name=n) for n in ("o_p", "o_pq", "o_t"))
        bias_p, bias_t = Signal(17, name="bias_p"), Signal(17, name="bias_t")
        # The loops' last indices are registers, set as the instruction starts, so the loop
        # tests are equalities of registers (no subtraction in front of the compare).
        kk_end = Signal(16, name="kk_end")
        inner_end = Signal(16, name="inner_end")
        outer_end = Signal(16, name="outer_end")
        head_kk_end = head.k - 1
        a_step = g.a_k
        if self._sparse:  # a sparse tile is k / 2 beats of two A-words each
            head_kk_end = Mux(head.sparse, (head.k >> 1) - 1, head.k - 1)
            a_step = Mux(g.sparse, g.a_k << 1, g.a_k)
        # The loop tests themselves are registers too, each loaded with the test's value for
        # the counters' next state whenever they move, so the last-beat decision (which pops
        # the queue head on a chained GEMM) starts from flip-flops. `*_single`: a loop of one
        # iteration, for the tests of a loop that restarts.
        kk_first = Signal(name="kk_first")  # kk == 0: the tile's first beat (pushes its descriptor)
        kk_last = Signal(name="kk_last")  # kk == kk_end
        t_last = Signal(name="t_last")  # cols_left <= cols
        q_last = Signal(name="q_last")  # qi == inner_end
        p_last = Signal(name="p_last")  # pi == outer_end
        k_single, n_single, inner_single = (
            Signal(name=n) for n in ("k_single", "n_single", "inner_single")
        )
        head_k_single = head_kk_end[:16] == 0
        head_n_single = head.n <= cols
        head_inner_single = head.m_inner == 1
        valid_cols = Signal(range(cols + 1))
        beat_macs = Signal(range(cfg.lanes + 1))  # lane-MACs of the tile's beats
        m.d.comb += [
            valid_cols.eq(Mux(cols_left >= cols, cols, cols_left)),
            beat_macs.eq(valid_cols * cfg.rows),
        ]

        advance = Signal()
        issue = Signal()
        # A tile's first beat needs a slot in the tile queue: `tile_credit` (a register),
        # from a count of the descriptors issued and not yet popped by the drain.
        tile_credit = Signal()
        m.d.comb += issue.eq(in_gemm & advance & (~kk_first | tile_credit))

        token_ok = ~head.wait | self.token_ready
        gemm_ok = (gemms_out == 0) | ((gemms_out == 1) & ~head.fence)
        go = self.q.valid & token_ok & Mux(head.store, gemms_out == 0, gemm_ok)
        # The GEMM in progress is the only one outstanding, so a GEMM at the head without
        # fence may follow its last beat directly.
        chain = self.q.valid & token_ok & ~head.store & ~head.fence & (gemms_out == 1)

        # The instruction registers and the address generator load the queue head whenever
        # their contents are not needed: while idle, and with a GEMM's last beat (`restart`,
        # from the state and the loop-test registers). Whether the head is then started
        # (`take`: valid, its token, the GEMMs outstanding) decides only the queue pop, the
        # token take and the next state, so that test does not reach these ~400 flip-flops.
        in_idle = Signal()
        restart = Signal()
        # Which loop the next beat advances, one-hot from the loop-test registers (one LUT4
        # each): the kk loop, the column tiles (t), the inner (q) or outer (p) row tiles; or
        # none (`loops_done`: the GEMM's last beat).
        step_kk = ~kk_last
        step_t = kk_last & ~t_last
        step_q = kk_last & t_last & ~q_last
        loops_done = kk_last & t_last & q_last & p_last
        m.d.comb += restart.eq(in_idle | issue & loops_done)
        with m.If(restart):
            m.d.sync += [
                g.eq(head),
                kk_end.eq(head_kk_end),
                inner_end.eq(head.m_inner - 1),
                outer_end.eq(head.m_outer - 1),
                k_single.eq(head_k_single),
                n_single.eq(head_n_single),
                inner_single.eq(head_inner_single),
            ]

        # The address generator (step 46): each register loads its value for the next beat
        # with an enable of `in_idle` or `issue` and the loops it moves with, and its data
        # is the queue head's start value or the value of the loop that moves, chosen by the
        # loop tests alone, so `issue` (the array's credits, the tile credit, the state)
        # reaches the flip-flops' enables only, not the adders' select chain behind them.
        # Per register: the start value, then its value when each loop moves (kk, t, q, p;
        # every register moves with p, the outermost; None: it holds while that loop moves).
        def walk(reg, start, *, p, kk=None, t=None, q=None):
            value, holds = p, []
            for flag, moved in ((step_q, q), (step_t, t), (step_kk, kk)):
                if moved is None:
                    holds.append(flag)
                else:
                    value = Mux(flag, moved, value)
            beat_moves = ~reduce(operator.or_, holds) if holds else 1
            with m.If(in_idle | issue & beat_moves):
                m.d.sync += reg.eq(Mux(in_idle | loops_done, start, value))

        walk(kk, 0, kk=kk + 1, t=0, q=0, p=0)
        walk(kk_first, 1, kk=0, t=1, q=1, p=1)
        walk(kk_last, head_k_single, kk=(kk + 1)[:16] == kk_end, t=k_single, q=k_single,
             p=k_single)  # fmt: skip
        walk(a_ptr, head.a_base, kk=a_ptr + a_step, t=a_pq, q=a_pq + g.a_inner,
             p=a_p + g.a_outer)  # fmt: skip
        walk(b_ptr, head.b_base, kk=b_ptr + g.b_k, t=b_t + g.b_tile, q=g.b_base, p=g.b_base)
        walk(cols_left, head.n, t=cols_left - cols, q=g.n, p=g.n)
        walk(t_last, head_n_single, t=cols_left <= 2 * cols, q=n_single, p=n_single)
        walk(b_t, head.b_base, t=b_t + g.b_tile, q=g.b_base, p=g.b_base)
        walk(o_t, head.out_base, t=o_t + g.out_col * cols, q=o_pq + g.out_inner,
             p=o_p + g.out_outer)  # fmt: skip
        walk(bias_t, head.bias_base, t=bias_t + cols, q=bias_p, p=bias_p + g.bias_outer)
        walk(qi, 0, q=qi + 1, p=0)
        walk(q_last, head_inner_single, q=(qi + 1)[:16] == inner_end, p=inner_single)
        walk(a_pq, head.a_base, q=a_pq + g.a_inner, p=a_p + g.a_outer)
        walk(o_pq, head.out_base, q=o_pq + g.out_inner, p=o_p + g.out_outer)
        walk(pi, 0, p=pi + 1)
        walk(p_last, head.m_outer == 1, p=(pi + 1)[:16] == outer_end)
        walk(bias_p, head.bias_base, p=bias_p + g.bias_outer)
        walk(a_p, head.a_base, p=a_p + g.a_outer)
        walk(o_p, head.out_base, p=o_p + g.out_outer)

        def take():
            """Pop the queue head (loaded into `g` by `restart` in this cycle) and start it."""
            m.d.comb += [self.q.ready.eq(1), self.token_take.eq(head.wait)]
            with m.If(head.store):
                m.next = "STORE"
            with m.Else():
                m.d.comb += gemm_start.eq(1)
                m.next = "GEMM"

        with m.FSM(name="exec"):
            with m.State("IDLE"):
                m.d.comb += in_idle.eq(1)
                with m.If(go):
                    take()
            with m.State("GEMM"):
                m.d.comb += in_gemm.eq(1)
                with m.If(issue & loops_done):
                    with m.If(chain):
                        take()
                    with m.Else():
                        m.next = "IDLE"
            with m.State("STORE"):
                m.d.comb += in_store.eq(1)
                with m.If(store_done):
                    m.next = "IDLE"
        # `in_store` again, as a flip-flop of its own (step 53), set with the FSM's move into
        # STORE and cleared with its move out: the packer's input select reads it, placed
        # beside the packer instead of the FSM's state decode (37bde41's worst path).
        store_select = Signal(name="store_select")
        m.d.sync += store_select.eq(Mux(in_store, ~store_done, self.q.ready & head.store))

        # Tile descriptors, taken into a register with each tile's first beat and pushed from
        # it the cycle after (step 39), so the tile queue's write depends on flip-flops only,
        # not on `issue`. The credits count the descriptor in that register too.
        first_beat = issue & kk_first
        m.d.comb += tile_credit.eq(
            credit_counter(m, "tile_credits", _TILE_SLOTS, taken=first_beat,
                           returned=tiles.o.valid & tiles.o.ready)
        )  # fmt: skip
        tile_in = Signal(tiles.i.payload.shape(), name="tile_in")
        m.d.sync += tiles.i.valid.eq(first_beat)
        m.d.comb += tiles.i.payload.eq(tile_in)
        m.d.sync += [
            tile_in.out_base.eq(o_t),
            tile_in.out_col.eq(g.out_col),
            tile_in.bias_base.eq(bias_t),
            tile_in.bias_en.eq(g.bias_en),
            tile_in.valid.eq(valid_cols),
            tile_in.dst.eq(g.dst_stream),
            tile_in.multiplier.eq(g.multiplier),
            tile_in.shift.eq(g.shift),
            tile_in.out_format.eq(g.out_format),
            tile_in.last.eq(t_last & q_last & p_last),
            tile_in.signal.eq(g.signal),
            tile_in.final.eq(g.final),
            tile_in.pc.eq(g.pc),
        ]
        n.a_ptr = a_ptr
        n.advance = advance
        n.b_ptr = b_ptr
        n.beat_macs = beat_macs
        n.g = g
        n.gemm_retire = gemm_retire
        n.gemms_out = gemms_out
        n.head = head
        n.in_gemm = in_gemm
        n.in_idle = in_idle
        n.in_store = in_store
        n.store_select = store_select
        n.issue = issue
        n.kk = kk
        n.kk_last = kk_last
        n.store_done = store_done

    def _operands(self, m, n):
        """Buffer reads, their read registers and the operand FIFO feeding the array."""
        cfg = self._config
        rows, cols, wf = cfg.rows, cfg.cols, cfg.weight_format
        a_ptr = n.a_ptr
        advance = n.advance
        array = n.array
        b_ptr = n.b_ptr
        g = n.g
        in_store = n.in_store
        issue = n.issue
        kk_last = n.kk_last
        # -- operand reads --------------------------------------------------------------------
        s_addr = Signal(16, name="store_addr")
        s_left = Signal(17, name="store_left")
        s_valid = Signal(name="store_valid")
        s_end = Signal(name="store_end")
        s_adv = Signal()
        m.d.comb += [
            self.a_addr.eq(Mux(in_store, s_addr, a_ptr)),
            self.a_en.eq(Mux(in_store, s_adv, issue)),
            self.w_addr.eq(b_ptr),
            self.w_en.eq(issue),
        ]
        if self._sparse:  # the second A-word of a sparse beat, or a b_from_abuf B-word
            b2_addr = a_ptr + g.a_k
            if self._b_from_abuf:
                b2_addr = Mux(g.sparse, b2_addr, b_ptr)
            m.d.comb += [self.b2_addr.eq(b2_addr), self.b2_en.eq(issue)]
            self._sparse_operands(m, n)
            n.s_addr, n.s_adv, n.s_end, n.s_left = s_addr, s_adv, s_end, s_left
            n.s_valid = s_valid
            return
        if self._b_from_abuf:
            m.d.comb += [self.b2_addr.eq(b_ptr), self.b2_en.eq(issue)]
        op, words = self._read_stage(
            m, n, valid=issue, last=kk_last, macs=n.beat_macs, b_abuf=g.b_from_abuf
        )
        # The operand FIFO: the read registers go straight into it and the array takes from
        # it. Credits (a register) admit a beat only when the FIFO has room for it and every
        # beat in flight, so the address generator never waits for the array's ready, and
        # the buffers' read stages never stall.
        a_word = data.View(data.ArrayLayout(signed(8), rows), words.a)
        entry = data.StructLayout({"beat": array.input_layout, "macs": op.macs.shape()})
        m.submodules.operands = operands = StreamFIFO(layout=entry, depth=_OPERAND_SLOTS)
        credits = Signal(range(_OPERAND_SLOTS + 1), name="operand_credits", init=_OPERAND_SLOTS)
        taken = operands.o.valid & array.i.ready
        m.d.sync += credits.eq(credits - issue + taken)
        beat = operands.i.payload.beat
        m.d.comb += [
            advance.eq(credits != 0),
            operands.i.valid.eq(op.valid),
            beat.last.eq(op.last),
            operands.i.payload.macs.eq(op.macs),
            array.i.valid.eq(operands.o.valid),
            array.i.payload.eq(operands.o.payload.beat),
            operands.o.ready.eq(array.i.ready),
            self.mac_fire.eq(taken),
            self.macs.eq(operands.o.payload.macs),
        ]
        m.d.comb += [beat.w[i].eq(a_word[i]) for i in range(rows)]
        for j in range(cols):
            lane = words.w[j * wf.bits : (j + 1) * wf.bits]
            if self._b_from_abuf:
                b2_word = data.View(data.ArrayLayout(signed(8), cols), words.b2)
                lane = Mux(op.b_abuf, b2_word[j], lane)
            m.d.comb += beat.a[j].eq(lane)
        n.a_word = data.View(data.ArrayLayout(signed(8), rows), self.a_data)  # STOREs' words
        n.s_addr = s_addr
        n.s_adv = s_adv
        n.s_end = s_end
        n.s_left = s_left
        n.s_valid = s_valid

    def _sparse_operands(self, m, n):
        """The operand stage of a ``sparse_nm`` build: entries of two A-words (ABUF and its
        second read port) and one B-word with indices, through the operand FIFO (credits as
        in :meth:`_operands`) and the :class:`~.sparse.GroupAssembler` into the array."""
        cfg = self._config
        rows, cols, wf = cfg.rows, cfg.cols, cfg.weight_format
        n_keep, group = cfg.sparse_nm
        array, g, issue = n.array, n.g, n.issue
        m.submodules.assembler = assembler = GroupAssembler(
            beat_layout=array.input_layout,
            tokens=rows,
            group=group,
            macs_shape=range(cfg.lanes + 1),
        )
        group_end = (n.kk & (n_keep - 1)) == n_keep - 1 if n_keep > 1 else 1
        op, words = self._read_stage(
            m, n, valid=issue, last=n.kk_last, macs=n.beat_macs, b_abuf=g.b_from_abuf,
            sparse=g.sparse, group_end=~g.sparse | group_end,
        )  # fmt: skip
        a_word = data.View(data.ArrayLayout(signed(8), rows), words.a)
        a2_word = data.View(data.ArrayLayout(signed(8), rows), words.b2)
        m.submodules.operands = operands = StreamFIFO(
            layout=assembler.entry_layout, depth=_OPERAND_SLOTS
        )
        credits = Signal(range(_OPERAND_SLOTS + 1), name="operand_credits", init=_OPERAND_SLOTS)
        popped = operands.o.valid & operands.o.ready
        m.d.sync += credits.eq(credits - issue + popped)
        entry = operands.i.payload
        lane_bits = cfg.b_lane_bits
        m.d.comb += [
            n.advance.eq(credits != 0),
            operands.i.valid.eq(op.valid),
            entry.pair[0].eq(a_word),
            entry.pair[1].eq(a2_word),
            entry.sparse.eq(op.sparse),
            entry.group_end.eq(op.group_end),
            entry.last.eq(op.last),
            entry.macs.eq(op.macs),
        ]
        for j in range(cols):
            field = words.w[j * lane_bits : (j + 1) * lane_bits]
            code, index = field[: wf.bits], field[wf.bits :]
            if self._b_from_abuf:
                b2_word = data.View(data.ArrayLayout(signed(8), cols), words.b2)
                code = Mux(op.b_abuf, b2_word[j], code)
            # A dense beat is a one-beat group whose activation sits at slot M - 2.
            m.d.comb += [
                entry.weights[j].a.eq(code),
                entry.weights[j].index.eq(Mux(op.sparse, index, group - 2)),
            ]
        wiring.connect(m, operands.o, assembler.i)
        m.d.comb += [
            array.i.valid.eq(assembler.o.valid),
            array.i.payload.eq(assembler.o.payload.beat),
            assembler.o.ready.eq(array.i.ready),
            self.mac_fire.eq(assembler.o.valid & array.i.ready),
            self.macs.eq(assembler.o.payload.macs),
        ]
        n.a_word = data.View(data.ArrayLayout(signed(8), rows), self.a_data)  # STOREs' words

    def _read_stage(self, m, n, **issued):
        """The read stages between a beat's issue and the operand FIFO: the block RAMs' read
        (one cycle), then their output registers (``RegisteredReadMemory``: no logic behind
        a block RAM's clock-to-out). ``issued``: the beat's fields at its issue (name ->
        value); returns (those fields two cycles later, the registered words ``a``, ``w`` and
        ``b2`` where built), each a namespace of signals. The words are taken every cycle
        outside a STORE (``a_data_en``, set in :meth:`_outputs`): they are used only with
        ``valid``."""
        late = {}
        for name, value in issued.items():
            shape = Value.cast(value).shape()
            read = Signal(shape, name=f"read_{name}")
            late[name] = Signal(shape, name=f"op_{name}")
            m.d.sync += [read.eq(value), late[name].eq(read)]
        words = {"a": self.a_data, "w": self.w_data}
        if self.has_b2:
            words["b2"] = self.b2_data
        return SimpleNamespace(**late), SimpleNamespace(**words)

    def _drain(self, m, n):
        """The drain: one column per cycle, bias read, into the requantizer."""
        cfg = self._config
        rows, cols = cfg.rows, cfg.cols
        array = n.array
        requant = n.requant
        results = n.results
        tiles = n.tiles
        # -- drain: one column per cycle, bias read, into the requantizer ---------------------
        tile = tiles.o.payload
        j = Signal(range(cols), name="drain_col")
        o_run = Signal(17, name="drain_addr")
        drain_fields = {
            "valid": 1,
            "multiplier": 16,
            "shift": 6,
            "out_format": 3,
            "bias_en": 1,
            "dst": 1,
            "addr": 16,
            "last": 1,
            "signal": 1,
            "final": 1,
            "pc": 16,
        }
        # d1: the column as it leaves the array, while its bias word is read; d2: the same
        # while the bias word sits in the BIAS memory's output register (`bias_data`); d3:
        # the same with the bias word (or 0 without bias) in a fabric register (`d3.bias`,
        # step 45), so the requantizer's bias add starts from a flip-flop placed by the
        # adders it feeds, not from the block RAM's output (on the ECP5 proxy that route
        # and the add ran into the multipliers' input registers in one cycle). All three
        # are the requantizer's lead stages (step 36): a column leaves the array only with
        # a requantizer credit (`requant.credit`, a register, claimed as it enters d1), so
        # d1 to d3 never stall and need no enable; the requantizer's capacity counts them.
        # The column's values skip d1 (step 40): d2 takes them from the array's
        # `drained_acc`, the array's select in two registered levels, where d1 held them
        # after one.
        d1 = Signal(data.StructLayout(drain_fields), name="d1")
        d2_fields = {**drain_fields, "acc": array.output_layout["acc"].shape}
        d2 = Signal(data.StructLayout(d2_fields), name="d2")
        d3 = Signal(data.StructLayout({**d2_fields, "bias": signed(32)}), name="d3")
        addr_j = Signal(17)
        drained = Signal()
        # `j == cols - 1` and `j < tile.valid` kept in registers, computed a column ahead, so
        # the tile queue's pop (`tiles.o.ready`, which loads its wide head register) depends
        # on two flip-flops and the array's valid only. A tile has 1..cols valid columns
        # (the dispatcher refuses n == 0), so column 0 of every tile is valid.
        j_last = Signal(init=(cols == 1), name="drain_col_last")
        valid_col = Signal(init=1, name="drain_col_valid")
        m.d.comb += [
            array.o.ready.eq(~valid_col | requant.credit),
            drained.eq(array.o.valid & array.o.ready),
            requant.claim.eq(array.o.valid & valid_col),
            addr_j.eq(Mux(j == 0, tile.out_base, o_run)),
            tiles.o.ready.eq(drained & j_last),
            self.bias_addr.eq(tile.bias_base + j),
            self.bias_en.eq(1),
        ]
        with m.If(drained):
            m.d.sync += [
                o_run.eq(addr_j + tile.out_col),
                j.eq(Mux(j_last, 0, j + 1)),
                j_last.eq(Mux(j_last, cols == 1, j == cols - 2)),
                valid_col.eq(j_last | (j + 1 < tile.valid)),
            ]
        m.d.sync += [
            d1.valid.eq(requant.claim & requant.credit),
            d1.multiplier.eq(tile.multiplier),
            d1.shift.eq(tile.shift),
            d1.out_format.eq(tile.out_format),
            d1.bias_en.eq(tile.bias_en),
            d1.dst.eq(tile.dst),
            d1.addr.eq(addr_j),
            d1.last.eq(tile.last & (j == tile.valid - 1)),
            d1.signal.eq(tile.signal),
            d1.final.eq(tile.final),
            d1.pc.eq(tile.pc),
        ]
        m.d.sync += [d2[name].eq(d1[name]) for name in drain_fields]
        m.d.sync += d2.acc.eq(array.drained_acc)
        m.d.sync += [d3[name].eq(d2[name]) for name in d2_fields]
        m.d.sync += d3.bias.eq(Mux(d2.bias_en, self.bias_data.as_signed(), 0))
        result_in = results.i.payload
        m.d.comb += [
            requant.i.valid.eq(d3.valid),
            requant.i.payload.acc.eq(d3.acc),
            requant.i.payload.multiplier.eq(d3.multiplier),
            requant.i.payload.shift.eq(d3.shift),
            requant.i.payload.out_format.eq(d3.out_format),
            results.i.valid.eq(d3.valid),
            result_in.dst.eq(d3.dst),
            result_in.addr.eq(d3.addr),
            result_in.out_format.eq(d3.out_format),
            result_in.last.eq(d3.last),
            result_in.signal.eq(d3.signal),
            result_in.final.eq(d3.final),
            result_in.pc.eq(d3.pc),
        ]
        for lane in range(rows):
            m.d.comb += requant.i.payload.bias[lane].eq(d3.bias)

    def _outputs(self, m, n):
        """Results to ABUF or the packer, the STOREs, and retirement."""
        a_word = n.a_word
        g = n.g
        gemm_retire = n.gemm_retire
        gemms_out = n.gemms_out
        head = n.head
        in_gemm = n.in_gemm
        in_store = n.in_store
        packer = n.packer
        requant = n.requant
        results = n.results
        s_addr = n.s_addr
        s_adv = n.s_adv
        s_end = n.s_end
        s_left = n.s_left
        s_valid = n.s_valid
        store_done = n.store_done
        tiles = n.tiles
        # -- results: ABUF write or the packer ------------------------------------------------
        # An ABUF result is written from a register, the cycle after it leaves the
        # requantizer (and its GEMM retires): `res_en`, which takes the ABUF write port from
        # the load engine, is then a register. Nothing reads the word earlier: a STORE or a
        # GEMM that waits for this GEMM reads two cycles after its retirement at the soonest
        # (the queue head is taken the cycle after, the first read issued the cycle after
        # that), and a LOAD waiting for its token writes three cycles after.
        res = results.o.payload
        res_fire = Signal()
        res_write = Signal(name="result_write")
        res_addr = Signal(16, name="result_addr", reset_less=True)
        res_codes = Signal.like(requant.o.payload.codes, name="result_codes", reset_less=True)
        m.d.comb += [
            requant.o.ready.eq(Mux(res.dst, packer.i.ready & ~in_store, 1)),
            res_fire.eq(requant.o.valid & requant.o.ready),
            results.o.ready.eq(res_fire),
            self.res_addr.eq(res_addr),
            self.res_data.eq(res_codes),
            self.res_en.eq(res_write),
            gemm_retire.eq(res_fire & res.last),
        ]
        m.d.sync += [
            res_write.eq(requant.o.valid & ~res.dst),
            res_addr.eq(res.addr),
            res_codes.eq(requant.o.payload.codes),
        ]

        # -- STORE: ABUF words to the packer from the ABUF's output register, which a STORE
        # advances with its pipeline (`s_adv`; outside a STORE it is taken every cycle).
        t_valid = Signal(name="store_word_valid")
        t_end = Signal(name="store_word_end")
        t_codes = a_word
        m.d.comb += [s_adv.eq(~t_valid | packer.i.ready), self.a_data_en.eq(~in_store | s_adv)]
        s_issue = in_store & (s_left != 0) & s_adv
        with m.If(n.in_idle):  # as the sequencer's `restart`: the STORE starts from IDLE only
            m.d.sync += [s_addr.eq(head.a_base), s_left.eq(head.n)]
        with m.If(s_adv):
            m.d.sync += [
                s_valid.eq(s_issue),
                s_end.eq(s_left == 1),
                t_valid.eq(s_valid),
                t_end.eq(s_end),
            ]
        with m.If(s_issue):
            m.d.sync += [s_addr.eq(s_addr + 1), s_left.eq(s_left - 1)]
        m.d.comb += store_done.eq(in_store & t_valid & t_end & packer.i.ready)

        # Packer input: the STORE's words while a STORE runs, else streamed results.
        with m.If(n.store_select):  # = in_store
            m.d.comb += [
                packer.i.valid.eq(t_valid),
                packer.i.payload.codes.eq(t_codes),
                packer.i.payload.fmt.eq(g.out_format),
                packer.i.payload.end.eq(t_end),
                packer.i.payload.final.eq(t_end & g.final),
            ]
        with m.Else():
            m.d.comb += [
                packer.i.valid.eq(requant.o.valid & res.dst),
                packer.i.payload.codes.eq(requant.o.payload.codes),
                packer.i.payload.fmt.eq(res.out_format),
                packer.i.payload.end.eq(res.last),
                packer.i.payload.final.eq(res.last & res.final),
            ]
        wiring.connect(m, wiring.flipped(self.out), packer.o)

        # Retirement (a GEMM's last result, or a STORE's last word) and its token.
        m.d.comb += [
            self.retired.eq(gemm_retire | store_done),
            self.signal.eq(Mux(store_done, g.signal, res.signal) & (gemm_retire | store_done)),
            self.signal_pc.eq(Mux(store_done, g.pc, res.pc)),
            self.idle.eq(~in_gemm & ~in_store & (gemms_out == 0) & ~tiles.o.valid & packer.idle),
        ]
