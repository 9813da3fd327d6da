"""Run the bundled INT4 TT-compressed MiniLM-L6 SST-2 classifier through the integer golden model.

The bundled artifact (``ttaccel/data/``, made by the commands in ``docs/results.md``) is a
MiniLM-L6 student whose encoder linears and word embedding are 4-bit TT-matrices, trained here
by layer-by-layer distillation and QAT from the dense fine-tuned teacher. The demo:

1. loads and validates the artifact and prints what it holds (sizes against the dense fp32
   model, TT shapes, the training run's dev accuracy);
2. classifies a few sentences (``--sentence``, or built-in examples) with the spec's bit-exact
   integer golden model (``ttaccel.spec.inference``: TT layers in integer arithmetic,
   LayerNorm / softmax / GELU in float32);
3. evaluates the SST-2 dev set (``--data``; default ``../shared/data/SST-2`` when it exists);
4. estimates the accelerator's cycles for the TT linears of one sentence with the spec's cycle
   model (which the 16x16 RTL matched within 0.24%): a modelled figure, not a board
   measurement.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

HELP = "classify SST-2 sentences with the bundled INT4 TT artifact (integer golden model)"

BUNDLED_ARTIFACT = Path(__file__).parent / "data" / "sst2-minilm-tt-int4.safetensors"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "SST-2"
EXAMPLES = (
    "a gorgeous , witty , seductive movie .",
    "the plot is nothing but boilerplate clichés from start to finish .",
    "it 's a charming and often affecting journey .",
    "an ugly , pointless , stupid movie .",
)
LABELS = {0: "negative", 1: "positive"}
TARGET_CLOCK_HZ = 100e6


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--artifact", type=Path, default=BUNDLED_ARTIFACT,
        help="artifact to run (default: the bundled INT4 TT MiniLM-L6 SST-2 model)",
    )  # fmt: skip
    parser.add_argument(
        "--data", type=Path, default=None,
        help="GLUE-format SST-2 folder whose dev.tsv is evaluated (default: "
        "../shared/data/SST-2 next to the repository when present; 'none' skips)",
    )  # fmt: skip
    parser.add_argument(
        "--limit", type=int, default=None, help="evaluate only the first N dev sentences"
    )
    parser.add_argument(
        "--sentence", action="append", default=None,
        help="a sentence to classify (repeatable; default: four built-in examples)",
    )  # fmt: skip


def wordpiece_tokenizer(artifact):
    """The host's BERT WordPiece tokenizer (:mod:`ttaccel.host.tokenizer`, standard library
    only) over the artifact's vocabulary and recorded settings, truncating to the artifact's
    ``max_length`` (the same ids as the Hugging Face tokenizer the student was trained with)."""
    from ttaccel.host.tokenizer import tokenizer_from_artifact

    return tokenizer_from_artifact(artifact)


def _describe(artifact, path: Path) -> None:
    cfg = artifact.model_config
    training = cfg.get("training", {})
    dense = 4 * _dense_parameters(cfg)
    size = path.stat().st_size
    print(f"artifact: {path} ({size:,} bytes; the dense fp32 model is {dense:,} bytes: "
          f"{dense / size:.1f}x smaller)")  # fmt: skip
    linears = artifact.tt_linears
    if linears:
        layer = next(iter(linears.values()))
        print(f"  {len(linears)} TT linears at {layer.weight_format.name}, "
              f"{len(artifact.tt_embeddings)} TT embedding(s); e.g. ranks "
              f"{[c.shape[0] for c in layer.cores][1:]} for a {_dims(layer)} linear")  # fmt: skip
    dev = training.get("dev", {})
    if "accuracy" in dev:
        print(f"  trained with --method {training.get('method')}; torch dev accuracy at the "
              f"end of training {dev['accuracy']:.2f}%")  # fmt: skip


def _dims(layer) -> str:
    """``in x out`` of a TT linear from its cores ``(r, m, n, r')``."""
    return (
        f"{math.prod(c.shape[1] for c in layer.cores)}x{math.prod(c.shape[2] for c in layer.cores)}"
    )


def _dense_parameters(cfg: dict) -> int:
    """Parameters of the dense BERT classifier the artifact's description names."""
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    embeddings = (cfg["vocab_size"] + cfg["max_position_embeddings"] + cfg["type_vocab_size"]) * h
    per_layer = 4 * (h * h + h) + 2 * h * inter + inter + h + 4 * h  # linears, biases, 2 LNs
    head = h * h + h + h * cfg["num_labels"] + cfg["num_labels"]  # pooler and classifier
    return embeddings + 2 * h + layers * per_layer + head


def _classify(inference, tokenizer, sentences) -> None:
    import numpy as np

    encodings = [tokenizer.encode(s) for s in sentences]
    logits = inference.logits([e.ids for e in encodings], [e.type_ids for e in encodings])
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    for sentence, p, e in zip(sentences, probs, encodings, strict=True):
        label = int(p.argmax())
        print(f"  {LABELS.get(label, label):>8} {100 * p[label]:5.1f}%  {sentence}")
        if e.truncated:
            print(f"           (only its first {len(e.ids)} tokens were read: max_length)")


def _evaluate(inference, tokenizer, data: Path, limit: int | None) -> float:
    import csv

    import numpy as np
    from tqdm import tqdm

    path = data / "dev.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"--data {data}: expected a GLUE folder with dev.tsv")
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or not {"sentence", "label"} <= set(rows[0]):
        raise ValueError(f"{path}: expected the SST-2 columns sentence and label")
    rows = rows[:limit] if limit is not None else rows
    correct, batch = 0, 32
    start = time.perf_counter()
    for i in tqdm(range(0, len(rows), batch), desc="SST-2 dev (golden model)", unit="batch"):
        chunk = rows[i : i + batch]
        encodings = [tokenizer.encode(r["sentence"]) for r in chunk]
        logits = inference.logits([e.ids for e in encodings], [e.type_ids for e in encodings])
        correct += int((logits.argmax(-1) == np.array([int(r["label"]) for r in chunk])).sum())
    seconds = time.perf_counter() - start
    accuracy = 100 * correct / len(rows)
    print(f"  {correct}/{len(rows)} correct: {accuracy:.2f}% ({seconds:.1f} s on this CPU, "
          f"NumPy golden model)")  # fmt: skip
    return accuracy


def _accelerator_estimate(artifact, tokens: int) -> None:
    from ttaccel.spec.accel_config import AccelConfig
    from ttaccel.spec.compiler import LayerDoesNotFit, compile_tt_linear
    from ttaccel.spec.cycle_model import estimate_layer

    config = AccelConfig()
    total, cache = 0, {}
    for name, layer in artifact.tt_linears.items():
        key = (tuple(c.shape for c in layer.cores), layer.plan)
        if key not in cache:
            try:
                report, _ = estimate_layer(compile_tt_linear(layer, tokens, config))
            except LayerDoesNotFit as error:
                print(f"  {name} does not fit the default configuration: {error}")
                return
            cache[key] = report.cycles
        total += cache[key]
    print(f"  TT linears of one {tokens}-token sentence on the default {config.rows}x"
          f"{config.cols} array: {total:,} cycles = {1e6 * total / TARGET_CLOCK_HZ:.0f} us at "
          f"the 100 MHz target clock")  # fmt: skip
    print("  (spec/cycle_model.py, within 0.24% of the RTL simulation; not a board measurement; "
          "the current ECP5 proxy Fmax is below 100 MHz, see docs/hardware.md)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from ttaccel.spec.artifact import load_artifact
    from ttaccel.spec.inference import BertInference

    if not args.artifact.is_file():
        raise FileNotFoundError(f"--artifact {args.artifact}: no such file")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be a positive integer, not {args.limit}")
    artifact = load_artifact(args.artifact)
    _describe(artifact, args.artifact)
    inference = BertInference(artifact)
    tokenizer = wordpiece_tokenizer(artifact)
    print("\nclassified by the integer golden model:")
    _classify(inference, tokenizer, args.sentence or list(EXAMPLES))
    data = args.data if args.data is not None else DEFAULT_DATA
    if str(data) != "none":
        if args.data is None and not (data / "dev.tsv").is_file():
            print(f"\n(no SST-2 dev set at {data}: pass --data DIR to evaluate one)")
        else:
            print(f"\nSST-2 dev set ({data / 'dev.tsv'}):")
            _evaluate(inference, tokenizer, data, args.limit)
    print("\naccelerator estimate:")
    _accelerator_estimate(artifact, int(artifact.model_config.get("max_length") or 64))
    return 0
