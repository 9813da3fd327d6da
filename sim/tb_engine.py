"""cocotb testbench of :class:`ttaccel.hw.engine.Engine`.

Configuration (``TTACCEL_TB``): ``config`` (an :class:`AccelConfig` as a dict), ``seed``,
``random_layers`` (TT layers in the random sweep), ``seed000`` (``[[name, tokens], ...]``),
``measure`` (``[[name, tokens], ...]``: cycle counts compared with the cycle model).

The scoreboard is the reference executor (:func:`ttaccel.spec.isa.execute_stream`) fed with the
stream the source actually sent: every output beat is compared bit-exactly, TLAST must be
on exactly the last beat, the decoded output must equal the golden model
(``tt_linear_int``, ``gemm_int`` + ``requantize``), and the counters must match what the
program implies (instructions, lane-MACs, busy = stall + array beats).
"""

from __future__ import annotations

import dataclasses
import random

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from ttaccel.hw.interfaces import STREAM_BEAT
from ttaccel.sim.engine_programs import (
    SEED000_LAYERS,
    Case,
    attention_scores_case,
    compiled_scores_case,
    compute_beats,
    dense_case,
    program_words,
    random_codes,
    random_tt_case,
    seed000_case,
)
from ttaccel.sim.tb import Harness, StreamSink, StreamSource, tb_config
from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.compiler import LayerDoesNotFit
from ttaccel.spec.cycle_model import simulate
from ttaccel.spec.formats import INT8, Requant
from ttaccel.spec.isa import (
    BEATS_PER_INSTRUCTION,
    STREAM_BITS,
    Buffer,
    End,
    Gemm,
    Load,
    Machine,
    Store,
    Sync,
    execute_stream,
)
from ttaccel.spec.packing import pack_words
from ttaccel.spec.regmap import ERROR_CODES

ILLEGAL, ADDRESS, LENGTH, TOKENS, TLAST = 1, 2, 3, 4, 5
assert "illegal" in ERROR_CODES[ILLEGAL] and "address" in ERROR_CODES[ADDRESS]
assert "longer" in ERROR_CODES[LENGTH] and "TLAST" in ERROR_CODES[TLAST]
assert "token" in ERROR_CODES[TOKENS]


def config_of(cfg: dict) -> AccelConfig:
    return AccelConfig.from_dict(cfg["config"])


def stream_of(program, data) -> list[int]:
    beats = []
    for word in program_words(program):
        beats += [
            (word >> (STREAM_BITS * i)) & (2**STREAM_BITS - 1) for i in range(BEATS_PER_INSTRUCTION)
        ]
    return beats + [int(b) for b in np.asarray(data, np.uint64)]


