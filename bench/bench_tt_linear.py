"""TTLinear forward + backward against nn.Linear and tensorly-torch's TT FactorizedLinear.

Shapes: MiniLM-L6 (384x384 attention, 384x1536 FFN) and BERT-base (768x768, 768x3072) at
seed 000's rank 30 (attention ranks [1, 24, 30, 24, 1] for 768x768 as in the paper; our modes
elsewhere from ``auto_linear_modes``). tensorly-torch's TT linear is ``FactorizedLinear(...,
factorization="blocktt")`` (its TT-matrix; there is no other TT factorization for linears) at
rank 30 on the same input/output factors. One timing = forward of ``--tokens`` rows plus
backward of ``y.sum()`` into the input and every parameter; the median of ``--repeats`` after
two warm-ups. Also timed: our TTLinear with INT4 quantization-aware training enabled.

    python bench/bench_tt_linear.py [--tokens 1024] [--repeats 10] [--threads 2] [--no-write]

writes the table into section ``models-bench`` of docs/results.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from results_doc import write_section
from torch import nn

from ttaccel.models.tt import TTLinear
from ttaccel.spec.formats import INT4
from ttaccel.spec.tt import tt_layer_modes

SHAPES = [
    # (label, in, out, in factors, out factors, ranks of our TT)
    ("MiniLM attention 384x384", 384, 384, (16, 24), (24, 16), 30),
    ("MiniLM FFN 384x1536", 384, 1536, (16, 24), (48, 32), 30),
    ("BERT-base attention 768x768", 768, 768, (24, 32), (32, 24), [24, 30, 24]),
    ("BERT-base FFN 768x3072", 768, 3072, (32, 24), (48, 64), 30),
]


def time_fwd_bwd(module: nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median seconds of forward + backward (two warm-ups first)."""
    times = []
    for i in range(repeats + 2):
        module.zero_grad(set_to_none=True)
        xi = x.detach().requires_grad_(True)
        start = time.perf_counter()
        module(xi).sum().backward()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=1024, help="rows per forward (default 1024)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs (default 10)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    import tltorch

    torch.manual_seed(0)
    rows = []
    for label, n_in, n_out, fin, fout, rank in SHAPES:
        x = torch.randn(args.tokens, n_in)
        dense = nn.Linear(n_in, n_out)
        in_modes, out_modes = tt_layer_modes(fin, fout)
        ours = TTLinear.from_linear(dense, rank, in_modes, out_modes)
        qat = TTLinear.from_linear(dense, rank, in_modes, out_modes)
        qat.enable_quantization(INT4)
        qat(x)  # calibrate the scales
        theirs = tltorch.FactorizedLinear(fin, fout, factorization="blocktt", rank=30)
        t_dense = time_fwd_bwd(dense, x, args.repeats)
        t_ours = time_fwd_bwd(ours, x, args.repeats)
        t_qat = time_fwd_bwd(qat, x, args.repeats)
        t_theirs = time_fwd_bwd(theirs, x, args.repeats)
        params = sum(c.numel() for c in ours.cores)
        their_params = sum(p.numel() for n, p in theirs.named_parameters() if n != "bias")
        rows.append((label, list(ours.shape.ranks), params, their_params, t_dense, t_ours, t_qat,
                     t_theirs))  # fmt: skip
        print(f"{label}: dense {t_dense * 1e3:.2f} ms, ours {t_ours * 1e3:.2f} ms, "
              f"ours INT4 QAT {t_qat * 1e3:.2f} ms, tensorly-torch {t_theirs * 1e3:.2f} ms",
              flush=True)  # fmt: skip
    load = os.getloadavg()[0]
    lines = [
        "### TTLinear forward + backward (CPU)",
        "",
        f"Command: `python bench/bench_tt_linear.py --tokens {args.tokens} --repeats "
        f"{args.repeats} --threads {args.threads}`; torch {torch.__version__}, "
        f"{args.threads} threads, {args.tokens} tokens per call, median of {args.repeats}. "
        f"Machine: the shared 2-core development VM, 1-minute load average {load:.1f} at the "
        "end of the run (other engineers' simulations were running: absolute times are noisy, "
        "the ratios within a row were measured back to back).",
        "",
        "| layer | our TT ranks | our TT params | tltorch params | dense ms | ours ms | "
        "ours INT4-QAT ms | tltorch ms | dense / ours | tltorch / ours |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, ranks, p, tp, td, to, tq, tt in rows:
        lines.append(
            f"| {label} | {ranks} | {p:,} | {tp:,} | {td * 1e3:.2f} | {to * 1e3:.2f} | "
            f"{tq * 1e3:.2f} | {tt * 1e3:.2f} | {td / to:.2f}x | {tt / to:.2f}x |"
        )
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("models-bench", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
