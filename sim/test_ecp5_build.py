# amaranth: UnusedElaboratable=no
"""The ECP5 proxy build (``hw/dsp.py``, ``hw/memory.py``): the engine elaborated for
``ECP5_PROXY``, whose packed PEs, requantizer and bound multiplier are MULT18X18D instances
with their own registers and whose buffers are DP16KD with their output registers, runs the
engine testbench (random TT layers, dense and attention-score GEMMs, soft reset, the error
paths, back-to-back tiles) on Verilator with ``sim/models/MULT18X18D.v`` and
``sim/models/DP16KD.v``: the same results and the same cycles as the portable build, which
is what the ECP5 proxy Fmax is measured on."""

from __future__ import annotations

from pathlib import Path

import pytest
from amaranth.back import verilog

from ttaccel.hw.dsp import ECP5_PROXY, Ecp5Proxy, mult18x18d, on_ecp5
from ttaccel.hw.engine import Engine
from ttaccel.hw.pe import Int8DspPacked, ProcessingElement
from ttaccel.sim.runner import run_cocotb, test_seed
from ttaccel.sim.test_engine import ALL_TESTS, SMALL

MODELS = [
    Path(__file__).resolve().parent / "models" / f"{name}.v" for name in ("MULT18X18D", "DP16KD")
]


def test_only_the_ecp5_platform_gets_mult18x18d():
    pe = ProcessingElement(provider=Int8DspPacked(), k_max=64)
    assert verilog.convert(pe, name="pe").count("MULT18X18D") == 0
    ecp5 = verilog.convert(ProcessingElement(provider=Int8DspPacked(), k_max=64), name="pe",
                           platform=ECP5_PROXY)  # fmt: skip
    assert ecp5.count("MULT18X18D ") == 2  # low and high partial products
    assert on_ecp5(ECP5_PROXY) and on_ecp5(Ecp5Proxy()) and not on_ecp5(None)


def test_the_requantizer_and_bound_multipliers_use_mult18x18d_on_ecp5_only():
    """Steps 31 and 33: two MULT18X18D per requantizer lane, one for the dispatcher's bounds;
    none in the portable build."""
    from ttaccel.hw.dispatch import Dispatcher
    from ttaccel.hw.requant import Requantizer
    from ttaccel.spec.accel_config import AccelConfig

    for make, count in ((lambda: Requantizer(lanes=3), 6),
                        (lambda: Dispatcher(config=AccelConfig(rows=4, cols=4)), 1)):  # fmt: skip
        assert verilog.convert(make(), name="dut").count("MULT18X18D ") == 0
        ecp5 = verilog.convert(make(), name="dut", platform=ECP5_PROXY)
        assert ecp5.count("MULT18X18D ") == count


def test_mult18x18d_rejects_wide_operands():
    from amaranth import Module, Signal

    with pytest.raises(ValueError, match="operand A must be at most 18 bits, not 19"):
        mult18x18d(Module(), "m", Signal(19), Signal(8), en=1, signed_a=True, signed_b=True)


def test_the_ecp5_engine_matches_the_reference_executor():
    tb = {"config": SMALL.to_dict(), "seed": test_seed(), "random_layers": 24, "seed000": [],
          "measure": []}  # fmt: skip
    run_cocotb(Engine(config=SMALL), sim="verilator", config_name="engine-4x4-int8-ecp5",
               test_module="ttaccel.sim.tb_engine", config=tb, testcase=ALL_TESTS,
               platform=ECP5_PROXY, extra_sources=MODELS)  # fmt: skip
