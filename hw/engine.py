"""The TT-contraction engine: the instruction set of :mod:`ttaccel.spec.isa` in hardware.

Blocks (all in the ``sync`` domain)::

    inp -> Dispatcher (program -> instruction memory; decode, check) -> load queue -> LoadEngine
     |                                                               -> exec queue -> ExecuteEngine
     +-> (after the program, the LOADs' data) -> LoadEngine                             |
                                                                                        v
    ABUF (twice when b_from_abuf is possible), WBUF, BIAS: block RAM               out stream

The load and execute engines synchronise through two 8-bit token counters (VTA style); the
execute engine's result writes have priority on the ABUF write port over LOAD writes. An
error (any block) or ``soft_reset`` resets every engine, queue, token counter and stream
interface (``ResetInserter``); buffer contents are kept. See :class:`Engine` for the ports.
"""

from __future__ import annotations

from amaranth import Module, Mux, ResetInserter, Signal, unsigned
from amaranth.lib import fifo, wiring
from amaranth.lib.memory import Memory

from ..spec.accel_config import AccelConfig
from ..spec.isa import TOKEN_LIMIT
from .dispatch import ERR_TLAST, ERR_TOKENS, EXEC_LAYOUT, LOAD_LAYOUT, Dispatcher
from .execute import ExecuteEngine
from .interfaces import engine_signature
from .load_engine import LoadEngine

__all__ = ["Engine"]


