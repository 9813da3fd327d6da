"""Write the ``host-bert`` section of docs/results.md from ``ttaccel evaluate --json`` files.

Each argument is ``LABEL=PATH`` of a JSON file that ``ttaccel evaluate --backend ... --json
PATH`` wrote; the command that reproduces the row is taken from the file's own ``command``
entry when present, else rebuilt from its fields. Every figure in the table is read from those
files (nothing is typed in by hand).

    python bench/report_host_evals.py "sim, 64 dev sentences=build/evals/sim-64.json" ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_doc import write_section


def row(label: str, report: dict) -> str:
    ms = report["projected_ms_per_sentence"]
    util = report["engine_utilization"]
    return (
        f"| {label} | {report['sentences']} | {report['accuracy']:.2f} | "
        f"{report['logits_exactly_equal_spec']} | "
        f"{'yes' if report['macs_issued_equal_compiler_count'] else 'NO'} "
        f"({report['programs']} programs) | {report['cycles_per_sentence']:,.0f} "
        f"({report['cycles_source']}) | {util:.1%} | {ms['engine']:.2f} + "
        f"{ms['host_measured_here']:.1f} | {report['sentences_per_second']:.2f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=PATH")
    parser.add_argument("--note", default="", help="a paragraph under the table")
    args = parser.parse_args()
    lines = [
        "## BERT on the accelerator through the host driver (issue 8)",
        "",
        "The bundled INT4 TT MiniLM-L6 artifact, SST-2 dev sentences in order, batches of 16; "
        "every TT linear runs on the backend, the rest on the host (`spec/inference.py`'s own "
        "code). *Exact* counts the sentences whose float32 logits equal "
        "`spec.inference.BertInference` on the same batch (`numpy.array_equal`); *MACs* says "
        "whether every program's `MACS_ISSUED` counter equals the compiler's count. Projected "
        "latency per sentence: engine cycles at the configured clock + the host's own steps as "
        "measured on this x86 machine (the board's ARM is slower). Sentences/s is this "
        "machine's wall time for the backend (simulation for `sim`), not a board figure.",
        "",
        "| run | sentences | accuracy % | exact logits | MACs = compiler | cycles / sentence "
        "| engine utilization | projected ms (engine + host) | sentences/s here |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    commands = []
    for item in args.runs:
        label, _, path = item.rpartition("=")
        report = json.loads(Path(path).read_text())
        lines.append(row(label, report))
        command = report.get("command") or (  # files written before evaluate recorded it
            f"ttaccel evaluate --backend {report['backend']} --data {report['data']} "
            f"--limit {report['sentences']} --json {path}"
        )
        commands.append(f"- {label}: `{command}`")
    lines += ["", "Commands:", "", *commands]
    if args.note:
        lines += ["", args.note]
    text = "\n".join(lines)
    print(text)
    write_section("host-bert", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