class EngineBench:
    """Clock, reset, the input source and output sink, and run/check helpers."""

    def __init__(self, dut, config: AccelConfig, seed: int):
        self.dut = dut
        self.config = config
        self.harness = Harness(dut)
        self.rng = random.Random(seed)
        self.machine = Machine.empty(config)  # what the buffers hold, per the reference

    async def start(self) -> None:
        dut = self.dut
        dut.start.value = 0
        dut.soft_reset.value = 0
        dut.program_length.value = 0
        dut.inp__valid.value = 0
        dut.out__ready.value = 0
        await self.harness.start()

    async def pulse(self, name: str) -> None:
        getattr(self.dut, name).value = 1
        await RisingEdge(self.harness.clk)
        getattr(self.dut, name).value = 0

    async def launch(self, program, data, *, idle=0.0, backpressure=0.0, length=None, last_at=None):
        """Start a run; returns (source, sink, send task, start cycle)."""
        beats = stream_of(program, data)
        last_at = len(beats) - 1 if last_at is None else last_at
        payloads = [{"data": b, "last": int(i == last_at)} for i, b in enumerate(beats)]
        source = StreamSource(
            self.harness, "inp", STREAM_BEAT, idle=idle, rng=random.Random(self.rng.random())
        )
        sink = StreamSink(
            self.harness,
            "out",
            STREAM_BEAT,
            backpressure=backpressure,
            rng=random.Random(self.rng.random()),
        )
        sink.start()
        self.dut.program_length.value = len(program) if length is None else length
        await self.pulse("start")
        started = self.harness.cycle
        task = cocotb.start_soon(source.send(payloads))
        return source, sink, task, started, len(payloads)

    async def wait_end(self, timeout: int) -> tuple[str, int]:
        """Wait for ``done`` or ``error``; returns which and the cycles ``busy`` was seen high
        (the last one included)."""
        dut, start, busy = self.dut, self.harness.cycle, 0
        while True:
            await ReadOnly()  # the first time: the cycle right after the start pulse
            busy += int(dut.busy.value)
            if int(dut.done.value):
                return "done", busy
            if int(dut.error.value):
                return "error", busy
            assert self.harness.cycle - start < timeout, (
                f"no done/error after {timeout} cycles (pc {int(dut.pc.value)}, "
                f"busy {int(dut.busy.value)})"
            )
            await RisingEdge(self.harness.clk)

    async def run(self, case: Case, *, idle=0.0, backpressure=0.0) -> dict:
        """Run ``case`` to ``done`` and check everything; returns the counters."""
        config, dut = self.config, self.dut
        expect_machine = self.machine.copy()
        source, sink, task, _, nbeats = await self.launch(
            case.program, case.data, idle=idle, backpressure=backpressure
        )
        budget = 40 * (nbeats + 20 * compute_beats(case.program, config) + 1000)
        how, busy_seen = await self.wait_end(budget)
        assert how == "done", (
            f"{case.name}: error code {int(dut.error_code.value)} at instruction "
            f"{int(dut.error_pc.value)}"
        )
        await RisingEdge(self.harness.clk)
        await ReadOnly()  # the counters include the done cycle from here on
        assert not int(dut.busy.value), "busy after done"
        counters = {
            name: int(getattr(dut, name).value)
            for name in ("busy_cycles", "macs_issued", "stall_cycles", "instructions_retired", "pc")
        }
        await sink.assert_quiet(8)
        await self.harness.join(task, 4 * nbeats + 50, f"{case.name}: the input stream")
        assert len(source.sent) == nbeats, f"{case.name}: {len(source.sent)} of {nbeats} beats"

        # Scoreboard: the reference executor on the stream actually sent.
        sent = np.array([p["data"] for _, p in source.sent], np.uint64)
        ref = execute_stream(sent, len(case.program), config, expect_machine)
        got = [p["data"] for _, p in sink.received]
        want = [int(b) for b in ref.output]
        assert len(got) == len(want), f"{case.name}: {len(got)} output beats, want {len(want)}"
        for index, (g, w) in enumerate(zip(got, want, strict=True)):
            assert g == w, f"{case.name}: output beat {index}: {g:#018x}, want {w:#018x}"
        lasts = [p["last"] for _, p in sink.received]
        assert lasts == [int(i == len(got) - 1) for i in range(len(got))], (
            f"{case.name}: TLAST at beats {[i for i, x in enumerate(lasts) if x]}"
        )
        if case.want is not None:
            decoded = case.decode(np.array(got, np.uint64))
            np.testing.assert_array_equal(decoded, case.want, err_msg=case.name)
        self.machine = expect_machine

        # Counters.
        assert counters["instructions_retired"] == len(case.program), counters
        assert counters["pc"] == len(case.program), counters
        assert counters["macs_issued"] == ref.macs_issued, (counters, ref.macs_issued)
        assert counters["busy_cycles"] == busy_seen, (counters, busy_seen)
        assert counters["stall_cycles"] == (
            counters["busy_cycles"] - compute_beats(case.program, config)
        ), counters
        dut._log.info(
            "%s: %d cycles, %d output beats", case.name, counters["busy_cycles"], len(got)
        )
        await RisingEdge(self.harness.clk)  # leave the read-only phase
        return counters

    async def expect_error(
        self, program, data, code: int, pc: int, *, backpressure=0.3, **kwargs
    ) -> None:
        """Run a program that must stop with error ``code`` at instruction ``pc``, and check
        the stop sequence of :mod:`ttaccel.spec.isa` ("Errors"): every input beat is taken
        (the rest discarded), the output is exactly the reference executor's output of the
        instructions before ``pc`` followed by one zero beat with TLAST (the only TLAST),
        ``valid`` never falls and the payload never changes before a transfer, ``pc`` reads
        ``pc`` afterwards, and nothing more comes out."""
        monitor = cocotb.start_soon(self.output_is_stable())
        source, sink, task, _, nbeats = await self.launch(
            program, data, backpressure=backpressure, **kwargs
        )
        how, _ = await self.wait_end(20000)
        assert how == "error", f"expected error {code}, got {how}"
        await RisingEdge(self.harness.clk)
        await ReadOnly()  # the code is registered at the end of the error cycle
        dut = self.dut
        assert not int(dut.busy.value), "busy after the error"
        assert int(dut.error_code.value) == code, int(dut.error_code.value)
        assert int(dut.error_pc.value) == pc, int(dut.error_pc.value)
        dispatched = int(dut.pc.value)  # found at dispatch: pc; while running: later
        found_running = code in (TOKENS, TLAST) and pc < len(program) - 1
        assert dispatched > pc if found_running else dispatched == pc, (
            f"PC {dispatched} after error {code} at {pc}"
        )
        await RisingEdge(self.harness.clk)
        for _ in range(4 * nbeats + 50):  # the rest of the input is discarded
            if task.done():
                break
            await RisingEdge(self.harness.clk)
        assert task.done(), f"{len(source.sent)} of {nbeats} input beats taken after the error"
        await sink.wait_for(len(sink.received), 1)
        for _ in range(20):
            await RisingEdge(self.harness.clk)
        await sink.assert_quiet(10)
        monitor.cancel()
        await RisingEdge(self.harness.clk)  # leave the read-only phase
        # The output: the instructions before the error, as the reference runs them.
        before = [i for i in program[:pc]]
        want = []
        if any(isinstance(i, Store) or (isinstance(i, Gemm) and i.dst_stream) for i in before):
            prefix = [*before, End()]
            sent = np.array([p["data"] for _, p in source.sent], np.uint64)
            head = BEATS_PER_INSTRUCTION * len(program)
            stream = np.concatenate([np.array(stream_of(prefix, []), np.uint64), sent[head:]])
            ref = execute_stream(stream, len(prefix), self.config, self.machine.copy())
            want = [int(b) for b in ref.output]
        got = [(p["data"], p["last"]) for _, p in sink.received]
        assert got == [(w, 0) for w in want] + [(0, 1)], (
            f"output after error {code} at {pc}: {len(got)} beats, TLAST at "
            f"{[i for i, (_, last) in enumerate(got) if last]}; want {len(want)} + the TLAST beat"
            f" (got {[hex(d) for d, _ in got]}, want {[hex(w) for w in want]})"
        )
        dut.inp__valid.value = 0
        await RisingEdge(self.harness.clk)
        # The run's effects on the buffers are partial: forget what the model knew.
        self.machine = Machine.empty(self.config)

    async def output_is_stable(self) -> None:
        """AXI4-Stream rule on ``out``: once ``valid`` is high it stays high, with the same
        payload, until the cycle of the transfer."""
        dut, held = self.dut, None
        while True:
            await RisingEdge(self.harness.clk)
            await ReadOnly()
            valid, ready = int(dut.out__valid.value), int(dut.out__ready.value)
            payload = int(dut.out__payload.value) if valid else None
            if held is not None:
                assert valid, "out.valid fell before its transfer"
                assert payload == held, "out.payload changed before its transfer"
            held = payload if valid and not ready else None


