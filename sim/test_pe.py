# amaranth: UnusedElaboratable=no
"""Processing elements: accumulator widths, parameter checks, and Amaranth-simulator tests of
every MAC provider against ``spec.golden.gemm_int`` (random tiles, random clock-enable gaps,
bubbles, and worst-case sums that would overflow a narrower accumulator)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from ttaccel.hw.pe import (
    BinaryNegate,
    Int8Dsp,
    Int8DspPacked,
    LutMultiply,
    ProcessingElement,
    TernarySelect,
    mac_provider,
)
from ttaccel.sim.runner import test_seed
from ttaccel.sim.stimulus import encode_weight, random_activations, random_codes
from ttaccel.spec.formats import BINARY, INT2, INT4, INT8, TERNARY
from ttaccel.spec.golden import gemm_int

PROVIDERS = [
    Int8Dsp(),
    Int8DspPacked(),
    LutMultiply(weight_format=INT4),
    LutMultiply(weight_format=INT2),
    TernarySelect(),
    BinaryNegate(),
]


@pytest.mark.parametrize(
    ("provider", "k_max", "bits"),
    [
        # Worked by hand: int8 products span [-128*127, (-128)**2] = [-16256, 16384].
        (Int8Dsp(), 1, 16),  # 16384 <= 2**15 - 1
        (Int8Dsp(), 256, 24),  # 256 * 16384 = 2**22 <= 2**23 - 1
        (Int8Dsp(), 257, 24),  # 257 * 16384 < 2**23
        (Int8DspPacked(), 1024, 26),  # 2**24
        (LutMultiply(weight_format=INT4), 1024, 22),  # int4: [-1016, 1024]; 2**20
        (LutMultiply(weight_format=INT2), 64, 16),  # int2: [-254, 256]; 2**14
        (TernarySelect(), 64, 15),  # [-128, 128]; 2**13
        (BinaryNegate(), 1, 9),  # 128 needs 9 bits
    ],
)
def test_accumulator_width_is_the_worst_case(provider, k_max, bits):
    assert provider.accumulator_bits(k_max) == bits


def test_accumulators_stay_within_int32():
    # int8: 131071 * 16384 = 2**31 - 16384 fits int32; 131072 * 16384 = 2**31 does not.
    assert Int8Dsp().accumulator_bits(131071) == 32
    with pytest.raises(ValueError, match="K max must be at most 131071 for int8 weights"):
        Int8Dsp().accumulator_bits(131072)


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="K max must be a positive integer, not 0"):
        ProcessingElement(provider=Int8Dsp(), k_max=0)
    with pytest.raises(TypeError, match="Provider must be a MacProvider, not 'int8'"):
        ProcessingElement(provider="int8", k_max=4)
    with pytest.raises(ValueError, match="Packed MACs exist only for int8 weights, not int4"):
        mac_provider(INT4, packed=True)
    with pytest.raises(ValueError, match="Weight format must be int4 or int2"):
        LutMultiply(weight_format=TERNARY)
    assert isinstance(mac_provider(BINARY), BinaryNegate)
    assert isinstance(mac_provider(INT8, packed=True), Int8DspPacked)


def _run_pe(provider, tiles, en_pattern, rng):
    """Drive ``tiles`` (list of (a (K,), w (K, lanes))) through one PE; return the sums seen
    when ``done`` is high on an enabled cycle (when an array would copy them)."""
    k_max = max(len(a) for a, _ in tiles)
    dut = provider.pe(k_max=k_max)
    fmt = provider.weight_format
    beats = []
    for a, w in tiles:
        for k in range(len(a)):
            beats.append(
                (int(a[k]), [encode_weight(fmt, x) for x in w[k]], k == 0, k == len(a) - 1)
            )
    results = []

    async def bench(ctx):
        index = 0
        idle = 0
        while index < len(beats) or idle < 2 * ProcessingElement.latency + 2:
            en = bool(en_pattern(rng))
            bubble = bool(rng.random() < 0.2)
            if index < len(beats) and not bubble:
                a, w, first, last = beats[index]
                ctx.set(dut.a, a)
                ctx.set(dut.w, w)
                ctx.set(dut.first, first)
                ctx.set(dut.last, last)
                ctx.set(dut.valid, 1)
            else:
                ctx.set(dut.valid, 0)
                ctx.set(dut.a, int(rng.integers(-128, 128)))  # garbage must be ignored
            ctx.set(dut.en, en)
            if en and ctx.get(dut.done):
                results.append([int(x) for x in ctx.get(dut.acc)])
            await ctx.tick()
            if en and index < len(beats) and not bubble:
                index += 1
            elif index >= len(beats) and en:
                idle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return results


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.name)
def test_pe_random_tiles_match_gemm_int(provider):
    seed = test_seed()
    rng = np.random.default_rng(seed)
    fmt, lanes = provider.weight_format, provider.lanes
    tiles = []
    for _ in range(12):
        k = int(rng.choice([1, 2, 3, int(rng.integers(1, 17))]))
        tiles.append((random_activations(rng, (k,)), random_codes(rng, fmt, (k, lanes))))
    got = _run_pe(provider, tiles, lambda r: r.random() < 0.75, rng)
    want = [list(gemm_int(a[None, :], w)[0]) for a, w in tiles]
    assert got == want, f"seed {seed}"


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.name)
def test_pe_worst_case_sums_do_not_overflow(provider):
    """K = k_max beats of the extreme product (both signs): exactly representable."""
    fmt, lanes, k = provider.weight_format, provider.lanes, 64
    a = np.full(k, -128)
    tiles = [
        (a, np.full((k, lanes), fmt.qmin)),
        (a, np.full((k, lanes), fmt.qmax)),
        (a, np.full((k, lanes), fmt.qmin)),
    ]
    got = _run_pe(provider, tiles, lambda r: True, np.random.default_rng(0))
    want = [list(gemm_int(a[None, :], w)[0]) for a, w in tiles]
    assert got == want
    acc_bits = provider.accumulator_bits(k)
    assert max(abs(x) for row in want for x in row) >= 2 ** (acc_bits - 2)  # the top bit is used
