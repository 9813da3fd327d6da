"""cocotb testbench of :class:`ttaccel.hw.top.ZynqTop` through cocotbext-axi bus models.

The top is built around :class:`ttaccel.sim.engine_model.EchoAccumulateEngine` (a stand-in
with the engine's ports), so these tests check what the top level owns: the AXI4-Lite
register file against :class:`~ttaccel.sim.regmodel.RegisterModel`, the AXI4-Stream wiring
under random idle cycles and back-pressure, the status / counter / interrupt plumbing, the
``aclk`` / ``aresetn`` adaptation with a reset in the middle of a run, and soft reset.

Configuration (``TTACCEL_TB``): ``seed``, ``beats`` (beats per run), ``config`` (AccelConfig).
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from ttaccel.sim.engine_model import EARLY_END_ERROR, expected_run
from ttaccel.sim.regmodel import RegisterModel
from ttaccel.sim.tb import tb_config
from ttaccel.sim.topbench import (
    BUSY,
    DONE,
    ERROR,
    IRQ_ENABLE,
    MASK64,
    SOFT_RESET,
    START,
    STATUS,
    TopBench,
)
from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.regmap import REGMAP


def _setup(dut, salt: int) -> tuple[TopBench, dict, AccelConfig]:
    cfg = tb_config()
    seed = cfg["seed"] + salt
    dut._log.info("seed %d (replay with TTACCEL_SEED=%d)", seed, cfg["seed"])
    return TopBench(dut, seed), cfg, AccelConfig.from_dict(cfg["config"])


@cocotb.test()
async def registers_read_back_against_the_map(dut):
    """Every register after reset, then RW round trips (with byte strobes), RO writes ignored,
    W1C writes of 1 on clear flags, unmapped offsets reading 0."""
    tb, _, config = _setup(dut, 1)
    model = RegisterModel(config)
    await tb.reset()
    for reg in REGMAP:
        got = await tb.axil.read_dword(reg.offset)
        assert got == model.read(reg.offset), f"{reg.name} after reset: {got:#x}"
    mapped = {reg.offset for reg in REGMAP}
    for offset in range(0, 0x100, 4):
        if offset not in mapped:
            assert await tb.axil.read_dword(offset) == 0, f"unmapped {offset:#x}"
    for _ in range(3):
        for reg in REGMAP:
            data = tb.rng.getrandbits(32)
            if reg.name == "CONTROL":
                data &= ~(START | SOFT_RESET)  # no runs here
            await tb.axil.write_dword(reg.offset, data)
            model.write(reg.offset, data)
            # A one-byte write: only that byte's strobe is set.
            byte = tb.rng.randrange(4)
            value = tb.rng.getrandbits(8)
            if reg.name == "CONTROL" and byte == 0:
                value &= ~(START | SOFT_RESET)
            await tb.axil.write(reg.offset + byte, bytes([value]))
            model.write(reg.offset, value << (8 * byte), 1 << byte)
            got = await tb.axil.read_dword(reg.offset)
            assert got == model.read(reg.offset), f"{reg.name}: {got:#x}"
        for offset in range(0, 0x100, 4):
            if offset not in mapped:
                await tb.axil.write_dword(offset, 0xFFFF_FFFF)
                assert await tb.axil.read_dword(offset) == 0
    assert not tb.interrupt_cycles


async def _run_once(tb: TopBench, words: list[int], *, irq: bool) -> list[int]:
    await tb.write("PROGRAM_LENGTH", len(words))
    await tb.write("CONTROL", (IRQ_ENABLE if irq else 0) | START)
    status = await tb.read("STATUS")
    assert status & BUSY and not status & (DONE | ERROR), f"STATUS {status:#x} after start"
    await tb.source.send(tb.frame(words))
    got = await tb.receive_words(len(words), timeout_cycles=40 * len(words) + 200)
    await tb.wait_status(DONE)
    return got


@cocotb.test()
@cocotb.parametrize(idle=[0.0, 0.3], backpressure=[0.0, 0.3])
async def a_run_through_the_streams(dut, idle, backpressure):
    """Two runs with random idle cycles / back-pressure: output data, status, counters, PC,
    interrupt with irq_enable, and none without; start clears done; W1C clears the line."""
    tb, cfg, _ = _setup(dut, 2 + int(idle * 10) * 3 + int(backpressure * 10))
    tb.stalls(idle, backpressure)
    await tb.reset()
    n = cfg["beats"]
    words = [tb.rng.getrandbits(64) for _ in range(n)]
    t0 = tb.cycle
    got = await _run_once(tb, words, irq=True)
    assert got == expected_run(words, n)
    status = await tb.read("STATUS")
    assert status == DONE, f"STATUS {status:#x}"
    assert tb.interrupt_cycles and tb.interrupt_cycles[0] > t0
    assert await tb.read("PC") == n
    assert await tb.read64("INSTRUCTIONS") == n
    assert await tb.read64("MACS_ISSUED") == sum(words) & MASK64
    busy = await tb.read64("BUSY_CYCLES")
    assert n <= busy <= tb.cycle - t0
    assert await tb.read64("STALL_CYCLES") == busy - n
    assert int(tb.dut.interrupt.value) == 1
    # Clearing done (W1C) drops the interrupt within two cycles (the line is registered).
    await tb.write("STATUS", DONE)
    t_clear = tb.cycle
    await tb.cycles(2)
    assert int(tb.dut.interrupt.value) == 0
    assert max(tb.interrupt_cycles) <= t_clear + 1
    assert await tb.read("STATUS") == 0
    assert tb.source.empty() and tb.sink.empty()

    # A second run without irq_enable: done rises, the interrupt line stays low.
    seen = len(tb.interrupt_cycles)
    words = [tb.rng.getrandbits(64) for _ in range(n // 2 + 1)]
    got = await _run_once(tb, words, irq=False)
    assert got == expected_run(words, len(words))
    assert await tb.read64("MACS_ISSUED") == sum(words) & MASK64  # cleared by start
    await tb.cycles(3)
    assert len(tb.interrupt_cycles) == seen
    # Enabling the interrupt now raises it (done is still set); start clears done and it.
    await tb.write("CONTROL", IRQ_ENABLE)
    await tb.cycles(2)
    assert int(tb.dut.interrupt.value) == 1
    await tb.write("PROGRAM_LENGTH", 3)
    await tb.write("CONTROL", IRQ_ENABLE | START)
    assert await tb.read("STATUS") == BUSY
    assert int(tb.dut.interrupt.value) == 0
    await tb.write("CONTROL", IRQ_ENABLE | SOFT_RESET)
    assert await tb.read("STATUS") == 0


@cocotb.test()
async def counter_pairs_are_consistent_while_counting(dut):
    """Reading MACS_ISSUED low then high while it changes every beat: every pair is one of
    the values the counter really took (the high word is latched by the low-word read)."""
    tb, cfg, _ = _setup(dut, 20)
    tb.stalls(0.2, 0.0)
    await tb.reset()
    n = 4 * cfg["beats"]
    words = [tb.rng.getrandbits(64) for _ in range(n)]
    prefixes, total = {0}, 0
    for w in words:
        total = (total + w) & MASK64
        prefixes.add(total)
    await tb.write("PROGRAM_LENGTH", n)
    await tb.write("CONTROL", START)
    cocotb.start_soon(tb.source.send(tb.frame(words)))
    pairs = []
    while not (await tb.read("STATUS")) & DONE:
        pairs.append(await tb.read64("MACS_ISSUED"))
    assert len(pairs) > 5
    bad = [hex(p) for p in pairs if p not in prefixes]
    assert not bad, f"torn 64-bit reads: {bad[:4]}"
    assert len(set(pairs)) > 3  # the reads really saw the counter move
    await tb.receive_words(n)


@cocotb.test()
async def reset_in_the_middle_of_a_run(dut):
    """aresetn low while beats are flowing: outputs go quiet, every register returns to its
    reset value, and the next run is exact."""
    tb, cfg, config = _setup(dut, 30)
    tb.stalls(0.2, 0.2)
    await tb.reset()
    n = 3 * cfg["beats"]
    words = [tb.rng.getrandbits(64) for _ in range(n)]
    await tb.write("PROGRAM_LENGTH", n)
    await tb.write("CONTROL", IRQ_ENABLE | START)
    tb.source.send_nowait(tb.frame(words))
    while tb.sink.count() == 0 and tb.cycle < 100000:
        await RisingEdge(tb.dut.aclk)
    await tb.cycles(tb.rng.randrange(3, 10))
    tb.dut.aresetn.value = 0
    await tb.cycles(3)
    await ReadOnly()
    assert int(tb.dut.m_axis_tvalid.value) == 0
    assert int(tb.dut.s_axis_tready.value) == 0
    assert int(tb.dut.s_axi_bvalid.value) == 0 and int(tb.dut.s_axi_rvalid.value) == 0
    await RisingEdge(tb.dut.aclk)
    tb.dut.aresetn.value = 1
    tb.source.clear()
    tb.sink.clear()
    await tb.cycles(2)
    model = RegisterModel(config)
    for reg in REGMAP:
        got = await tb.axil.read_dword(reg.offset)
        assert got == model.read(reg.offset), f"{reg.name} after reset: {got:#x}"
    assert int(tb.dut.interrupt.value) == 0
    words = [tb.rng.getrandbits(64) for _ in range(cfg["beats"])]
    got = await _run_once(tb, words, irq=True)
    assert got == expected_run(words, len(words))
    assert await tb.read64("MACS_ISSUED") == sum(words) & MASK64


@cocotb.test()
async def an_early_tlast_reports_an_error_not_done(dut):
    """The engine's error pulse, code and pc reach STATUS; no done; the interrupt rises (with
    irq_enable) as for done; W1C clears the flag and the line, start clears the flag."""
    tb, cfg, _ = _setup(dut, 40)
    await tb.reset()
    n, sent = cfg["beats"], cfg["beats"] // 2
    await tb.write("PROGRAM_LENGTH", n)
    await tb.write("CONTROL", IRQ_ENABLE | START)
    words = [tb.rng.getrandbits(64) for _ in range(sent)]
    await tb.source.send(tb.frame(words))
    status = await tb.wait_status(ERROR)
    assert STATUS.field("busy").extract(status) == 0
    assert STATUS.field("done").extract(status) == 0
    assert STATUS.field("error_code").extract(status) == EARLY_END_ERROR
    assert STATUS.field("error_pc").extract(status) == sent - 1
    await tb.cycles(2)
    assert tb.interrupt_cycles, "no interrupt after an error"
    assert int(tb.dut.interrupt.value) == 1
    assert tb.out_beats == sent - 1  # the stand-in echoes up to the early TLAST
    await tb.write("STATUS", ERROR)
    await tb.cycles(2)
    assert int(tb.dut.interrupt.value) == 0
    status = await tb.read("STATUS")
    assert STATUS.field("error").extract(status) == 0
    assert STATUS.field("error_code").extract(status) == EARLY_END_ERROR  # RO: kept until start
    await tb.write("PROGRAM_LENGTH", 0)
    await tb.write("CONTROL", START)
    assert await tb.wait_status(DONE) == DONE


@cocotb.test()
async def soft_reset_aborts_a_run(dut):
    """CONTROL.soft_reset stops a waiting run without done; the next run is exact; a soft reset
    of the idle device afterwards clears STATUS and the interrupt."""
    tb, cfg, _ = _setup(dut, 50)
    await tb.reset()
    await tb.write("PROGRAM_LENGTH", 10)
    await tb.write("CONTROL", IRQ_ENABLE | START)
    await tb.cycles(5)
    assert await tb.read("STATUS") == BUSY
    await tb.write("CONTROL", IRQ_ENABLE | SOFT_RESET)
    assert await tb.read("STATUS") == 0
    assert (await tb.read("CONTROL")) == IRQ_ENABLE
    words = [tb.rng.getrandbits(64) for _ in range(cfg["beats"])]
    got = await _run_once(tb, words, irq=True)
    assert got == expected_run(words, len(words))
    await tb.cycles(2)
    assert int(tb.dut.interrupt.value) == 1
    # Soft reset of the idle device clears STATUS (done) and so the interrupt.
    await tb.write("CONTROL", IRQ_ENABLE | SOFT_RESET)
    await tb.cycles(2)
    assert await tb.read("STATUS") == 0
    assert int(tb.dut.interrupt.value) == 0
    assert (await tb.read("CONTROL")) == IRQ_ENABLE
