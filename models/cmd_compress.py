"""Compress a fine-tuned BERT teacher into TT layers and train the student.

The student starts as the teacher with the layers named by the compression config replaced by
TT-matrices (TT-SVD of the teacher's weights). With ``weight_bits`` set, every TT layer gets
learnable-scale quantizers (cores at the weight bits, int8 input and intermediates), calibrated
on one training batch. It is then trained on ``DATA/train.tsv``:

* ``--method e2e``: end-to-end QAT with task cross-entropy + logits distillation;
* ``--method layerwise``: layer-by-layer distillation (hidden-state MSE + cosine + attention
  KL; encoder layer k joins at step k x --layer-steps), then logits distillation and the task
  loss once all layers are in.

The config is either ``--config FILE.json`` (see ``ttaccel.models.config``) or the shorthand
``--rank R [--bits B] [--embedding-rank E]`` (all six encoder linears at rank R). Rerunning
the same command resumes from ``OUT/state.pt``. Runs under ``torchrun`` as DDP.

Outputs in OUT: ``student/`` (for ``evaluate`` and ``export``), ``result.json`` (dev metrics,
sizes, settings), ``metrics.csv``, ``metrics.jsonl``, ``state.pt``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .cmd_train_teacher import add_loop_arguments, loop_config, record_command, use_threads

HELP = "compress a BERT teacher into TT layers and train the student (QAT, distillation)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--teacher",
        type=Path,
        required=True,
        help="fine-tuned Hugging Face BERT folder (train-teacher's OUT/model)",
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="GLUE-format folder with train.tsv and dev.tsv"
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder (created; an existing state.pt there is resumed)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="compression config JSON (overrides --rank/--bits/--embedding-rank)",
    )
    parser.add_argument(
        "--rank",
        type=int,
        default=None,
        help="shorthand config: TT rank cap of all six encoder linears",
    )
    parser.add_argument(
        "--bits",
        type=int,
        default=None,
        choices=[8, 4, 2],
        help="shorthand config: core bits (default: float, no quantization)",
    )
    parser.add_argument(
        "--embedding-rank",
        type=int,
        default=None,
        help="shorthand config: also compress the word embedding at this rank",
    )
    parser.add_argument(
        "--power-of-two",
        action="store_true",
        help="shorthand config: power-of-two scales (pure-shift requantization)",
    )
    for side in ("weight", "activation"):
        parser.add_argument(
            f"--{side}-scale-init",
            default="max",
            choices=["max", "lsq", "mse", "percentile"],
            help=f"shorthand config: initial {side} scales before QAT (default: max = max|x|/Qp)",
        )
    parser.add_argument(
        "--method",
        default="layerwise",
        choices=["e2e", "layerwise"],
        help="training method (default: layerwise)",
    )
    parser.add_argument(
        "--layer-steps",
        type=int,
        default=100,
        help="layerwise: steps before the next encoder layer joins (default: 100)",
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="start from a saved student folder with the same TT shapes "
        "(e.g. a float student before INT8/INT4 QAT)",
    )
    add_loop_arguments(parser, steps=1000, lr=1e-4)


def config_from_args(args: argparse.Namespace):
    from .config import CompressionConfig

    if args.config is not None:
        return CompressionConfig.load(args.config)
    if args.rank is None:
        raise ValueError("give --config FILE or --rank R (with optional --bits, --embedding-rank)")
    return CompressionConfig.uniform(
        args.rank,
        args.bits,
        embedding_rank=args.embedding_rank,
        power_of_two=args.power_of_two,
        weight_scale_init=args.weight_scale_init,
        activation_scale_init=args.activation_scale_init,
    )


def run(args: argparse.Namespace) -> int:
    use_threads(args.threads)
    import json

    from .compress import train_student

    cfg = config_from_args(args)
    result = train_student(
        args.teacher, args.data, args.out, cfg, method=args.method, layer_steps=args.layer_steps,
        task=args.task, max_length=args.max_length, train_subset=args.train_subset,
        loop=loop_config(args), init_from=args.init_from, progress=not args.no_progress,
    )  # fmt: skip
    record_command(args.out, result)
    print(json.dumps({"dev": result["dev"], "sizes": result["sizes"]}))
    return 0
