# amaranth: UnusedElaboratable=no
"""Directed and random-program tests of the engine (``sim/tb_engine_directed.py``) on one
4 x 4 int8 Verilator build with 512 instructions (room for 256 signalling LOADs).

The directed tests use fixed data and scripted stalls, so each rule they check fails on every
seed when the hardware breaks it (``tools/mutate.py`` shows which); the resident-core,
prefetch and random-program tests draw from ``TTACCEL_SEED``.
"""

from __future__ import annotations

from ttaccel.hw.engine import Engine
from ttaccel.sim.runner import run_cocotb, test_seed
from ttaccel.spec.accel_config import AccelConfig

DIRECTED = AccelConfig(
    rows=4, cols=4, weight_buffer_depth=1024, act_buffer_depth=1024, bias_buffer_depth=256,
    instruction_depth=512, queue_depth=4, max_rank=6, max_mode=16, max_k=256,
)  # fmt: skip
RANDOM_PROGRAMS = 16


def test_engine_directed_cocotb():
    tb = {"config": DIRECTED.to_dict(), "seed": test_seed(), "random_programs": RANDOM_PROGRAMS}
    run_cocotb(Engine(config=DIRECTED), sim="verilator", config_name="engine-4x4-directed",
               test_module="ttaccel.sim.tb_engine_directed", config=tb)  # fmt: skip
