# amaranth: UnusedElaboratable=no
"""The engine's N:M sparse GEMM mode (``sim/tb_sparse.py``) on a small sparse build.

Build ``4x4-int8-2of4``: 4 x 4 int8 (packed DSP48E1), ``sparse_nm = (2, 4)``, small buffers.
Random sparse layers and hand-built sparse GEMMs bit-exact against ``spec.isa.execute``,
cycles equal to the cycle model, the error paths, and one layer dense and sparse on the same
build (``dense_and_sparse_layer_cycles``, whose figures ``docs/results.md`` reports).
"""

from __future__ import annotations

import json
import re
import subprocess

from amaranth.back import verilog

from ttaccel.hw.engine import Engine
from ttaccel.sim.runner import BUILD_ROOT, run_cocotb, test_seed
from ttaccel.sim.test_engine import LINT_WAIVERS, _verilator
from ttaccel.spec.accel_config import AccelConfig

SPARSE = AccelConfig(
    rows=4, cols=4, weight_buffer_depth=1024, act_buffer_depth=1024, bias_buffer_depth=256,
    instruction_depth=128, queue_depth=4, max_rank=6, max_mode=256, max_k=256,
    sparse_nm=(2, 4),
)  # fmt: skip
CONFIG_NAME = "engine-4x4-int8-2of4"
MEASURE = [[128, 16, 16], [256, 16, 32]]  # in_features, out_features, tokens


def test_sparse_engine_cocotb():
    tb = {"config": SPARSE.to_dict(), "seed": test_seed(), "layers": 8, "measure": MEASURE}
    run_cocotb(Engine(config=SPARSE), sim="verilator", config_name=CONFIG_NAME,
               test_module="ttaccel.sim.tb_sparse", config=tb)  # fmt: skip
    report = json.loads((BUILD_ROOT / "verilator" / CONFIG_NAME / "measure.json").read_text())
    for entry in report:
        assert entry["sparse_cycles"] <= 0.55 * entry["dense_cycles"], entry


def test_sparse_engine_verilog_passes_verilator_lint():
    """The sparse build's Verilog raises only the engine's waived lint classes."""
    directory = BUILD_ROOT / "lint" / "engine-4x4-2of4"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "top.v").write_text(verilog.convert(Engine(config=SPARSE), name="top"))
    waivers = [f"-Wno-{name}" for name in LINT_WAIVERS]
    result = subprocess.run(
        [str(_verilator()), "--lint-only", "-Wall", "top.v"], cwd=directory, capture_output=True,
        text=True, env={"PATH": f"{_verilator().parent}:/usr/bin:/bin"},
    )  # fmt: skip
    classes = set(re.findall(r"%Warning-([A-Z0-9_]+)", result.stdout + result.stderr))
    assert classes <= set(LINT_WAIVERS), f"unwaived: {classes - set(LINT_WAIVERS)}"
    waived = subprocess.run(
        [str(_verilator()), "--lint-only", "-Wall", *waivers, "top.v"], cwd=directory,
        capture_output=True, text=True, env={"PATH": f"{_verilator().parent}:/usr/bin:/bin"},
    )  # fmt: skip
    assert waived.returncode == 0, (waived.stdout + waived.stderr)[-3000:]
