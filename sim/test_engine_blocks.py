# amaranth: UnusedElaboratable=no
"""Amaranth-simulator unit tests of the engine's small blocks: the output packer, the
transposed low-bit MAC providers, the dispatcher's division constant and the queues."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import unsigned
from amaranth.lib import data
from amaranth.sim import Simulator

from ttaccel.hw.dispatch import division_magic
from ttaccel.hw.gearbox import BeatPacker
from ttaccel.hw.interfaces import StreamFIFO
from ttaccel.hw.pe import ProcessingElement
from ttaccel.hw.requant import OutFormat
from ttaccel.hw.transposed import TransposedLowBit, transposed_provider
from ttaccel.sim.engine_programs import random_codes
from ttaccel.spec.formats import BINARY, FORMATS, INT2, INT4, INT8, TERNARY
from ttaccel.spec.packing import pack_words


@pytest.mark.parametrize("lanes", [3, 4, 16])
def test_packer_matches_pack_words_per_instruction(lanes):
    """Instructions of random formats and lengths, random output back-pressure: each
    instruction's beats are ``pack_words`` of its codes, TLAST only on the final one."""
    rng = np.random.default_rng(lanes)
    instructions = []
    for _ in range(6):
        fmt = list(FORMATS.values())[int(rng.integers(len(FORMATS)))]
        instructions.append((fmt, random_codes(rng, fmt, (int(rng.integers(1, 7)), lanes))))
    want = [int(b) for fmt, words in instructions for b in pack_words(words.reshape(-1), fmt, 64)]
    dut = BeatPacker(lanes=lanes)
    got = []

    async def source(ctx):
        for n, (fmt, words) in enumerate(instructions):
            for w, word in enumerate(words):
                end = w == len(words) - 1
                ctx.set(
                    dut.i.payload,
                    {
                        "codes": [int(c) for c in word],
                        "fmt": OutFormat.of(fmt),
                        "end": end,
                        "final": end and n == len(instructions) - 1,
                    },
                )
                ctx.set(dut.i.valid, 1)
                await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        for _ in range(400):
            ready = int(rng.random() < 0.6)
            ctx.set(dut.o.ready, ready)
            await ctx.delay(1e-9)
            if ready and ctx.get(dut.o.valid):
                got.append((ctx.get(dut.o.payload.data), ctx.get(dut.o.payload.last)))
            await ctx.tick()
        assert ctx.get(dut.idle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    assert [data for data, _ in got] == want
    assert [last for _, last in got] == [int(i == len(want) - 1) for i in range(len(want))]


@pytest.mark.parametrize("fmt", [INT8, INT4], ids=lambda f: f.name)
def test_packer_takes_a_word_as_a_beat_leaves_above_64_bits(fmt):
    """Three-lane words (24 or 12 bits, which do not divide 64) back to back, output always
    ready: beats leave while more than 64 bits are held and the next word enters in the same
    cycle, so it must land above the bits that stay (step 21's shift select)."""
    lanes = 3
    words = np.random.default_rng(21).integers(fmt.qmin, fmt.qmax + 1, size=(16, lanes))
    want = [int(b) for b in pack_words(words.reshape(-1), fmt, 64)]
    dut = BeatPacker(lanes=lanes)
    got = []

    async def source(ctx):
        for w, word in enumerate(words):
            end = w == len(words) - 1
            ctx.set(dut.i.payload, {"codes": [int(c) for c in word], "fmt": OutFormat.of(fmt),
                                    "end": end, "final": end})  # fmt: skip
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        ctx.set(dut.o.ready, 1)
        for _ in range(100):
            await ctx.delay(1e-9)
            if ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload.data))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    assert got == want


