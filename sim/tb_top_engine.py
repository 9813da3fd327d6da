"""cocotb testbench of the generated top level with the real engine, as the PYNQ host drives it.

Each run: write ``PROGRAM_LENGTH``, set ``CONTROL.start`` (with ``irq_enable``), send the
program and then the data as two DMA transfers (``TLAST`` at the end of each), receive the
results as one transfer ending in ``TLAST``, and wait for the interrupt. Results, status,
``PC`` and the instruction and MAC counters are checked against the spec's reference
executor (:func:`ttaccel.spec.isa.execute_stream`). Also: random idle cycles and back-pressure
on both streams, a reset (``aresetn``) in the middle of a run, and an input ``TLAST`` inside a
LOAD (error 5 with its instruction index, no done, no interrupt).

Configuration (``TTACCEL_TB``): ``seed``, ``config`` (the AccelConfig of the build).
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from ttaccel.sim.regmodel import RegisterModel
from ttaccel.sim.tb import tb_config
from ttaccel.sim.topbench import BUSY, DONE, ERROR, IRQ_ENABLE, START, STATUS, TopBench
from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.formats import INT4, INT8, Requant
from ttaccel.spec.isa import (
    BEATS_PER_INSTRUCTION,
    Buffer,
    End,
    Gemm,
    Load,
    Store,
    encode_program,
    execute_stream,
    load_beats,
    pack_bias,
)
from ttaccel.spec.packing import pack_words
from ttaccel.spec.regmap import ERROR_CODES, REGMAP

TLAST_ERROR = next(code for code, text in ERROR_CODES.items() if "TLAST" in text)


def make_run(config: AccelConfig, rng: np.random.Generator, k: int, n: int):
    """A program of two tiled GEMMs (one to the stream with bias, one to ABUF then STOREd at
    int4) and its data beats: ``(program, data)``."""
    rows, cols = config.rows, config.cols
    tiles = -(-n // cols)
    program = [
        Load(Buffer.ABUF, 0, 2 * k),
        Load(Buffer.BIAS, 0, n),
        Load(Buffer.WBUF, 0, tiles * k, signal=True),
        Gemm(m_outer=1, m_inner=2, k=k, n=n, a_base=0, a_outer=0, a_inner=k, a_k=1, b_base=0,
             b_tile=k, b_k=1, requant=Requant(int(rng.integers(100, 400)), 17, INT8),
             bias_en=True, dst_stream=True, wait=True),
        Gemm(m_outer=1, m_inner=2, k=k, n=n, a_base=0, a_outer=0, a_inner=k, a_k=1, b_base=0,
             b_tile=k, b_k=1, requant=Requant(int(rng.integers(100, 400)), 19, INT4),
             out_base=2 * k, out_inner=n, out_col=1),
        Store(2 * k, 2 * n, INT4),
        End(),
    ]  # fmt: skip
    wf = config.weight_format
    acts = rng.integers(-128, 128, size=2 * k * rows)
    acts[rng.random(acts.size) < 0.1] = -128
    weights = rng.integers(wf.qmin, wf.qmax + 1, size=tiles * k * cols)
    bias = rng.integers(-20000, 20000, size=n)
    data = np.concatenate([pack_words(acts, INT8, 64), pack_bias(bias),
                           pack_words(weights, wf, 64)])  # fmt: skip
    return program, data.astype(np.uint64)


def _words(beats) -> list[int]:
    return [int(b) for b in beats]


async def _start(tb: TopBench, program) -> None:
    await tb.write("PROGRAM_LENGTH", len(program))
    await tb.write("CONTROL", IRQ_ENABLE | START)


@cocotb.test()
@cocotb.parametrize(idle=[0.0, 0.3], backpressure=[0.0, 0.3])
async def a_program_through_the_dma_streams(dut, idle, backpressure):
    cfg = tb_config()
    config = AccelConfig.from_dict(cfg["config"])
    salt = int(idle * 10) * 3 + int(backpressure * 10)
    tb = TopBench(dut, cfg["seed"] + salt)
    rng = np.random.default_rng(cfg["seed"] + salt)
    tb.stalls(idle, backpressure)
    await tb.reset()
    for run in range(2):  # the second run also checks that start clears done and counters
        k = int(rng.integers(1, 3 * config.rows))
        n = int(rng.integers(1, 2 * config.cols + 1))
        program, data = make_run(config, rng, k, n)
        stream = np.concatenate([encode_program(program), data])
        want = execute_stream(stream, len(program), config)
        t0 = tb.cycle
        seen_irq = len(tb.interrupt_cycles)
        await _start(tb, program)
        status = await tb.read("STATUS")
        assert status & BUSY and not status & (DONE | ERROR), f"run {run}: STATUS {status:#x}"
        await tb.source.send(tb.frame(_words(encode_program(program))))
        await tb.source.send(tb.frame(_words(data)))
        got = await tb.receive_words(len(want.output), timeout_cycles=20000)
        assert got == _words(want.output), f"run {run} (k={k}, n={n}): results differ"
        status = await tb.wait_status(DONE)
        assert status == DONE, f"run {run}: STATUS {status:#x}"
        await tb.cycles(2)
        assert len(tb.interrupt_cycles) > seen_irq and tb.interrupt_cycles[-1] > t0
        assert await tb.read("PC") == len(program)
        assert await tb.read64("INSTRUCTIONS") == want.instructions == len(program)
        assert await tb.read64("MACS_ISSUED") == want.macs_issued
        busy = await tb.read64("BUSY_CYCLES")
        stall = await tb.read64("STALL_CYCLES")
        assert 0 < busy <= tb.cycle - t0 and stall < busy
        # Every array beat is rows * (valid columns) MACs, so busy - stall beats carry them all.
        assert (busy - stall) * config.rows * config.cols >= want.macs_issued
        assert tb.source.empty() and tb.sink.empty() and tb.sink.count() == 0
    await tb.write("STATUS", DONE)
    await tb.cycles(2)
    assert int(dut.interrupt.value) == 0


@cocotb.test()
async def reset_in_the_middle_of_a_run(dut):
    """aresetn low while the data streams in: the streams go quiet, the registers return to
    reset, and the same program then runs exactly."""
    cfg = tb_config()
    config = AccelConfig.from_dict(cfg["config"])
    tb = TopBench(dut, cfg["seed"] + 100)
    rng = np.random.default_rng(cfg["seed"] + 100)
    tb.stalls(0.2, 0.2)
    await tb.reset()
    program, data = make_run(config, rng, 2 * config.rows, config.cols + 1)
    await _start(tb, program)
    tb.source.send_nowait(tb.frame(_words(encode_program(program))))
    tb.source.send_nowait(tb.frame(_words(data)))
    cut = len(program) * BEATS_PER_INSTRUCTION + int(rng.integers(1, len(data)))
    beats_in = 0
    while beats_in < cut:
        await RisingEdge(dut.aclk)
        beats_in += int(dut.s_axis_tvalid.value) and int(dut.s_axis_tready.value)
    dut.aresetn.value = 0
    await tb.cycles(3)
    assert int(dut.m_axis_tvalid.value) == 0 and int(dut.s_axis_tready.value) == 0
    dut.aresetn.value = 1
    tb.source.clear()
    tb.sink.clear()
    await tb.cycles(2)
    model = RegisterModel(config)
    for reg in REGMAP:
        got = await tb.axil.read_dword(reg.offset)
        assert got == model.read(reg.offset), f"{reg.name} after reset: {got:#x}"
    assert int(dut.interrupt.value) == 0
    want = execute_stream(np.concatenate([encode_program(program), data]), len(program), config)
    out_before = tb.out_beats
    await _start(tb, program)
    await tb.source.send(tb.frame(_words(encode_program(program))))
    await tb.source.send(tb.frame(_words(data)))
    got = await tb.receive_words(len(want.output), timeout_cycles=20000)
    assert got == _words(want.output)
    assert await tb.wait_status(DONE) == DONE
    assert tb.out_beats - out_before == len(want.output)


@cocotb.test()
async def tlast_inside_a_load_is_error_5(dut):
    """An input transfer that ends inside a LOAD stops the run with STATUS.error, the spec's
    code and the LOAD's index; no done; the output transfer completes with the zero TLAST
    beat, the interrupt rises; a further transfer the host had queued is taken (discarded);
    W1C clears the flag and the interrupt; the next run is exact."""
    cfg = tb_config()
    config = AccelConfig.from_dict(cfg["config"])
    tb = TopBench(dut, cfg["seed"] + 200)
    rng = np.random.default_rng(cfg["seed"] + 200)
    await tb.reset()
    program, data = make_run(config, rng, 2 * config.rows, config.cols)
    first = program[0]
    assert load_beats(first, config) > 1, "the first LOAD must span more than one beat"
    short = load_beats(first, config) - 1  # TLAST one beat before the LOAD's end
    irq_before = len(tb.interrupt_cycles)
    await _start(tb, program)
    await tb.source.send(tb.frame(_words(encode_program(program))))
    await tb.source.send(tb.frame(_words(data[:short])))
    status = await tb.wait_status(ERROR)
    assert STATUS.field("done").extract(status) == 0
    assert STATUS.field("busy").extract(status) == 0
    assert STATUS.field("error_code").extract(status) == TLAST_ERROR
    assert STATUS.field("error_pc").extract(status) == 0
    assert await tb.read("PC") >= 1  # the LOAD (and maybe more) had been dispatched
    assert await tb.receive_words(1, timeout_cycles=2000) == [0]  # the TLAST beat
    await tb.cycles(3)
    assert len(tb.interrupt_cycles) > irq_before
    await tb.source.send(tb.frame(_words(data[short:])))  # the rest: discarded
    for _ in range(40 * len(data)):
        if tb.source.idle():
            break
        await RisingEdge(dut.aclk)
    assert tb.source.idle(), "the rest of the input was not taken after the error"
    await tb.write("STATUS", ERROR)
    assert STATUS.field("error").extract(await tb.read("STATUS")) == 0
    await tb.cycles(2)
    assert int(dut.interrupt.value) == 0
    want = execute_stream(np.concatenate([encode_program(program), data]), len(program), config)
    await _start(tb, program)
    await tb.source.send(tb.frame(_words(encode_program(program))))
    await tb.source.send(tb.frame(_words(data)))
    assert await tb.receive_words(len(want.output), timeout_cycles=20000) == _words(want.output)
    assert await tb.wait_status(DONE) == DONE
