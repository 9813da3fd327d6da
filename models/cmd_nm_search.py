"""Choose each encoder linear's N:M pattern and weight bits under a compression budget (seed 002).

Measures every layer's sensitivity to every candidate (pattern x bits) on a few training
batches of the teacher, one layer pruned and quantized at a time, then runs the greedy descent
of ``ttaccel.models.nm_search`` until the encoder linears fit ``--ratio`` (dense fp32 encoder
linear bytes / N:M bytes, as ``ttaccel compress`` reports it) or ``--max-bytes``. Writes the
chosen per-layer config (a scheme-``nm`` ``CompressionConfig``, for ``ttaccel compress --config``)
to ``--out`` and the sensitivities, costs and moves to ``--report`` (default: OUT with
``.search.json``).

Example::

    ttaccel nm-search --teacher build/teacher-sst2-strong/model --data ../shared/data/SST-2 \\
        --ratio 12 --patterns 2:4,1:4,2:8 --bits 8,4 --out build/nm/search-12x.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .cmd_train_teacher import use_threads

HELP = "choose per-layer N:M patterns and weight bits under a compression budget (seed 002)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--teacher",
        type=Path,
        required=True,
        help="fine-tuned Hugging Face BERT folder (train-teacher's OUT/model)",
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="GLUE-format folder with train.tsv"
    )
    parser.add_argument("--out", type=Path, required=True, help="the config JSON to write")
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="search report JSON (default: OUT with .search.json)",
    )
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument(
        "--ratio", type=float, help="compression of the encoder linears vs dense fp32, e.g. 12"
    )
    budget.add_argument("--max-bytes", type=int, help="byte budget of the encoder linears")
    parser.add_argument(
        "--patterns",
        default="2:4,1:4,2:8",
        help="candidate N:M patterns, comma separated (default: 2:4,1:4,2:8)",
    )
    parser.add_argument(
        "--bits",
        default="8,4",
        help="candidate weight bits, comma separated: 8, 4, 2, ternary (default: 8,4)",
    )
    parser.add_argument(
        "--measure",
        default="output",
        choices=["output", "layer"],
        help="sensitivity: teacher-logit MSE with one layer compressed "
        "(default), or that layer's relative output error (cheaper)",
    )
    parser.add_argument(
        "--batches",
        type=int,
        default=4,
        help="training batches the sensitivity is measured on (default: 4)",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="examples per batch (16)")
    parser.add_argument("--max-length", type=int, default=64, help="tokens per example (64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the batch order (0)")
    parser.add_argument("--task", default=None, help="GLUE task (default: from the folder)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads")


def _bits(text: str) -> int | str:
    return text if text == "ternary" else int(text)


def run(args: argparse.Namespace) -> int:
    use_threads(args.threads)
    import json

    import torch

    from .data import batches, encode, infer_task, load_split, load_tokenizer
    from .nm_search import (
        encoder_linears,
        greedy_search,
        layer_sensitivities,
        parse_options,
        search_config,
    )
    from .teacher import check_checkpoint_dir, load_bert_classifier

    try:
        bits = [_bits(b) for b in args.bits.split(",") if b.strip()]
    except ValueError:
        raise ValueError(
            f"--bits takes 8, 4, 2 or ternary, comma separated, not {args.bits!r}"
        ) from None
    options = parse_options([p for p in args.patterns.split(",") if p.strip()], bits)
    if args.batches < 1 or args.batch_size < 1:
        raise ValueError("--batches and --batch-size must be positive")
    teacher_dir = check_checkpoint_dir(args.teacher)
    glue = infer_task(args.data, args.task)
    train = load_split(args.data, "train", glue)[: args.batches * args.batch_size * 8]
    encoded = encode(train, load_tokenizer(teacher_dir), args.max_length)
    chunks = list(batches(encoded, args.batch_size, shuffle=True, seed=args.seed))[: args.batches]
    torch.manual_seed(args.seed)
    model = load_bert_classifier(teacher_dir, glue.num_labels)
    linears = encoder_linears(model)
    shapes = {
        n: (lin.in_features, lin.out_features, lin.bias is not None) for n, lin in linears.items()
    }
    dense = sum(4 * (i * o + (o if b else 0)) for i, o, b in shapes.values())
    budget = args.max_bytes if args.max_bytes is not None else int(dense / args.ratio)
    sens = layer_sensitivities(model, chunks, options, measure=args.measure)
    chosen, moves = greedy_search(shapes, options, sens, budget)
    cfg = search_config(chosen)
    total = sum(o.nbytes(*shapes[n]) for n, o in chosen.items())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(cfg.to_json() + "\n")
    report = {
        "teacher": str(teacher_dir),
        "measure": args.measure,
        "batches": len(chunks),
        "batch_size": args.batch_size,
        "options": [o.key for o in options],
        "dense_encoder_linear_bytes": dense,
        "budget_bytes": budget,
        "encoder_linear_bytes": total,
        "encoder_linear_ratio": dense / total,
        "chosen": {n: o.key for n, o in chosen.items()},
        "sensitivities": sens,
        "bytes": {n: {o.key: o.nbytes(*shapes[n]) for o in options} for n in shapes},
        "moves": moves,
    }
    report_path = args.report or args.out.with_suffix(".search.json")
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    counts: dict[str, int] = {}
    for o in chosen.values():
        counts[o.key] = counts.get(o.key, 0) + 1
    print(
        json.dumps(
            {
                "config": str(args.out),
                "report": str(report_path),
                "budget_bytes": budget,
                "encoder_linear_bytes": total,
                "encoder_linear_ratio": dense / total,
                "chosen": counts,
            }
        )
    )
    return 0
