# amaranth: UnusedElaboratable=no
"""The Zynq top level: construction checks, and cocotb through AXI bus models on both
simulators (around the stand-in engine of :mod:`ttaccel.sim.engine_model`)."""

from __future__ import annotations

import pytest

from ttaccel.hw.top import ZynqTop
from ttaccel.sim.engine_model import EchoAccumulateEngine
from ttaccel.sim.runner import SIMULATORS, run_cocotb, test_seed
from ttaccel.spec.accel_config import AccelConfig

# Distinct from the default so the CONFIG_* read-back is not a coincidence.
MODEL_CONFIG = AccelConfig(
    rows=4,
    cols=8,
    weight_format="int2",
    act_buffer_depth=512,
    weight_buffer_depth=1024,
    bias_buffer_depth=256,
    instruction_depth=64,
    max_k=2000,
)


@pytest.mark.parametrize("sim", SIMULATORS)
def test_top_with_engine_model_cocotb(sim):
    top = ZynqTop(config=MODEL_CONFIG, engine=EchoAccumulateEngine())
    run_cocotb(
        top,
        sim=sim,
        config_name="top-echo-model",
        test_module="ttaccel.sim.tb_top",
        config={
            "seed": test_seed(),
            "beats": 40 if sim == "verilator" else 24,
            "config": MODEL_CONFIG.to_dict(),
        },
    )


def test_rejects_an_engine_with_other_ports():
    with pytest.raises(ValueError, match="Engine must be a component with the ports of"):
        ZynqTop(config=MODEL_CONFIG, engine=object())


def test_rejects_a_config_that_is_not_an_accel_config():
    with pytest.raises(ValueError, match="Config must be an AccelConfig, not"):
        ZynqTop(config={"rows": 4}, engine=EchoAccumulateEngine())
