"""Export a quantized TT student to a ttaccel artifact (one safetensors file).

The artifact (``docs/artifact.md``) holds the integer TT cores packed at their bit width, their
requantization constants (from the learned scales, computed by ``ttaccel.spec.ptq``), int32
biases, the float tensors the accelerator does not run (LayerNorm, pooler, classifier,
position/token-type embeddings, any layer left dense), the vocabulary and the model
description. Prints the file size against the dense fp32 teacher.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "export a quantized student to the integer artifact the accelerator runs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--student",
        type=Path,
        required=True,
        help="student folder written by compress (OUT/student); must be quantized",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="artifact file to write (e.g. artifacts/sst2-int4.safetensors)",
    )


def run(args: argparse.Namespace) -> int:
    import json

    from .export import export_student

    print(json.dumps(export_student(args.student, args.out), indent=2))
    return 0
