"""The TT-contraction engine: the instruction set of :mod:`ttaccel.spec.isa` in hardware.

Blocks (all in the ``sync`` domain)::

    inp -> Dispatcher (program -> instruction memory; decode, check) -> load queue -> LoadEngine
     |                                                               -> exec queue -> ExecuteEngine
     +-> (after the program, the LOADs' data) -> input stage -> LoadEngine             |
                                                                                        v
    ABUF (twice: b_from_abuf or sparse_nm), WBUF, BIAS: block RAM        output register -> out

The load and execute engines synchronise through two 8-bit token counters (VTA style); the
execute engine's result writes (from registers) have priority on the ABUF write port over LOAD
writes. The input stage (three entries, the head a register) takes the LOADs' beats as soon
as their LOADs are queued, at most the beats those LOADs consume, so the load engine takes a
LOAD's first beat the cycle after its start, as from the port, without a path from the port
into its placement shift.
``out`` comes from a register (``TDATA``/``TVALID``/``TLAST`` never from logic), with a skid
register behind it, so ``out.ready`` reaches only those two registers.

Errors (the run-stop sequence that :mod:`ttaccel.spec.isa`, "Errors", documents for the
host): the first error's code and instruction index ``e`` are registered; the dispatcher
stops; no instruction at or after ``e`` starts (instructions before ``e`` run to completion,
as do any after ``e`` that had already started); a load engine that saw a stray TLAST is reset.
An error found in cycle ``t`` is pending in ``t + 1`` (no queue head starts, the dispatcher
is halted) and bounds the queue heads from ``t + 2``: one quiet cycle, on error runs only (a
token overflow is registered first: it holds the heads from ``t + 1`` and bounds them from
``t + 3``). While stopping, a queue head that is new (it arrived or moved up last cycle) or
follows a pending error waits one more cycle: the bound's compare is registered.
Once nothing more can run (both engines idle, every queue head after ``e`` or waiting for a
token that cannot come, the output register empty), the engine offers one all-zero beat with
TLAST if the run's TLAST beat has not been sent, then pulses ``error`` and drops ``busy``.
From then until the next ``start`` or ``soft_reset`` every input beat is accepted and
discarded. ``soft_reset`` resets every engine, queue, token counter and the dispatcher
(``ResetInserter``) but not the output register: a beat it offers stays offered until it is
accepted (a beat in the skid register behind it, never offered, is dropped). Buffer contents
are kept. See :class:`Engine` for the ports.
"""

from __future__ import annotations

from amaranth import Module, Mux, ResetInserter, Signal
from amaranth.lib import wiring

from ..spec.isa import TOKEN_LIMIT
from .dispatch import (
    ERR_TLAST,
    ERR_TOKENS,
    LOAD_LAYOUT,
    Dispatcher,
    exec_layout,
    max_load_beats,
)
from .execute import ExecuteEngine
from .interfaces import STREAM_BEAT, StreamFIFO, check_config, engine_signature
from .load_engine import LoadEngine
from .memory import RegisteredReadMemory

__all__ = ["Engine"]

_INPUT_STAGE_DEPTH = 3
"""Input-stage entries: the head register and two behind it, so the stage (whose ``i.ready``
is low while it is full) passes one beat per cycle."""


