"""Speed of the simulated board (the sim backend): simulated cycles per second and build time.

For each configuration (the tests' 4 x 4 ``SMALL_BOARD`` and the default 12 x 32
``AccelConfig()``) builds (or reuses) the Verilator board with
:func:`ttaccel.host.sim_build.build_simboard`, loads seed 000's attention TT layer (768 x 768,
ranks 24/30/24, best plan) with its setup program, then runs one batch of ``--tokens`` tokens
``--repeats`` times through :class:`ttaccel.host.sim.SimDevice` with the plain run protocol
(``PROGRAM_LENGTH``, ``CONTROL.start``, both transfers, poll ``STATUS``). Every run's output
beats are checked bit for bit against the spec's reference executor. Reports the simulated
cycles per wall-clock second (median run; cycles counted by the harness from start to done,
bus cycles included), the engine's ``BUSY_CYCLES`` and the Verilator build time (Verilog
generation, verilate + C++ compile; for a reused build, the time recorded when it was built).
Writes the table to docs/results.md (section ``sim-board``) and the raw figures to
``build/bench/sim_board.json``.

    python bench/bench_sim_board.py [--tokens 128] [--repeats 3] [--configs small default]
                                    [--no-write]

A 16 x 16 build took 7-10 minutes on the 2-core development machine. Once the driver runs
BERT on the sim backend, :func:`add_sentences_per_second` adds a sentences-per-second row to
the same section (see its docstring).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_doc import write_section

from ttaccel.host.sim import SimDevice
from ttaccel.host.sim_build import SMALL_BOARD, build_from_verilog, build_simboard, top_verilog
from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.compiler import compile_tt_linear
from ttaccel.spec.formats import INT8, Requant
from ttaccel.spec.golden import QuantTTLinear
from ttaccel.spec.isa import Machine, encode_program, execute
from ttaccel.spec.regmap import REGMAP
from ttaccel.spec.tt import TTShape, best_plan, tt_layer_modes

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "build" / "bench" / "sim_board.json"
SECTION = "sim-board"
CONFIGS = {"small": SMALL_BOARD, "default": AccelConfig()}
SEED000_ATTENTION = ((24, 32), (32, 24), (1, 24, 30, 24, 1))  # in modes, out modes, ranks


def seed000_attention(tokens: int, config: AccelConfig, rng: np.random.Generator):
    """Seed 000's attention TT layer with random int8 cores, requantizers and bias, compiled
    for ``config``; returns ``(compiled, x)`` with random int8 inputs ``x``."""
    in_modes, out_modes, ranks = SEED000_ATTENTION
    shape = TTShape(*tt_layer_modes(in_modes, out_modes), ranks)
    plan = best_plan(shape, tokens)

    def requant(fmt):
        return Requant(int(rng.integers(1, 2**16)), int(rng.integers(10, 22)), fmt)

    layer = QuantTTLinear(
        cores=tuple(rng.integers(-128, 128, size=s).astype(np.int8) for s in shape.core_shapes),
        weight_format=INT8,
        plan=plan,
        merge_requants=tuple(tuple(requant(INT8) for _ in range(b - a - 1)) for a, b in plan),
        stage_requants=tuple(requant(INT8) for _ in plan),
        bias=rng.integers(-(2**20), 2**20, size=shape.out_features).astype(np.int32),
        input_scale=1.0,
        output_scale=1.0,
    )
    x = rng.integers(-128, 128, size=(tokens, shape.in_features)).astype(np.int8)
    return compile_tt_linear(layer, tokens, config), x


def run_once(dev: SimDevice, program, data: np.ndarray, receive: int) -> tuple[np.ndarray, int]:
    """One run by the plain protocol; returns (output beats, simulated cycles start -> done)."""
    done = REGMAP["STATUS"].field("done")
    stream = np.concatenate([encode_program(program), data])
    before = dev.cycles
    dev.write("PROGRAM_LENGTH", instructions=len(program))
    dev.write("CONTROL", start=1)
    dev.start_transfers(stream, receive)
    for _ in range(100_000):
        status = dev.read("STATUS")
        if REGMAP["STATUS"].field("error").extract(status):
            raise RuntimeError(f"run failed: STATUS {status:#x}, {dev.transfer_state()}")
        if done.extract(status) and dev.transfers_done():
            break
    else:
        raise RuntimeError(f"run did not finish: {dev.transfer_state()}")
    cycles = dev.cycles - before
    out = dev.received()
    dev.write("STATUS", done=1)
    return out, cycles


def hardware_revision() -> str:
    """The commit the hardware was generated from, noting uncommitted changes under hw/."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return result.stdout.strip()

    dirty = " + uncommitted hw/ changes" if git("status", "--porcelain", "hw/") else ""
    return f"{git('rev-parse', '--short', 'HEAD') or 'unknown'}{dirty}"