class Engine(wiring.Component):
    """The accelerator's engine with the port list of
    :func:`~ttaccel.hw.interfaces.engine_signature`.

    Parameters (keyword-only): ``config``, the :class:`~ttaccel.spec.accel_config.AccelConfig`
    (array shape, weight format, buffer, instruction memory and queue depths, ``max_k``).

    Behaviour: ``start`` (ignored while ``busy``) clears the counters, the token counters and
    the error, then the program is read from ``inp`` and run; ``done`` pulses when END retires
    (every output beat sent), ``error`` when a run stops on an error (codes of
    :data:`ttaccel.spec.regmap.ERROR_CODES`; ``error_pc`` the instruction's index). ``out.last``
    is set on the last beat of the last instruction that sends output (known from the program
    as it loads). Counters: ``busy_cycles`` (cycles with ``busy``), ``macs_issued`` (``rows *
    valid columns`` per beat entering the array), ``stall_cycles`` (busy cycles without such a
    beat), ``instructions_retired`` (END included).

    Latency and throughput: see :mod:`.dispatch`, :mod:`.load_engine` and :mod:`.execute`; in
    short one input beat and one output beat per cycle, one array beat (``rows * cols`` MACs)
    per cycle, no bubble between back-to-back tiles of ``k >= bubble_free_k`` (16 on 16 x 16).
    """

    def __init__(self, *, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"Config must be an AccelConfig, not {config!r}")
        self._config = config
        super().__init__(engine_signature())

    config = property(lambda self: self._config)

    def elaborate(self, platform):
        m = Module()
        cfg = self._config

        # Run control: `abort` returns every block to idle (soft reset or an error).
        busy = Signal(name="busy_q")
        abort = Signal()
        error_now = Signal()
        begin = Signal()
        m.d.comb += [
            begin.eq(self.start & ~busy & ~self.soft_reset),
            abort.eq(self.soft_reset | error_now),
        ]

        dispatcher = Dispatcher(config=cfg)
        load = LoadEngine(config=cfg)
        execute = ExecuteEngine(config=cfg)
        load_q = fifo.SyncFIFO(width=LOAD_LAYOUT.size, depth=cfg.queue_depth)
        exec_q = fifo.SyncFIFO(width=EXEC_LAYOUT.size, depth=cfg.queue_depth)
        m.submodules.dispatcher = ResetInserter(abort)(dispatcher)
        m.submodules.load = ResetInserter(abort)(load)
        m.submodules.execute = ResetInserter(abort)(execute)
        m.submodules.load_q = ResetInserter(abort)(load_q)
        m.submodules.exec_q = ResetInserter(abort)(exec_q)

        # Dispatcher: program from the input stream, instructions to the queues.
        m.d.comb += [
            dispatcher.start.eq(begin),
            dispatcher.program_length.eq(self.program_length),
            self.pc.eq(dispatcher.pc),
            load_q.w_en.eq(dispatcher.load_q.valid & load_q.w_rdy),
            load_q.w_data.eq(dispatcher.load_q.payload),
            dispatcher.load_q.ready.eq(load_q.w_rdy),
            exec_q.w_en.eq(dispatcher.exec_q.valid & exec_q.w_rdy),
            exec_q.w_data.eq(dispatcher.exec_q.payload),
            dispatcher.exec_q.ready.eq(exec_q.w_rdy),
            load.q.valid.eq(load_q.r_rdy),
            load.q.payload.eq(load_q.r_data),
            load_q.r_en.eq(load.q.ready),
            execute.q.valid.eq(exec_q.r_rdy),
            execute.q.payload.eq(exec_q.r_data),
            exec_q.r_en.eq(execute.q.ready),
            dispatcher.drained.eq(~load_q.r_rdy & ~exec_q.r_rdy & load.idle & execute.idle),
        ]

        # Input stream: the program while the dispatcher loads it, then the LOADs' data.
        loading = dispatcher.loading
        for sink in (dispatcher.inp, load.inp):
            m.d.comb += sink.payload.eq(self.inp.payload)
        m.d.comb += [
            dispatcher.inp.valid.eq(self.inp.valid & loading),
            load.inp.valid.eq(self.inp.valid & ~loading),
            self.inp.ready.eq(Mux(loading, dispatcher.inp.ready, load.inp.ready)),
        ]
        wiring.connect(m, execute.out, wiring.flipped(self.out))

        # Buffers. ABUF's single write port: results first, LOAD words when it is free.
        abuf_copies = 2 if execute.has_b_from_abuf else 1
        abufs = []
        for copy in range(abuf_copies):
            mem = Memory(shape=unsigned(cfg.a_word_bits), depth=cfg.act_buffer_depth, init=[])
            m.submodules[f"abuf{copy}"] = mem
            abufs.append((mem.write_port(), mem.read_port()))
        for write, _ in abufs:
            m.d.comb += [
                write.en.eq(Mux(execute.res_en, 1, load.abuf_en)),
                write.addr.eq(Mux(execute.res_en, execute.res_addr, load.abuf_addr)),
                write.data.eq(Mux(execute.res_en, execute.res_data, load.abuf_data)),
            ]
        m.d.comb += load.abuf_grant.eq(~execute.res_en)
        _, a_read = abufs[0]
        m.d.comb += [
            a_read.addr.eq(execute.a_addr),
            a_read.en.eq(execute.a_en),
            execute.a_data.eq(a_read.data),
        ]
        if execute.has_b_from_abuf:
            _, b2_read = abufs[1]
            m.d.comb += [
                b2_read.addr.eq(execute.b2_addr),
                b2_read.en.eq(execute.b2_en),
                execute.b2_data.eq(b2_read.data),
            ]
        m.submodules.wbuf = wbuf = Memory(
            shape=unsigned(cfg.b_word_bits), depth=cfg.weight_buffer_depth, init=[]
        )
        m.submodules.bias = bias = Memory(shape=unsigned(32), depth=cfg.bias_buffer_depth, init=[])
        for mem, prefix in ((wbuf, "wbuf"), (bias, "bias")):
            write, read = mem.write_port(), mem.read_port()
            m.d.comb += [
                write.en.eq(getattr(load, f"{prefix}_en")),
                write.addr.eq(getattr(load, f"{prefix}_addr")),
                write.data.eq(getattr(load, f"{prefix}_data")),
            ]
            source = "w" if prefix == "wbuf" else "bias"
            m.d.comb += [
                read.addr.eq(getattr(execute, f"{source}_addr")),
                read.en.eq(getattr(execute, f"{source}_en")),
                getattr(execute, f"{source}_data").eq(read.data),
            ]

        # Token counters: load -> execute and execute -> load.
        token_overflow = Signal()
        overflow_pc = Signal(16)
        for name, push, pop, ready, pc in (
            ("tokens_to_exec", load.signal, execute.token_take, execute.token_ready, load.pc),
            (
                "tokens_to_load",
                execute.signal,
                load.token_take,
                load.token_ready,
                execute.signal_pc,
            ),
        ):
            count = Signal(range(TOKEN_LIMIT + 1), name=name)
            m.d.comb += ready.eq(count != 0)
            with m.If(push & ~pop & (count == TOKEN_LIMIT)):
                m.d.comb += [token_overflow.eq(1), overflow_pc.eq(pc)]
            with m.If(abort | begin):
                m.d.sync += count.eq(0)
            with m.Elif(push & ~pop):
                m.d.sync += count.eq(count + 1)
            with m.Elif(pop & ~push):
                m.d.sync += count.eq(count - 1)

        # Errors: the first one stops the run; code and index stay until the next start.
        code = Signal(8)
        at = Signal(16)
        with m.If(dispatcher.error):
            m.d.comb += [
                error_now.eq(1),
                code.eq(dispatcher.error_code),
                at.eq(dispatcher.error_pc),
            ]
        with m.Elif(load.error):
            m.d.comb += [error_now.eq(1), code.eq(ERR_TLAST), at.eq(load.pc)]
        with m.Elif(token_overflow):
            m.d.comb += [error_now.eq(1), code.eq(ERR_TOKENS), at.eq(overflow_pc)]
        error_code = Signal(8, name="error_code_q")
        error_pc = Signal(16, name="error_pc_q")
        m.d.comb += [self.error_code.eq(error_code), self.error_pc.eq(error_pc)]
        with m.If(begin):
            m.d.sync += [error_code.eq(0), error_pc.eq(0)]
        with m.If((busy | begin) & error_now & ~self.soft_reset):
            m.d.sync += [error_code.eq(code), error_pc.eq(at)]
            m.d.comb += self.error.eq(1)

        # Busy, done.
        m.d.comb += [self.busy.eq(busy), self.done.eq(busy & dispatcher.done & ~abort)]
        with m.If(abort | dispatcher.done):
            m.d.sync += busy.eq(0)
        with m.Elif(begin):
            m.d.sync += busy.eq(1)

        # Performance counters (cleared by start).
        retired = load.retired + execute.retired + dispatcher.sync_retired + dispatcher.done
        counters = (
            (self.busy_cycles, busy),
            (self.macs_issued, Mux(execute.mac_fire, execute.macs, 0)),
            (self.stall_cycles, busy & ~execute.mac_fire),
            (self.instructions_retired, Mux(busy, retired, 0)),
        )
        for counter, increment in counters:
            value = Signal(64, name=f"{counter.name}_q")
            m.d.comb += counter.eq(value)
            with m.If(begin):
                m.d.sync += value.eq(0)
            with m.Else():
                m.d.sync += value.eq(value + increment)
        return m
