# amaranth: UnusedElaboratable=no
"""Gate-level smoke simulation: yosys ``synth_xilinx`` of a small configuration's top level,
simulated in Icarus with yosys's 7-series cell models (LUT, FD*E, CARRY4, DSP48E1, LUT-RAM) on
a short program, the results compared with the reference executor (tests/hw/tb_gate_level.py).

This checks the synthesized netlist, not the RTL: the packed int8 DSP48E1 mapping, the
inferred memories and the flattening keep the engine's numbers.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from amaranth.back import verilog

from ttaccel.hw.synth import synthesize_top_xc7, xilinx_simulation_models
from ttaccel.hw.top import ZynqTop
from ttaccel.sim.runner import test_seed
from ttaccel.spec.accel_config import AccelConfig

BUILD = Path(__file__).resolve().parents[2] / "build" / "tests" / "gate_level"
CONFIG = AccelConfig(rows=4, cols=4, act_buffer_depth=64, weight_buffer_depth=64,
                     bias_buffer_depth=16, instruction_depth=16, queue_depth=4,
                     max_k=64)  # fmt: skip
TOP = "top"


def netlist(config: AccelConfig) -> tuple[Path, dict]:
    """The synth_xilinx netlist of ``config``'s top (module ``top``) and its cell counts,
    rebuilt only when the generated Verilog changes."""
    text = verilog.convert(ZynqTop(config=config), name=TOP, emit_src=False)
    out = BUILD / hashlib.sha256(text.encode()).hexdigest()[:16]
    path = out / f"{TOP}_netlist.v"
    if not path.is_file():
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{TOP}.v").write_text(text)
        synthesize_top_xc7(out / f"{TOP}.v", TOP, out, netlist=True)
    stat = json.loads((out / "stat_xc7.json").read_text())["design"]["num_cells_by_type"]
    return path, stat


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")
def test_netlist_runs_a_program_like_the_reference():
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    path, cells = netlist(CONFIG)
    # The netlist really is mapped: the packed MACs, requantizers and dispatcher on DSP48E1.
    assert cells.get("DSP48E1") == CONFIG.dsp_total
    assert not any(k.startswith("$") and k != "$scopeinfo" for k in cells), cells
    build_dir = path.parent / "icarus"
    runner = get_runner("icarus")
    runner.build(sources=[path, xilinx_simulation_models()], hdl_toplevel=TOP,
                 build_dir=build_dir, timescale=("1ns", "1ps"), always=False)  # fmt: skip
    env = {"TTACCEL_TB": json.dumps({"seed": test_seed(), "config": CONFIG.to_dict()})}
    try:
        results = runner.test(test_module="tests.hw.tb_gate_level", hdl_toplevel=TOP,
                              hdl_toplevel_lang="verilog", build_dir=build_dir,
                              test_dir=build_dir, extra_env=env,
                              timescale=("1ns", "1ps"))  # fmt: skip
    except SystemExit as exc:  # the runner exits when a cocotb test fails under pytest
        raise AssertionError(f"gate-level simulation failed; see {build_dir}") from exc
    tests, failed = get_results(results)
    assert tests == 1 and failed == 0, f"{failed} of {tests} gate-level tests failed"
