"""Classify sentences on an accelerator backend (NumPy only: runs on the board).

``--backend reference``: the spec's functional model; ``sim``: the generated RTL in Verilator
(built once per configuration under ``build/simboard/``); ``pynq``: the PYNQ-Z2 with the
overlay (``--overlay``). Prints each sentence's label and probabilities, whether its logits
equal the golden model's exactly, and the engine cycles per TT layer (from the hardware's
counters; modelled on the reference backend).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "classify sentences with an artifact on the reference, sim (RTL) or pynq backend"


def add_device_arguments(parser: argparse.ArgumentParser, *, artifact: bool = True) -> None:
    """Options shared by ``infer`` and ``evaluate`` (``artifact``: add ``--artifact`` too)."""
    if artifact:
        parser.add_argument(
            "--artifact", type=Path, default=None,
            help="artifact to run (default: the bundled INT4 TT MiniLM-L6 SST-2 model)",
        )  # fmt: skip
    parser.add_argument(
        "--backend", choices=("reference", "sim", "pynq"), default="reference",
        help="reference: spec functional model; sim: the RTL in Verilator; pynq: the board",
    )  # fmt: skip
    parser.add_argument(
        "--config", type=Path, default=None,
        help="AccelConfig JSON to model (reference) or build (sim); default: the sim demo board "
        "for sim, the default configuration for reference",
    )  # fmt: skip
    parser.add_argument("--overlay", type=Path, default=None, help="pynq: the overlay's .bit")
    parser.add_argument(
        "--batch-size", type=int, default=16, help="sentences per batch (default: 16)"
    )
    parser.add_argument(
        "--stall", type=float, default=0.0,
        help="sim: probability of an idle input cycle and of output back-pressure (default 0)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="sim: seed of --stall's randomness")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds one program may take (default 120)"
    )
    parser.add_argument(
        "--no-check", action="store_true", help="skip the comparison with the golden model"
    )
    parser.add_argument("--no-prefetch", action="store_true", help="one setup program per layer")


def open_classifier(args: argparse.Namespace, texts=()):
    """The :class:`~ttaccel.host.classify.Classifier` the options describe: the artifact
    loaded and validated and ``texts`` tokenized (a bad one is refused) before the device is
    opened, then the artifact checked against the hardware before any transfer."""
    from .demo import BUNDLED_ARTIFACT
    from .host.backends import load_config, open_device
    from .host.classify import Classifier
    from .host.driver import Accelerator
    from .host.tokenizer import tokenizer_from_artifact
    from .spec.artifact import load_artifact

    artifact = load_artifact(args.artifact or BUNDLED_ARTIFACT)
    tokenizer = tokenizer_from_artifact(artifact)
    for i, text in enumerate(texts):
        try:
            tokenizer.encode(text)
        except ValueError as error:
            raise ValueError(f"text {i} ({text!r}): {error}") from None
    config = None if args.backend == "pynq" else load_config(args.config, args.backend)
    device = open_device(
        args.backend, config=config, overlay=args.overlay, seed=args.seed,
        input_idle=args.stall, output_stall=args.stall,
    )  # fmt: skip
    accelerator = Accelerator(device, timeout_s=args.timeout)
    return Classifier(
        artifact, accelerator, batch_size=args.batch_size, check=not args.no_check,
        prefetch=not args.no_prefetch,
    )  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="+", help="sentences to classify")
    add_device_arguments(parser)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")


def print_predictions(predictions, max_length: int) -> None:
    for p in predictions:
        probs = ", ".join(f"{v:.3f}" for v in p.probabilities)
        exact = "" if p.exact is None else ("  logits = golden" if p.exact else "  LOGITS DIFFER")
        cut = f"  (truncated to {max_length} tokens)" if p.truncated else ""
        print(f"{p.label_name:>9} [{probs}]{exact}  {p.text}{cut}")


def run(args: argparse.Namespace) -> int:
    import sys

    classifier = open_classifier(args, args.text)
    config = classifier.accelerator.config
    print(f"{args.backend} backend: {config.summary()}")
    predictions = classifier.classify(args.text)
    max_length = classifier.tokenizer.max_length
    for p in predictions:
        if p.truncated:
            print(f"warning: {p.text[:40]!r}... is longer than {max_length} tokens and was "
                  "truncated", file=sys.stderr)  # fmt: skip
    print_predictions(predictions, max_length)
    summary = classifier.report.summary(config.lanes, config.clock_mhz)
    print(f"engine cycles per sentence, per TT layer ({summary['cycles_source']}):")
    for layer, cycles in summary["cycles_per_layer_per_sentence"].items():
        print(f"  {layer:<40} {cycles:>10,.0f}")
    projected = summary["projected_ms_per_sentence"]
    print(
        f"total {summary['cycles_per_sentence']:,.0f} cycles/sentence, utilization "
        f"{summary['engine_utilization']:.1%}; at {config.clock_mhz:g} MHz: engine "
        f"{projected['engine']:.2f} ms + host {projected['host_measured_here']:.2f} ms "
        f"(measured on this machine) per sentence"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(
            {"predictions": [p.__dict__ for p in predictions], "report": summary}, indent=2
        ) + "\n")  # fmt: skip
    return 0
