# amaranth: UnusedElaboratable=no
"""Systolic array: parameter checks, an Amaranth-simulator smoke test, and cocotb tests of
several shapes and weight formats on Verilator and Icarus against ``spec.golden.gemm_int``."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from ttaccel.hw.pe import Int8Dsp, Int8DspPacked, mac_provider
from ttaccel.hw.systolic import SystolicArray
from ttaccel.hw.transposed import transposed_provider
from ttaccel.sim.runner import SIMULATORS, run_cocotb, test_seed
from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.cycle_model import array_slots
from ttaccel.spec.formats import format_by_name
from ttaccel.spec.golden import gemm_int


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"rows": 0}, ValueError, "Rows must be a positive integer, not 0"),
        ({"cols": "4"}, ValueError, "Cols must be a positive integer, not '4'"),
        ({"k_max": -1}, ValueError, "K max must be a positive integer, not -1"),
        ({"macp": "int8"}, TypeError, "MAC provider must be a MacProvider, not 'int8'"),
        (
            {"cols": 3, "macp": Int8DspPacked()},
            ValueError,
            "Cols must be a multiple of the MAC provider's 2 lanes, not 3",
        ),
    ],
)
def test_rejects_bad_parameters(kwargs, error, message):
    params = {"rows": 2, "cols": 2, "macp": Int8Dsp(), "k_max": 8, **kwargs}
    with pytest.raises(error, match=message):
        SystolicArray(**params)


# (config, hold slots): the engine's array is transposed (rows = the GEMM's cols, PE columns
# = tokens / lanes); slots = max(2, 1 + ceil((pe_cols + 4) / rows)), worked out by hand.
ENGINE_SLOTS = [
    (AccelConfig(), 2),  # 32 rows, 6 PE columns: 1 + ceil(10 / 32)
    (AccelConfig(rows=4, cols=4), 3),  # 4 rows, 2 PE columns (packed): 1 + ceil(6 / 4)
    (AccelConfig(rows=3, cols=5, weight_format="binary"), 3),  # 5 rows, 3 PE columns
    (AccelConfig(rows=8, cols=8), 2),  # 8 rows, 4 PE columns: 1 + ceil(8 / 8)
    (AccelConfig(rows=8, cols=2, weight_format="int4"), 7),  # 2 rows, 8 PE columns
]


@pytest.mark.parametrize(
    ("config", "slots"), ENGINE_SLOTS,
    ids=[f"{c.rows}x{c.cols}-{c.weight_format.name}" for c, _ in ENGINE_SLOTS],
)  # fmt: skip
def test_the_cycle_model_counts_the_engine_arrays_hold_slots(config, slots):
    provider = transposed_provider(
        config.weight_format, packed=config.dsp_packing, tokens=config.rows
    )
    array = SystolicArray(rows=config.cols, cols=config.rows, macp=provider, k_max=config.max_k)
    assert array.hold_slots == array_slots(config) == slots


def test_amaranth_sim_two_tiles():
    """2 x 2 int8, tiles of K = 3 and K = 1 back to back, output always ready."""
    dut = SystolicArray(rows=2, cols=2, macp=Int8Dsp(), k_max=4)
    a0, b0 = np.array([[1, -2, 3], [127, -128, 5]]), np.array([[4, 5], [-128, 127], [7, -8]])
    a1, b1 = np.array([[-128], [9]]), np.array([[-128, 3]])
    beats = [(a0[:, k], b0[k], k == 2) for k in range(3)] + [(a1[:, 0], b1[0], True)]
    out = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for a, w, last in beats:
            ctx.set(
                dut.i.payload, {"a": [int(x) for x in a], "w": [int(x) for x in w], "last": last}
            )
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)
        for _ in range(20):
            if ctx.get(dut.o.valid):
                out.append([int(x) for x in ctx.get(dut.o.payload.acc)])
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert out == [list(row) for row in gemm_int(a0, b0)] + [list(row) for row in gemm_int(a1, b1)]


# (rows, cols, weight format, packed, k_max): square, tall, wide, packed, every format, 1 x 1.
CONFIGS = [
    (4, 4, "int8", False, 32),
    (3, 4, "int8", True, 24),
    (2, 5, "int4", False, 40),
    (5, 2, "int2", False, 16),
    (3, 3, "ternary", False, 16),
    (2, 3, "binary", False, 16),
    (1, 1, "int8", False, 8),
    (8, 8, "int8", True, 64),
]


def _config_id(config):
    rows, cols, fmt, packed, k_max = config
    return f"{rows}x{cols}-{fmt}{'x2' if packed else ''}-k{k_max}"


# Icarus (about 5x slower) runs every shape but the 8 x 8 one.
SIM_CONFIGS = [
    (sim, config)
    for config in CONFIGS
    for sim in SIMULATORS
    if sim == "verilator" or config[0] * config[1] <= 16
]


@pytest.mark.parametrize(
    ("sim", "config"), SIM_CONFIGS, ids=[f"{s}-{_config_id(c)}" for s, c in SIM_CONFIGS]
)
def test_systolic_cocotb(sim, config):
    rows, cols, fmt, packed, k_max = config
    array = SystolicArray(
        rows=rows, cols=cols, macp=mac_provider(format_by_name(fmt), packed=packed), k_max=k_max
    )
    run_cocotb(
        array,
        sim=sim,
        config_name=f"systolic-{_config_id(config)}",
        test_module="ttaccel.sim.tb_systolic",
        config={
            "rows": rows,
            "cols": cols,
            "weight_format": fmt,
            "packed": packed,
            "k_max": k_max,
            "seed": test_seed(),
            "tiles": 10,
        },
    )
