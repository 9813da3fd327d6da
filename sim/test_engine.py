"""The engine: parameter checks, Verilog lint, and cocotb runs on Verilator and Icarus.

Builds (one per simulator and configuration): a 4 x 4 int8 array with small buffers for the
random sweep (>= 20 random TT layers per run), the dense and attention-score GEMMs, soft reset
and the error paths; a 3 x 5 ternary array (odd word widths, LUT multipliers); and the
default 16 x 16 configuration for seed 000's layers, with a cycle measurement against
:mod:`ttaccel.spec.cycle_model`. Icarus runs the small int8 build on a reduced set.
"""

from __future__ import annotations

import json

import pytest

from ttaccel.hw.engine import Engine
from ttaccel.sim.runner import BUILD_ROOT, run_cocotb, test_seed
from ttaccel.spec.accel_config import AccelConfig

SMALL = AccelConfig(rows=4, cols=4, weight_buffer_depth=1024, act_buffer_depth=1024,
                    bias_buffer_depth=256, instruction_depth=128, queue_depth=4, max_rank=6,
                    max_mode=16, max_k=256)
ODD_TERNARY = AccelConfig(rows=3, cols=5, weight_format="ternary", weight_buffer_depth=1024,
                          act_buffer_depth=1024, bias_buffer_depth=256, instruction_depth=128,
                          queue_depth=2, max_rank=6, max_mode=16, max_k=256)
DEFAULT = AccelConfig()

ALL_TESTS = ("random_tt_layers,dense_and_attention_scores,soft_reset_mid_run_then_clean_run,"
             "errors_stop_the_run_with_their_code")

# (id, simulator, config, cocotb tests, extra TTACCEL_TB entries)
RUNS = [
    ("verilator-4x4-int8", "verilator", SMALL, ALL_TESTS, {"random_layers": 24}),
    ("verilator-3x5-ternary", "verilator", ODD_TERNARY,
     "random_tt_layers,dense_and_attention_scores", {"random_layers": 8}),
    ("verilator-16x16-default", "verilator", DEFAULT, "seed000_layers,cycles_match_the_cycle_model",
     {"seed000": [["attention", 20], ["ffn", 16]], "measure": [["attention", 128]]}),
    ("icarus-4x4-int8", "icarus", SMALL,
     "random_tt_layers,soft_reset_mid_run_then_clean_run,errors_stop_the_run_with_their_code",
     {"random_layers": 3}),
]


def test_rejects_bad_parameters():
    with pytest.raises(TypeError, match="Config must be an AccelConfig, not 16"):
        Engine(config=16)


@pytest.mark.parametrize(("run_id", "sim", "config", "tests", "extra"), RUNS,
                         ids=[r[0] for r in RUNS])
def test_engine_cocotb(run_id, sim, config, tests, extra):
    tb = {"config": config.to_dict(), "seed": test_seed(), "random_layers": 0, "seed000": [],
          "measure": [], **extra}
    run_cocotb(Engine(config=config), sim=sim, config_name=f"engine-{run_id.split('-', 1)[1]}",
               test_module="ttaccel.sim.tb_engine", config=tb, testcase=tests)
    if tb["measure"]:
        report = json.loads((BUILD_ROOT / sim / f"engine-{run_id.split('-', 1)[1]}"
                             / "measure.json").read_text())
        for entry in report:
            print(entry)
