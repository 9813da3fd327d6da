"""Cycles of seed 000's TT layers on the generated engine, measured in RTL simulation.

Runs ``python -m ttaccel.sim.measure_engine`` (Verilator + cocotb, the default 12 x 32 int8
:class:`~ttaccel.spec.accel_config.AccelConfig` or ``--config 16x16``, the square
``SQUARE_16X16``; every output beat is checked bit-exactly
against the reference executor) for seed 000's attention (768 x 768) and FFN (768 x 3072) TT
layers at 128 tokens with their cores resident, and for the same layers as dense int8 GEMMs on
the same array (weights streamed, as they do not fit on chip). Writes cycles, utilization
(useful MACs / (cycles x MAC lanes)), the analytic cycle model's prediction and the dense / TT
ratio to docs/results.md (section ``engine-cycles``, or ``engine-cycles-16x16``). A build takes
10-20 minutes.

    python bench/bench_engine_cycles.py [--tokens 128] [--config default|16x16] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_doc import write_section

from ttaccel.spec.accel_config import NAMED_CONFIGS as CONFIGS

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["attention", "ffn", "attention-dense", "ffn-dense"]


def measure(tokens: int, config: str) -> list[dict]:
    out = ROOT / "build" / "bench" / f"engine_cycles-{config}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "ttaccel.sim.measure_engine", "--tokens", str(tokens),
               "--layers", *LAYERS, "--config", config, "--json", str(out)]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT)
    if not out.exists():
        raise SystemExit(f"measurement failed (exit {result.returncode}); no report written")
    return json.loads(out.read_text())


def to_markdown(report: list[dict], command: str, config: str) -> str:
    by_name = {entry["layer"]: entry for entry in report}
    accel = CONFIGS[config]
    name = "the default configuration" if config == "default" else f"configuration {config}"
    lines = [
        f"## Engine cycles on seed 000's layers, {config} (issues 4 and 9)",
        "",
        f"RTL simulation (Verilator + cocotb) of the generated engine, {name} "
        f"({accel.summary()}), outputs checked bit-exactly against the "
        "reference executor. TT layers run with their cores resident (loaded once per layer by "
        "the setup program); the dense GEMMs stream their int8 weights with the run. "
        f"Utilization = useful MACs / (cycles x {accel.lanes} lanes). Command: `{command}`.",
        "",
        "| layer | tokens | RTL cycles | model cycles | model error | utilization (RTL) | "
        "dense GEMM cycles (RTL) | dense / TT cycles |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("attention", "ffn"):
        tt, dense = by_name[name], by_name.get(f"{name}-dense")
        error = tt["cycles"] / tt["model_cycles"] - 1
        if dense is None or "does_not_fit" in dense:
            dense_cycles = "does not fit" if dense else "not measured"
            ratio = "-"
        else:
            dense_cycles = f"{dense['cycles']}"
            ratio = f"{dense['cycles'] / tt['cycles']:.1f}x"
        lines.append(
            f"| {name} ({'768x768' if name == 'attention' else '768x3072'}) | {tt['tokens']} | "
            f"{tt['cycles']} | {tt['model_cycles']} | {error:+.2%} | "
            f"{tt['utilization']:.1%} | {dense_cycles} | {ratio} |"
        )
    for name in ("attention-dense", "ffn-dense"):
        d = by_name.get(name)
        if d is not None and "does_not_fit" in d:
            lines.append(f"\n{name}: not run, {d['does_not_fit']}.")
        elif d is not None:
            lines.append(
                f"\n{name}: {d['cycles']} RTL cycles, model {d['model_cycles']} "
                f"({d['cycles'] / d['model_cycles'] - 1:+.2%}), utilization {d['utilization']:.1%}."
            )
    lines += ["", "At 100 MHz a cycle is 10 ns (a target clock, not a measured Zynq timing)."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="default")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args()
    report = measure(args.tokens, args.config)
    command = (
        "python bench/bench_engine_cycles.py"
        + (f" --tokens {args.tokens}" if args.tokens != 128 else "")
        + (f" --config {args.config}" if args.config != "default" else "")
    )
    table = to_markdown(report, command, args.config)
    print(table)
    if not args.no_write:
        section = "engine-cycles" if args.config == "default" else f"engine-cycles-{args.config}"
        write_section(section, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