def build(config: AccelConfig, model: Path | None, *, cold: bool = False):
    """``build_simboard(config)``, or, with ``model`` (a ``build/simboard/<key>`` folder), the
    Verilog already built there (the hardware of that build, reused as is). ``cold``: build
    into a fresh temporary folder with ccache off (the build-time measurement)."""
    root = None
    if cold:
        os.environ["CCACHE_DISABLE"] = "1"
        root = Path(tempfile.mkdtemp(prefix="simboard-cold-", dir=ROOT / "build"))
    try:
        if model is None:
            return build_simboard(config, build_root=root), hardware_revision()
        inputs = json.loads((model / "model.json").read_text())["inputs"]
        if inputs.get("config") != json.loads(config.to_json()):
            raise SystemExit(f"{model} was built for another configuration: {inputs.get('config')}")
        built = build_from_verilog(
            (model / "ttaccel_top.v").read_text(), {"config": inputs["config"]}, build_root=root
        )
    finally:
        os.environ.pop("CCACHE_DISABLE", None)
    t0 = time.monotonic()  # the Verilog generation step, timed on the current hw/ (discarded)
    top_verilog(config)
    built.model_seconds["verilog"] = round(time.monotonic() - t0, 1)
    note = model / "revision.txt"  # written by whoever built that Verilog, if known
    revision = note.read_text().strip() if note.exists() else "revision not recorded"
    return built, f"the Verilog built in {model.name} ({revision})"


