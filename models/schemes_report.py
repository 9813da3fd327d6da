"""Every compression scheme on one chart: SST-2 accuracy against the artifact's bytes.

Writes the ``schemes`` section of docs/results.md (a table) and ``docs/schemes-accuracy.png``
from a manifest of measured runs (JSON list), one entry per model::

    [{"name": "teacher", "scheme": "dense", "result": "docs/runs/.../teacher.result.json"},
     {"name": "TT r64 INT4", "scheme": "tt", "result": ".../r64e64-4.result.json",
      "eval": ".../r64e64-4-eval.json", "export": ".../r64e64-4-export.json",
      "command": "tools/train_students.sh (r64e64-4)"}]

``result``: the training run's ``result.json`` (its ``command``, dev metrics, sizes); ``eval``:
``ttaccel evaluate --json`` of the exported artifact (``torch`` and ``golden`` metrics);
``export``: ``ttaccel export``'s output (``file_bytes``). Every figure is read from those files.
A model is plotted at its artifact's bytes and its golden-model accuracy (the integer model that
runs on the engine); the teacher is a line and a point at its fp32 parameter bytes. Usage::

    python -m ttaccel.models.schemes_report MANIFEST [--plot docs/schemes-accuracy.png]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .report import _acc, _load, write_results_section

__all__ = ["main", "render"]

MARKERS = {"tt": "o", "nm": "s", "xtc": "^", "tucker": "D"}


def _row(run: dict) -> dict | None:
    result, ev, ex = _load(run.get("result")), _load(run.get("eval")), _load(run.get("export"))
    if result is None and ev is None:
        return None
    torch_m = (ev or {}).get("torch") or (result or {}).get("dev")
    golden_m = (ev or {}).get("golden")
    dense = ((result or {}).get("sizes") or (ev or {}).get("sizes") or {}).get("dense_bytes")
    return {
        "name": run["name"], "scheme": run["scheme"], "torch": torch_m, "golden": golden_m,
        "bytes": ex["file_bytes"] if ex else None, "dense_bytes": dense,
        "command": (result or {}).get("command") or run.get("command"),
    }  # fmt: skip


def render(runs: list[dict]) -> tuple[str, list[dict]]:
    """Markdown of the table (and its commands) and the rows read from the records."""
    rows, lines = (
        [],
        [
            "| scheme | model | SST-2 dev acc, torch | acc, artifact via golden model | artifact "
            "bytes | vs dense fp32 parameters |",
            "|---|---|---:|---:|---:|---:|",
        ],
    )
    for run in runs:
        row = _row(run)
        if row is None:
            lines.append(f"| {run['scheme']} | {run['name']} | (not run: no record) |||| ")
            continue
        rows.append(row)
        dense = row["dense_bytes"]
        size = f"{row['bytes']:,}" if row["bytes"] else "-"
        ratio = f"{dense / row['bytes']:.1f}x" if row["bytes"] and dense else "-"
        lines.append(f"| {row['scheme']} | {row['name']} | {_acc(row['torch'])} | "
                     f"{_acc(row['golden'])} | {size} | {ratio} |")  # fmt: skip
    commands = [f"- {r['name']}: `{r['command']}`" for r in rows if r["command"]]
    return "\n".join(lines) + "\n\nCommands:\n\n" + "\n".join(commands), rows


def plot(rows: list[dict], path: Path) -> None:
    """Golden-model accuracy against artifact bytes (log), one marker per scheme."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.4))
    for row in rows:
        if row["scheme"] == "dense":
            acc = row["torch"]["accuracy"]
            ax.axhline(acc, color="gray", lw=0.8, ls=":", label=f"{row['name']} ({acc:.2f})")
            if row["dense_bytes"]:
                ax.scatter(row["dense_bytes"], acc, c="gray", marker="*", s=90)
            continue
        if row["golden"] is None or row["bytes"] is None:
            continue
        ax.scatter(row["bytes"], row["golden"]["accuracy"], s=55,
                   marker=MARKERS.get(row["scheme"], "x"),
                   label=f"{row['scheme']}: {row['name']}")  # fmt: skip
    ax.axvline(4e6, color="red", lw=0.8, ls="--", label="4 MB")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # decades only: legible
    ax.set_xlabel("artifact bytes (integer weights packed at their bit width)")
    ax.set_ylabel("SST-2 dev accuracy, golden model (%)")
    ax.legend(fontsize=6.5, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("manifest", type=Path, help="runs manifest JSON (see module docstring)")
    parser.add_argument("--plot", type=Path, default=Path("docs/schemes-accuracy.png"))
    parser.add_argument("--intro", default="", help="paragraph placed above the table")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    text, rows = render(json.loads(args.manifest.read_text()))
    plot(rows, args.plot)
    body = (args.intro + "\n\n" if args.intro else "") + text
    body += f"\n\n![accuracy against artifact bytes, every scheme]({args.plot.name})"
    print(body)
    if not args.no_write:
        write_results_section("schemes", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
