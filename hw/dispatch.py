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
above 47, ``b_from_abuf`` where the configuration does not allow it -- or dispatch running
past the program without END (1); any word a LOAD, STORE or GEMM would touch outside its
buffer (2). GEMM bounds are the exact largest addresses, computed with one shared 17 x 16-bit
multiplier over ten cycles (no wrap-around, as the ISA requires).

Timing: the program arrives at one beat per cycle; after it, a LOAD, STORE or SYNC takes 2
cycles to dispatch (fetch, decode) and a GEMM 12 (fetch, decode with the first bound step,
nine more bound steps, push).
"""

from __future__ import annotations

import math

import numpy as np
from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..spec.accel_config import INSTRUCTION_BITS, AccelConfig
from ..spec.formats import MAX_SHIFT
from ..spec.isa import BEATS_PER_INSTRUCTION, FORMAT_CODES, STREAM_BITS, Opcode, encoding_table
from .interfaces import STREAM_BEAT

__all__ = ["ERR_ADDRESS", "ERR_ILLEGAL", "EXEC_LAYOUT", "LOAD_LAYOUT", "Dispatcher"]

ERR_ILLEGAL = 1
ERR_ADDRESS = 2
ERR_PROGRAM_LENGTH = 3
ERR_TOKENS = 4
ERR_TLAST = 5

_FIELDS = {
    name: {f: (lsb, width) for f, lsb, width in layout} for name, layout in encoding_table().items()
}

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


def _field(word, opcode: str, name: str):
    lsb, width = _FIELDS[opcode][name]
    return word[lsb : lsb + width]


def _reserved_mask(opcode: str) -> int:
    used = 0
    for lsb, width in _FIELDS[opcode].values():
        used |= ((1 << width) - 1) << lsb
    return ((1 << INSTRUCTION_BITS) - 1) & ~used


def division_magic(divisor: int, bits: int = 16) -> tuple[int, int]:
    """``(multiplier, shift)`` with ``x // divisor == (x * multiplier) >> shift`` for every
    ``x < 2**bits`` (checked exhaustively)."""
    shift = bits + max(0, math.ceil(math.log2(divisor)))
    multiplier = -(-(1 << shift) // divisor)
    x = np.arange(1 << bits, dtype=np.int64)
    if not np.array_equal((x * multiplier) >> shift, x // divisor):  # pragma: no cover
        raise AssertionError(f"no exact {bits}-bit division magic for {divisor}")
    return multiplier, shift


class Dispatcher(wiring.Component):
    """Loads the program, decodes, checks and dispatches it; see the module docstring.

    Parameters (keyword-only): ``config``, an :class:`AccelConfig`.

    Ports
        ``start`` (pulse, ignored while ``busy``), ``program_length``; ``inp``: the input
        stream while ``loading`` (the engine routes it); ``load_q`` / ``exec_q``: streams of
        :data:`LOAD_LAYOUT` / :data:`EXEC_LAYOUT`; ``drained``: everything dispatched has
        completed; ``sync_retired``: a SYNC passed (pulse); ``done``: END retired (pulse);
        ``error`` (pulse) with ``error_code`` / ``error_pc``; ``pc``: instructions dispatched;
        ``busy``. The engine aborts a run by resetting this block (``ResetInserter``).
    """

    def __init__(self, *, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"Config must be an AccelConfig, not {config!r}")
        self._config = config
        super().__init__(
            {
                "start": In(1),
                "program_length": In(16),
                "inp": In(stream.Signature(STREAM_BEAT)),
                "loading": Out(1),
                "load_q": Out(stream.Signature(LOAD_LAYOUT)),
                "exec_q": Out(stream.Signature(EXEC_LAYOUT)),
                "drained": In(1),
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
        b_from_abuf_ok = cfg.rows == cfg.cols and cfg.weight_format.name == "int8"

        # Instruction memory: one 320-bit word per instruction.
        m.submodules.imem = imem = Memory(
            shape=unsigned(INSTRUCTION_BITS), depth=cfg.instruction_depth, init=[]
        )
        imem_w = imem.write_port()
        imem_r = imem.read_port()

        length = Signal(16, name="length")
        pc = Signal(16, name="pc_q")
        beat = Signal(range(BEATS_PER_INSTRUCTION), name="beat")
        loaded = Signal(16, name="loaded")
        shift_in = Signal((BEATS_PER_INSTRUCTION - 1) * STREAM_BITS, name="shift_in")
        last_out_pc = Signal(17, name="last_out_pc")  # 2**16: no instruction sends output
        m.d.comb += self.pc.eq(pc)

        def fail(code, at):
            m.d.comb += [self.error.eq(1), self.error_code.eq(code), self.error_pc.eq(at)]
            m.next = "IDLE"

        # Decode of the fetched word (held in the read port while decoding).
        word = imem_r.data
        opcode = word[:4]
        is_load, is_store = opcode == Opcode.LOAD, opcode == Opcode.STORE
        is_gemm, is_end = opcode == Opcode.GEMM, opcode == Opcode.END
        illegal = Signal()
        m.d.comb += illegal.eq(opcode > max(Opcode))
        for op in Opcode:
            with m.If(opcode == op):
                m.d.comb += illegal.eq((word & _reserved_mask(op.name)) != 0)
        nformats = len(FORMAT_CODES)
        f = {name: _field(word, "GEMM", name) for name in _FIELDS["GEMM"]}
        load = {name: _field(word, "LOAD", name) for name in _FIELDS["LOAD"]}
        store = {name: _field(word, "STORE", name) for name in _FIELDS["STORE"]}
        bad_load = (load["buffer"] == 3) | (load["count"] == 0)
        bad_store = (store["fmt"] >= nformats) | (store["count"] == 0)
        bad_gemm = (
            (f["m_outer"] == 0)
            | (f["m_inner"] == 0)
            | (f["k"] == 0)
            | (f["k"] > cfg.max_k)
            | (f["n"] == 0)
            | (f["out_format"] >= nformats)
            | (f["multiplier"] == 0)
            | (f["shift"] > MAX_SHIFT)
        )
        if not b_from_abuf_ok:
            bad_gemm = bad_gemm | f["b_from_abuf"]
        depth_of = Signal(17)
        with m.Switch(load["buffer"]):
            with m.Case(0):
                m.d.comb += depth_of.eq(cfg.act_buffer_depth)
            with m.Case(1):
                m.d.comb += depth_of.eq(cfg.weight_buffer_depth)
            with m.Default():
                m.d.comb += depth_of.eq(cfg.bias_buffer_depth)
        load_end = load["base"] + load["count"]  # one past the last word (17 bits)
        store_end = store["base"] + store["count"]

        # GEMM bounds: nine multiply-add steps through one multiplier.
        magic, magic_shift = division_magic(cfg.cols)
        step = Signal(range(11), name="check_step")
        mul_x = Signal(17)
        mul_y = Signal(16)
        product = Signal(33)
        m.d.comb += product.eq(mul_x * mul_y)
        acc_a = Signal(35, name="max_a")
        acc_b = Signal(35, name="max_b")
        acc_o = Signal(35, name="max_out")
        acc_c = Signal(35, name="max_bias_row")
        last_tile = Signal(16, name="last_col_tile")
        # (x, y, target, base): target += x * y, or target = base + x * y when base is given.
        steps = [
            (f["m_outer"] - 1, f["a_outer"], acc_a, f["a_base"]),
            (f["m_inner"] - 1, f["a_inner"], acc_a, None),
            (f["k"] - 1, f["a_k"], acc_a, None),
            (f["k"] - 1, f["b_k"], acc_b, f["b_base"]),
            (magic, f["n"] - 1, last_tile, "div"),
            (last_tile, f["b_tile"], acc_b, None),
            (f["m_outer"] - 1, f["out_outer"], acc_o, f["out_base"]),
            (f["m_inner"] - 1, f["out_inner"], acc_o, None),
            (f["n"] - 1, f["out_col"], acc_o, None),
            (f["m_outer"] - 1, f["bias_outer"], acc_c, f["bias_base"]),
        ]
        checking = Signal()
        with m.If(checking), m.Switch(step):
            for index, (x, y, target, base) in enumerate(steps):
                with m.Case(index):
                    m.d.comb += [mul_x.eq(x), mul_y.eq(y)]
                    if isinstance(base, str):
                        m.d.sync += target.eq(product >> magic_shift)
                    elif base is None:
                        m.d.sync += target.eq(target + product)
                    else:
                        m.d.sync += target.eq(base + product)
        b_depth = Mux(f["b_from_abuf"], cfg.act_buffer_depth, cfg.weight_buffer_depth)
        gemm_out_of_range = (
            (acc_a >= cfg.act_buffer_depth)
            | (acc_b >= b_depth)
            | (~f["dst_stream"] & (acc_o >= cfg.act_buffer_depth))
            | (f["bias_en"] & (acc_c + f["n"] > cfg.bias_buffer_depth))
        )

        final = Signal()
        m.d.comb += final.eq(pc == last_out_pc)

        # Queue entries from the decoded word.
        lq = self.load_q.payload
        m.d.comb += [
            lq.wait.eq(load["wait"]),
            lq.signal.eq(load["signal"]),
            lq.buffer.eq(load["buffer"]),
            lq.base.eq(load["base"]),
            lq.count.eq(load["count"]),
            lq.pc.eq(pc),
        ]
        eq = self.exec_q.payload
        m.d.comb += [
            getattr(eq, name).eq(f[name])
            for name in (
                "wait",
                "signal",
                "fence",
                "dst_stream",
                "b_from_abuf",
                "bias_en",
                "out_format",
                "m_outer",
                "m_inner",
                "k",
                "n",
                "a_base",
                "a_outer",
                "a_inner",
                "a_k",
                "b_base",
                "b_tile",
                "b_k",
                "out_base",
                "out_outer",
                "out_inner",
                "out_col",
                "bias_base",
                "bias_outer",
                "multiplier",
                "shift",
            )
        ]
        m.d.comb += [eq.final.eq(final), eq.pc.eq(pc)]
        with m.If(is_store):
            m.d.comb += [
                eq.store.eq(1),
                eq.fence.eq(0),
                eq.dst_stream.eq(1),
                eq.out_format.eq(store["fmt"]),
                eq.a_base.eq(store["base"]),
                eq.n.eq(store["count"]),
            ]

        with m.FSM(name="dispatch"):
            with m.State("IDLE"), m.If(self.start):
                m.d.sync += [
                    length.eq(self.program_length),
                    pc.eq(0),
                    beat.eq(0),
                    loaded.eq(0),
                    last_out_pc.eq(1 << 16),
                ]
                with m.If(self.program_length > cfg.instruction_depth):
                    fail(ERR_PROGRAM_LENGTH, 0)
                with m.Elif(self.program_length == 0):
                    m.next = "FETCH"
                with m.Else():
                    m.next = "PROGRAM"
            with m.State("PROGRAM"):
                m.d.comb += [self.busy.eq(1), self.loading.eq(1), self.inp.ready.eq(1)]
                m.d.comb += [
                    imem_w.addr.eq(loaded),
                    imem_w.data.eq(Cat(shift_in, self.inp.payload.data)),
                    imem_w.en.eq(self.inp.valid & (beat == BEATS_PER_INSTRUCTION - 1)),
                ]
                with m.If(self.inp.valid):
                    m.d.sync += shift_in.eq(Cat(shift_in[STREAM_BITS:], self.inp.payload.data))
                    with m.If(beat == BEATS_PER_INSTRUCTION - 1):
                        m.d.sync += [beat.eq(0), loaded.eq(loaded + 1)]
                    with m.Else():
                        m.d.sync += beat.eq(beat + 1)
                    with m.If(beat == 0):  # opcode and dst_stream sit in the first beat
                        op0 = self.inp.payload.data[:4]
                        with m.If(
                            (op0 == Opcode.STORE)
                            | ((op0 == Opcode.GEMM) & self.inp.payload.data[8])
                        ):
                            m.d.sync += last_out_pc.eq(loaded)
                    last_beat = (beat == BEATS_PER_INSTRUCTION - 1) & (loaded == length - 1)
                    with m.If(last_beat):
                        m.next = "FETCH"
                    with m.Elif(self.inp.payload.last):
                        fail(ERR_TLAST, loaded)
            with m.State("FETCH"):
                m.d.comb += [self.busy.eq(1), imem_r.addr.eq(pc), imem_r.en.eq(1)]
                m.d.sync += step.eq(0)
                with m.If(pc >= length):
                    fail(ERR_ILLEGAL, pc)
                with m.Else():
                    m.next = "DECODE"
            with m.State("DECODE"):
                m.d.comb += [self.busy.eq(1), imem_r.en.eq(0)]
                with m.If(
                    illegal | (is_load & bad_load) | (is_store & bad_store) | (is_gemm & bad_gemm)
                ):
                    fail(ERR_ILLEGAL, pc)
                with m.Elif(is_load):
                    with m.If(load_end > depth_of):
                        fail(ERR_ADDRESS, pc)
                    with m.Else():
                        m.d.comb += self.load_q.valid.eq(1)
                        with m.If(self.load_q.ready):
                            m.d.sync += pc.eq(pc + 1)
                            m.next = "FETCH"
                with m.Elif(is_store):
                    with m.If(store_end > cfg.act_buffer_depth):
                        fail(ERR_ADDRESS, pc)
                    with m.Else():
                        m.d.comb += self.exec_q.valid.eq(1)
                        with m.If(self.exec_q.ready):
                            m.d.sync += pc.eq(pc + 1)
                            m.next = "FETCH"
                with m.Elif(is_gemm):  # bound step 0 already
                    m.d.comb += checking.eq(1)
                    m.d.sync += step.eq(1)
                    m.next = "CHECK"
                with m.Elif(self.drained):  # SYNC / END, once everything before is done
                    m.d.sync += pc.eq(pc + 1)
                    with m.If(is_end):
                        m.d.comb += self.done.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.sync_retired.eq(1)
                        m.next = "FETCH"
            with m.State("CHECK"):
                m.d.comb += [self.busy.eq(1), imem_r.en.eq(0), checking.eq(1)]
                m.d.sync += step.eq(step + 1)
                with m.If(step == len(steps) - 1):
                    m.next = "BOUNDS"
            with m.State("BOUNDS"):
                m.d.comb += [self.busy.eq(1), imem_r.en.eq(0)]
                with m.If(gemm_out_of_range):
                    fail(ERR_ADDRESS, pc)
                with m.Else():
                    m.d.comb += self.exec_q.valid.eq(1)
                    with m.If(self.exec_q.ready):
                        m.d.sync += pc.eq(pc + 1)
                        m.next = "FETCH"
        return m