class Engine(wiring.Component):
    """The accelerator's engine with the port list of
    :func:`~ttaccel.hw.interfaces.engine_signature`.

    Parameters (keyword-only): ``config``, the :class:`~ttaccel.spec.accel_config.AccelConfig`
    (array shape, weight format, buffer, instruction memory and queue depths, ``max_k``).

    Behaviour: ``start`` (ignored while ``busy``) clears the counters, the token counters and
    the error, then the program is read from ``inp`` and run; ``done`` pulses when END retires
    (every output beat accepted), ``error`` when a run has stopped on an error (codes of
    :data:`ttaccel.spec.regmap.ERROR_CODES`; ``error_pc`` the instruction's index; the stop
    sequence is the module docstring's). ``out.last`` is set on the last beat of the last
    instruction that sends output (known from the program as it loads), or on the extra beat
    an error adds. ``pc``: instructions dispatched, kept after the run. Counters:
    ``busy_cycles`` (cycles with ``busy``), ``macs_issued`` (``rows * valid columns`` per beat
    entering the array), ``stall_cycles`` (busy cycles without such a beat),
    ``instructions_retired`` (END included).

    Latency and throughput: see :mod:`.dispatch`, :mod:`.load_engine` and :mod:`.execute`; in
    short one input beat and one output beat per cycle, one array beat (``rows * cols`` MACs)
    per cycle, no bubble between back-to-back tiles of ``k >= bubble_free_k`` (16 on 16 x 16);
    the output register adds one cycle to every output beat (its skid register none: it holds
    a beat only while ``out.ready`` is low).
    """

    def __init__(self, *, config):
        self._config = check_config(config)
        super().__init__(engine_signature())

    config = property(lambda self: self._config)

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        reset = self.soft_reset  # a register in the CSR bank: one cycle pulse

        # Blocks; `load_abort` (registered) resets the load engine after a stray TLAST, and
        # `flush` (registered) empties the queues of the instructions a stopped run left.
        load_abort = Signal(name="load_abort")
        flush = Signal(name="flush")
        m.submodules.dispatcher = dispatcher = ResetInserter(reset)(Dispatcher(config=cfg))
        m.submodules.load = load = ResetInserter(reset | load_abort)(LoadEngine(config=cfg))
        m.submodules.execute = execute = ResetInserter(reset)(ExecuteEngine(config=cfg))
        # The queues' heads alternate between two registers where the depth allows (step 48),
        # so an engine's start (the queue pop, at the end of the gate, token and ordering
        # tests) reaches their flags, not the enables of the head's ~400 flip-flops.
        heads = {"registered_head": True, "two_heads": cfg.queue_depth >= 3}
        m.submodules.load_q = load_q = ResetInserter(reset | flush)(
            StreamFIFO(layout=LOAD_LAYOUT, depth=cfg.queue_depth, **heads)
        )
        m.submodules.exec_q = exec_q = ResetInserter(reset | flush)(
            StreamFIFO(layout=exec_layout(cfg), depth=cfg.queue_depth, **heads)
        )
        m.submodules.input_stage = input_stage = ResetInserter(reset | flush)(
            StreamFIFO(layout=STREAM_BEAT, depth=_INPUT_STAGE_DEPTH, registered_head=True)
        )
        has_b2 = execute.has_b2

        busy = Signal(name="busy_q")
        pending = Signal(name="error_pending")  # an error was found last cycle (registered)
        token_overflow = Signal(name="token_overflow")  # a token counter overflowed (registered)
        # `~pending & ~token_overflow` in a register of its own (step 42), set from their
        # inputs: each queue head's gate below is then one LUT4 of flip-flops.
        no_new_error = Signal(name="no_new_error", init=1)
        overflow_pc = Signal(16, name="token_overflow_pc")
        stopping = Signal(name="stopping")  # an error was seen; waiting for quiescence
        limit = Signal(16, name="stop_limit")  # no instruction at or after it starts
        begin = Signal()
        m.d.comb += begin.eq(self.start & ~busy & ~reset)

        # Dispatcher -> queues -> engines; a queue head at or after `limit` never starts, and
        # no head starts while an error is pending (the cycle before it updates `limit`). The
        # compare `pc < limit` is registered (`before_limit`): it holds for this cycle's head
        # when last cycle's head was valid, did not leave, and no error was pending (so the
        # head and `limit` are unchanged); otherwise, while stopping, the head waits a cycle.
        # Runs without an error (`stopping` low) are not affected.
        m.d.comb += [
            dispatcher.start.eq(begin),
            dispatcher.program_length.eq(self.program_length),
            dispatcher.halt.eq(stopping | ~no_new_error),
            self.pc.eq(dispatcher.pc),
        ]
        wiring.connect(m, dispatcher.load_q, load_q.i)
        wiring.connect(m, dispatcher.exec_q, exec_q.i)
        for name, fifo_q, engine in (("load", load_q, load), ("exec", exec_q, execute)):
            before_limit = Signal(name=f"{name}_before_limit")
            head_stable = Signal(name=f"{name}_head_stable")
            m.d.sync += [
                before_limit.eq(fifo_q.o.payload.pc < limit),
                head_stable.eq(fifo_q.o.valid & ~fifo_q.o.ready & ~pending),
            ]
            allowed = no_new_error & (~stopping | (before_limit & head_stable))
            m.d.comb += [
                engine.q.payload.eq(fifo_q.o.payload),
                engine.q.valid.eq(fifo_q.o.valid & allowed),
                fifo_q.o.ready.eq(engine.q.ready),
            ]

        # Output stage: the output register (`out_q`, what `out` shows) and a skid register
        # behind it (step 44). A beat enters while the skid is empty (`take_in`, a register),
        # into the output register if it is free or leaving, else into the skid, which moves
        # up when the output register leaves. So the execute engine's ready, the trailer and
        # `sent_last` no longer follow `out.ready` (the AXI-Stream TREADY, from outside the
        # engine): it reaches only this stage's own registers. With `out.ready` high the skid
        # stays empty, so a run's cycles are those of the output register alone; under
        # back-pressure the engine can hand over one beat more. A soft reset drops a beat in
        # the skid (never offered on `out`) and keeps the offered one.
        out_q = Signal(STREAM_BEAT, name="out_q")
        out_valid = Signal(name="out_valid")
        skid = Signal(STREAM_BEAT, name="out_skid", reset_less=True)
        skid_valid = Signal(name="out_skid_valid")
        take_in = Signal()  # the stage accepts a beat this cycle (its skid is empty)
        out_free = Signal()  # the output register is empty or leaving
        sent_last = Signal(name="sent_last")  # this run's TLAST beat has entered the stage
        trailer = Signal()  # load the error's TLAST beat now
        incoming = Signal(STREAM_BEAT)
        arrives = Signal()
        m.d.comb += [
            take_in.eq(~skid_valid),
            out_free.eq(~out_valid | self.out.ready),
            self.out.valid.eq(out_valid),
            self.out.payload.eq(out_q),
            # Not `& ~trailer`: the trailer is loaded only while `quiet` (and `trailer_armed`),
            # which saw the execute engine idle with nothing startable, so it offers no beat.
            # So no path runs from `quiet` (the engines' idle tests) into the packer.
            execute.out.ready.eq(take_in),
            arrives.eq(take_in & (trailer | execute.out.valid)),
            incoming.eq(execute.out.payload),
        ]
        with m.If(trailer):
            m.d.comb += [incoming.data.eq(0), incoming.last.eq(1)]
        # The two registers' enables are functions of `out_valid`, `out.ready` and
        # `skid_valid` alone (step 54): the output register loads whenever it is free and
        # the skid whenever it is empty and the output register is not, whether or not a
        # beat arrives (a payload without its valid flag is never offered), so the
        # arriving beat's valid (the packer's level, the trailer) reaches the valid flags
        # only, not the enables of 65 flip-flops (c244600's worst path).
        moves_up = skid_valid & ~reset
        with m.If(out_free):
            m.d.sync += [
                out_valid.eq(moves_up | arrives),
                skid_valid.eq(0),
                out_q.eq(Mux(moves_up, skid, incoming)),
            ]
        with m.Elif(take_in):
            m.d.sync += [skid.eq(incoming), skid_valid.eq(arrives)]
        with m.If(reset):
            m.d.sync += skid_valid.eq(0)
        with m.If(arrives & incoming.last):
            m.d.sync += sent_last.eq(1)
        with m.If(begin):
            m.d.sync += sent_last.eq(0)

        # Input stream: the program while the dispatcher loads it, then the LOADs' data;
        # after an error run, discarded until the next start or soft reset. The LOADs' data
        # pass an input stage (a queue whose head is a register), so no path runs from the
        # input port into the load engine's placement shift. The stage takes a beat only
        # while `owed` (the beats of the LOADs queued so far, less those taken) is not
        # zero: it fills ahead of a LOAD's start, and the load engine takes the LOAD's first
        # beat the cycle after its start, as it would from the port (same cycles). Beats
        # it took for LOADs that then never start (an error stopped the run) are dropped
        # with the queues (`flush`), as the rest of the input is after an error.
        discard = Signal(name="discard_input")
        loading = dispatcher.loading
        # `owed` takes a LOAD's beats and a taken beat a cycle late, from registers
        # (`enqueued`, `queued`, `took`), as the token counters do, so no path runs from the
        # input stage's level or the load queue's handshake into its adder. `owing` (the
        # count with those registers, not zero) is then a small function of registers: a
        # LOAD just queued always owes beats (the dispatcher rejects a LOAD of no words as
        # illegal, error 1, so every LOAD on `load_q` has a beat at least), and `took` implies
        # `owed >= 1` (a beat is taken only while `owing`, and `owed` is then that nonzero
        # count), so without a new LOAD the count is zero exactly when `owed == took`
        # (`owed_is_0`, `owed_is_1`: registered from the adder's result).
        owed = Signal(range((cfg.queue_depth + 2) * max_load_beats(cfg) + 1), name="beats_owed")
        queued = Signal.like(dispatcher.load_beats, name="beats_queued")
        enqueued = Signal(name="beats_enqueued")
        took = Signal(name="beat_took")
        owed_is_0 = Signal(name="beats_owed_is_0", init=1)
        owed_is_1 = Signal(name="beats_owed_is_1")
        owed_now = Signal.like(owed)  # the count with the three late registers
        owing = Signal(name="owing")  # `owed_now != 0`, from registers only
        m.d.comb += [
            owed_now.eq(owed + Mux(enqueued, queued, 0) - took),
            owing.eq(enqueued | ~Mux(took, owed_is_1, owed_is_0)),
        ]
        with m.If(reset | begin | flush):
            m.d.sync += [owed.eq(0), enqueued.eq(0), took.eq(0)]
            m.d.sync += [owed_is_0.eq(1), owed_is_1.eq(0)]
        with m.Else():
            m.d.sync += [
                owed.eq(owed_now),
                owed_is_0.eq(owed_now == 0),
                owed_is_1.eq(owed_now == 1),
                enqueued.eq(dispatcher.load_q.valid & dispatcher.load_q.ready),
                queued.eq(dispatcher.load_beats),  # a register: the LOAD's beats
                took.eq(input_stage.i.valid & input_stage.i.ready),
            ]
        m.d.comb += [
            dispatcher.inp.payload.eq(self.inp.payload),
            input_stage.i.payload.eq(self.inp.payload),
            dispatcher.inp.valid.eq(self.inp.valid & loading),
            input_stage.i.valid.eq(self.inp.valid & ~loading & ~discard & owing),
            self.inp.ready.eq(
                ~reset & (discard | Mux(loading, dispatcher.inp.ready, input_stage.i.ready & owing))
            ),
        ]
        wiring.connect(m, input_stage.o, load.inp)

        # Buffers, each read through its output register (`RegisteredReadMemory`). ABUF's
        # single write port: results first, LOAD words when it is free.
        abufs = []
        for copy in range(2 if has_b2 else 1):
            mem = RegisteredReadMemory(width=cfg.a_word_bits, depth=cfg.act_buffer_depth)
            m.submodules[f"abuf{copy}"] = mem
            m.d.comb += [
                mem.w_en.eq(Mux(execute.res_en, 1, load.abuf_en)),
                mem.w_addr.eq(Mux(execute.res_en, execute.res_addr, load.abuf_addr)),
                mem.w_data.eq(Mux(execute.res_en, execute.res_data, load.abuf_data)),
            ]
            abufs.append(mem)
        m.d.comb += load.abuf_grant.eq(~execute.res_en)
        reads = [(abufs[0], execute.a_addr, execute.a_en, execute.a_data_en, execute.a_data)]
        if has_b2:
            reads.append((abufs[1], execute.b2_addr, execute.b2_en, 1, execute.b2_data))
        m.submodules.wbuf = wbuf = RegisteredReadMemory(
            width=cfg.b_word_bits, depth=cfg.weight_buffer_depth
        )
        m.submodules.bias = bias = RegisteredReadMemory(width=32, depth=cfg.bias_buffer_depth)
        for mem, writer, reader in (
            (wbuf, (load.wbuf_addr, load.wbuf_data, load.wbuf_en),
             (execute.w_addr, execute.w_en, 1, execute.w_data)),
            (bias, (load.bias_addr, load.bias_data, load.bias_en),
             (execute.bias_addr, execute.bias_en, 1, execute.bias_data)),
        ):  # fmt: skip
            addr, data, en = writer
            m.d.comb += [mem.w_addr.eq(addr), mem.w_data.eq(data), mem.w_en.eq(en)]
            reads.append((mem, *reader))
        for mem, addr, en, data_en, data in reads:
            m.d.comb += [
                mem.r_addr.eq(addr),
                mem.r_en.eq(en),
                mem.r_data_en.eq(data_en),
                data.eq(mem.r_data),
            ]

        # Token counters: load -> execute and execute -> load (they saturate: error 4). An
        # overflow is registered (`token_overflow`, with the pushing instruction's index)
        # before it enters the error capture, so the paths through an engine's start and its
        # token pop end at that register; while it is set no queue head starts (as while an
        # error is pending), so the stop sequence is that of an error found a cycle later.
        # Each pusher's index is registered on its own (unconditionally) and the overflow
        # tests are merged before their registers, so no select by the push sits between an
        # engine's token push and `token_overflow_pc`.
        overflows = []
        for name, push, pop, ready, pc in (
            ("tokens_to_exec", load.signal, execute.token_take, execute.token_ready, load.pc),
            ("tokens_to_load", execute.signal, load.token_take, load.token_ready,
             execute.signal_pc),
        ):  # fmt: skip
            # The count is `count + pushed - popped`: a push and a pop enter the adder a
            # cycle late, from registers, so no path runs from an engine's retirement or
            # its queue pop into the adder. `ready` and `full` read the three registers
            # (`count` is never below 1 when `popped` is set alone, nor above the limit),
            # so they see the count of a counter without those registers, in the same cycle.
            count = Signal(range(TOKEN_LIMIT + 1), name=name)
            pushed = Signal(name=f"{name}_pushed")
            popped = Signal(name=f"{name}_popped")
            pop_only = popped & ~pushed
            push_only = pushed & ~popped
            m.d.comb += ready.eq(Mux(pop_only, count != 1, (count != 0) | pushed))
            full = Mux(push_only, count == TOKEN_LIMIT - 1, ~pop_only & (count == TOKEN_LIMIT))
            pusher_pc = Signal(16, name=f"{name}_pusher_pc")
            overflowing = (busy | begin) & push & ~pop & full & ~reset
            m.d.sync += [
                pusher_pc.eq(pc),
                pushed.eq(push & (pop | ~full) & ~reset & ~begin),
                popped.eq(pop & ~reset & ~begin),
            ]
            overflows.append((overflowing, pusher_pc))
            with m.If(reset | begin):
                m.d.sync += count.eq(0)
            with m.Else():
                m.d.sync += count.eq(count + pushed - popped)
        (to_exec_now, to_exec_pc), (to_load_now, to_load_pc) = overflows
        # `token_overflow` is a register of its own (the two counters' tests merged before
        # it), so the queue-head gate reads one flip-flop for it; `to_load_overflow` says
        # which counter overflowed (both in one cycle: the execute engine's push is reported).
        to_load_overflow = Signal(name="tokens_to_load_overflow")
        overflows_now = to_exec_now | to_load_now
        m.d.sync += [
            token_overflow.eq(overflows_now),
            to_load_overflow.eq(to_load_now),
        ]
        m.d.comb += overflow_pc.eq(Mux(to_load_overflow, to_load_pc, to_exec_pc))

        # Errors: found in one cycle (`error_now`), registered (`pending`, with its code and
        # index), and applied the next: `stopping`, `limit`, and the first one's code and
        # index, which stay until the next start. So no path runs from a queue head through
        # an engine's start, a token pop and the overflow test into `limit`.
        # `code` and `at` matter only with `error_now`, so the load engine's error (last in
        # priority) is their default rather than a condition: it selects nothing and enters
        # `error_now` alone, not the 24 `pending_*` flip-flops (step 40; its stray-TLAST
        # test follows the input handshake).
        error_now = Signal()
        code = Signal(8)
        at = Signal(16)
        m.d.comb += [
            error_now.eq(token_overflow | dispatcher.error | load.error),
            code.eq(ERR_TLAST),
            at.eq(load.pc),
        ]
        with m.If(token_overflow):  # found a cycle before the others: first
            m.d.comb += [code.eq(ERR_TOKENS), at.eq(overflow_pc)]
        with m.Elif(dispatcher.error):
            m.d.comb += [code.eq(dispatcher.error_code), at.eq(dispatcher.error_pc)]
        pending_next = (busy | begin) & error_now & ~reset
        error_code = Signal(8, name="error_code_q")
        error_pc = Signal(16, name="error_pc_q")
        m.d.comb += [self.error_code.eq(error_code), self.error_pc.eq(error_pc)]
        pending_code = Signal(8, name="pending_code")
        pending_pc = Signal(16, name="pending_pc")
        m.d.sync += [
            load_abort.eq((busy | begin) & load.error & ~reset),
            pending.eq(pending_next),
            no_new_error.eq(~pending_next & ~overflows_now),
            pending_code.eq(code),
            pending_pc.eq(at),
        ]
        with m.If(begin):
            m.d.sync += [error_code.eq(0), error_pc.eq(0)]
        with m.If(pending & ~reset):
            m.d.sync += stopping.eq(1)
            with m.If(~stopping):
                m.d.sync += [error_code.eq(pending_code), error_pc.eq(pending_pc),
                             limit.eq(pending_pc)]  # fmt: skip
            with m.Elif(pending_pc < limit):
                m.d.sync += limit.eq(pending_pc)

        # Quiescence after an error: nothing can start or is in flight.
        def startable(engine, tokens_ready):
            return engine.q.valid & (~engine.q.payload.wait | tokens_ready)

        finish = Signal()
        quiet = Signal(name="quiet")  # registered: once quiet, a stopped run stays quiet
        m.d.sync += quiet.eq(
            stopping
            & ~error_now
            & ~pending
            & ~load_abort
            & ~dispatcher.busy
            & load.idle
            & ~startable(load, load.token_ready)
            & execute.idle
            & ~startable(execute, execute.token_ready)
            & ~load_q.i.valid
            & ~exec_q.i.valid
            & ~finish
            & ~flush
            & ~reset
        )
        # The trailer waits for `trailer_armed`, a register set a cycle after `quiet` while
        # the run's TLAST beat is not sent (step 47), so the output stage's enables start
        # from flip-flops placed beside it, not from `quiet`, whose inputs come from every
        # engine (c7e44a9's and c7c18fb's worst paths ran from `quiet` across the die into
        # the output stage: `sent_last`, `out_q`'s enable). The error's TLAST beat and
        # `finish` come a cycle later.
        armed = Signal(name="trailer_armed")
        m.d.sync += armed.eq(quiet & ~sent_last & ~trailer & ~reset)
        m.d.comb += [
            trailer.eq(armed & take_in),  # armed only while unsent; nothing else sends now
            # From flip-flops only (step 55): after the trailer, a cycle later, once
            # `sent_last` has seen it (4c3ea78 with `--seed 2`: `trailer_armed` -> trailer
            # -> `finish` -> the STATUS error bit, 7.7 ns of routing between the output
            # stage and the register bank).
            finish.eq(quiet & sent_last),
        ]

        # Busy, done, error; discarding input after an error.
        # `drained` is registered (one cycle late), so SYNC / END retirement -- and END's
        # `done`, which feeds the busy flag and the counters -- starts from a flip-flop
        # instead of the engines' idle tests. It cannot be stale in the unsafe direction: it
        # includes the queues' inputs (the cycle a push happens), and nothing starts while a
        # barrier waits.
        drained = Signal(name="drained")
        m.d.sync += drained.eq(
            ~load_q.i.valid & ~exec_q.i.valid & ~load_q.o.valid & ~exec_q.o.valid
            & load.idle & execute.idle & ~out_valid & ~skid_valid
        )  # fmt: skip
        m.d.comb += [
            dispatcher.drained.eq(drained),
            self.busy.eq(busy),
            self.done.eq(busy & dispatcher.done & ~reset),
            self.error.eq(busy & finish & ~reset),
        ]
        with m.If(reset | dispatcher.done | finish):
            m.d.sync += busy.eq(0)
        with m.Elif(begin):
            m.d.sync += busy.eq(1)
        m.d.sync += flush.eq(busy & finish & ~reset)
        with m.If(reset | flush):  # kept through `flush`: the queue heads stay gated
            m.d.sync += stopping.eq(0)
        with m.If(reset | begin):
            m.d.sync += discard.eq(0)
        with m.Elif(busy & finish):
            m.d.sync += discard.eq(1)

        # Performance counters (cleared by start); array beats and the engines' retirements
        # are counted one cycle late (registered, so no path runs from a retirement into a
        # 64-bit adder), which no run can observe: they end before END dispatches.
        mac_fire = Signal(name="mac_fire_q")
        macs = Signal.like(execute.macs, name="macs_q")
        retired = Signal(range(4), name="retired_q")
        m.d.sync += [
            mac_fire.eq(execute.mac_fire & ~begin),
            macs.eq(execute.macs),
            retired.eq(Mux(busy, load.retired + execute.retired + dispatcher.sync_retired, 0)),
        ]
        # END's retirement (`dispatcher.done`, which follows the engines' idle tests) is
        # counted in its own cycle, the run's last; it selects between two sums of registers
        # instead of entering the 64-bit adder.
        counters = (
            (self.busy_cycles, busy, None),
            (self.macs_issued, Mux(mac_fire, macs, 0), None),
            (self.stall_cycles, busy & ~mac_fire, None),
            (self.instructions_retired, retired, busy & dispatcher.done),
        )
        for counter, increment, late_one in counters:
            value = Signal(64, name=f"{counter.name}_q")
            m.d.comb += counter.eq(value)
            total = value + increment
            if late_one is not None:  # two 64-bit sums of registers, one selected
                total = Mux(late_one, value + (increment + 1), total)
            with m.If(begin):
                m.d.sync += value.eq(0)
            with m.Else():
                m.d.sync += value.eq(total)
        return m
