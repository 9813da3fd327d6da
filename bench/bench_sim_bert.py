"""BERT on the simulated board: sentences per second and wall time per encoder layer.

Runs the bundled INT4 TT MiniLM-L6 artifact over the first ``--sentences`` SST-2 dev sentences
(batches of ``--batch``) through :class:`ttaccel.host.classify.Classifier` on the ``sim``
backend (the generated RTL in Verilator) for each configuration (the demo's 8 x 8 board and
the default ``AccelConfig()``; ``--model DIR`` reuses a board built in ``build/simboard/``).
Every sentence's logits are checked against the golden model on the same batch. Reports wall
and CPU seconds, sentences per second, simulated cycles per wall second (the harness's cycle
count), engine ``BUSY_CYCLES`` per sentence, and wall time per encoder layer (the device runs
of the six TT linears of one layer, per batch); adds the sentences-per-second rows to the
``sim-board`` section of docs/results.md (:func:`bench_sim_board.add_sentences_per_second`)
and writes its own table to the ``sim-bert`` section.

    python bench/bench_sim_bert.py [--configs demo default] [--sentences 32] [--batch 16]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sim_board import add_sentences_per_second
from results_doc import write_section

from ttaccel.demo import BUNDLED_ARTIFACT, DEFAULT_DATA
from ttaccel.host.backends import SIM_DEMO_CONFIG
from ttaccel.host.classify import Classifier, read_dev_set
from ttaccel.host.driver import Accelerator
from ttaccel.host.sim import SimDevice
from ttaccel.host.sim_build import build_simboard
from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.artifact import load_artifact

CONFIGS = {"demo": SIM_DEMO_CONFIG, "default": AccelConfig()}


def measure(name: str, config: AccelConfig, sentences, batch: int) -> dict:
    library = build_simboard(config).library
    artifact = load_artifact(BUNDLED_ARTIFACT)
    with SimDevice(library) as device:
        classifier = Classifier(artifact, Accelerator(device, timeout_s=3600), batch_size=batch)
        wall, cpu = time.perf_counter(), time.process_time()
        predictions = classifier.classify(sentences)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        cycles = device.cycles
    report = classifier.report
    layers = int(artifact.model_config["num_hidden_layers"])
    batches = -(-len(sentences) // batch)
    return {
        "name": name,
        "config": config.summary(),
        "sentences": len(sentences),
        "exact": sum(bool(p.exact) for p in predictions),
        "wall_s": wall,
        "cpu_s": cpu,
        "sentences_per_second": len(sentences) / wall,
        "cycles_per_wall_second": cycles / wall,
        "busy_cycles_per_sentence": report.busy_cycles / len(sentences),
        "device_wall_per_layer_per_batch_s": report.device_wall_s / layers / batches,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=["demo"])
    parser.add_argument("--sentences", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sentences, _ = read_dev_set(DEFAULT_DATA, args.sentences)
    command = shlex.join(["python", "bench/bench_sim_bert.py", *sys.argv[1:]])
    rows = [measure(n, CONFIGS[n], sentences, args.batch) for n in args.configs]
    lines = [
        "## BERT on the simulated board (issue 8)",
        "",
        f"Bundled INT4 TT MiniLM-L6 artifact, the first {args.sentences} SST-2 dev sentences in "
        f"batches of {args.batch}, `sim` backend (Verilator RTL + C++ harness), logits checked "
        f"against the golden model. Shared 2-core machine: wall figures depend on its load; "
        f"CPU seconds are this process's. Command: `{command}`.",
        "",
        "| board | exact logits | wall s | CPU s | sentences/s | simulated cycles/s | "
        "BUSY_CYCLES / sentence | wall per encoder layer per batch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']}: {r['config']} | {r['exact']}/{r['sentences']} | {r['wall_s']:.0f} | "
            f"{r['cpu_s']:.0f} | {r['sentences_per_second']:.3f} | "
            f"{r['cycles_per_wall_second'] / 1e6:.3f} M | {r['busy_cycles_per_sentence']:,.0f} | "
            f"{r['device_wall_per_layer_per_batch_s']:.1f} s |"
        )
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("sim-bert", text)
        for r in rows:
            add_sentences_per_second(
                f"BERT, {r['name']} board", r["sentences_per_second"], command,
                f"bundled artifact, {r['sentences']} SST-2 dev sentences, batch {args.batch}",
            )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
