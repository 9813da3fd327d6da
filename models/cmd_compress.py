"""Compress a fine-tuned BERT teacher into TT layers and train the student.

The student starts as the teacher with the layers named by the compression config replaced by
TT-matrices (TT-SVD of the teacher's weights). With ``weight_bits`` set, every TT layer gets
learnable-scale quantizers (cores at the weight bits, int8 input and intermediates), calibrated
on one training batch. It is then trained on ``DATA/train.tsv``:

* ``--method e2e``: end-to-end QAT with task cross-entropy + logits distillation;
* ``--method layerwise``: layer-by-layer distillation (hidden-state MSE + cosine + attention
  KL; encoder layer k joins at step k x --layer-steps), then logits distillation and the task
  loss once all layers are in.

* ``--method onestage``: XTC's one-stage distillation: hidden states, attention, logits and the
  task loss from the first step.

``--scheme tt`` (the default) makes TT layers; ``--scheme xtc`` (seed 003) keeps every
compressed linear dense (a one-core TT-matrix) at ``--bits ternary`` or ``binary`` (also 8/4/2),
with layer reduction ``--keep-layers 0,2,4`` (student layer i starts as, and is distilled
against, the i-th listed teacher layer) and one-stage distillation by default.

``--scheme tucker`` (seed 001) makes every encoder linear ``d x d`` blocks of a shared Tucker
matrix bank: ``--rank R`` (at most 64), ``--bank-size L`` cores per bank, ``--bank-scope model``
(one bank for the encoder, the default) or ``layer``, ``--bits 8|4`` (or float); the word
embedding is a TT embedding with ``--embedding-rank``; one-stage distillation by default (every
layer shares the bank, so all are distilled from the first step).

``--scheme nm`` (seed 002, NxMiFormer) keeps every encoder linear dense, pruned to N:M sparsity
along its input dimension (``--nm 2:4``, ``1:4``, ``2:8``; per-layer patterns and bits through
``--config``, e.g. the one ``ttaccel nm-search`` writes) and quantized at ``--bits 8|4|2|ternary``;
``--nm-mode`` chooses one-shot magnitude pruning (default), gradual magnitude pruning over
``--prune-steps`` or ADMM (``--admm-rho``, ``--admm-every``) for ``--prune-steps`` then masked QAT.

The config is either ``--config FILE.json`` (see ``ttaccel.models.config``) or the shorthand
``--rank R [--bits B] [--embedding-rank E]`` (all six encoder linears at rank R), or for
``--scheme xtc`` ``--bits B [--keep-layers L] [--xtc-embedding]``. Rerunning
the same command resumes from ``OUT/state.pt``. Runs under ``torchrun`` as DDP.

Outputs in OUT: ``student/`` (for ``evaluate`` and ``export``), ``result.json`` (dev metrics,
sizes, settings), ``metrics.csv``, ``metrics.jsonl``, ``state.pt``.
"""

from __future__ import annotations

import argparse
import dataclasses
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
        "--scheme",
        default="tt",
        choices=["tt", "xtc", "nm", "tucker"],
        help="shorthand config: tt (TT-matrices, default), xtc (dense ternary/binary layers "
        "+ layer reduction, seed 003), nm (N:M sparse low-bit layers, seed 002) or tucker "
        "(blocks of a shared Tucker matrix bank, seed 001)",
    )
    parser.add_argument(
        "--bank-size", type=int, default=None,
        help="shorthand config, --scheme tucker: cores per bank (at most the bank's blocks)",
    )  # fmt: skip
    parser.add_argument(
        "--bank-scope", default=None, choices=["model", "layer"],
        help="shorthand config, --scheme tucker: one bank for the encoder (model, default) or "
        "one per encoder layer",
    )  # fmt: skip
    parser.add_argument(
        "--nm",
        default=None,
        help="shorthand config, --scheme nm: the N:M pattern of all six encoder linears, "
        "e.g. 2:4, 1:4, 2:8",
    )
    parser.add_argument(
        "--nm-mode",
        default=None,
        choices=["oneshot", "gradual", "admm"],
        help="scheme nm: one-shot magnitude pruning before QAT (default), gradual magnitude "
        "pruning (cubic schedule over --prune-steps) or ADMM for --prune-steps, then masked QAT",
    )
    parser.add_argument(
        "--prune-steps", type=int, default=200,
        help="scheme nm, gradual / admm: steps until the full N:M pattern (default: 200)",
    )  # fmt: skip
    parser.add_argument(
        "--prune-every", type=int, default=50,
        help="scheme nm, gradual: steps between mask updates (default: 50)",
    )  # fmt: skip
    parser.add_argument(
        "--admm-rho", type=float, default=1e-3,
        help="scheme nm, admm: penalty weight rho of ||W - Z + U||^2 / 2 (default: 1e-3)",
    )  # fmt: skip
    parser.add_argument(
        "--admm-every", type=int, default=20,
        help="scheme nm, admm: steps between the Z / U updates (default: 20)",
    )  # fmt: skip
    parser.add_argument(
        "--keep-layers",
        type=_layer_list,
        default=None,
        help="shorthand config: layer reduction, the teacher encoder layers to keep, e.g. 0,2,4",
    )
    parser.add_argument(
        "--xtc-embedding",
        action="store_true",
        help="shorthand config, --scheme xtc: quantize the word embedding too (dense, --bits)",
    )
    parser.add_argument(
        "--rank",
        type=int,
        default=None,
        help="shorthand config: TT rank cap of all six encoder linears",
    )
    parser.add_argument(
        "--bits",
        type=_bits,
        default=None,
        help="shorthand config: weight bits 8, 4, 2, ternary or binary (xtc only; nm takes "
        "8, 4, 2, ternary) "
        "(default: float, no quantization)",
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
            default=None,
            choices=["max", "lsq", "mse", "percentile", "twn"],
            help=f"shorthand config: initial {side} scales before QAT (default: max = max|x|/Qp; "
            "twn = TWN/BWN scales, the default for ternary/binary weights)",
        )
    parser.add_argument(
        "--method",
        default=None,
        choices=["e2e", "layerwise", "onestage"],
        help="training method (default: layerwise; onestage for --scheme xtc)",
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
        "(e.g. a float student before INT8/INT4 QAT), or from an exported artifact "
        "(.safetensors: its integer cores read back as float, to continue its QAT)",
    )
    add_loop_arguments(parser, steps=1000, lr=1e-4)