@pytest.mark.parametrize("fmt", [INT4, INT2, TERNARY, BINARY], ids=lambda f: f.name)
def test_transposed_low_bit_products(fmt):
    """Every legal weight code on the 8-bit ``a`` port (its low bits, as WBUF stores it) times
    extreme and random activations on the ``w`` port: one-beat sums equal ``a * w``."""
    provider = TransposedLowBit(weight_format=fmt)
    pe = ProcessingElement(provider=provider, k_max=4)
    codes = [v for v in range(fmt.qmin, fmt.qmax + 1) if fmt.has_zero or v]
    activations = [-128, -1, 0, 1, 127, 77, -93]
    got = []

    async def bench(ctx):
        ctx.set(pe.en, 1)
        for code in codes:
            for x in activations:
                raw = (1 if code > 0 else 0) if fmt == BINARY else code & ((1 << fmt.bits) - 1)
                ctx.set(pe.a, raw)
                ctx.set(pe.w, [x])
                ctx.set(pe.valid, 1)
                ctx.set(pe.first, 1)
                ctx.set(pe.last, 1)
                await ctx.tick()
                ctx.set(pe.valid, 0)
                for _ in range(ProcessingElement.latency - 1):
                    await ctx.tick()
                got.append(ctx.get(pe.acc[0]))

    sim = Simulator(pe)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == [code * x for code in codes for x in activations]


def test_transposed_provider_choice():
    assert transposed_provider(INT8, packed=True, tokens=16).lanes == 2
    assert transposed_provider(INT8, packed=True, tokens=3).lanes == 1  # odd rows: unpacked
    assert isinstance(transposed_provider(TERNARY, packed=True, tokens=16), TransposedLowBit)
    with pytest.raises(ValueError, match="Weight format must be int4, int2, ternary or binary"):
        TransposedLowBit(weight_format=INT8)


@pytest.mark.parametrize("divisor", [1, 3, 4, 5, 7, 16, 24, 255, 256])
def test_division_magic_is_exact(divisor):
    multiplier, shift = division_magic(divisor)
    x = np.arange(2**16, dtype=np.int64)
    np.testing.assert_array_equal((x * multiplier) >> shift, x // divisor)
    assert multiplier < 2**17  # fits the dispatcher's 17-bit multiplier input


_HEADS = {  # StreamFIFO options -> the cycles from an entry's acceptance to `o`
    "lutram-head": ({"registered_head": False}, 1),
    "registered-head": ({"registered_head": True}, 1),
    "no-bypass": ({"registered_head": True, "bypass": False}, 2),
    "two-heads": ({"registered_head": True, "two_heads": True}, 1),
}


@pytest.mark.parametrize("head", sorted(_HEADS))
@pytest.mark.parametrize("depth", [1, 2, 3, 4, 8])
def test_stream_fifo_is_a_queue_of_depth_entries(depth, head):
    """Against a list model, every cycle: ``o`` shows the oldest entry accepted at least the
    head variant's latency before this cycle (one cycle; two without ``bypass``), ``i.ready``
    is high exactly while fewer than ``depth`` entries are held (also in a cycle in which
    ``o`` transfers), entries leave in order; random valid/ready (the producer holds a beat
    until it is taken). The variants with one cycle must have the same cycles."""
    options, latency = _HEADS[head]
    if (not options.get("bypass", True) or options.get("two_heads")) and depth < 3:
        with pytest.raises(ValueError, match="depth of 3 or more"):
            StreamFIFO(layout=unsigned(4), depth=depth, **options)
        return
    seed = 1000 * depth + sorted(_HEADS).index(head)
    rng = np.random.default_rng(seed)
    layout = data.StructLayout({"pc": 16, "tag": 3})
    fifo = StreamFIFO(layout=layout, depth=depth, **options)
    model, sent, got = [], 0, []
    p_valid, p_ready = rng.uniform(0.2, 0.9, size=2)

    async def bench(ctx):
        nonlocal sent
        offer = None
        for cycle in range(600):
            if offer is None and rng.random() < p_valid:
                offer = int(rng.integers(0, 1 << layout.size))
            ready = bool(rng.random() < p_ready)
            ctx.set(fifo.i.valid, offer is not None)
            ctx.set(fifo.i.payload.as_value(), offer or 0)
            ctx.set(fifo.o.ready, ready)
            o_valid, i_ready = ctx.get(fifo.o.valid), ctx.get(fifo.i.ready)
            where = f"seed {seed}, cycle {cycle}"
            assert o_valid == (bool(model) and model[0][1] <= cycle - latency), where
            assert i_ready == (len(model) < depth), where
            if o_valid:
                assert ctx.get(fifo.o.payload.as_value()) == model[0][0], where
                if ready:
                    got.append(model.pop(0))
            if offer is not None and i_ready:
                model.append((offer, cycle))
                sent += 1
                offer = None
            await ctx.tick()

    sim = Simulator(fifo)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert sent > 100 and len(got) > 100, (seed, sent, len(got))