def measure(
    name: str, config: AccelConfig, tokens: int, repeats: int, model=None, cold=False
) -> dict:
    start = time.monotonic()
    built, hardware = build(config, model, cold=cold)
    build_call_s = time.monotonic() - start
    compiled, x = seed000_attention(tokens, config, np.random.default_rng(0))
    machine = Machine.empty(config)
    execute(compiled.setup, config, compiled.setup_stream, machine)
    data = compiled.input_stream(x)
    want = execute(compiled.run, config, data, machine).output
    with SimDevice(built.library) as dev:
        run_once(dev, compiled.setup, compiled.setup_stream, 0)
        times, cpu, cycles, busy = [], [], [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            out, n = run_once(dev, compiled.run, data, want.size)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            if not np.array_equal(out, want):
                raise RuntimeError(f"{name}: the sim board's output differs from the reference")
            cycles.append(n)
            busy.append(dev.read_counter("BUSY_CYCLES"))
        violations = dev.violations
    if cold:  # the temporary build folder of build(cold=True)
        shutil.rmtree(built.folder.parent, ignore_errors=True)
    model = built.model_seconds
    median = statistics.median(times)
    return {
        "config": name,
        "summary": config.summary(),
        "rows": config.rows,
        "cols": config.cols,
        "tokens": tokens,
        "program_instructions": len(compiled.run),
        "input_beats": int(data.size),
        "output_beats": int(want.size),
        "sim_cycles": cycles[len(cycles) // 2],
        "busy_cycles": busy[-1],
        "wall_s": times,
        "cycles_per_s": cycles[len(cycles) // 2] / median,
        "cpu_s": cpu,
        "cycles_per_cpu_s": cycles[len(cycles) // 2] / statistics.median(cpu),
        "violations": violations,
        "build_reused": built.reused,
        "build_verilog_s": model.get("verilog"),
        "build_verilate_compile_s": model.get("verilate_compile"),
        "build_this_call_s": round(build_call_s, 1),
        "build_cold": cold,
        "key": built.key,
        "hardware": hardware,
        "load_1min": round(os.getloadavg()[0], 1),
    }


def _fmt_s(value) -> str:
    return "-" if value is None else f"{value:.0f} s"


def to_markdown(report: dict) -> str:
    rows = report["rows"]
    lines = [
        "## The simulated board: Verilator speed and build time (issue 8)",
        "",
        "The sim backend (`ttaccel.host.sim.SimDevice`): the generated `ZynqTop` in Verilator "
        "5.48 with the C++ harness of `host/sim_harness.cpp` (AXI4-Lite manager and both DMA "
        "stream ends in C++, one Python call per register access or transfer poll). Layer: "
        "seed 000's attention TT layer (768 x 768, ranks 24/30/24), cores resident, one batch "
        "per run, output checked bit for bit against the reference executor. Simulated cycles "
        "per second: harness cycles from `CONTROL.start` to done (bus cycles included) over "
        "the median wall time of the runs, and over their median CPU time of this process (less "
        "sensitive to the shared machine's load). Build: Verilog generation + verilate and "
        "compile "
        f"(one C++ file, `-O3 --x-assign fast --x-initial fast --noassert`). {report['machine']}",
        "",
        "| configuration | tokens | run program | simulated cycles | BUSY_CYCLES | wall s "
        "(median) | simulated cycles/s | per CPU second | Verilog | verilate + compile | "
        "hardware | command |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['summary'].split(':')[0]} | {r['tokens']} | {r['program_instructions']} "
            f"instr., {r['input_beats']} beats in, {r['output_beats']} out | {r['sim_cycles']:,} "
            f"| {r['busy_cycles']:,} | {statistics.median(r['wall_s']):.3f} | "
            f"{r['cycles_per_s'] / 1e6:.3f} M | {r['cycles_per_cpu_s'] / 1e6:.3f} M | "
            f"{_fmt_s(r['build_verilog_s'])} | "
            f"{_fmt_s(r['build_verilate_compile_s'])}{'' if r.get('build_cold') else ' *'} | "
            f"{r.get('hardware', '-')} | "
            f"`{r['command']}` |"
        )
    lines += [
        "",
        "Build times without `*` were measured by a fresh build (`--cold-build`: a new folder, "
        "ccache off); `*`: the time recorded by the build that made the board used, with ccache "
        "on (the verilated library's files come from the cache; the model's C++ does too if "
        "identical Verilog was compiled before). `--model` measures a board built earlier on "
        "this machine (its Verilog is kept in that folder); without it the command regenerates "
        "the Verilog from the current hw/.",
    ]
    lines += [f"\n{r['summary'].split(':')[0]}: {r['note']}" for r in rows if r.get("note")]
    sentences = report.get("sentences", [])
    if sentences:
        lines += [
            "",
            "| BERT on the sim backend | sentences/s | note | command |",
            "|---|---:|---|---|",
        ]
        for s in sentences:
            lines.append(
                f"| {s['label']} | {s['sentences_per_second']:.3g} | {s['note']} | "
                f"`{s['command']}` |"
            )
    return "\n".join(lines)


def _machine(rows: list[dict]) -> str:
    loads = ", ".join(f"{r['config']} {r['load_1min']:.1f}" for r in rows)
    return (
        f"Machine: the shared 2-core development VM ({platform.processor() or platform.machine()}"
        f"), 1-minute load average at the end of each row ({loads}): other engineers' builds "
        "and a training run share it, so treat speeds and build times as ±25 % or worse."
    )


def add_sentences_per_second(
    label: str, sentences_per_second: float, command: str, note: str = "", *, write: bool = True
) -> str:
    """Add (or replace, by ``label``) a BERT sentences-per-second row to this benchmark's
    report (``build/bench/sim_board.json``) and rewrite its docs/results.md section; returns
    the section's Markdown. ``command``: what reproduces the figure; ``note``: model, tokens,
    configuration. Call it from the driver's benchmark once a sentence runs on the sim
    backend; the cycles table must have been measured first (``bench_sim_board.py``)."""
    if not REPORT.exists():
        raise FileNotFoundError(f"{REPORT} does not exist: run bench/bench_sim_board.py first")
    report = json.loads(REPORT.read_text())
    entry = {"label": label, "sentences_per_second": float(sentences_per_second),
             "command": command, "note": note}  # fmt: skip
    report["sentences"] = [s for s in report.get("sentences", []) if s["label"] != label]
    report["sentences"].append(entry)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    markdown = to_markdown(report)
    if write:
        write_section(SECTION, markdown)
    return markdown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument(
        "--model", action="append", default=[], metavar="CONFIG=DIR",
        help="measure the Verilog already built in DIR (build/simboard/<key>) for CONFIG "
        "instead of regenerating it from hw/ (which another engineer may be editing)",
    )  # fmt: skip
    parser.add_argument(
        "--note", action="append", default=[], metavar="CONFIG=TEXT",
        help="a sentence printed under the table for CONFIG's row (how it was measured)",
    )  # fmt: skip
    parser.add_argument(
        "--cold-build", nargs="*", default=[], choices=list(CONFIGS),
        help="time a fresh build of these configurations (temporary folder, ccache off)",
    )  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args()
    old = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    rows = {r["config"]: r for r in old.get("rows", [])}
    models = dict(item.split("=", 1) for item in args.model)
    notes = dict(item.split("=", 1) for item in args.note)
    for name in args.configs:
        model = Path(models[name]) if name in models else None
        cold = name in args.cold_build
        row = measure(name, CONFIGS[name], args.tokens, args.repeats, model, cold)
        flags = [f"--tokens {args.tokens}"] * (args.tokens != 128) + [f"--configs {name}"]
        flags += [f"--cold-build {name}"] * cold
        flags += [f"--model {name}={models[name]}"] * (model is not None)
        if name in notes:
            row["note"] = notes[name]
        row["command"] = " ".join(["python bench/bench_sim_board.py", *flags])
        rows[name] = row
        print(json.dumps({k: v for k, v in row.items() if k != "summary"}), flush=True)
    ordered = [rows[n] for n in CONFIGS if n in rows]
    report = {"rows": ordered, "sentences": old.get("sentences", []), "machine": _machine(ordered)}
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    markdown = to_markdown(report)
    print(markdown)
    if not args.no_write:
        write_section(SECTION, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
