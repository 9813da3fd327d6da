"""Program loader and dispatcher: the instruction memory and the front end of the engine.

On ``start`` the :class:`Dispatcher` reads ``program_length`` instructions (five 64-bit
beats each, :mod:`ttaccel.spec.isa` encoding) from the input stream into the instruction memory
(block RAM, ``instruction_depth`` x 320 bits), then decodes them in program order, checks
them and hands LOADs to the load queue and GEMMs/STOREs to the execute queue; SYNC and END
wait for ``drained`` (both engines idle, queues empty, output sent).

Checks (the first failure stops the run with ``error`` and the regmap's code, ``error_pc`` =
the instruction's index): program longer than the instruction memory (3); TLAST inside the
program (5); unknown opcode, reserved bits set, a field out of range -- ``count``, ``m_*``,
``k``, ``n`` zero, ``k > max_k``, a format code above 4, LOAD buffer 3, multiplier 0, shift
above 47, ``b_from_abuf`` where the configuration does not allow it, ``sparse`` without the
build's ``sparse_nm`` (or with ``b_from_abuf``, or ``k`` not a multiple of ``M``) -- or
dispatch running past the program without END (1); any word a LOAD, STORE or GEMM would touch
outside its buffer (2). GEMM bounds are the exact largest addresses, computed with one shared,
pipelined 17 x 16-bit multiplier (operand select, product and accumulate registers; no
wrap-around, as the ISA requires). The first error ends dispatch (``error`` pulse); so does
``halt``.

Timing: the program arrives at one beat per cycle; after it, a LOAD, STORE or SYNC takes 5
cycles to dispatch (fetch, the memory's read and output registers, the copy into ``word``,
the registered checks, decode and push) and a GEMM 17 (fetch, read, copy, 13 cycles of the
bound pipeline -- ten steps, four register stages, the first step issued in decode -- which
overlap the checks and decode, push). Every decision reads registers only: no path runs from
the instruction memory through the checks or the multiplier.
"""

from __future__ import annotations

import math

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..spec.accel_config import INSTRUCTION_BITS, AccelConfig
from ..spec.formats import MAX_SHIFT
from ..spec.isa import BEATS_PER_INSTRUCTION, FORMAT_CODES, STREAM_BITS, Opcode, encoding_table
from .dsp import mult18x18d, on_ecp5
from .interfaces import STREAM_BEAT, check_config
from .memory import RegisteredReadMemory

__all__ = [
    "ERR_ADDRESS",
    "ERR_ILLEGAL",
    "EXEC_LAYOUT",
    "LOAD_LAYOUT",
    "SPARSE_EXEC_LAYOUT",
    "Dispatcher",
    "exec_layout",
    "load_word_bits",
    "max_load_beats",
]

ERR_ILLEGAL = 1
ERR_ADDRESS = 2
ERR_PROGRAM_LENGTH = 3
ERR_TOKENS = 4
ERR_TLAST = 5

LOAD_LAYOUT = data.StructLayout(
    {
        "wait": 1,
        "signal": 1,
        "buffer": 2,
        "base": 16,
        "count": 16,
        "pc": 16,
    }
)
"""A load-queue entry."""

EXEC_LAYOUT = data.StructLayout(
    {
        "store": 1,  # STORE (base in a_base, count in n, format in out_format) rather than GEMM
        "wait": 1,
        "signal": 1,
        "fence": 1,
        "dst_stream": 1,
        "b_from_abuf": 1,
        "bias_en": 1,
        "out_format": 3,
        "m_outer": 16,
        "m_inner": 16,
        "k": 16,
        "n": 16,
        "a_base": 16,
        "a_outer": 16,
        "a_inner": 16,
        "a_k": 16,
        "b_base": 16,
        "b_tile": 16,
        "b_k": 16,
        "out_base": 16,
        "out_outer": 16,
        "out_inner": 16,
        "out_col": 16,
        "bias_base": 16,
        "bias_outer": 16,
        "multiplier": 16,
        "shift": 6,
        "final": 1,  # its last beat is the last beat of the run (TLAST)
        "pc": 16,
    }
)
"""An execute-queue entry (GEMM fields as in :mod:`ttaccel.spec.isa`)."""

