# amaranth: UnusedElaboratable=no
"""VirtualPins: every input port is a distinct bit of the shift register from ``din``, and
``dout`` is the parity of every output bit ``latency`` cycles earlier (so place and route
keeps the whole inner design)."""

from __future__ import annotations

import random

import pytest
from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from ttaccel.hw.virtual_pins import VirtualPins


class _Mixer(wiring.Component):
    """Combinational stand-in: ``y = a + b``, ``z = ~a[:3]``, ``one`` constant 1."""

    def __init__(self):
        super().__init__({"aclk": In(1), "a": In(8), "b": In(5), "y": Out(9), "z": Out(3),
                          "one": Out(1)})  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.y.eq(self.a + self.b), self.z.eq(~self.a[:3]), self.one.eq(1)]
        return m


def _simulate(dut: VirtualPins, bench, cycles: int) -> None:
    """Run testbench ``bench`` on ``dut`` with ``cycles`` (+ 1) periods of ``clk``, a port:
    the wrapper's domains are clocked by it."""

    async def clock(ctx):
        for level in [1, 0] * (cycles + 1):
            ctx.set(dut.clk, level)
            await ctx.delay(0.5e-6)

    sim = Simulator(dut)
    sim.add_process(clock)
    sim.add_testbench(bench)
    sim.run()


def _run(cycles: int, seed: int):
    """Clock the wrapped mixer with random ``din``; per cycle (after the edge): the bits
    shifted in so far (newest first), ``a``, ``b``, the output word and ``dout``."""
    dut = VirtualPins(_Mixer())
    inner = dut.inner
    rng = random.Random(seed)
    trace = []

    async def bench(ctx):
        shifted = []
        for _ in range(cycles):
            bit = rng.randrange(2)
            ctx.set(dut.din, bit)
            await ctx.posedge(dut.clk)
            shifted.insert(0, bit)
            word = ctx.get(inner.y) | ctx.get(inner.z) << 9 | ctx.get(inner.one) << 12
            trace.append(
                (list(shifted), ctx.get(inner.a), ctx.get(inner.b), word, ctx.get(dut.dout))
            )

    _simulate(dut, bench, cycles)
    return dut, trace


def test_inputs_are_the_shift_register_bits_in_signature_order():
    dut, trace = _run(40, seed=1)
    assert (dut.input_bits, dut.input_latency) == (13, 1)
    for shifted, a, b, _, _ in trace[14:]:
        bits = shifted[1:14]  # the register a cycle ago, bit 0 the newest
        assert a == sum(bit << i for i, bit in enumerate(bits[:8]))
        assert b == sum(bit << i for i, bit in enumerate(bits[8:13]))


def test_dout_is_the_parity_of_every_output_bit_latency_cycles_before():
    dut, trace = _run(120, seed=2)
    assert (dut.output_bits, dut.latency) == (13, 4)  # 13 bits -> 4 -> 1, behind two samples
    words = [word for *_, word, _ in trace]
    outs = [dout for *_, dout in trace]
    checked = 0
    for t in range(dut.latency + 1, len(trace)):
        assert outs[t] == bin(words[t - dut.latency]).count("1") % 2, t
        checked += 1
    assert checked > 100 and len(set(outs)) == 2  # the parity really changes


class _StreamRegister(wiring.Component):
    """A block of the ``sync`` domain with nested ports: ``o`` is ``i`` a cycle later
    (``i.ready`` always 1); the reset clears ``o``."""

    def __init__(self):
        super().__init__({"i": In(stream.Signature(6)), "o": Out(stream.Signature(6))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(1)
        m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        return m


def test_a_sync_block_takes_its_nested_inputs_and_its_reset_from_the_shift_register():
    dut = VirtualPins(_StreamRegister(), clock=None)
    inner = dut.inner
    # inputs in flatten order: i.payload (6), i.valid, o.ready, then the reset bit
    assert (dut.input_bits, dut.output_bits) == (9, 8)
    rng = random.Random(3)
    seen = {"reset": 0, "kept": 0}

    async def bench(ctx):
        shifted = []
        for _ in range(200):
            before = (ctx.get(inner.i.payload), ctx.get(inner.i.valid), shifted[8:9])
            bit = rng.randrange(2)
            ctx.set(dut.din, bit)
            await ctx.posedge(dut.clk)
            shifted.insert(0, bit)
            if len(shifted) < 11:
                continue
            bits = shifted[1:10]  # the ports read the register a cycle late
            assert ctx.get(inner.i.payload) == sum(b << k for k, b in enumerate(bits[:6]))
            assert ctx.get(inner.i.valid) == bits[6] and ctx.get(inner.o.ready) == bits[7]
            reset_then = before[2] == [1]  # the reset bit during the edge just taken
            expect = (0, 0) if reset_then else before[:2]
            assert (ctx.get(inner.o.payload), ctx.get(inner.o.valid)) == expect
            seen["reset" if reset_then else "kept"] += 1

    _simulate(dut, bench, 200)
    assert seen["reset"] > 50 and seen["kept"] > 50


def test_refuses_a_component_it_cannot_clock():
    class NoClock(wiring.Component):
        def __init__(self):
            super().__init__({"x": In(1), "y": Out(1)})

        def elaborate(self, platform):
            return Module()

    with pytest.raises(ValueError, match="no 1-bit input 'aclk'"):
        VirtualPins(NoClock())
    with pytest.raises(ValueError, match="no 1-bit input 'x'"):
        VirtualPins(_StreamRegister(), clock="x")