def bench_setup(dut):
    cfg = tb_config()
    config = config_of(cfg)
    seed = cfg["seed"]
    dut._log.info("seed %d (replay with TTACCEL_SEED=%d)", seed, seed)
    return cfg, config, seed


@cocotb.test()
async def random_tt_layers(dut):
    """``random_layers`` random TT layers (cold: cores, bias, batch), each with a random mix of
    input idles and output back-pressure, checked beat by beat and against tt_linear_int."""
    cfg, config, seed = bench_setup(dut)
    bench = EngineBench(dut, config, seed)
    await bench.start()
    rng = np.random.default_rng(seed)
    for index in range(cfg["random_layers"]):
        case = random_tt_case(rng, config, index)
        idle, bp = [(0.0, 0.0), (0.3, 0.0), (0.0, 0.5), (0.2, 0.3)][index % 4]
        dut._log.info("%s (idle %.1f, back-pressure %.1f)", case.name, idle, bp)
        await bench.run(case, idle=idle, backpressure=bp)


@cocotb.test()
async def dense_and_attention_scores(dut):
    """A dense GEMM (weights resident, and streamed through WBUF with tokens both ways), and
    int8 x int8 attention scores with B from ABUF, to the stream and through ABUF + STORE."""
    _, config, seed = bench_setup(dut)
    bench = EngineBench(dut, config, seed + 1)
    await bench.start()
    rng = np.random.default_rng(seed + 1)
    rows = config.rows
    cases = [
        dense_case(rng, config, 3 * rows + 1, 2 * config.cols + 3, 2 * rows + 1, resident=True),
        # Streamed: K large enough that a WBUF slot holds two column tiles (three chunks).
        dense_case(
            rng,
            config,
            min(config.max_k, config.weight_buffer_depth // 4 - 3),
            5 * config.cols - 1,
            rows + 2,
            resident=False,
        ),
    ]
    if config.rows == config.cols and config.weight_format == INT8:
        cases += [
            attention_scores_case(rng, config, 2 * rows + 1, 3 * rows, via_store=False),
            attention_scores_case(rng, config, rows + 3, 2 * rows + 1, via_store=True),
            compiled_scores_case(rng, config, 3 * rows - 1, 2 * rows + 3),
        ]
    for n, case in enumerate(cases):
        await bench.run(case, idle=0.2 * (n % 2), backpressure=0.4 * (n % 2))


@cocotb.test()
async def seed000_layers(dut):
    """Seed 000's attention and FFN TT layers at reduced token counts (cold runs)."""
    cfg, config, seed = bench_setup(dut)
    bench = EngineBench(dut, config, seed + 2)
    await bench.start()
    rng = np.random.default_rng(seed + 2)
    for name, tokens in cfg["seed000"]:
        await bench.run(seed000_case(rng, name, tokens, config), backpressure=0.1)


@cocotb.test()
async def soft_reset_mid_run_then_clean_run(dut):
    """``soft_reset`` in the middle of a run returns everything to idle: ``busy`` falls at
    once, no input is taken, a beat already offered on ``out`` stays offered (same payload)
    until it is accepted and nothing follows it; also for a run that waits forever (a GEMM
    waiting for a token nobody signals). A following cold run is exact."""
    _, config, seed = bench_setup(dut)
    bench = EngineBench(dut, config, seed + 3)
    await bench.start()
    rng = np.random.default_rng(seed + 3)
    stuck = Gemm(
        m_outer=1, m_inner=1, k=1, n=1, a_base=0, a_outer=0, a_inner=0, a_k=1, b_base=0,
        b_tile=0, b_k=1, requant=Requant(1, 0, INT8), dst_stream=True, wait=True,
    )  # fmt: skip
    for attempt in range(4):
        monitor = cocotb.start_soon(bench.output_is_stable())
        if attempt < 3:
            case = random_tt_case(rng, config, attempt)
            program, data = case.program, case.data
        else:
            program, data = [stuck, End()], []
        _, sink, task, _, nbeats = await bench.launch(program, data, backpressure=0.3)
        await bench.harness.cycles(int(rng.integers(5, 12 * nbeats // 10 + 6)))
        if attempt == 3:
            await ReadOnly()
            assert int(dut.busy.value), "the waiting program ended"
            await RisingEdge(bench.harness.clk)
        await bench.pulse("soft_reset")
        task.cancel()
        dut.inp__valid.value = 0
        await ReadOnly()
        assert not int(dut.busy.value), "busy after soft_reset"
        pending = int(dut.out__valid.value) and not int(dut.out__ready.value)
        await RisingEdge(bench.harness.clk)
        sink.stop()
        monitor.cancel()
        extra = 0
        for _ in range(30):
            await RisingEdge(bench.harness.clk)
            dut.out__ready.value = 1
            dut.inp__valid.value = 1  # an eager DMA: nothing may be taken while idle
            await ReadOnly()
            extra += int(dut.out__valid.value)
            assert not int(dut.inp__ready.value), "input taken while idle"
            assert not int(dut.busy.value)
        assert extra <= int(pending), f"{extra} beats after soft_reset ({int(pending)} offered)"
        await RisingEdge(bench.harness.clk)
        dut.inp__valid.value = 0
        bench.machine = Machine.empty(config)
        await bench.run(random_tt_case(rng, config, 10 + attempt))


@cocotb.test()
async def errors_stop_the_run_with_their_code(dut):
    """Illegal instructions, out-of-range addresses, a too-long program and an early TLAST
    stop the run with the register map's code and the instruction's index; a clean run
    follows each."""
    _, config, seed = bench_setup(dut)
    bench = EngineBench(dut, config, seed + 4)
    await bench.start()
    rng = np.random.default_rng(seed + 4)
    depth = config.act_buffer_depth
    requant = Requant(3, 2, INT8)
    ok_gemm = Gemm(
        m_outer=1,
        m_inner=1,
        k=2,
        n=1,
        a_base=0,
        a_outer=0,
        a_inner=0,
        a_k=1,
        b_base=0,
        b_tile=0,
        b_k=1,
        requant=requant,
        dst_stream=True,
    )
    load = Load(Buffer.ABUF, 0, 2)
    words = config.a_word_bits * 2 // 64 + 1
    data = np.arange(words, dtype=np.uint64)
    gemm = ok_gemm.encode()
    cases = [
        # (program, code, pc)
        ([load, Sync(), (gemm & ~0xF) | 7, End()], ILLEGAL, 2),  # unknown opcode 7
        ([load, gemm | (1 << 7), End()], ILLEGAL, 1),  # reserved bit 7 of a GEMM
        *(
            [([load, gemm | (1 << 14), End()], ILLEGAL, 1)]  # sparse without sparse_nm
            if config.sparse_nm is None
            else []
        ),
        ([load, gemm | (1 << 300), End()], ILLEGAL, 1),  # reserved bit above the shift
        ([load, dataclasses.replace(ok_gemm, **{"k": config.max_k + 1}), End()], ILLEGAL, 1),
        ([load, (gemm & ~(0xFFFF << 288)) | (48 << 288), End()], ILLEGAL, 1),  # shift 48
        ([load, Load(Buffer.ABUF, 0, 1).encode() | (3 << 8), End()], ILLEGAL, 1),  # buffer 3
        ([load, Load(Buffer.ABUF, depth - 1, 2), End()], ADDRESS, 1),
        ([load, Load(Buffer.BIAS, config.bias_buffer_depth, 1), End()], ADDRESS, 1),
        ([load, Sync(), dataclasses.replace(ok_gemm, **{"a_base": depth - 1}), End()], ADDRESS, 2),
        (
            [load, dataclasses.replace(ok_gemm, **{"m_outer": 3, "a_outer": depth // 2}), End()],
            ADDRESS,
            1,
        ),
        (
            [
                load,
                dataclasses.replace(
                    ok_gemm, **{"n": 2 * config.cols + 1, "b_tile": config.weight_buffer_depth // 2}
                ),
                End(),
            ],
            ADDRESS,
            1,
        ),
        (
            [
                load,
                dataclasses.replace(
                    ok_gemm, **{"dst_stream": False, "out_base": depth - 2, "n": 3, "out_col": 1}
                ),
                End(),
            ],
            ADDRESS,
            1,
        ),
        (
            [
                load,
                dataclasses.replace(
                    ok_gemm, **{"bias_en": True, "bias_base": config.bias_buffer_depth - 1, "n": 2}
                ),
                End(),
            ],
            ADDRESS,
            1,
        ),
        ([load, Load(Buffer.ABUF, 0, 1)], ILLEGAL, 2),  # ran past the program without END
    ]
    for program, code, pc in cases:
        await bench.expect_error(program, data, code, pc)
        await bench.run(random_tt_case(rng, config, 0))
    # Output of the instructions before the error arrives complete, then the TLAST beat.
    w_load = Load(Buffer.WBUF, 0, 2, signal=True)
    waiting = dataclasses.replace(ok_gemm, wait=True)
    a_data = random_codes(rng, INT8, (2, config.rows))
    b_data = random_codes(rng, config.weight_format, (2, config.cols))
    both = np.concatenate([
        pack_words(a_data.reshape(-1), INT8, STREAM_BITS),
        pack_words(b_data.reshape(-1), config.weight_format, STREAM_BITS),
    ])  # fmt: skip
    bad = dataclasses.replace(ok_gemm, **{"a_base": depth - 1})
    for program, code, pc in (
        ([load, w_load, waiting, ok_gemm, bad, End()], ADDRESS, 4),
        ([load, w_load, waiting, Store(0, 2), gemm | (1 << 7), ok_gemm, End()], ILLEGAL, 4),
    ):
        await bench.expect_error(program, both, code, pc)
        await bench.run(random_tt_case(rng, config, 2))
    # Program longer than the instruction memory, and TLAST inside a LOAD.
    await bench.expect_error([End()], [], LENGTH, 0, length=config.instruction_depth + 1)
    # TLAST inside a LOAD while later instructions wait in both queues: they never start,
    # and the next run does not see them (a stale LOAD would eat its data).
    long_load = Load(Buffer.ABUF, 0, 8)
    queued = [Load(Buffer.WBUF, 0, 2), Load(Buffer.BIAS, 0, 2), waiting]
    await bench.expect_error(
        [long_load, *queued, End()],
        np.zeros(8 * config.a_word_bits // 64, np.uint64),
        TLAST,
        0,
        last_at=BEATS_PER_INSTRUCTION * 5,
    )
    await bench.run(random_tt_case(rng, config, 1))


@cocotb.test()
async def cycles_match_the_cycle_model(dut):
    """Seed 000's layers at ``measure`` token counts, warm (cores resident): cycles,
    utilization and the cycle model's prediction, logged and written to ``measure.json``."""
    import json

    cfg, config, seed = bench_setup(dut)
    bench = EngineBench(dut, config, seed + 5)
    await bench.start()
    rng = np.random.default_rng(seed + 5)
    report = []
    for name, tokens in cfg["measure"]:
        if name.endswith("-dense"):
            # The same layer as a dense int8 GEMM: its weights do not fit WBUF, so they stream
            # in with the run (overlapped with compute); the whole cold program is measured.
            in_modes, out_modes, _ = SEED000_LAYERS[name.removesuffix("-dense")]
            m, n = int(np.prod(in_modes)), int(np.prod(out_modes))
            try:
                run = dense_case(rng, config, m, n, tokens, resident=False)
            except LayerDoesNotFit as error:  # e.g. its activations exceed ABUF
                dut._log.info("measure %s: does not fit: %s", name, error)
                report.append({"layer": name, "tokens": tokens, "does_not_fit": str(error)})
                continue
            useful_macs, program = run.useful_macs, run.program
        else:
            cold = seed000_case(rng, name, tokens, config)
            layer = cold.layer
            setup = Case(f"{cold.name} setup", list(layer.setup), layer.setup_stream)
            await bench.run(setup)
            x = rng.integers(-128, 128, size=(tokens, layer.in_features)).astype(np.int8)
            run = Case(f"{cold.name} run", list(layer.run), layer.input_stream(x))
            useful_macs, program = layer.useful_macs, list(layer.run)
        counters = await bench.run(run)
        model = simulate(program, config)
        lanes = config.lanes
        entry = {
            "layer": name,
            "tokens": tokens,
            "cycles": counters["busy_cycles"],
            "model_cycles": model.cycles,
            "useful_macs": useful_macs,
            "utilization": useful_macs / (counters["busy_cycles"] * lanes),
            "model_utilization": useful_macs / (model.cycles * lanes),
            "stall_cycles": counters["stall_cycles"],
            "model_stall_cycles": model.stall_cycles,
        }
        dut._log.info("measure %s", entry)
        report.append(entry)
    with open("measure.json", "w") as handle:
        json.dump(report, handle, indent=2)


@cocotb.test()
async def back_to_back_tiles_have_no_bubbles(dut):
    """Two GEMMs of nine tiles each (three row tiles x three column tiles, ``k`` = 16), results
    to ABUF, then a STORE: the array takes a beat on every cycle of a GEMM (double-buffered
    accumulators: no bubble between tiles) and the second GEMM (no fence, already queued) issues
    its first beat in the cycle after the first GEMM's last (no idle cycle between them: the
    cycle model's chained case)."""
    _, config, seed = bench_setup(dut)
    bench = EngineBench(dut, config, seed + 6)
    await bench.start()
    rng = np.random.default_rng(seed + 6)
    rows, cols, k, row_tiles = config.rows, config.cols, 16, 3
    n = 3 * cols
    a_words = random_codes(rng, INT8, (row_tiles * k, rows))
    b_words = random_codes(rng, config.weight_format, (3 * k, cols))
    requant = Requant(int(rng.integers(1, 2**16)), 14, INT8)
    out = row_tiles * k
    gemm = Gemm(
        m_outer=row_tiles, m_inner=1, k=k, n=n, a_base=0, a_outer=k, a_inner=0, a_k=1,
        b_base=0, b_tile=k, b_k=1, requant=requant, out_base=out, out_outer=n, out_col=1,
    )  # fmt: skip
    program = [
        Load(Buffer.ABUF, 0, row_tiles * k),
        Load(Buffer.WBUF, 0, 3 * k, signal=True),
        dataclasses.replace(gemm, wait=True),
        dataclasses.replace(gemm, out_base=out + row_tiles * n),
        Store(out, 2 * row_tiles * n),
        End(),
    ]
    data = np.concatenate([
        pack_words(a_words.reshape(-1), INT8, STREAM_BITS),
        pack_words(b_words.reshape(-1), config.weight_format, STREAM_BITS),
    ])  # fmt: skip
    fires: list[int] = []

    async def monitor():  # a beat entered the array in the cycles where MACS_ISSUED grows
        previous = 0
        while True:
            await RisingEdge(bench.harness.clk)
            await ReadOnly()
            macs = int(dut.macs_issued.value)
            if macs > previous:
                fires.append(bench.harness.cycle)
            previous = macs

    watch = cocotb.start_soon(monitor())
    await bench.run(Case("back-to-back", program, data))
    watch.cancel()
    beats = 9 * k
    assert len(fires) == 2 * beats, len(fires)
    first, second = fires[:beats], fires[beats:]
    assert first == list(range(first[0], first[0] + beats)), "bubble inside the first GEMM"
    assert second == list(range(second[0], second[0] + beats)), "bubble inside the second GEMM"
    assert second[0] - first[-1] == 1, f"{second[0] - first[-1] - 1} idle cycles between GEMMs"