SPARSE_EXEC_LAYOUT = data.StructLayout(
    {**{name: field.shape for name, field in EXEC_LAYOUT}, "sparse": 1}
)
"""An execute-queue entry of a ``sparse_nm`` build: :data:`EXEC_LAYOUT` and ``sparse``."""


def exec_layout(config: AccelConfig) -> data.StructLayout:
    """The execute-queue entry of ``config``: :data:`SPARSE_EXEC_LAYOUT` with ``sparse_nm``,
    else :data:`EXEC_LAYOUT` (so a dense build's queues are what they were)."""
    return EXEC_LAYOUT if config.sparse_nm is None else SPARSE_EXEC_LAYOUT


def instruction_layout(opcode: Opcode) -> data.StructLayout:
    """The 320-bit instruction word of ``opcode`` as a ``StructLayout``: the fields of
    :func:`~ttaccel.spec.isa.encoding_table` at their bit positions, and every gap as a field
    ``reserved_<lsb>`` (bits that must be zero), so a view of the word decodes it by name."""
    fields: dict[str, int] = {}
    position = 0
    for name, lsb, width in sorted(_FIELDS_BY_OPCODE[opcode.name], key=lambda f: f[1]):
        if lsb > position:
            fields[f"reserved_{position}"] = lsb - position
        fields[name] = width
        position = lsb + width
    if position < INSTRUCTION_BITS:
        fields[f"reserved_{position}"] = INSTRUCTION_BITS - position
    return data.StructLayout(fields)


_FIELDS_BY_OPCODE = encoding_table()
INSTRUCTION_LAYOUTS = {op: instruction_layout(op) for op in Opcode}
"""Opcode -> :func:`instruction_layout`."""


def _reserved_bits_set(view: data.View, opcode: Opcode):
    """A 1-bit value: some reserved field of ``view`` (a word of ``opcode``) is non-zero."""
    layout = INSTRUCTION_LAYOUTS[opcode]
    reserved = [view[name] for name, _ in layout if name.startswith("reserved_")]
    return Cat(*reserved).any() if reserved else 0


