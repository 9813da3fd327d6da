# amaranth: UnusedElaboratable=no
"""The Zynq top level with the real engine, through AXI bus models on both simulators."""

from __future__ import annotations

import pytest

from ttaccel.hw.top import ZynqTop
from ttaccel.sim.runner import SIMULATORS, run_cocotb, test_seed
from ttaccel.spec.accel_config import AccelConfig

# The real engine, small enough for a quick build: 4 x 4 int8, shallow buffers.
ENGINE_CONFIG = AccelConfig(
    rows=4,
    cols=4,
    act_buffer_depth=64,
    weight_buffer_depth=64,
    bias_buffer_depth=16,
    instruction_depth=16,
    queue_depth=4,
    max_k=64,
)


@pytest.mark.parametrize("sim", SIMULATORS)
def test_top_with_engine_cocotb(sim):
    top = ZynqTop(config=ENGINE_CONFIG)
    run_cocotb(
        top,
        sim=sim,
        config_name="top-engine-4x4-int8",
        test_module="ttaccel.sim.tb_top_engine",
        config={"seed": test_seed(), "config": ENGINE_CONFIG.to_dict()},
    )
