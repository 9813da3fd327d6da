"""Run the bundled INT4 TT-compressed MiniLM-L6 SST-2 classifier on the accelerator.

The bundled artifact (``ttaccel/data/``, made by the commands in ``docs/results.md``) is a
MiniLM-L6 student whose encoder linears and word embedding are 4-bit TT-matrices, trained here
by layer-by-layer distillation and QAT from the dense fine-tuned teacher. The demo:

1. loads and validates the artifact and prints what it holds (sizes against the dense fp32
   model, TT shapes, the training run's dev accuracy);
2. builds the simulated board (``--backend sim``, the default): the generated RTL of the demo
   configuration (:data:`ttaccel.host.backends.SIM_DEMO_CONFIG`, an 8 x 8 array) in
   Verilator behind a compiled AXI harness, once, cached under ``build/simboard/``;
3. classifies a few sentences (``--sentence``, or built-in examples) and the first
   ``--sim-sentences`` SST-2 dev sentences through the host driver on that board: every TT
   linear runs on the RTL, everything else on the host; prints predictions, whether each
   sentence's logits equal the integer golden model's exactly, engine cycles from the
   hardware's counters, the latency projected at the configured clock with the host's share,
   and the configuration's resource estimate;
4. evaluates the whole SST-2 dev set (``--data``; default ``../shared/data/SST-2`` when it
   exists) through the ``reference`` backend (the spec's functional model behind the same
   driver), again checked against the golden model.

``--backend reference`` runs steps 3 and 4 on the functional model only (no Verilator build).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

HELP = "classify SST-2 sentences with the bundled INT4 TT artifact on the simulated board"

BUNDLED_ARTIFACT = Path(__file__).parent / "data" / "sst2-minilm-tt-int4.safetensors"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "SST-2"
EXAMPLES = (
    "a gorgeous , witty , seductive movie .",
    "the plot is nothing but boilerplate clichés from start to finish .",
    "it 's a charming and often affecting journey .",
    "an ugly , pointless , stupid movie .",
)


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
    parser.add_argument(
        "--backend", choices=("sim", "reference"), default="sim",
        help="sim: the RTL in Verilator (default); reference: the spec's functional model only",
    )  # fmt: skip
    parser.add_argument(
        "--sim-sentences", type=int, default=16,
        help="SST-2 dev sentences to run on the simulated board (default: 16)",
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


def _print_predictions(predictions) -> None:
    for p in predictions:
        mark = "" if p.exact is None else ("  = golden" if p.exact else "  != GOLDEN")
        print(f"  {p.label_name:>8} {100 * max(p.probabilities):5.1f}%{mark}  {p.text}")
        if p.truncated:
            print(f"           (only its first {p.tokens} tokens were read: max_length)")


def _print_report(report, config, what: str) -> None:
    summary = report.summary(config.lanes, config.clock_mhz)
    ms = summary["projected_ms_per_sentence"]
    print(f"  {what}: logits equal to the golden model's on {summary['logits_exactly_equal_spec']}"
          f" sentences; MACS_ISSUED = the compiler's count on all {summary['programs']} "
          f"programs: {summary['macs_issued_equal_compiler_count']}")  # fmt: skip
    print(f"  engine ({summary['cycles_source']}): {summary['cycles_per_sentence']:,.0f} cycles "
          f"per sentence, utilization {summary['engine_utilization']:.1%}")  # fmt: skip
    print(f"  projected at {config.clock_mhz:g} MHz: {ms['engine']:.2f} ms engine + "
          f"{ms['host_measured_here']:.1f} ms host (measured on this machine) = "
          f"{ms['total']:.1f} ms per sentence; {summary['sentences_per_second']:.2f} sentences/s "
          f"here")  # fmt: skip


def _dev_accuracy(classifier, sentences, labels, what: str) -> float:
    start = time.perf_counter()
    predictions = classifier.classify(sentences, show_progress=True)
    correct = sum(p.label == y for p, y in zip(predictions, labels, strict=True))
    accuracy = 100 * correct / len(sentences)
    print(f"  {correct}/{len(sentences)} correct: {accuracy:.2f}% ({what}, "
          f"{time.perf_counter() - start:.1f} s here)")  # fmt: skip
    return accuracy


def _resources(config) -> str:
    dsp, bram = config.dsp_estimate, config.bram36_estimate
    return (
        f"{config.dsp_total} DSP48E1 ({', '.join(f'{k} {v}' for k, v in dsp.items())}) and "
        f"{config.bram36_total} RAMB36 ({', '.join(f'{k} {v}' for k, v in bram.items())}) "
        f"of the xc7z020's 220 / 140 (AccelConfig's estimate; `make synth` measures)"
    )


def run(args: argparse.Namespace) -> int:
    from ttaccel.host.backends import SIM_DEMO_CONFIG, open_device
    from ttaccel.host.classify import Classifier, read_dev_set
    from ttaccel.host.driver import Accelerator
    from ttaccel.spec.accel_config import AccelConfig
    from ttaccel.spec.artifact import load_artifact

    if not args.artifact.is_file():
        raise FileNotFoundError(f"--artifact {args.artifact}: no such file")
    for name in ("limit", "sim_sentences"):
        value = getattr(args, name)
        if value is not None and value < (1 if name == "limit" else 0):
            raise ValueError(f"--{name.replace('_', '-')} must be positive, not {value}")
    artifact = load_artifact(args.artifact)
    _describe(artifact, args.artifact)
    data = args.data if args.data is not None else DEFAULT_DATA
    dev = None
    if str(data) != "none":
        if args.data is None and not (data / "dev.tsv").is_file():
            print(f"\n(no SST-2 dev set at {data}: pass --data DIR to evaluate one)")
        else:
            dev = read_dev_set(data, args.limit)
    sentences = args.sentence or list(EXAMPLES)

    config = SIM_DEMO_CONFIG if args.backend == "sim" else AccelConfig()
    where = "the simulated board (generated RTL in Verilator)" if args.backend == "sim" else (
        "the reference backend (the spec's functional model)")  # fmt: skip
    print(f"\n{where}: {config.summary()}")
    print(f"  resources: {_resources(config)}")
    start = time.perf_counter()
    device = open_device(args.backend, config=config)
    print(f"  ready in {time.perf_counter() - start:.1f} s")
    board = Classifier(artifact, Accelerator(device, timeout_s=600), batch_size=16)
    print("\nclassified on it (TT linears on the device, the rest on the host):")
    _print_predictions(board.classify(sentences))
    if dev is not None and args.sim_sentences:
        count = min(args.sim_sentences, len(dev[0]))
        print(f"\nthe first {count} SST-2 dev sentences on it:")
        _dev_accuracy(board, dev[0][:count], dev[1][:count], args.backend)
    _print_report(board.report, config, args.backend)

    if dev is not None:
        print(f"\nthe SST-2 dev set ({data / 'dev.tsv'}) on the reference backend:")
        reference = Classifier(
            artifact, Accelerator(open_device("reference", config=config)), batch_size=32
        )
        _dev_accuracy(reference, *dev, "reference backend")
        _print_report(reference.report, config, "reference")
    return 0
