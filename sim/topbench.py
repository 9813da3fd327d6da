"""cocotb building blocks for the Zynq top level: clock, aresetn, cocotbext-axi bus models.

:class:`TopBench` owns the AXI4-Lite manager (``s_axi``), the AXI4-Stream source (``s_axis``,
the DMA's MM2S side) and sink (``m_axis``, S2MM), random idle cycles and back-pressure, and
monitors of the interrupt line and of output-stream transfers.
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

from ttaccel.spec.regmap import REGMAP

__all__ = ["BUSY", "CONTROL", "DONE", "ERROR", "IRQ_ENABLE", "MASK64", "SOFT_RESET", "START",
           "STATUS", "TopBench"]  # fmt: skip

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
