"""Where the time of one BERT inference goes: host steps measured here next to engine cycles.

Runs the bundled artifact through :class:`ttaccel.host.classify.Classifier` for one sentence
and for a batch of SST-2 dev sentences and times every host step of the pipeline
(:class:`ttaccel.host.bert.StepTimer`: embedding, quantize, tile + pack, unpack, dequantize,
attention, softmax, LayerNorm, GELU, residual adds, the dense pooler/classifier, and the
compiler), next to the engine's cycles at the configured clock (``BUSY_CYCLES``: the RTL's
counter on ``--backend sim``, the cycle model's prediction on ``reference``). The host figures
are this x86 machine's, single-threaded BLAS; on the board's 650 MHz Cortex-A9 they would be
several times larger. ``device`` (the wall time of the runs themselves) is the backend's cost
(simulation or functional model), not a board figure, and is left out of the host total.

Usage: ``python bench/bench_host_pipeline.py [--backend sim] [--batch 16] [--repeats 3]``;
writes the ``host-pipeline`` section of docs/results.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_doc import write_section

from ttaccel.demo import BUNDLED_ARTIFACT
from ttaccel.host.backends import load_config, open_device
from ttaccel.host.classify import Classifier, read_dev_set
from ttaccel.host.driver import Accelerator
from ttaccel.spec.artifact import load_artifact

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "SST-2"
STEPS = (
    ("embedding", "embedding (TT word embedding, positions, LayerNorm)"),
    ("quantize", "quantize (float -> int8 codes)"),
    ("pack", "tile + pack (token blocks -> stream beats)"),
    ("compile", "compile (programs; cached per block count)"),
    ("unpack", "unpack (beats -> int8 codes)"),
    ("dequantize", "dequantize"),
    ("attention", "attention (scores, context)"),
    ("softmax", "softmax"),
    ("layernorm", "LayerNorm"),
    ("gelu", "GELU"),
    ("residual", "residual adds"),
    ("dense", "pooler + classifier (dense)"),
)


def measure(classifier: Classifier, sentences: list[str], repeats: int) -> dict:
    """Median per-step seconds over ``repeats`` runs of ``sentences`` as one batch, and the
    engine cycles of one run."""
    runs = []
    for _ in range(repeats):
        classifier.report = type(classifier.report)(classifier.report.backend)
        classifier.model.linears._cache.clear()  # every repeat compiles, as a new batch size does
        classifier.classify(sentences)
        seconds = dict(classifier.report.host_seconds)
        inner = sum(seconds.get(k, 0.0) for k in ("device", "pack", "unpack"))
        seconds["compile"] = seconds.get("tt_linear", 0.0) - inner
        runs.append(seconds)
    median = {k: float(np.median([r.get(k, 0.0) for r in runs])) for k, _ in STEPS}
    return {"seconds": median, "cycles": classifier.report.busy_cycles}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("reference", "sim"), default="reference")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    artifact = load_artifact(BUNDLED_ARTIFACT)
    config = load_config(None, args.backend)
    device = open_device(args.backend, config=config)
    classifier = Classifier(artifact, Accelerator(device, timeout_s=600), check=False)
    sentences, _ = read_dev_set(DATA, args.batch)
    one = measure(classifier, sentences[:1], args.repeats)
    batch = measure(classifier, sentences, args.repeats)
    clock = config.clock_mhz
    layers = int(artifact.model_config["num_hidden_layers"])
    source = "RTL counter" if args.backend == "sim" else "cycle model"
    lines = [
        "## Where the time goes: host pipeline vs engine (issue 8)",
        "",
        f"Bundled INT4 TT MiniLM-L6 artifact, `{args.backend}` backend, {config.summary()}. "
        f"Host steps: wall time on this machine ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, shared; single-threaded BLAS), median of {args.repeats}; "
        f"engine: `BUSY_CYCLES` ({source}) at {clock:g} MHz. Per sentence for one sentence, per "
        f"batch for {args.batch} dev sentences (one batch: every layer's cores streamed once). "
        f"Command: `{shlex.join(['python', 'bench/bench_host_pipeline.py', *sys.argv[1:]])}`.",
        "",
        "| step | 1 sentence, ms | per encoder layer, ms | "
        f"batch of {args.batch}, ms | per encoder layer, ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, label in STEPS:
        a, b = 1e3 * one["seconds"][key], 1e3 * batch["seconds"][key]
        lines.append(f"| {label} | {a:.2f} | {a / layers:.2f} | {b:.1f} | {b / layers:.2f} |")
    host = [sum(1e3 * r["seconds"][k] for k, _ in STEPS) for r in (one, batch)]
    total = sum(batch["seconds"].values())
    engine = [1e3 * r["cycles"] / (clock * 1e6) for r in (one, batch)]
    lines += [
        f"| **host total** | **{host[0]:.1f}** | {host[0] / layers:.2f} | **{host[1]:.1f}** | "
        f"{host[1] / layers:.2f} |",
        f"| **engine at {clock:g} MHz** ({one['cycles']:,} / {batch['cycles']:,} cycles) | "
        f"**{engine[0]:.2f}** | {engine[0] / layers:.2f} | **{engine[1]:.2f}** | "
        f"{engine[1] / layers:.2f} |",
        "",
        f"Host / engine: {host[0] / engine[0]:.0f}x for one sentence, {host[1] / engine[1]:.0f}x "
        f"for the batch. The engine's share includes streaming every layer's cores once per "
        f"batch.",
        "",
        "Largest host steps of the batch (what to move off the host, or into hardware, first): "
        + ", ".join(
            f"{label.split(' (')[0]} {100 * batch['seconds'][key] / total:.0f}%"
            for key, label in sorted(STEPS, key=lambda kv: -batch["seconds"][kv[0]])[:4]
        )
        + ".",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("host-pipeline", text)


if __name__ == "__main__":
    main()
