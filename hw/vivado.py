"""Vivado 2022.2 script for a PYNQ-Z2 overlay around the generated top level.

A PYNQ overlay is a bitstream (``.bit``) plus the block design's hardware handoff (``.hwh``)
with the same base name. :func:`write_vivado_project` writes ``build.tcl`` next to a copy of
the top's Verilog; ``vivado -mode batch -source build.tcl`` where Vivado is installed:

1. checks the Vivado version (written for **2022.2**, the release PYNQ 3.0's images pair with;
   another version only warns);
2. packages the top level as an IP with the stable VLNV :data:`~ttaccel.spec.regmap.IP_VLNV`
   (what the board driver binds to): bus interfaces ``s_axi`` (AXI4-Lite, one address block
   ``reg0`` of :data:`~ttaccel.spec.regmap.ADDRESS_SPACE` bytes), ``s_axis`` / ``m_axis``
   (AXI4-Stream), clock ``aclk`` associated with all three, reset ``aresetn``, interrupt
   ``interrupt`` (level high);
3. creates a project for ``xc7z020clg400-1`` (the TUL PYNQ-Z2 board preset when its board
   files are installed) and a block design, every connection explicit:

   ========  =================================================================================
   instance  what
   ========  =================================================================================
   ps7       Zynq PS7: ``FCLK_CLK0`` at the configuration's clock, ``M_AXI_GP0`` (control),
             64-bit ``S_AXI_HP0`` (data), fabric interrupt ``IRQ_F2P``
   rst_ps7   proc_sys_reset on ``FCLK_CLK0`` / ``FCLK_RESET0_N``
   accel     the accelerator IP (:data:`~ttaccel.spec.regmap.IP_VLNV`)
   dma       AXI DMA 7.1, simple mode, 64-bit MM2S/S2MM, ``c_sg_length_width`` 26 (64 MiB per
             transfer; the default 14 bits caps one at 16 KiB)
   ctrl_xbar AXI interconnect GP0 -> accel, dma, intc
   mem_xbar  AXI interconnect dma MM2S, S2MM -> HP0
   intc      axi_intc 4.1 (PYNQ expects its interrupts through one controller on IRQ_F2P)
   irqs      xlconcat: accel ``interrupt``, dma ``mm2s_introut``, ``s2mm_introut``
   ========  =================================================================================

   with the fixed address map :data:`ADDRESS_MAP`;
4. validates, makes the wrapper, runs synthesis and implementation to ``write_bitstream``,
   writes ``utilization.rpt`` and ``timing.rpt``, and copies ``ttaccel.bit`` and
   ``ttaccel.hwh`` next to the script (fails if timing is not met).

No XDC is needed: the design has no PL pins and the PS7 constrains ``FCLK_CLK0``. Nothing here
runs Vivado (not installed on the development machines): ``tests/hw/test_vivado.py`` runs the
script in a real Tcl interpreter against recording stand-ins of the Vivado commands and checks
the cells, properties, connections and addresses it creates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..spec.regmap import ADDRESS_SPACE, IP_VLNV

__all__ = [
    "ADDRESS_MAP",
    "BOARD_PART",
    "DMA_LENGTH_BITS",
    "INSTANCES",
    "OVERLAY_NAME",
    "VIVADO_VERSION",
    "AddressSegment",
    "block_design_tcl",
    "board_part_name",
    "write_vivado_project",
]

OVERLAY_NAME = "ttaccel"
"""Base name of the block design, bitstream and hardware handoff (PYNQ's ``Overlay`` name)."""
BOARD_PART = "tul.com.tw:pynq-z2:part0:1.0"
"""The PYNQ-Z2 board part (TUL's board files), applied when installed."""
VIVADO_VERSION = "2022.2"
"""The Vivado release the script is written for (PYNQ 3.0's images pair with it)."""
DMA_LENGTH_BITS = 26
"""The AXI DMA's buffer-length register width: one transfer up to ``2**26 - 1`` bytes."""
INSTANCES = {
    "ps7": "xilinx.com:ip:processing_system7:5.5",
    "rst_ps7": "xilinx.com:ip:proc_sys_reset:5.0",
    "accel": IP_VLNV,
    "dma": "xilinx.com:ip:axi_dma:7.1",
    "ctrl_xbar": "xilinx.com:ip:axi_interconnect:2.1",
    "mem_xbar": "xilinx.com:ip:axi_interconnect:2.1",
    "intc": "xilinx.com:ip:axi_intc:4.1",
    "irqs": "xilinx.com:ip:xlconcat:2.1",
}
"""Block-design instance name -> VLNV. The names are stable: PYNQ's ``ip_dict`` keys and the
board driver (``host/pynq_board.py``) find ``accel`` and ``dma`` by them."""


@dataclass(frozen=True)
class AddressSegment:
    """One mapping of the block design: ``segment`` of a subordinate seen from a manager's
    ``space`` at ``offset`` with ``range`` bytes."""

    space: str
    segment: str
    offset: int
    range: int


_BD_MIN_RANGE = 0x1000
"""IP integrator's smallest address segment (4 KiB); the accelerator decodes only the low
``ADDRESS_SPACE`` bytes of it (unmapped offsets read 0, see spec/regmap.py)."""
ADDRESS_MAP = (
    AddressSegment("ps7/Data", "accel/s_axi/reg0", 0x43C0_0000, max(_BD_MIN_RANGE, ADDRESS_SPACE)),
    AddressSegment("ps7/Data", "dma/S_AXI_LITE/Reg", 0x4040_0000, 0x1_0000),
    AddressSegment("ps7/Data", "intc/S_AXI/Reg", 0x4180_0000, 0x1_0000),
    AddressSegment("dma/Data_MM2S", "ps7/S_AXI_HP0/HP0_DDR_LOWOCM", 0, 0x2000_0000),
    AddressSegment("dma/Data_S2MM", "ps7/S_AXI_HP0/HP0_DDR_LOWOCM", 0, 0x2000_0000),
)
"""The fixed address map (the PYNQ-Z2's 512 MiB DDR for the DMA; PYNQ's usual bases)."""


def board_part_name() -> str:
    """The PYNQ-Z2's FPGA part, ``xc7z020clg400-1``: amaranth-boards' ``ArtyZ720Platform``
    is the same part (there is no PYNQ-Z2 board file there)."""
    from amaranth_boards.arty_z7 import ArtyZ720Platform

    platform = ArtyZ720Platform
    return f"{platform.device}{platform.package}-{platform.speed}"


def _vlnv_parts(vlnv: str) -> tuple[str, str, str, str]:
    parts = vlnv.split(":")
    if len(parts) != 4 or not all(parts):
        raise ValueError(f"IP VLNV must be vendor:library:name:version, not {vlnv!r}")
    return parts[0], parts[1], parts[2], parts[3]


def _pins(cell: str, names: str) -> str:
    return " ".join(f"[get_bd_pins {cell}/{name}]" for name in names.split())


def block_design_tcl(
    *, module: str, verilog_file: str, clock_mhz: float, part: str, ip_vlnv: str = IP_VLNV
) -> str:
    """The text of ``build.tcl`` (see the module docstring): ``module`` in ``verilog_file``
    (next to the script) packaged as ``ip_vlnv``, ``FCLK_CLK0`` at ``clock_mhz`` MHz (10 to
    250), for FPGA ``part``."""
    if not module.isidentifier():
        raise ValueError(f"Module must be a Verilog identifier, not {module!r}")
    if isinstance(clock_mhz, bool) or not isinstance(clock_mhz, int | float):
        raise ValueError(f"Clock must be a number of MHz, not {clock_mhz!r}")
    if not 10 <= clock_mhz <= 250:
        raise ValueError(f"Clock must be in [10, 250] MHz for FCLK_CLK0, not {clock_mhz!r}")
    vendor, library, ip_name, version = _vlnv_parts(ip_vlnv)
    if ip_name != module:
        raise ValueError(f"IP VLNV {ip_vlnv!r} must name the module {module!r}")
    name = OVERLAY_NAME
    clocked = {
        "ps7": "M_AXI_GP0_ACLK S_AXI_HP0_ACLK",
        "rst_ps7": "slowest_sync_clk",
        "accel": "aclk",
        "dma": "s_axi_lite_aclk m_axi_mm2s_aclk m_axi_s2mm_aclk",
        "intc": "s_axi_aclk",
        "ctrl_xbar": "ACLK S00_ACLK M00_ACLK M01_ACLK M02_ACLK",
        "mem_xbar": "ACLK S00_ACLK S01_ACLK M00_ACLK",
    }
    peripheral_resets = {
        "accel": "aresetn",
        "dma": "axi_resetn",
        "intc": "s_axi_aresetn",
        "ctrl_xbar": "S00_ARESETN M00_ARESETN M01_ARESETN M02_ARESETN",
        "mem_xbar": "S00_ARESETN S01_ARESETN M00_ARESETN",
    }
    clock_pins = " \\\n    ".join(_pins(c, p) for c, p in clocked.items())
    reset_pins = " \\\n    ".join(_pins(c, p) for c, p in peripheral_resets.items())
    cells = "\n".join(
        f"create_bd_cell -type ip -vlnv {vlnv} {cell}" for cell, vlnv in INSTANCES.items()
    )
    addresses = "\n".join(
        f"assign_bd_address -offset {seg.offset:#010x} -range {seg.range:#010x} "
        f"-target_address_space [get_bd_addr_spaces {seg.space}] "
        f"[get_bd_addr_segs {seg.segment}] -force"
        for seg in ADDRESS_MAP
    )
    return f"""\
# Generated by ttaccel.hw.vivado: PYNQ-Z2 overlay ({part}) around {module}.
# Written for Vivado {VIVADO_VERSION} (the release PYNQ 3.0's images pair with).
# Run where Vivado is installed:  vivado -mode batch -source build.tcl
# Produces {name}.bit and {name}.hwh next to this script (a PYNQ overlay).
set here [file dirname [file normalize [info script]]]
set proj_dir $here/vivado_project
set ip_dir $here/ip
if {{[version -short] ne "{VIVADO_VERSION}"}} {{
    puts "WARNING: written for Vivado {VIVADO_VERSION}, running [version -short]"
}}

# -- 1. The accelerator as an IP with the stable VLNV {ip_vlnv}.
create_project {name}_ip $here/ip_project -part {part} -force
add_files -norecurse $here/{verilog_file}
set_property top {module} [current_fileset]
update_compile_order -fileset sources_1
ipx::package_project -root_dir $ip_dir -vendor {vendor} -library {library} \\
    -taxonomy /UserIP -import_files -force
set core [ipx::current_core]
set_property name {ip_name} $core
set_property version {version} $core
set_property display_name {{ttaccel TT-contraction engine}} $core
set_property description {{AXI4-Lite registers, 64-bit AXI4-Stream in and out}} $core
foreach busif {{s_axi s_axis m_axis}} {{
    if {{[llength [ipx::get_bus_interfaces $busif -of_objects $core]] == 0}} {{
        error "IP packaging did not infer the bus interface $busif"
    }}
}}
ipx::associate_bus_interfaces -busif s_axi -clock aclk $core
ipx::associate_bus_interfaces -busif s_axis -clock aclk $core
ipx::associate_bus_interfaces -busif m_axis -clock aclk $core
ipx::associate_bus_interfaces -clock aclk -reset aresetn $core
set irq [ipx::get_bus_interfaces interrupt -of_objects $core]
if {{[llength $irq] == 0}} {{
    set irq [ipx::add_bus_interface interrupt $core]
    set_property abstraction_type_vlnv xilinx.com:signal:interrupt_rtl:1.0 $irq
    set_property bus_type_vlnv xilinx.com:signal:interrupt:1.0 $irq
    set_property interface_mode master $irq
    set map [ipx::add_port_map INTERRUPT $irq]
    set_property physical_name interrupt $map
}}
set sensitivity [ipx::get_bus_parameters SENSITIVITY -of_objects $irq]
if {{[llength $sensitivity] == 0}} {{
    set sensitivity [ipx::add_bus_parameter SENSITIVITY $irq]
}}
set_property value LEVEL_HIGH $sensitivity
set memory_map [ipx::get_memory_maps s_axi -of_objects $core]
if {{[llength $memory_map] == 0}} {{
    set memory_map [ipx::add_memory_map s_axi $core]
    set_property slave_memory_map_ref s_axi [ipx::get_bus_interfaces s_axi -of_objects $core]
}}
set block [ipx::get_address_blocks reg0 -of_objects $memory_map]
if {{[llength $block] == 0}} {{
    set block [ipx::add_address_block reg0 $memory_map]
}}
set_property base_address 0 $block
set_property range {ADDRESS_SPACE} $block
set_property width 32 $block
set_property usage register $block
ipx::create_xgui_files $core
ipx::update_checksums $core
ipx::check_integrity $core
ipx::save_core $core
close_project

# -- 2. The overlay project and its block design.
create_project {name} $proj_dir -part {part} -force
if {{[llength [get_board_parts -quiet {BOARD_PART}]]}} {{
    set_property board_part {BOARD_PART} [current_project]
    set board_preset 1
}} else {{
    puts "WARNING: PYNQ-Z2 board files not installed; the PS7 keeps the part defaults"
    set board_preset 0
}}
set_property ip_repo_paths $ip_dir [current_project]
update_ip_catalog -rebuild
create_bd_design {name}

{cells}
apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \\
    -config [list make_external "FIXED_IO, DDR" apply_board_preset $board_preset \\
             Master Disable Slave Disable] [get_bd_cells ps7]

# -- Properties: PS7 ports and clock, DMA widths, interconnect ports, interrupts.
set_property -dict [list \\
    CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ {{{clock_mhz:g}}} \\
    CONFIG.PCW_USE_M_AXI_GP0 {{1}} \\
    CONFIG.PCW_USE_S_AXI_HP0 {{1}} \\
    CONFIG.PCW_S_AXI_HP0_DATA_WIDTH {{64}} \\
    CONFIG.PCW_USE_FABRIC_INTERRUPT {{1}} \\
    CONFIG.PCW_IRQ_F2P_INTR {{1}} \\
] [get_bd_cells ps7]
set_property -dict [list \\
    CONFIG.c_include_sg {{0}} \\
    CONFIG.c_sg_length_width {{{DMA_LENGTH_BITS}}} \\
    CONFIG.c_m_axi_mm2s_data_width {{64}} \\
    CONFIG.c_m_axis_mm2s_tdata_width {{64}} \\
    CONFIG.c_m_axi_s2mm_data_width {{64}} \\
    CONFIG.c_s_axis_s2mm_tdata_width {{64}} \\
    CONFIG.c_mm2s_burst_size {{16}} \\
    CONFIG.c_s2mm_burst_size {{16}} \\
] [get_bd_cells dma]
set_property -dict [list CONFIG.NUM_SI {{1}} CONFIG.NUM_MI {{3}}] [get_bd_cells ctrl_xbar]
set_property -dict [list CONFIG.NUM_SI {{2}} CONFIG.NUM_MI {{1}}] [get_bd_cells mem_xbar]
set_property -dict [list CONFIG.C_IRQ_CONNECTION {{1}} CONFIG.C_IRQ_IS_LEVEL {{1}}] \\
    [get_bd_cells intc]
set_property CONFIG.NUM_PORTS {{3}} [get_bd_cells irqs]

# -- Clock: FCLK_CLK0 everywhere. Resets: FCLK_RESET0_N through rst_ps7.
connect_bd_net [get_bd_pins ps7/FCLK_CLK0] \\
    {clock_pins}
connect_bd_net [get_bd_pins ps7/FCLK_RESET0_N] [get_bd_pins rst_ps7/ext_reset_in]
connect_bd_net [get_bd_pins rst_ps7/interconnect_aresetn] \\
    [get_bd_pins ctrl_xbar/ARESETN] [get_bd_pins mem_xbar/ARESETN]
connect_bd_net [get_bd_pins rst_ps7/peripheral_aresetn] \\
    {reset_pins}

# -- AXI: control from GP0, the DMA's masters to HP0, the streams through the accelerator.
connect_bd_intf_net [get_bd_intf_pins ps7/M_AXI_GP0] [get_bd_intf_pins ctrl_xbar/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins ctrl_xbar/M00_AXI] [get_bd_intf_pins accel/s_axi]
connect_bd_intf_net [get_bd_intf_pins ctrl_xbar/M01_AXI] [get_bd_intf_pins dma/S_AXI_LITE]
connect_bd_intf_net [get_bd_intf_pins ctrl_xbar/M02_AXI] [get_bd_intf_pins intc/s_axi]
connect_bd_intf_net [get_bd_intf_pins dma/M_AXI_MM2S] [get_bd_intf_pins mem_xbar/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins dma/M_AXI_S2MM] [get_bd_intf_pins mem_xbar/S01_AXI]
connect_bd_intf_net [get_bd_intf_pins mem_xbar/M00_AXI] [get_bd_intf_pins ps7/S_AXI_HP0]
connect_bd_intf_net [get_bd_intf_pins dma/M_AXIS_MM2S] [get_bd_intf_pins accel/s_axis]
connect_bd_intf_net [get_bd_intf_pins accel/m_axis] [get_bd_intf_pins dma/S_AXIS_S2MM]

# -- Interrupts: accelerator, MM2S and S2MM done through one axi_intc to IRQ_F2P.
connect_bd_net [get_bd_pins accel/interrupt] [get_bd_pins irqs/In0]
connect_bd_net [get_bd_pins dma/mm2s_introut] [get_bd_pins irqs/In1]
connect_bd_net [get_bd_pins dma/s2mm_introut] [get_bd_pins irqs/In2]
connect_bd_net [get_bd_pins irqs/dout] [get_bd_pins intc/intr]
connect_bd_net [get_bd_pins intc/irq] [get_bd_pins ps7/IRQ_F2P]

# -- Address map (spec/regmap.py: the accelerator decodes ADDRESS_SPACE = {ADDRESS_SPACE:#x} bytes).
{addresses}
validate_bd_design
save_bd_design

# -- 3. Wrapper, implementation, bitstream, reports.
set bd_file [get_files {name}.bd]
generate_target all $bd_file
make_wrapper -files $bd_file -top -import
set_property top {name}_wrapper [current_fileset]
update_compile_order -fileset sources_1
launch_runs impl_1 -to_step write_bitstream -jobs 4
wait_on_run impl_1
if {{[get_property PROGRESS [get_runs impl_1]] != "100%"}} {{
    error "implementation failed; see $proj_dir/{name}.runs/impl_1"
}}
open_run impl_1
report_utilization -file $here/utilization.rpt
report_timing_summary -file $here/timing.rpt
if {{[get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -setup]] < 0}} {{
    error "timing not met at {clock_mhz:g} MHz; see $here/timing.rpt"
}}

# -- 4. The overlay: bitstream and hardware handoff with one base name.
file copy -force [lindex [glob $proj_dir/{name}.runs/impl_1/*.bit] 0] $here/{name}.bit
set hwh [glob -nocomplain $proj_dir/{name}.gen/sources_1/bd/{name}/hw_handoff/{name}.hwh \\
    $proj_dir/{name}.srcs/sources_1/bd/{name}/hw_handoff/{name}.hwh]
if {{[llength $hwh] == 0}} {{ error "no hardware handoff (.hwh) found" }}
file copy -force [lindex $hwh 0] $here/{name}.hwh
puts "overlay: $here/{name}.bit $here/{name}.hwh"
"""


def write_vivado_project(
    verilog_path: Path, out_dir: Path, *, module: str, clock_mhz: float
) -> dict[str, Path]:
    """Copy the top's Verilog into ``out_dir`` and write ``build.tcl`` next to it (for
    ``xc7z020clg400-1``, ``FCLK_CLK0`` at ``clock_mhz``); returns ``{"verilog", "tcl"}``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    verilog_copy = out_dir / Path(verilog_path).name
    if Path(verilog_path).resolve() != verilog_copy.resolve():
        verilog_copy.write_text(Path(verilog_path).read_text())
    script = out_dir / "build.tcl"
    script.write_text(block_design_tcl(module=module, verilog_file=verilog_copy.name,
                                       clock_mhz=clock_mhz, part=board_part_name()))  # fmt: skip
    return {"verilog": verilog_copy, "tcl": script}
