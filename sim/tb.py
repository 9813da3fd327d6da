"""cocotb building blocks for Amaranth stream ports: clock and reset, source, sink.

Amaranth names stream ports ``<name>__valid``, ``<name>__ready`` and ``<name>__payload`` (one
flat vector); payloads are packed and unpacked with the hardware's own layout objects
(:mod:`ttaccel.sim.layouts`). Sources and sinks record the cycle of every transfer, so the
checkers can assert exact latencies, and take an idle / back-pressure probability so every
stream test can run with and without stalls.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from .layouts import pack, unpack

__all__ = ["Harness", "StreamSink", "StreamSource", "tb_config"]


def tb_config() -> dict:
    """The configuration the pytest side passed in ``TTACCEL_TB``."""
    return json.loads(os.environ["TTACCEL_TB"])


class Harness:
    """Owns the clock, the reset and a cycle counter (``cycle`` counts rising edges)."""

    def __init__(self, dut, period_ns: int = 10):
        self.dut = dut
        self.clk = dut.clk
        self.cycle = 0
        self._period = period_ns

    async def start(self, reset_cycles: int = 3, *, count_cycles: bool = True) -> None:
        """Start the clock, hold reset for ``reset_cycles`` edges, then count cycles unless
        ``count_cycles`` is false (long free-running simulations: no Python per cycle)."""
        Clock(self.clk, self._period, unit="ns").start()
        self.dut.rst.value = 1
        for _ in range(reset_cycles):
            await RisingEdge(self.clk)
        self.dut.rst.value = 0
        if count_cycles:
            cocotb.start_soon(self._count())

    async def _count(self) -> None:
        while True:
            await RisingEdge(self.clk)
            self.cycle += 1

    async def cycles(self, n: int) -> None:
        for _ in range(n):
            await RisingEdge(self.clk)

    async def join(self, task, timeout_cycles: int, what: str) -> None:
        """Wait for the cocotb ``task`` to end; AssertionError naming ``what`` after
        ``timeout_cycles`` (a design that never takes the rest of a stream fails the test
        instead of hanging the suite)."""
        for _ in range(timeout_cycles):
            if task.done():
                break
            await RisingEdge(self.clk)
        assert task.done(), f"{what}: not done after {timeout_cycles} cycles"
        await task


class _StreamPort:
    """The ``valid`` / ``ready`` / ``payload`` handles of the Amaranth stream named ``prefix``."""

    def __init__(self, harness: Harness, prefix: str, layout, rng: random.Random) -> None:
        dut = harness.dut
        self.harness = harness
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.layout = layout
        self.rng = rng


class StreamSource(_StreamPort):
    """Drives an Amaranth stream input with a list of payloads.

    Each cycle the source is idle with probability ``idle`` (``valid`` low); otherwise it
    offers the next payload and keeps it until the transfer (stream rules: it never waits for
    ``ready``). ``sent`` holds ``(cycle, payload)`` of every transfer.
    """

    def __init__(
        self,
        harness: Harness,
        prefix: str,
        layout,
        *,
        idle: float = 0.0,
        rng: random.Random | None = None,
    ):
        super().__init__(harness, prefix, layout, rng or random.Random(0))
        self.idle = idle
        self.sent: list[tuple[int, object]] = []
        self.valid.value = 0

    async def send(self, payloads) -> None:
        """Transfer every payload in order; returns after the last transfer."""
        clk = self.harness.clk
        pending = list(payloads)
        index = 0
        offer = False
        await RisingEdge(clk)
        while index < len(pending):
            if not offer:  # once offered, a payload stays valid until it transfers
                offer = self.idle == 0 or self.rng.random() >= self.idle
            self.valid.value = int(offer)
            if offer:
                self.payload.value = pack(self.layout, pending[index])
            await ReadOnly()
            if offer and int(self.ready.value):
                self.sent.append((self.harness.cycle, pending[index]))
                index += 1
                offer = False
            await RisingEdge(clk)
        self.valid.value = 0


class StreamSink(_StreamPort):
    """Accepts an Amaranth stream output, with ``ready`` low with probability ``backpressure``.

    ``received`` holds ``(cycle, payload)`` of every transfer, payloads unpacked with
    ``layout``. Runs until :meth:`stop`.
    """

    def __init__(
        self,
        harness: Harness,
        prefix: str,
        layout,
        *,
        backpressure: float = 0.0,
        rng: random.Random | None = None,
    ):
        super().__init__(harness, prefix, layout, rng or random.Random(1))
        self.backpressure = backpressure
        self.received: list[tuple[int, object]] = []
        self.ready.value = 0
        self._task = None

    def start(self) -> None:
        self._task = cocotb.start_soon(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        clk = self.harness.clk
        while True:
            await RisingEdge(clk)
            accept = self.backpressure == 0 or self.rng.random() >= self.backpressure
            self.ready.value = int(accept)
            await ReadOnly()
            if accept and int(self.valid.value):
                payload = unpack(self.layout, int(self.payload.value))
                self.received.append((self.harness.cycle, payload))

    async def wait_for(self, count: int, timeout_cycles: int) -> None:
        """Wait until ``count`` payloads arrived; AssertionError after ``timeout_cycles``."""
        start = self.harness.cycle
        while len(self.received) < count:
            assert self.harness.cycle - start < timeout_cycles, (
                f"timeout: {len(self.received)} of {count} payloads after {timeout_cycles} cycles"
            )
            await RisingEdge(self.harness.clk)

    async def assert_quiet(self, cycles: int) -> None:
        """The output stays silent (no ``valid``) for ``cycles`` more cycles, ready high."""
        self.stop()
        clk = self.harness.clk
        for _ in range(cycles):
            await RisingEdge(clk)
            self.ready.value = 1
            await ReadOnly()
            assert not int(self.valid.value), "unexpected extra output beat"
