"""Evaluate an artifact on a GLUE dev set on an accelerator backend, or a trained student.

Without ``--student`` (NumPy only: runs on the board): the artifact (default: the bundled one)
runs on ``--backend`` (reference, sim or pynq) over ``DATA/dev.tsv``; reported are the accuracy,
how many sentences' logits equal the golden model's (``ttaccel.spec.inference``) exactly,
sentences per second, engine cycles per sentence and utilization (the hardware's counters;
modelled on the reference backend), the latency projected at the configured clock with the
host's share, and the host's time per step. ``--json PATH`` also writes every sentence's logits,
so an independent reader of the artifact can be compared exactly.

With ``--student`` (needs the models extra: torch): the torch fake-quant student and its artifact
through the golden model, as before (see ``ttaccel.models.cmd_evaluate``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from .infer import add_device_arguments, open_classifier

HELP = "accuracy of an artifact on a backend (reference, sim, pynq), or of a student in torch"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="GLUE-format folder with dev.tsv")
    parser.add_argument(
        "--artifact", type=Path, default=None,
        help="artifact to run (default: the bundled one; with --student: exported in memory)",
    )  # fmt: skip
    parser.add_argument("--limit", type=int, default=None, help="only the first N dev examples")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write JSON here")
    add_device_arguments(parser, artifact=False)
    student = parser.add_argument_group("torch student (needs the models extra)")
    student.add_argument("--student", type=Path, default=None, help="student folder (OUT/student)")
    student.add_argument("--task", default=None, help="GLUE task (default: the student's)")
    student.add_argument("--no-golden", action="store_true", help="torch only")
    student.add_argument("--int-sim", action="store_true", help="also the torch integer simulation")
    student.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def run(args: argparse.Namespace) -> int:
    if args.student is not None:
        from .models import cmd_evaluate

        return cmd_evaluate.run(args)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be a positive integer, not {args.limit}")
    from .host.classify import read_dev_set

    sentences, labels = read_dev_set(args.data, args.limit)
    classifier = open_classifier(args)
    config = classifier.accelerator.config
    print(f"{args.backend} backend: {config.summary()}; {len(sentences)} sentences")
    predictions = classifier.classify(sentences, show_progress=True)
    correct = sum(p.label == y for p, y in zip(predictions, labels, strict=True))
    summary = classifier.report.summary(config.lanes, config.clock_mhz)
    result = {
        "command": "ttaccel " + shlex.join(sys.argv[1:]),
        "artifact": str(args.artifact or "bundled"),
        "data": str(args.data),
        "accuracy": 100.0 * correct / len(sentences),
        "correct": correct,
        "truncated": sum(p.truncated for p in predictions),
        **summary,
    }
    library = getattr(classifier.accelerator.device, "library", None)
    if library is not None:  # the sim backend: which build of the RTL (its cache key) ran
        result["simboard"] = str(library)
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        rows = [
            {"index": i, "label": y, "predicted": p.label, "logits": p.logits, "exact": p.exact}
            for i, (p, y) in enumerate(zip(predictions, labels, strict=True))
        ]
        args.json.write_text(json.dumps({**result, "per_sentence": rows}, indent=2) + "\n")
    return 0
