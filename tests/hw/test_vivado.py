"""The Vivado 2022.2 script (hw/vivado.py) run in a real Tcl interpreter against recording
stand-ins of the Vivado commands (tests/hw/vivado_standins.tcl), then the block design it
built checked against what the board and the host driver need: the cells, their
properties, every connection, the address map and the exported overlay files.

The expectations come from the requirements, not from the script: the VLNV and the register
window from spec/regmap.py, the pin names from the IPs' product guides (tables below), the
DMA's 26-bit length register (a 14-bit one caps a transfer at 16 KiB). Broken variants of the
script must fail: see ``test_broken_scripts_fail``.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from ttaccel.generate import MODULE_NAME, generate
from ttaccel.hw.vivado import block_design_tcl, board_part_name, write_vivado_project
from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.regmap import ADDRESS_SPACE, IP_VLNV

STANDINS = Path(__file__).with_name("vivado_standins.tcl")
SMALL = AccelConfig(rows=4, cols=4, act_buffer_depth=64, weight_buffer_depth=64,
                    bias_buffer_depth=16, instruction_depth=16, queue_depth=4,
                    max_k=64)  # fmt: skip
CLOCK_MHZ = 125
DMA_VLNV = "xilinx.com:ip:axi_dma:7.1"
PS7_VLNV = "xilinx.com:ip:processing_system7:5.5"

# Ports of the Xilinx IPs (product guides PG082, PG021, PG164, PG059, PG099, xlconcat):
# ``pins`` (clock pins marked "clk", reset inputs "rst"), ``intf`` bus interfaces. Interconnect
# and concat ports exist only up to their NUM_* settings (checked separately).
PS7 = {"pins": {"FCLK_CLK0": "out", "FCLK_RESET0_N": "out", "M_AXI_GP0_ACLK": "clk",
                "S_AXI_HP0_ACLK": "clk", "IRQ_F2P": "in"},
       "intf": {"M_AXI_GP0", "S_AXI_HP0", "DDR", "FIXED_IO"}}  # fmt: skip
XILINX_IPS = {
    PS7_VLNV: PS7,
    "xilinx.com:ip:proc_sys_reset:5.0": {
        "pins": {"slowest_sync_clk": "clk", "ext_reset_in": "rst", "aux_reset_in": "in",
                 "dcm_locked": "in", "mb_debug_sys_rst": "in", "interconnect_aresetn": "out",
                 "peripheral_aresetn": "out", "peripheral_reset": "out"},
        "intf": set()},
    DMA_VLNV: {
        "pins": {"s_axi_lite_aclk": "clk", "m_axi_mm2s_aclk": "clk", "m_axi_s2mm_aclk": "clk",
                 "axi_resetn": "rst", "mm2s_introut": "out", "s2mm_introut": "out"},
        "intf": {"S_AXI_LITE", "M_AXI_MM2S", "M_AXI_S2MM", "M_AXIS_MM2S", "S_AXIS_S2MM"}},
    "xilinx.com:ip:axi_intc:4.1": {
        "pins": {"s_axi_aclk": "clk", "s_axi_aresetn": "rst", "intr": "in", "irq": "out"},
        "intf": {"s_axi"}},
}  # fmt: skip
INTERCONNECT_VLNV = "xilinx.com:ip:axi_interconnect:2.1"
CONCAT_VLNV = "xilinx.com:ip:xlconcat:2.1"


def run_script(tcl_text: str, out: Path) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """Run ``tcl_text`` as ``out/build.tcl`` under tclsh with the stand-ins; returns the
    process and the records (one list of fields each)."""
    script = out / "build.tcl"
    script.write_text(tcl_text)
    record = out / "record.tsv"
    runner = out / "runner.tcl"
    runner.write_text(f"source {{{STANDINS}}}\nsource {{{script}}}\n")
    result = subprocess.run(["tclsh", str(runner)], capture_output=True, text=True,
                            env={"TTACCEL_RECORD": str(record), "PATH": "/usr/bin:/bin"},
                            timeout=60)  # fmt: skip
    records = (
        [line.split("\t") for line in record.read_text().splitlines()] if record.exists() else []
    )
    return result, records


def _pin_ok(vlnv: str, props: dict, pin: str, kind: str, accel: dict) -> bool:
    if vlnv == IP_VLNV:
        return pin in (accel["pins"] if kind == "pin" else accel["intf"])
    if vlnv in XILINX_IPS:
        return pin in XILINX_IPS[vlnv]["pins" if kind == "pin" else "intf"]
    if vlnv == INTERCONNECT_VLNV:
        si, mi = int(props.get("CONFIG.NUM_SI", 1)), int(props.get("CONFIG.NUM_MI", 1))
        if pin in ("ACLK", "ARESETN"):
            return kind == "pin"
        match = re.fullmatch(r"([SM])(\d\d)_(AXI|ACLK|ARESETN)", pin)
        if not match:
            return False
        side, index, what = match[1], int(match[2]), match[3]
        return index < (si if side == "S" else mi) and (kind == "intf") == (what == "AXI")
    if vlnv == CONCAT_VLNV:
        match = re.fullmatch(r"In(\d+)", pin)
        ports = int(props.get("CONFIG.NUM_PORTS", 2))
        return kind == "pin" and (pin == "dout" or bool(match and int(match[1]) < ports))
    return False


def check_design(
    records: list[list[str]], *, accel_ports: list[str], clock_mhz: float
) -> list[str]:
    """Problems of the recorded block design (empty: it is what the board needs)."""
    problems: list[str] = []
    cells: dict[str, str] = {}
    props: dict[str, dict[str, str]] = defaultdict(dict)
    ipx: dict[str, str] = {}
    assoc, nets, intfs, addrs, steps, saved = [], [], [], [], [], []
    for rec in records:
        kind, fields = rec[0], rec[1:]
        if kind == "cell":
            cells[fields[0]] = fields[1]
        elif kind == "prop":
            props[fields[0].removeprefix("cell:")][fields[1]] = fields[2]
        elif kind == "ipx_prop":
            ipx[fields[1]] = fields[2]
        elif kind == "ipx_assoc":
            assoc.append(tuple(fields))
        elif kind == "ipx_save":
            saved.append(fields[0])
        elif kind == "net":
            nets.append(set(fields))
        elif kind == "intf":
            intfs.append(tuple(fields))
        elif kind == "addr":
            addrs.append((fields[0], fields[1], int(fields[2], 0), int(fields[3], 0)))
        elif kind == "step":
            steps.append(fields)

    def need(condition: bool, message: str) -> None:
        if not condition:
            problems.append(message)

    # -- the packaged IP
    need(saved == [IP_VLNV], f"packaged IP VLNV {saved}, expected [{IP_VLNV!r}]")
    block = {r[2]: r[3] for r in records if r[0] == "prop" and r[1].startswith("block:")}
    need(block.get("range") == str(ADDRESS_SPACE),
         f"s_axi address block range {block.get('range')}, expected {ADDRESS_SPACE}")  # fmt: skip
    for busif in ("s_axi", "s_axis", "m_axis"):
        need((busif, "aclk", "") in assoc, f"bus interface {busif} not associated with aclk")
    need(any(a[1:] == ("aclk", "aresetn") for a in assoc), "aresetn not associated with aclk")
    sensitivity = [r for r in records if r[0] == "prop" and r[1].endswith("/SENSITIVITY")]
    need(bool(sensitivity) and sensitivity[-1][3] == "LEVEL_HIGH", "interrupt not LEVEL_HIGH")
    accel = {"pins": set(accel_ports), "intf": {"s_axi", "s_axis", "m_axis"}}

    # -- cells
    need(cells.get("accel") == IP_VLNV, f"cell accel is {cells.get('accel')}, not {IP_VLNV}")
    need(cells.get("dma") == DMA_VLNV, f"cell dma is {cells.get('dma')}, not {DMA_VLNV}")
    ps7 = [c for c, v in cells.items() if v == PS7_VLNV]
    need(len(ps7) == 1, f"{len(ps7)} PS7 cells")
    ps7 = ps7[0] if ps7 else "ps7"

    # -- properties
    dma, p7 = props.get("dma", {}), props.get(ps7, {})
    want_dma = {"c_sg_length_width": "26", "c_include_sg": "0", "c_m_axi_mm2s_data_width": "64",
                "c_m_axis_mm2s_tdata_width": "64", "c_m_axi_s2mm_data_width": "64",
                "c_s_axis_s2mm_tdata_width": "64"}  # fmt: skip
    for name, value in want_dma.items():
        need(dma.get(f"CONFIG.{name}") == value,
             f"dma {name} = {dma.get(f'CONFIG.{name}')}, expected {value}")  # fmt: skip
    want_ps7 = {"PCW_USE_M_AXI_GP0": "1", "PCW_USE_S_AXI_HP0": "1",
                "PCW_S_AXI_HP0_DATA_WIDTH": "64", "PCW_USE_FABRIC_INTERRUPT": "1",
                "PCW_IRQ_F2P_INTR": "1",
                "PCW_FPGA0_PERIPHERAL_FREQMHZ": f"{clock_mhz:g}"}  # fmt: skip
    for name, value in want_ps7.items():
        need(p7.get(f"CONFIG.{name}") == value,
             f"ps7 {name} = {p7.get(f'CONFIG.{name}')}, expected {value}")  # fmt: skip

    # -- every named pin exists on its cell
    def known(path: str, kind: str) -> bool:
        cell, _, pin = path.partition("/")
        return cell in cells and _pin_ok(cells[cell], props.get(cell, {}), pin, kind, accel)

    for net in nets:
        for pin in net:
            need(known(pin, "pin"), f"net pin {pin} does not exist")
    for pair in intfs:
        for pin in pair:
            need(known(pin, "intf"), f"interface {pin} does not exist")
    seen = [p for pair in intfs for p in pair]
    need(len(seen) == len(set(seen)), "an interface is connected twice")

    # Nets: merge the connect_bd_net calls that share a pin.
    merged: list[set[str]] = []
    for net in nets:
        overlapping = [m for m in merged if m & net]
        union = set(net).union(*overlapping)
        merged = [m for m in merged if not m & net] + [union]

    def net_of(pin: str) -> set[str]:
        return next((m for m in merged if pin in m), set())

    clock = net_of(f"{ps7}/FCLK_CLK0")
    reset_sources = {f"{ps7}/FCLK_RESET0_N"} | {
        f"{cell}/{pin}"
        for cell, vlnv in cells.items()
        if vlnv == "xilinx.com:ip:proc_sys_reset:5.0"
        for pin in ("interconnect_aresetn", "peripheral_aresetn")
    }
    for cell, vlnv in cells.items():
        pins = dict(XILINX_IPS.get(vlnv, {}).get("pins", {}))
        if vlnv == IP_VLNV:
            pins = {"aclk": "clk", "aresetn": "rst"}
        if vlnv == INTERCONNECT_VLNV:
            si, mi = (int(props[cell].get(f"CONFIG.NUM_{s}", 1)) for s in ("SI", "MI"))
            pins = {"ACLK": "clk", "ARESETN": "rst"}
            for side, count in (("S", si), ("M", mi)):
                for i in range(count):
                    pins |= {f"{side}{i:02d}_ACLK": "clk", f"{side}{i:02d}_ARESETN": "rst"}
        for pin, role in pins.items():
            path = f"{cell}/{pin}"
            if role == "clk":
                need(path in clock, f"clock pin {path} is not on {ps7}/FCLK_CLK0")
            if role == "rst":
                need(
                    bool(net_of(path) & reset_sources), f"reset pin {path} is not driven by a reset"
                )

    # AXI reachability: interface pairs, plus S -> M inside each interconnect.
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in intfs:
        graph[a].add(b)
        graph[b].add(a)
    for cell, vlnv in cells.items():
        if vlnv == INTERCONNECT_VLNV:
            ports = [p for p in graph if p.startswith(f"{cell}/")]
            for a in ports:
                graph[a] |= {b for b in ports if b != a}

    def reaches(a: str, b: str) -> bool:
        todo, done = [a], {a}
        while todo:
            for nxt in graph[todo.pop()] - done:
                done.add(nxt)
                todo.append(nxt)
        return b in done

    for target in ("accel/s_axi", "dma/S_AXI_LITE"):
        need(reaches(f"{ps7}/M_AXI_GP0", target), f"{target} is not reachable from GP0")
    for master in ("dma/M_AXI_MM2S", "dma/M_AXI_S2MM"):
        need(reaches(master, f"{ps7}/S_AXI_HP0"), f"{master} does not reach HP0")
    need(("dma/M_AXIS_MM2S", "accel/s_axis") in intfs, "MM2S stream does not feed accel/s_axis")
    need(("accel/m_axis", "dma/S_AXIS_S2MM") in intfs, "accel/m_axis does not feed S2MM")

    # Interrupts: the three sources reach IRQ_F2P through a concat and the controller.
    irq_f2p = net_of(f"{ps7}/IRQ_F2P")
    intc = [p.split("/")[0] for p in irq_f2p if p.endswith("/irq")]
    need(bool(intc), "IRQ_F2P is not driven by an axi_intc")
    for source in ("accel/interrupt", "dma/mm2s_introut", "dma/s2mm_introut"):
        ins = [p for p in net_of(source) if re.search(r"/In\d+$", p)]
        concat = ins[0].split("/")[0] if ins else None
        need(bool(ins), f"interrupt {source} goes to no concat input")
        if concat and intc:
            need(f"{intc[0]}/intr" in net_of(f"{concat}/dout"),
                 f"{concat}/dout does not drive {intc[0]}/intr")  # fmt: skip

    # -- address map
    ctrl = [(seg, off, rng) for space, seg, off, rng in addrs if space == f"{ps7}/Data"]
    accel_seg = [(off, rng) for seg, off, rng in ctrl if seg.startswith("accel/s_axi/")]
    need(len(accel_seg) == 1, f"accel mapped {len(accel_seg)} times in {ps7}/Data")
    for seg, off, rng in ctrl:
        need(rng >= 0x1000 and rng & (rng - 1) == 0 and off % rng == 0,
             f"{seg}: range {rng:#x} at {off:#x}: not aligned, or < 4 KiB")  # fmt: skip
        need(off >= 0x4000_0000 and off + rng <= 0x8000_0000, f"{seg} at {off:#x} is outside GP0")
    if accel_seg:
        need(accel_seg[0][1] >= ADDRESS_SPACE, "accel segment smaller than ADDRESS_SPACE")
    spans = sorted((off, off + rng, seg) for seg, off, rng in ctrl)
    for (_, a1, sa), (b0, _, sb) in itertools.pairwise(spans):
        need(a1 <= b0, f"{sa} overlaps {sb}")
    for space in ("dma/Data_MM2S", "dma/Data_S2MM"):
        ddr = [(off, rng) for sp, seg, off, rng in addrs if sp == space and "HP0_DDR" in seg]
        need(ddr == [(0, 0x2000_0000)], f"{space} maps {ddr}, expected the 512 MiB DDR via HP0")

    # -- the flow runs to the bitstream
    names = [s[0] for s in steps]
    need("validate_bd_design" in names, "the block design is not validated")
    need(["launch_runs", "impl_1", "write_bitstream"] in steps, "no write_bitstream run")
    return problems


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    out = tmp_path_factory.mktemp("vivado")
    paths = generate(SMALL, out / "rtl")
    files = write_vivado_project(paths["verilog"], out / "vivado", module=MODULE_NAME,
                                 clock_mhz=CLOCK_MHZ)  # fmt: skip
    text = paths["verilog"].read_text()
    header = text[text.index(f"module {MODULE_NAME}(") : text.index(");")]
    ports = re.findall(r"\b(\w+)\b", header)[2:]
    return files, ports


pytestmark = pytest.mark.skipif(shutil.which("tclsh") is None, reason="needs tclsh (Debian tcl)")


def test_script_builds_the_block_design_the_board_needs(project, tmp_path):
    files, ports = project
    shutil.copy(files["verilog"], tmp_path)
    result, records = run_script(files["tcl"].read_text(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert check_design(records, accel_ports=ports, clock_mhz=CLOCK_MHZ) == []
    # The overlay pair, with one base name, next to the script.
    assert (tmp_path / "ttaccel.bit").is_file() and (tmp_path / "ttaccel.hwh").is_file()
    assert ["project", "ttaccel", str(tmp_path / "vivado_project"), board_part_name()] in records
    assert board_part_name() == "xc7z020clg400-1"
    assert "Vivado 2022.2" in files["tcl"].read_text().splitlines()[1]


MUTANTS = [
    # (what is broken, text replaced, replacement, a problem or Tcl error that must appear)
    ("DMA length register left at 14 bits", "c_sg_length_width {26}", "c_sg_length_width {14}",
     "c_sg_length_width = 14"),
    ("HP0 at 32 bits", "PCW_S_AXI_HP0_DATA_WIDTH {64}", "PCW_S_AXI_HP0_DATA_WIDTH {32}",
     "PCW_S_AXI_HP0_DATA_WIDTH = 32"),
    ("output stream not connected",
     "connect_bd_intf_net [get_bd_intf_pins accel/m_axis] [get_bd_intf_pins dma/S_AXIS_S2MM]\n",
     "", "accel/m_axis does not feed S2MM"),
    ("IP packaged with another version", "set_property version 0.2", "set_property version 0.1",
     "no IP ttaccel:ttaccel:ttaccel_top:0.2 in the catalog"),
    ("register window of the IP too large", "set_property range 256", "set_property range 4096",
     "address block range 4096"),
    ("interconnect with one master port too few", "CONFIG.NUM_MI {3}", "CONFIG.NUM_MI {2}",
     "ctrl_xbar/M02_AXI does not exist"),
    ("a misspelt DMA interrupt pin", "dma/s2mm_introut]", "dma/s2mm_intout]",
     "dma/s2mm_intout does not exist"),
    ("accelerator clock left floating", "[get_bd_pins accel/aclk] ", "",
     "clock pin accel/aclk is not on ps7/FCLK_CLK0"),
    ("accelerator reset left floating", "[get_bd_pins accel/aresetn]", "",
     "reset pin accel/aresetn is not driven by a reset"),
    ("accelerator mapped over the DMA", "-offset 0x43c00000", "-offset 0x40400000",
     "overlaps"),
    ("no bitstream", "launch_runs impl_1 -to_step write_bitstream -jobs 4",
     "launch_runs impl_1 -to_step route_design -jobs 4", "no files matched glob pattern"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "old", "new", "symptom"), MUTANTS, ids=[m[0] for m in MUTANTS])
def test_broken_scripts_fail(project, tmp_path, what, old, new, symptom):
    files, ports = project
    shutil.copy(files["verilog"], tmp_path)
    text = files["tcl"].read_text()
    assert old in text, f"mutant {what!r}: {old!r} is not in the script"
    result, records = run_script(text.replace(old, new), tmp_path)
    if result.returncode != 0:
        assert symptom in result.stderr, result.stderr
        return
    problems = check_design(records, accel_ports=ports, clock_mhz=CLOCK_MHZ)
    assert any(symptom in p for p in problems), f"{what}: not caught; problems {problems}"


def test_stand_ins_refuse_a_verilog_without_the_bus_ports(project, tmp_path):
    """The packaging step infers ``s_axi`` only from ``s_axi_*`` ports: a renamed port set
    fails the script (so the check above rests on the real Verilog's port names)."""
    files, _ = project
    text = files["verilog"].read_text().replace("s_axi_", "ctl_")
    (tmp_path / files["verilog"].name).write_text(text)
    result, _ = run_script(files["tcl"].read_text(), tmp_path)
    assert result.returncode != 0
    assert "did not infer the bus interface s_axi" in result.stderr


def test_script_arguments_are_checked():
    with pytest.raises(ValueError, match="Clock must be in"):
        block_design_tcl(module=MODULE_NAME, verilog_file="x.v", clock_mhz=400, part="p")
    with pytest.raises(ValueError, match="must name the module"):
        block_design_tcl(module="other", verilog_file="x.v", clock_mhz=100, part="p")
