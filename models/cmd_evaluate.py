"""Evaluate a trained TT student on the dev set, in torch and through the integer golden model.

Reports (i) the torch model's dev metrics (fake quantization for a quantized student) and, for
a quantized student, (ii) the metrics of its artifact run by the spec's bit-exact integer golden
model (``ttaccel.spec.inference``; TT layers in integers, LayerNorm/softmax/GELU in float32),
with the share of examples on which the two predict the same label. ``--int-sim`` adds the torch
integer simulation of the TT layers. The artifact is exported in memory unless ``--artifact``
names an exported file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .cmd_train_teacher import use_threads

HELP = "evaluate a student on the dev set: torch fake-quant and the integer golden model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--student",
        type=Path,
        required=True,
        help="student folder written by compress (OUT/student)",
    )
    parser.add_argument("--data", type=Path, required=True, help="GLUE-format folder with dev.tsv")
    parser.add_argument(
        "--task", default=None, help="GLUE task name (default: the one the student was trained on)"
    )
    parser.add_argument(
        "--artifact",
        type=Path,
        default=None,
        help="run the golden model on this exported artifact instead of exporting in memory",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="evaluate only the first N dev examples (default: all)",
    )
    parser.add_argument(
        "--no-golden", action="store_true", help="skip the integer golden model (torch only)"
    )
    parser.add_argument(
        "--int-sim",
        action="store_true",
        help="also run the torch integer simulation of the TT layers",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write the results as JSON to PATH",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )


def run(args: argparse.Namespace) -> int:
    use_threads(args.threads)
    from .export import dumps, evaluate_student

    result = evaluate_student(
        args.student, args.data, task=args.task, artifact_path=args.artifact, limit=args.limit,
        golden=not args.no_golden, int_sim=args.int_sim,
    )  # fmt: skip
    text = dumps(result)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0
