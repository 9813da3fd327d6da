"""Fine-tune the dense BERT teacher on a GLUE-format task.

Loads a Hugging Face BERT checkpoint folder offline (default: the bundled MiniLM-L6), adds a
classification head, and fine-tunes it on ``DATA/train.tsv`` with AdamW and a linear
warm-up/decay schedule, evaluating on ``DATA/dev.tsv``. Rerunning the same command resumes
from ``OUT/state.pt``. Under ``torchrun --nproc_per_node=N`` it trains with DDP (gloo), each
process taking ``--batch-size`` examples of every global batch.

Outputs in OUT: ``model/`` (a Hugging Face folder usable as ``compress --teacher``),
``metrics.csv``, ``metrics.jsonl``, ``result.json``, ``state.pt``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "fine-tune the dense BERT teacher on a GLUE task (SST-2, MRPC, RTE, CoLA, STS-B, QNLI)"


def add_loop_arguments(parser: argparse.ArgumentParser, *, steps: int, lr: float) -> None:
    """Optimisation options shared by train-teacher and compress."""
    parser.add_argument(
        "--steps",
        type=int,
        default=steps,
        help=f"optimizer steps to train in total (default: {steps})",
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="examples per step per process (default: 32)"
    )
    parser.add_argument(
        "--lr", type=float, default=lr, help=f"peak AdamW learning rate (default: {lr})"
    )
    parser.add_argument(
        "--weight-decay",
        type=float,
        default=0.01,
        help="AdamW weight decay of matrices and cores (default: 0.01)",
    )
    parser.add_argument(
        "--warmup-ratio",
        type=float,
        default=0.06,
        help="fraction of steps of linear warm-up (default: 0.06)",
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        default=250,
        help="evaluate on the dev set every N steps (default: 250)",
    )
    parser.add_argument(
        "--save-every",
        type=int,
        default=100,
        help="write the resumable OUT/state.pt every N steps (default: 100)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the data order and initialisation (default: 0)"
    )
    parser.add_argument(
        "--max-length",
        type=int,
        default=64,
        help="truncate tokenized examples to N tokens (default: 64)",
    )
    parser.add_argument(
        "--train-subset",
        type=int,
        default=None,
        help="use only the first N training examples (default: all)",
    )
    parser.add_argument(
        "--task",
        default=None,
        help="GLUE task name (default: inferred from the data folder's name)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads per process (default: torch's choice)",
    )
    parser.add_argument(
        "--group-by-length",
        action="store_true",
        help="batch training examples of similar length together (less padding, faster steps)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def limit_blas_threads(threads: int) -> None:
    """Cap NumPy's BLAS (and OpenMP) threads; only effective before NumPy is first imported.

    On a shared, oversubscribed machine OpenBLAS threads spin-wait: one 384 x 1536 SVD took
    68 s with default threads and 3 s with one (measured here)."""
    import os

    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def use_threads(threads: int | None) -> None:
    """``--threads``: cap BLAS/OpenMP and torch CPU threads (call first in ``run``, before NumPy
    or torch is imported); None or 0 keeps the libraries' choice."""
    if not threads:
        return
    limit_blas_threads(threads)
    import torch

    torch.set_num_threads(threads)


def record_command(out_dir: Path, result: dict) -> None:
    """Add the command line that produced ``result`` to it and to ``OUT/result.json`` (when this
    process, rank 0, wrote one)."""
    import json
    import shlex
    import sys

    result["command"] = "ttaccel " + shlex.join(sys.argv[1:])
    path = Path(out_dir) / "result.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        saved["command"] = result["command"]
        path.write_text(json.dumps(saved, indent=2))


def loop_config(args: argparse.Namespace):
    from .train import LoopConfig

    return LoopConfig(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio, eval_every=args.eval_every, save_every=args.save_every,
        seed=args.seed, group_by_length=args.group_by_length,
    )  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="GLUE-format folder with train.tsv and dev.tsv (e.g. ../shared/data/SST-2)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder (created; an existing state.pt there is resumed)",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="Hugging Face BERT folder to start from (default: bundled MiniLM-L6)",
    )
    add_loop_arguments(parser, steps=2000, lr=1e-4)


def run(args: argparse.Namespace) -> int:
    use_threads(args.threads)
    import json

    from .teacher import train_teacher

    result = train_teacher(
        args.data, args.out, checkpoint=args.checkpoint, task=args.task,
        max_length=args.max_length, train_subset=args.train_subset, loop=loop_config(args),
        progress=not args.no_progress,
    )  # fmt: skip
    record_command(args.out, result)
    print(json.dumps(result["dev"]))
    return 0
