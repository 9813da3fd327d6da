# amaranth: UnusedElaboratable=no
"""Dense layers with binary codes on a binary engine (``sim/tb_xtc.py``), in Verilator.

Build ``3x5-binary``: 3 x 5, ``weight_format="binary"``, small buffers (odd rows: one token per
PE column, so the output columns and the PE columns differ). Two random layers, weights resident
and streamed, bit-exact against ``spec.isa.execute_stream`` and the golden model, the run
programs' ``BUSY_CYCLES`` equal to the cycle model's (the resident one exactly, the
streamed one, with a part column tile, within 2 cycles). ``sim/measure_xtc.py`` measures larger
layers on 4 x 4 int8, ternary and binary builds (``docs/results.md``).
"""

from __future__ import annotations

import json

from ttaccel.hw.engine import Engine
from ttaccel.sim.runner import BUILD_ROOT, run_cocotb, test_seed
from ttaccel.spec.accel_config import AccelConfig

BINARY_ODD = AccelConfig(
    rows=3, cols=5, weight_format="binary", weight_buffer_depth=1024, act_buffer_depth=1024,
    bias_buffer_depth=256, instruction_depth=128, queue_depth=2, max_rank=6, max_mode=64,
    max_k=256,
)  # fmt: skip
CONFIG_NAME = "engine-3x5-binary"
LAYERS = [[64, 15, 7, 1], [48, 22, 9, 0]]  # in_features, out_features, tokens, resident


def test_binary_engine_dense_layers_cocotb():
    tb = {"config": BINARY_ODD.to_dict(), "seed": test_seed(), "layers": LAYERS, "tolerance": 2}
    run_cocotb(Engine(config=BINARY_ODD), sim="verilator", config_name=CONFIG_NAME,
               test_module="ttaccel.sim.tb_xtc", config=tb,
               testcase="dense_layer_cycles")  # fmt: skip
    report = json.loads((BUILD_ROOT / "verilator" / CONFIG_NAME / "measure.json").read_text())
    assert [e["resident"] for e in report] == [True, False]
    assert all(e["weight_format"] == "binary" for e in report)
    # Resident weights, whole column tiles: exact, with 3 PE columns of skew (latency 17; the
    # model's former rows + cols - 2 + 10 = 16 was a cycle short). The streamed layer, with a
    # part column tile, may take a cycle more than the model.
    assert report[0]["run_cycles"] == report[0]["run_model_cycles"], report[0]
