"""cocotb testbench of :class:`ttaccel.hw.top.ZynqTop` through cocotbext-axi bus models.

The top is built around :class:`ttaccel.sim.engine_model.EchoAccumulateEngine` (a stand-in
with the engine's ports), so these tests check what the top level owns: the AXI4-Lite
register file against :class:`~ttaccel.sim.regmodel.RegisterModel`, the AXI4-Stream wiring
under random idle cycles and back-pressure, the status / counter / interrupt plumbing, the
``aclk`` / ``aresetn`` adaptation with a reset in the middle of a run, and soft reset.

Configuration (``TTACCEL_TB``): ``seed``, ``beats`` (beats per run), ``config`` (AccelConfig).
"""

from __future__ import annotations

import logging
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge
from cocotbext.axi import (
    AxiLiteBus,
    AxiLiteMaster,
    AxiStreamBus,
    AxiStreamFrame,
    AxiStreamSink,
    AxiStreamSource,
)

from ttaccel.sim.engine_model import EARLY_END_ERROR, expected_run
from ttaccel.sim.regmodel import RegisterModel
from ttaccel.sim.tb import tb_config
from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.regmap import REGMAP

STATUS = REGMAP["STATUS"]
CONTROL = REGMAP["CONTROL"]
START = CONTROL.field("start").mask
SOFT_RESET = CONTROL.field("soft_reset").mask
IRQ_ENABLE = CONTROL.field("irq_enable").mask
BUSY, DONE, ERROR = (STATUS.field(f).mask for f in ("busy", "done", "error"))
MASK64 = 2**64 - 1


def _pauses(rng: random.Random, probability: float):
    while True:
        yield rng.random() < probability


class TopBench:
    """Clock, reset, the AXI4-Lite manager and the two stream models of one test."""

    def __init__(self, dut, seed: int):
        self.dut = dut
        self.rng = random.Random(seed)
        self.cycle = 0
        Clock(dut.aclk, 10, unit="ns").start()
        dut.aresetn.value = 0
        args = (dut.aclk, dut.aresetn)
        self.axil = AxiLiteMaster(
            AxiLiteBus.from_prefix(dut, "s_axi"), *args, reset_active_level=False
        )
        self.source = AxiStreamSource(
            AxiStreamBus.from_prefix(dut, "s_axis"), *args, reset_active_level=False
        )
        self.sink = AxiStreamSink(
            AxiStreamBus.from_prefix(dut, "m_axis"), *args, reset_active_level=False
        )
        for model in (self.axil.write_if, self.axil.read_if, self.source, self.sink):
            model.log.setLevel(logging.WARNING)
        self.interrupt_cycles: list[int] = []
        self.out_beats = 0  # m_axis transfers, counted whether or not a frame completes
        cocotb.start_soon(self._monitor())

    async def _monitor(self) -> None:
        while True:
            await RisingEdge(self.dut.aclk)
            self.cycle += 1
            await ReadOnly()
            if int(self.dut.interrupt.value):
                self.interrupt_cycles.append(self.cycle)
            if int(self.dut.m_axis_tvalid.value) and int(self.dut.m_axis_tready.value):
                self.out_beats += 1

    async def reset(self, cycles: int = 4) -> None:
        self.dut.aresetn.value = 0
        await self.cycles(cycles)
        self.dut.aresetn.value = 1
        await self.cycles(2)

    async def cycles(self, n: int) -> None:
        for _ in range(n):
            await RisingEdge(self.dut.aclk)

    def stalls(self, idle: float, backpressure: float) -> None:
        """Random idle cycles on the input stream, random back-pressure on the output."""
        self.source.set_pause_generator(_pauses(self.rng, idle) if idle else None)
        self.sink.set_pause_generator(_pauses(self.rng, backpressure) if backpressure else None)

    async def read(self, name: str) -> int:
        return await self.axil.read_dword(REGMAP.offset(name))

    async def write(self, name: str, value: int) -> None:
        await self.axil.write_dword(REGMAP.offset(name), value)

    async def read64(self, counter: str) -> int:
        low = await self.read(f"{counter}_LO")
        return (await self.read(f"{counter}_HI")) << 32 | low

    async def wait_status(self, mask: int, timeout_cycles: int = 20000) -> int:
        start = self.cycle
        while True:
            status = await self.read("STATUS")
            if status & mask:
                return status
            assert self.cycle - start < timeout_cycles, f"STATUS {status:#x} lacks {mask:#x}"

    def frame(self, words: list[int]) -> AxiStreamFrame:
        """One DMA transfer: the words little endian, TLAST on the last beat."""
        data = b"".join(w.to_bytes(8, "little") for w in words)
        return AxiStreamFrame(data)

    async def receive_words(self, count: int, timeout_cycles: int = 20000) -> list[int]:
        words: list[int] = []
        start = self.cycle
        while len(words) < count:
            assert self.cycle - start < timeout_cycles, f"{len(words)} of {count} words arrived"
            if self.sink.empty():
                await RisingEdge(self.dut.aclk)
                continue
            frame = self.sink.recv_nowait()
            data = bytes(frame.tdata)
            assert len(data) % 8 == 0 and all(k == 1 for k in (frame.tkeep or [1]))
            words += [int.from_bytes(data[i : i + 8], "little") for i in range(0, len(data), 8)]
        return words


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
    """The engine's error pulse, code and pc reach STATUS; no done and no interrupt; W1C and
    start clear the flag."""
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
    assert not tb.interrupt_cycles
    assert tb.out_beats == sent - 1  # echoed up to the early TLAST, no TLAST out
    await tb.write("STATUS", ERROR)
    status = await tb.read("STATUS")
    assert STATUS.field("error").extract(status) == 0
    assert STATUS.field("error_code").extract(status) == EARLY_END_ERROR  # RO: kept until start
    await tb.write("PROGRAM_LENGTH", 0)
    await tb.write("CONTROL", START)
    assert await tb.wait_status(DONE) == DONE


@cocotb.test()
async def soft_reset_aborts_a_run(dut):
    """CONTROL.soft_reset stops a waiting run without done; the next run is exact."""
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
