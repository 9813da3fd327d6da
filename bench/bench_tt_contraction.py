"""NumPy TT-matrix contraction against the dense product, side by side in one run.

Shapes: BERT-base attention (768x768) and FFN (768x3072) with seed 000's modes and ranks, and
the MiniLM-L6 equivalents (384x384, 384x1536), each for 128 tokens in float32, single-threaded
BLAS so that the ratio compares algorithms, not thread scheduling on a shared machine.

The TT path runs the cheapest plan (:func:`ttaccel.spec.tt.best_plan`): its segments are merged
once, offline (input independent, like the weights themselves), and each token batch then costs
one GEMM per merged core. The un-merged core-by-core path is timed too. Ratios are medians of
interleaved repeats. Writes the table to docs/results.md (section ``tt-contraction``).

    python bench/bench_tt_contraction.py [--repeats N] [--no-write]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads its BLAS
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import functools
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_doc import write_section

from ttaccel.spec.tt import (
    TTShape,
    best_plan,
    merge_cores,
    plan_macs,
    tt_contract,
    tt_layer_modes,
)

TOKENS = 128
# name, in modes, out modes, inner ranks (seed 000), capped at the largest useful rank.
LAYERS = [
    ("BERT-base attention 768x768", (24, 32), (32, 24), (24, 30, 24)),
    ("BERT-base FFN 768x3072", (32, 24), (48, 64), (30, 30, 30)),
    ("MiniLM attention 384x384", (16, 24), (24, 16), (24, 30, 24)),
    ("MiniLM FFN 384x1536", (16, 24), (32, 48), (30, 30, 30)),
]


def layer_shape(in_modes, out_modes, inner) -> TTShape:
    modes = tt_layer_modes(in_modes, out_modes)
    uncapped = TTShape(*modes, (1, *inner, 1))
    ranks = tuple(min(r, cap) for r, cap in zip(uncapped.ranks, uncapped.max_ranks, strict=True))
    return TTShape(*modes, ranks)


def timed_runs(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def run(repeats: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for name, in_modes, out_modes, inner in LAYERS:
        shape = layer_shape(in_modes, out_modes, inner)
        cores = [rng.standard_normal(s).astype(np.float32) for s in shape.core_shapes]
        plan = best_plan(shape, TOKENS)
        merged = [functools.reduce(merge_cores, cores[a:b]) for a, b in plan]
        dense = rng.standard_normal((shape.in_features, shape.out_features)).astype(np.float32)
        x = rng.standard_normal((TOKENS, shape.in_features)).astype(np.float32)
        candidates = {
            "dense": lambda x=x, w=dense: x @ w,
            "tt": lambda x=x, m=merged: tt_contract(x, m),
            "tt_unmerged": lambda x=x, c=cores: tt_contract(x, c),
        }
        for fn in candidates.values():  # warm-up
            fn()
        samples = {key: [] for key in candidates}
        for _ in range(repeats):  # interleaved, so load changes hit every candidate alike
            for key, fn in candidates.items():
                samples[key] += timed_runs(fn, 5)
        t = {key: statistics.median(v) for key, v in samples.items()}
        online, _ = plan_macs(shape, plan, TOKENS)
        unmerged, _ = plan_macs(shape, tuple((k, k + 1) for k in range(shape.num_cores)), TOKENS)
        dense_macs = TOKENS * shape.in_features * shape.out_features
        rows.append(
            dict(
                name=name, ranks=shape.ranks, plan=plan, dense_us=t["dense"] * 1e6,
                tt_us=t["tt"] * 1e6, unmerged_us=t["tt_unmerged"] * 1e6,
                dense_macs=dense_macs, tt_macs=sum(online), unmerged_macs=sum(unmerged),
            )
        )  # fmt: skip
    return rows


def to_markdown(rows: list[dict], command: str) -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if "model name" in ln), None)
    cpu = cpu or platform.processor()
    lines = [
        "## NumPy TT-matrix contraction vs dense product (issue 2)",
        "",
        f"{TOKENS} tokens, float32, single-threaded OpenBLAS, median of interleaved repeats. "
        f"Machine: {cpu}, {os.cpu_count()} cores (shared: read the ratios, not the times). "
        f"NumPy {np.__version__}. Every row: `{command}`.",
        "",
        "| layer | TT ranks | plan | dense µs | TT µs | speed-up | MAC ratio | "
        "core-by-core µs | its speed-up | its MAC ratio |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {list(r['ranks'])} | {[list(s) for s in r['plan']]} | "
            f"{r['dense_us']:.0f} | {r['tt_us']:.0f} | {r['dense_us'] / r['tt_us']:.1f}x | "
            f"{r['dense_macs'] / r['tt_macs']:.1f}x | {r['unmerged_us']:.0f} | "
            f"{r['dense_us'] / r['unmerged_us']:.1f}x | "
            f"{r['dense_macs'] / r['unmerged_macs']:.1f}x |"
        )
    lines += [
        "",
        "Speed-up and MAC ratio are dense / TT. The plan's segments are merged once offline "
        "(not timed, like loading weights); core-by-core contracts every core as its own GEMM.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="interleaved rounds (default 20)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args()
    rows = run(args.repeats)
    command = "python bench/bench_tt_contraction.py" + (
        f" --repeats {args.repeats}" if args.repeats != 20 else ""
    )
    table = to_markdown(rows, command)
    print(table)
    if not args.no_write:
        write_section("tt-contraction", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