def division_magic(divisor: int, bits: int = 16) -> tuple[int, int]:
    """``(multiplier, shift)`` with ``x // divisor == (x * multiplier) >> shift`` for every
    ``x < 2**bits`` (checked exhaustively)."""
    shift = bits + max(0, math.ceil(math.log2(divisor)))
    multiplier = -(-(1 << shift) // divisor)
    x = np.arange(1 << bits, dtype=np.int64)
    if not np.array_equal((x * multiplier) >> shift, x // divisor):  # pragma: no cover
        raise AssertionError(f"no exact {bits}-bit division magic for {divisor}")
    return multiplier, shift


def load_word_bits(config: AccelConfig) -> tuple[int, int, int]:
    """Word widths of ABUF, WBUF and BIAS (the LOAD ``buffer`` codes 0, 1, 2), in bits."""
    return (config.a_word_bits, config.b_word_bits, 32)


def max_load_beats(config: AccelConfig) -> int:
    """Input beats of the longest LOAD (65,535 words of the widest buffer)."""
    return -(-65535 * max(load_word_bits(config)) // STREAM_BITS)


def _load_beats(m, config, entry):
    """The input beats of the LOAD ``entry`` (a view with ``buffer`` and ``count``):
    ``ceil(count * width / 64)``, the product as a sum of shifted ``count``s (no multiplier
    for a constant width). Combinational; code 3 gives 0."""
    beats = Signal(range(max_load_beats(config) + 1))
    with m.Switch(entry.buffer):
        for code, width in enumerate(load_word_bits(config)):
            with m.Case(code):
                bits = sum(entry.count << b for b in range(width.bit_length()) if width >> b & 1)
                m.d.comb += beats.eq((bits + STREAM_BITS - 1) >> 6)
    return beats


class Dispatcher(wiring.Component):
    """Loads the program, decodes, checks and dispatches it; see the module docstring.

    Parameters (keyword-only): ``config``, an :class:`AccelConfig`.

    Ports
        ``start`` (pulse, ignored while ``busy``), ``program_length``; ``inp``: the input
        stream while ``loading`` (the engine routes it); ``load_q`` / ``exec_q``: streams of
        :data:`LOAD_LAYOUT` / :data:`EXEC_LAYOUT`; ``load_beats``: the input beats of the
        LOAD at ``load_q``'s head (:func:`max_load_beats` at most; a register, valid with
        ``load_q.valid``); ``drained``: everything dispatched has
        completed; ``halt``: stop dispatching now (an engine failed; pulse or level), back to
        idle with ``pc`` kept; ``sync_retired``: a SYNC passed (pulse); ``done``: END retired
        (pulse); ``error`` (pulse) with ``error_code`` / ``error_pc``; ``pc``: instructions
        dispatched in this run (kept after the run ends, cleared by ``start``); ``busy``.
        ``soft_reset`` resets this block (``ResetInserter`` in the engine).
    """

    def __init__(self, *, config: AccelConfig):
        self._config = check_config(config)
        super().__init__(
            {
                "start": In(1),
                "program_length": In(16),
                "inp": In(stream.Signature(STREAM_BEAT)),
                "loading": Out(1),
                "load_q": Out(stream.Signature(LOAD_LAYOUT)),
                "load_beats": Out(range(max_load_beats(config) + 1)),
                "exec_q": Out(stream.Signature(exec_layout(config))),
                "drained": In(1),
                "halt": In(1),
                "sync_retired": Out(1),
                "done": Out(1),
                "error": Out(1),
                "error_code": Out(8),
                "error_pc": Out(16),
                "pc": Out(16),
                "busy": Out(1),
            }
        )

    config = property(lambda self: self._config)

    def elaborate(self, platform):
        m = Module()
        cfg = self._config

        # Instruction memory: one 320-bit word per instruction, read in FETCH and taken into
        # its output register in READ, then copied into `word` (COPY), a fabric register
        # beside the decode logic (step 38: the block RAMs sit in their own columns, and the
        # route from their output registers alone takes half a 150 MHz cycle). Everything is
        # decoded from `word`.
        m.submodules.imem = imem = RegisteredReadMemory(
            width=INSTRUCTION_BITS, depth=cfg.instruction_depth
        )
        word = Signal(INSTRUCTION_BITS, name="word", reset_less=True)
        m.d.sync += word.eq(imem.r_data)  # r_data changes only after READ

        length = Signal(16, name="length")
        pc = Signal(16, name="pc_q")
        beat = Signal(range(BEATS_PER_INSTRUCTION), name="beat")
        loaded = Signal(16, name="loaded")
        # `loaded == length - 1`, kept in a register (step 35): the program's last beat is
        # then told from two flip-flops, not from a 16-bit compare into the error outputs.
        last_instruction = Signal(name="last_instruction")
        shift_in = Signal((BEATS_PER_INSTRUCTION - 1) * STREAM_BITS, name="shift_in")
        last_out_pc = Signal(17, name="last_out_pc")  # 2**16: no instruction sends output
        m.d.comb += self.pc.eq(pc)
        unpadded = INSTRUCTION_BITS - STREAM_BITS

        def fail(code, at):
            m.d.comb += [self.error.eq(1), self.error_code.eq(code), self.error_pc.eq(at)]
            m.next = "IDLE"

        def halt_here():  # an engine failed: stop where we are (pc kept, nothing pushed)
            with m.If(self.halt):
                m.d.comb += [self.load_q.valid.eq(0), self.exec_q.valid.eq(0), self.error.eq(0)]
                m.d.comb += [self.done.eq(0), self.sync_retired.eq(0)]
                m.d.sync += pc.eq(pc)
                m.next = "IDLE"

        # Decode: views of the registered word, one per opcode.
        views = {op: data.View(INSTRUCTION_LAYOUTS[op], word) for op in Opcode}
        gemm, load, store = views[Opcode.GEMM], views[Opcode.LOAD], views[Opcode.STORE]
        opcode = gemm.opcode

        # Checks, registered (`*_q`) the cycle before the dispatch decision.
        flags = self._checks(m, cfg, views)
        # The opcode, decoded into flags registered beside the checks (step 40), so DECODE's
        # choice (and `pc`'s enable) starts from flip-flops rather than from `word` through
        # a compare. `word` is held from CHECK on, so `op` is valid from DECODE on.
        op = Signal(data.StructLayout({"load": 1, "store": 1, "gemm": 1, "end": 1}), name="op")
        m.d.sync += [
            op.load.eq(opcode == Opcode.LOAD),
            op.store.eq(opcode == Opcode.STORE),
            op.gemm.eq(opcode == Opcode.GEMM),
            op.end.eq(opcode == Opcode.END),
        ]

        # GEMM bounds: ten multiply-add steps through one pipelined 17 x 16-bit multiplier.
        checking = Signal()
        bounds_ok, bounds_cycles = self._gemm_bounds(m, cfg, gemm, checking, platform)

        # Queue entries from the decoded word.
        lq = self.load_q.payload
        m.d.comb += [
            lq.wait.eq(load.wait),
            lq.signal.eq(load.signal),
            lq.buffer.eq(load.buffer),
            lq.base.eq(load.base),
            lq.count.eq(load.count),
            lq.pc.eq(pc),
        ]
        # The LOAD's input beats, registered from `word` (so set in CHECK and held through
        # DECODE): the engine's count of beats owed adds a register, not a multiply-sum.
        load_beats = Signal.like(self.load_beats, name="load_beats_q")
        m.d.sync += load_beats.eq(_load_beats(m, cfg, load))
        m.d.comb += self.load_beats.eq(load_beats)
        eq = self.exec_q.payload
        for name, _ in EXEC_LAYOUT:
            if name in ("store", "final", "pc", "multiplier", "shift", "out_format"):
                continue
            m.d.comb += eq[name].eq(gemm[name])
        m.d.comb += [
            eq.multiplier.eq(gemm.multiplier),
            eq.shift.eq(gemm.shift),
            eq.out_format.eq(gemm.out_format),
            eq.final.eq(pc == last_out_pc),
            eq.pc.eq(pc),
        ]
        if cfg.sparse_nm is not None:
            m.d.comb += eq.sparse.eq(gemm.sparse)
        with m.If(op.store):  # exec_q is valid in DECODE and PUSH only, where `op` is
            m.d.comb += [
                eq.store.eq(1),
                eq.fence.eq(0),
                eq.dst_stream.eq(1),
                eq.out_format.eq(store.fmt),
                eq.a_base.eq(store.base),
                eq.n.eq(store.count),
            ]
            if cfg.sparse_nm is not None:
                m.d.comb += eq.sparse.eq(0)

        check_step = Signal(range(bounds_cycles + 1), name="check_step")
        # The length's tests are registered at start and acted on in PROGRAM's first cycle
        # (step 51), so no path runs from `program_length` through a 16-bit compare into the
        # error outputs (356cdc0's worst path). A program of no instructions and a length
        # error are then told a cycle later, before any beat is taken.
        length_over = Signal(name="length_over")  # program_length > instruction_depth
        length_zero = Signal(name="length_zero")
        with m.FSM(name="dispatch"):
            with m.State("IDLE"), m.If(self.start):
                m.d.sync += [
                    length.eq(self.program_length),
                    length_over.eq(self.program_length > cfg.instruction_depth),
                    length_zero.eq(self.program_length == 0),
                    pc.eq(0),
                    beat.eq(0),
                    loaded.eq(0),
                    last_instruction.eq(self.program_length == 1),
                    last_out_pc.eq(1 << 16),
                ]
                m.next = "PROGRAM"
            with m.State("PROGRAM"):
                with m.If(length_over):
                    m.d.comb += self.busy.eq(1)
                    fail(ERR_PROGRAM_LENGTH, 0)
                with m.Elif(length_zero):
                    m.d.comb += self.busy.eq(1)
                    m.next = "FETCH"
                with m.Else():
                    m.d.comb += [self.busy.eq(1), self.loading.eq(1), self.inp.ready.eq(1)]
                    m.d.comb += [
                        imem.w_addr.eq(loaded),
                        imem.w_data.eq(Cat(shift_in, self.inp.payload.data)),
                        imem.w_en.eq(self.inp.valid & (beat == BEATS_PER_INSTRUCTION - 1)),
                    ]
                    with m.If(self.inp.valid):
                        m.d.sync += shift_in.eq(Cat(shift_in[STREAM_BITS:], self.inp.payload.data))
                        with m.If(beat == BEATS_PER_INSTRUCTION - 1):
                            m.d.sync += [
                                beat.eq(0),
                                loaded.eq(loaded + 1),
                                last_instruction.eq(loaded == length - 2),
                            ]
                        with m.Else():
                            m.d.sync += beat.eq(beat + 1)
                        with m.If(beat == 0):  # opcode and dst_stream sit in the first beat
                            padded = Cat(self.inp.payload.data, Const(0, unpadded))
                            first = data.View(INSTRUCTION_LAYOUTS[Opcode.GEMM], padded)
                            sends = (first.opcode == Opcode.STORE) | (
                                (first.opcode == Opcode.GEMM) & first.dst_stream
                            )
                            with m.If(sends):
                                m.d.sync += last_out_pc.eq(loaded)
                        last_beat = (beat == BEATS_PER_INSTRUCTION - 1) & last_instruction
                        with m.If(last_beat):
                            m.next = "FETCH"
                        with m.Elif(self.inp.payload.last):
                            fail(ERR_TLAST, loaded)
            with m.State("FETCH"):
                m.d.comb += [self.busy.eq(1), imem.r_addr.eq(pc), imem.r_en.eq(1)]
                with m.If(pc >= length):
                    fail(ERR_ILLEGAL, pc)
                with m.Else():
                    m.next = "READ"
                halt_here()
            with m.State("READ"):  # the memory's read register -> its output register
                m.d.comb += [self.busy.eq(1), imem.r_data_en.eq(1)]
                m.next = "COPY"
                halt_here()
            with m.State("COPY"):  # the output register -> `word`
                m.d.comb += self.busy.eq(1)
                m.d.sync += check_step.eq(0)
                m.next = "CHECK"
                halt_here()
            with m.State("CHECK"):  # `word` -> the registered checks
                m.d.comb += self.busy.eq(1)
                m.d.sync += check_step.eq(0)
                m.next = "DECODE"
                halt_here()
            with m.State("DECODE"):
                # The queues' valid from two registers each (step 40): it enters the queue
                # head's load enable, so it is not the end of the chain of tests below.
                m.d.comb += [
                    self.busy.eq(1),
                    self.load_q.valid.eq(flags.load_ok & ~flags.out_of_range),
                    self.exec_q.valid.eq(flags.store_ok & ~flags.out_of_range),
                ]
                with m.If(flags.illegal):
                    fail(ERR_ILLEGAL, pc)
                with m.Elif(flags.out_of_range):
                    fail(ERR_ADDRESS, pc)
                with m.Elif(op.load), m.If(self.load_q.ready):
                    m.d.sync += pc.eq(pc + 1)
                    m.next = "FETCH"
                with m.Elif(op.store), m.If(self.exec_q.ready):
                    m.d.sync += pc.eq(pc + 1)
                    m.next = "FETCH"
                with m.Elif(op.gemm):  # DECODE is the bound pipeline's first cycle
                    m.d.comb += checking.eq(1)
                    m.next = "BOUNDS"
                with m.Elif(self.drained):  # SYNC / END, once everything before is done
                    m.d.sync += pc.eq(pc + 1)
                    with m.If(op.end):
                        m.d.comb += self.done.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.sync_retired.eq(1)
                        m.next = "FETCH"
                halt_here()
            with m.State("BOUNDS"):
                m.d.comb += [self.busy.eq(1), checking.eq(1)]
                m.d.sync += check_step.eq(check_step + 1)
                with m.If(check_step == bounds_cycles - 2):  # after DECODE's cycle
                    m.next = "PUSH"
                halt_here()
            with m.State("PUSH"):
                m.d.comb += self.busy.eq(1)
                with m.If(~bounds_ok):
                    fail(ERR_ADDRESS, pc)
                with m.Else():
                    m.d.comb += self.exec_q.valid.eq(1)
                    with m.If(self.exec_q.ready):
                        m.d.sync += pc.eq(pc + 1)
                        m.next = "FETCH"
                halt_here()
        return m

    @staticmethod
    def _checks(m, cfg, views):
        """Field and reserved-bit checks of the decoded word and the LOAD / STORE bounds,
        registered: ``illegal`` (error 1) and ``out_of_range`` (error 2, LOAD / STORE), and
        ``load_ok`` / ``store_ok``: a LOAD / STORE that is not illegal (DECODE pushes it if it
        is not out of range either)."""
        gemm, load, store = views[Opcode.GEMM], views[Opcode.LOAD], views[Opcode.STORE]
        opcode = gemm.opcode
        nformats = len(FORMAT_CODES)
        illegal = Signal()
        m.d.comb += illegal.eq(opcode > max(Opcode))
        for op in Opcode:
            with m.If(opcode == op):
                m.d.comb += illegal.eq(_reserved_bits_set(views[op], op))
        bad = {
            Opcode.LOAD: (load.buffer == 3) | (load.count == 0),
            Opcode.STORE: (store.fmt >= nformats) | (store.count == 0),
            Opcode.GEMM: (
                (gemm.m_outer == 0)
                | (gemm.m_inner == 0)
                | (gemm.k == 0)
                | (gemm.k > cfg.max_k)
                | (gemm.n == 0)
                | (gemm.out_format >= nformats)
                | (gemm.multiplier == 0)
                | (gemm.shift > MAX_SHIFT)
                | (gemm.b_from_abuf & int(not cfg.supports_b_from_abuf))
                | (gemm.sparse & Dispatcher._sparse_illegal(cfg, gemm))
            ),
        }
        depth_of = Signal(17)
        with m.Switch(load.buffer):
            with m.Case(0):
                m.d.comb += depth_of.eq(cfg.act_buffer_depth)
            with m.Case(1):
                m.d.comb += depth_of.eq(cfg.weight_buffer_depth)
            with m.Default():
                m.d.comb += depth_of.eq(cfg.bias_buffer_depth)
        layout = data.StructLayout({"illegal": 1, "out_of_range": 1, "load_ok": 1, "store_ok": 1})
        flags = Signal(layout, name="checks")
        illegal_now = illegal | Cat(*((opcode == op) & bad[op] for op in bad)).any()
        out_of_range_now = ((opcode == Opcode.LOAD) & (load.base + load.count > depth_of)) | (
            (opcode == Opcode.STORE) & (store.base + store.count > cfg.act_buffer_depth)
        )
        # (`*_ok` leave out the bounds: their adders and compares are the longest tests.)
        m.d.sync += [
            flags.illegal.eq(illegal_now),
            flags.out_of_range.eq(out_of_range_now),
            flags.load_ok.eq((opcode == Opcode.LOAD) & ~illegal_now),
            flags.store_ok.eq((opcode == Opcode.STORE) & ~illegal_now),
        ]
        return flags

    @staticmethod
    def _b_steps(cfg, gemm):
        """The last B-word step of a tile: ``k - 1``, or ``k / 2 - 1`` for a sparse GEMM."""
        if cfg.sparse_nm is None:
            return gemm.k - 1
        return Mux(gemm.sparse, (gemm.k >> 1) - 1, gemm.k - 1)

    @staticmethod
    def _sparse_illegal(cfg, gemm):
        """What makes a GEMM with ``sparse`` set illegal: no ``sparse_nm`` in the build, or
        ``b_from_abuf``, or a ``k`` that is not a multiple of ``M``."""
        if cfg.sparse_nm is None:
            return 1
        return gemm.b_from_abuf | (gemm.k & (cfg.sparse_nm[1] - 1)).any()

    @staticmethod
    def _gemm_bounds(m, cfg, gemm, checking, platform):
        """The GEMM's largest addresses, exactly (no wrap-around), through one multiplier:
        stage 1 selects the step's operands into registers, stage 2 copies them into the
        multiplier's input registers, stage 3 multiplies into the product register, stage 4
        adds into the bound (on the ECP5 proxy the input and product registers are the
        MULT18X18D's own, ``hw/dsp.py``). Returns ``(ok,
        cycles)``: ``ok`` (from registers) is valid ``cycles`` cycles of ``checking`` after
        it rises."""
        magic, magic_shift = division_magic(cfg.cols)
        acc_a = Signal(35, name="max_a")
        acc_b = Signal(35, name="max_b")
        acc_o = Signal(35, name="max_out")
        acc_c = Signal(35, name="max_bias_row")
        last_tile = Signal(16, name="last_col_tile")
        # (x, y, target, base): target += x * y, or target = base + x * y when base is given;
        # "div": target = x * y >> magic_shift. The division comes first: its result is an
        # operand of the last step, which selects it three cycles later.
        steps = [
            (magic, gemm.n - 1, last_tile, "div"),
            (gemm.m_outer - 1, gemm.a_outer, acc_a, gemm.a_base),
            (gemm.m_inner - 1, gemm.a_inner, acc_a, None),
            (gemm.k - 1, gemm.a_k, acc_a, None),
            (Dispatcher._b_steps(cfg, gemm), gemm.b_k, acc_b, gemm.b_base),
            (gemm.m_outer - 1, gemm.out_outer, acc_o, gemm.out_base),
            (gemm.m_inner - 1, gemm.out_inner, acc_o, None),
            (gemm.n - 1, gemm.out_col, acc_o, None),
            (gemm.m_outer - 1, gemm.bias_outer, acc_c, gemm.bias_base),
            (last_tile, gemm.b_tile, acc_b, None),
        ]
        issue = Signal(range(len(steps) + 1), name="bound_issue")
        x = Signal(17, name="bound_x_next")
        y = Signal(16, name="bound_y_next")
        # The selected operands pass a fabric register (`bound_x_sel`, step 43) before the
        # multiplier's input registers: on the ECP5 proxy those are the MULT18X18D's own, in
        # a DSP row far from the select (a 3.4 ns route behind it, the top's worst path).
        x_sel = Signal.like(x, name="bound_x_sel")
        y_sel = Signal.like(y, name="bound_y_sel")
        s1 = Signal(range(len(steps) + 1), name="bound_s1")  # len(steps): no step
        s2 = Signal(range(len(steps) + 1), name="bound_s2")
        s3 = Signal(range(len(steps) + 1), name="bound_s3")
        product = Signal(33, name="bound_product")
        with m.If(checking & (issue != len(steps))):
            m.d.sync += issue.eq(issue + 1)
        with m.If(~checking):
            m.d.sync += issue.eq(0)
        m.d.sync += [s1.eq(Mux(checking, issue, len(steps))), s2.eq(s1), s3.eq(s2)]
        with m.Switch(issue):
            for index, (step_x, step_y, _, _) in enumerate(steps):
                with m.Case(index):
                    m.d.comb += [x.eq(step_x), y.eq(step_y)]
        m.d.sync += [x_sel.eq(x), y_sel.eq(y)]
        if on_ecp5(platform):
            p = mult18x18d(m, "bound_mult", x_sel, y_sel, en=1, signed_a=False, signed_b=False)
            m.d.comb += product.eq(p)
        else:
            x_q = Signal.like(x, name="bound_x")
            y_q = Signal.like(y, name="bound_y")
            m.d.sync += [x_q.eq(x_sel), y_q.eq(y_sel), product.eq(x_q * y_q)]
        with m.Switch(s3):
            for index, (_, _, target, base) in enumerate(steps):
                with m.Case(index):
                    if isinstance(base, str):
                        m.d.sync += target.eq(product >> magic_shift)
                    elif base is None:
                        m.d.sync += target.eq(target + product)
                    else:
                        m.d.sync += target.eq(base + product)
        b_depth = Mux(gemm.b_from_abuf, cfg.act_buffer_depth, cfg.weight_buffer_depth)
        # The bias rows' bound, `acc_c + n <= depth`, as a compare with a register of
        # `depth - n` (set from the decoded word, which is held from CHECK on, so it is
        # valid long before the steps end): no add in front of `ok`.
        bias_room = Signal(range(-(2 ** len(gemm.n)), cfg.bias_buffer_depth + 1), name="bias_room")
        m.d.sync += bias_room.eq(cfg.bias_buffer_depth - gemm.n)
        ok = Signal(name="bounds_ok")
        m.d.sync += ok.eq(
            (acc_a < cfg.act_buffer_depth)
            & (acc_b < b_depth)
            & (gemm.dst_stream | (acc_o < cfg.act_buffer_depth))
            & (~gemm.bias_en | (acc_c <= bias_room))
        )
        # issue (steps) + operand register + select + multiply + add + the `ok` register
        return ok, len(steps) + 4
