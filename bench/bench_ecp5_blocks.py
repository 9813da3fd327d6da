"""Where the engine's ECP5 proxy Fmax goes: each block of the engine placed and routed alone.

The whole top's routed figure (docs/hardware.md) names one worst path per route; this routes
each block of the same configuration alone on an LFE5U-85F, behind virtual pins
(``hw/virtual_pins.py``: every port on a flip-flop, the block's ``sync`` domain and reset
from the wrapper), so that a block that misses the 150 MHz target by itself is told apart
from one that misses it only beside the others. Elaborated as the proxy build is
(``ECP5_PROXY``: the packed PEs' multiplies in MULT18X18D with their own registers).

Blocks, smallest first: the requantizer, the output beat packer, the systolic array (as the
execute engine instantiates it: transposed, ``max_k`` accumulators), the load engine, the
dispatcher, the execute engine (array, requantizer, packer, operand and tile queues), and the
engine (the execute and load engines, the dispatcher, the buffers). For each: the routed
Fmax, the worst path's start and end cells and its logic and routing delays. A few minutes
per block on this machine (the engine: about 10).

    python bench/bench_ecp5_blocks.py [--config CFG.json] [--only NAME ...] [--out DIR]
        [--no-write]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_doc import write_section

from ttaccel.generate import load_config
from ttaccel.hw.dispatch import Dispatcher
from ttaccel.hw.engine import Engine
from ttaccel.hw.execute import ExecuteEngine
from ttaccel.hw.gearbox import BeatPacker
from ttaccel.hw.load_engine import LoadEngine
from ttaccel.hw.requant import Requantizer
from ttaccel.hw.synth import ecp5_proxy_fmax
from ttaccel.hw.systolic import SystolicArray
from ttaccel.hw.transposed import transposed_provider
from ttaccel.hw.virtual_pins import VirtualPins

TARGET_MHZ = 150.0


def blocks(config) -> dict[str, object]:
    """Name -> a function building that block of ``config`` (fresh on each call)."""

    provider = transposed_provider(config.weight_format, packed=config.dsp_packing,
                                   tokens=config.rows)  # fmt: skip

    def array():
        return SystolicArray(rows=config.cols, cols=config.rows, macp=provider,
                             k_max=config.max_k)  # fmt: skip

    def requant():
        return Requantizer(lanes=config.rows, acc_bits=provider.accumulator_bits(config.max_k))

    return {
        "requantizer": requant,
        "packer": lambda: BeatPacker(lanes=config.rows),
        "array": array,
        "load": lambda: LoadEngine(config=config),
        "dispatcher": lambda: Dispatcher(config=config),
        "execute": lambda: ExecuteEngine(config=config),
        "engine": lambda: Engine(config=config),
    }


def _short(cell: str) -> str:
    """A placed cell's name without yosys's and nextpnr's mapping suffixes."""
    for marker in ("_TRELLIS", "_LUT4", "_CCU2C", "_PFUMX", "_L6MUX", "$"):
        if marker in cell:
            cell = cell[: cell.index(marker)]
    return cell.removeprefix("inner.")


def worst_path(report: dict) -> dict[str, object]:
    """The first critical path of a nextpnr ``--report`` JSON: its start and end cells and
    its logic and routing delays in ns."""
    path = report["critical_paths"][0]["path"]
    routing = sum(step["delay"] for step in path if step["type"] == "routing")
    total = sum(step["delay"] for step in path)
    return {
        "from": _short(path[0]["from"]["cell"]),
        "to": _short(path[-1]["to"]["cell"]),
        "logic_ns": round(total - routing, 2),
        "routing_ns": round(routing, 2),
    }


def route(name: str, build, out_dir: Path) -> dict[str, object]:
    """Place and route block ``name`` behind virtual pins under ``out_dir / name``."""
    started = time.monotonic()
    fmax = ecp5_proxy_fmax(VirtualPins(build(), clock=None), "bench_top", out_dir / name)
    report = json.loads((out_dir / name / "nextpnr_report.json").read_text())
    return {"block": name, "fmax_mhz": round(fmax, 2), **worst_path(report),
            "minutes": round((time.monotonic() - started) / 60, 1)}  # fmt: skip


def to_markdown(rows: list[dict], config, command: str) -> str:
    lines = [
        "## The engine's blocks alone on the ECP5 proxy (issue 9)",
        "",
        f"Configuration {config.summary()}. Each block placed and routed alone on an "
        "LFE5U-85F behind virtual pins (yosys `synth_ecp5` + nextpnr-ecp5, "
        "`hw/synth.py`'s proxy flow, the ECP5 proxy build of `hw/dsp.py`): the routed Fmax "
        "of its clock and its worst path. ECP5 proxy figures, not Zynq ones; a block alone "
        "gets the best placement it can, so these are ceilings for the whole top. "
        f"Command: `{command}`.",
        "",
        f"| block | ECP5 proxy Fmax (alone) | {TARGET_MHZ:.0f} MHz | worst path | "
        "logic / routing | route time |",
        "|---|---:|---|---|---:|---:|",
    ]
    for row in rows:
        met = "met" if row["fmax_mhz"] >= TARGET_MHZ else "missed"
        lines.append(
            f"| {row['block']} | {row['fmax_mhz']:.2f} MHz | {met} | `{row['from']}` -> "
            f"`{row['to']}` | {row['logic_ns']:.2f} / {row['routing_ns']:.2f} ns | "
            f"{row['minutes']:.1f} min |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None,
                        help="AccelConfig JSON (default: the default configuration)")  # fmt: skip
    parser.add_argument("--only", nargs="+", default=None, help="route these blocks only")
    parser.add_argument("--out", type=Path, default=Path("build/bench-ecp5-blocks"))
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args()
    config = load_config(args.config)
    builders = blocks(config)
    names = args.only or list(builders)
    unknown = sorted(set(names) - set(builders))
    if unknown:
        parser.error(f"unknown block(s) {', '.join(unknown)}; choose from {', '.join(builders)}")
    rows = []
    for name in names:
        row = route(name, builders[name], args.out)
        print(json.dumps(row), flush=True)
        rows.append(row)
    (args.out / "blocks.json").write_text(json.dumps(rows, indent=1))
    command = "python bench/bench_ecp5_blocks.py" + (
        f" --config {args.config}" if args.config else ""
    )
    table = to_markdown(rows, config, command)
    print(table)
    if not args.no_write and args.only is None:
        write_section("ecp5-blocks", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