def _layer_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--keep-layers takes comma-separated layer indices such as 0,2,4, not {text!r}"
        ) from None


def _bits(text: str) -> int | str:
    if text in ("ternary", "binary"):
        return text
    if text in ("8", "4", "2"):
        return int(text)
    raise argparse.ArgumentTypeError(f"--bits takes 8, 4, 2, ternary or binary, not {text!r}")


def config_from_args(args: argparse.Namespace):
    from .config import CompressionConfig

    if args.config is not None:
        return CompressionConfig.load(args.config)
    if args.scheme == "nm":
        if args.rank is not None or args.embedding_rank is not None or args.xtc_embedding:
            raise ValueError("--scheme nm keeps layers dense: no --rank, --embedding-rank or "
                             "--xtc-embedding")  # fmt: skip
        if args.nm is None:
            raise ValueError("--scheme nm needs --nm N:M (e.g. 2:4), or --config FILE")
        return CompressionConfig.nm(
            args.nm, args.bits, keep_layers=args.keep_layers, power_of_two=args.power_of_two,
            weight_scale_init=args.weight_scale_init or "max",
            activation_scale_init=args.activation_scale_init or "max",
        )  # fmt: skip
    if args.nm is not None:
        raise ValueError("--nm is for --scheme nm")
    if args.scheme == "tucker":
        if args.rank is None or args.bank_size is None:
            raise ValueError("--scheme tucker needs --rank R and --bank-size L, or --config FILE")
        if args.xtc_embedding:
            raise ValueError("--xtc-embedding is for --scheme xtc (tucker: --embedding-rank)")
        return CompressionConfig.tucker(
            args.rank, args.bank_size, args.bits, bank_scope=args.bank_scope or "model",
            embedding_rank=args.embedding_rank, keep_layers=args.keep_layers,
            power_of_two=args.power_of_two, weight_scale_init=args.weight_scale_init or "max",
            activation_scale_init=args.activation_scale_init or "max",
        )  # fmt: skip
    if args.bank_size is not None or args.bank_scope is not None:
        raise ValueError("--bank-size and --bank-scope are for --scheme tucker")
    if args.scheme == "xtc":
        if args.rank is not None or args.embedding_rank is not None:
            raise ValueError("--scheme xtc keeps layers dense: no --rank or --embedding-rank")
        return CompressionConfig.xtc(
            args.bits, args.keep_layers, word_embeddings=args.xtc_embedding,
            power_of_two=args.power_of_two, weight_scale_init=args.weight_scale_init,
            activation_scale_init=args.activation_scale_init or "max",
        )  # fmt: skip
    if args.xtc_embedding:
        raise ValueError("--xtc-embedding is for --scheme xtc (TT: --embedding-rank)")
    if args.rank is None:
        raise ValueError("give --config FILE or --rank R (with optional --bits, --embedding-rank)")
    cfg = CompressionConfig.uniform(
        args.rank,
        args.bits,
        embedding_rank=args.embedding_rank,
        power_of_two=args.power_of_two,
        weight_scale_init=args.weight_scale_init
        or ("twn" if args.bits in ("ternary", "binary") else "max"),
        activation_scale_init=args.activation_scale_init or "max",
    )
    if args.keep_layers is not None:
        cfg = dataclasses.replace(cfg, keep_layers=args.keep_layers)
    return cfg


def run(args: argparse.Namespace) -> int:
    use_threads(args.threads)
    import json

    from .compress import train_student

    cfg = config_from_args(args)
    method = args.method or ("onestage" if cfg.scheme in ("xtc", "tucker") else "layerwise")
    nm_training = None
    if cfg.scheme == "nm":
        from .nm import NMTraining

        nm_training = NMTraining(args.nm_mode or "oneshot", args.prune_steps, args.prune_every,
                                 args.admm_rho, args.admm_every)  # fmt: skip
    elif args.nm_mode is not None:
        raise ValueError("--nm-mode is for scheme nm")
    result = train_student(
        args.teacher, args.data, args.out, cfg, method=method, layer_steps=args.layer_steps,
        task=args.task, max_length=args.max_length, train_subset=args.train_subset,
        loop=loop_config(args), init_from=args.init_from, progress=not args.no_progress,
        nm_training=nm_training,
    )  # fmt: skip
    record_command(args.out, result)
    print(json.dumps({"dev": result["dev"], "sizes": result["sizes"]}))
    return 0
