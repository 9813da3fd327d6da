"""How many of its bits a quantized artifact uses: code histograms per TT layer.

For every TT linear of an artifact: the histogram of its core codes (read from the artifact),
and, on a few dev sentences run through the golden model
(:class:`ttaccel.spec.inference.BertInference`), the histograms of its int8 input codes, of
every intermediate stage's int8 codes and of its int8 output codes. Nothing is re-computed:
the input and output codes are what ``BertInference`` hands its ``tt_linear`` hook and gets
back from :meth:`~ttaccel.spec.inference.BertInference.tt_linear_exact`, the stage codes what
:func:`~ttaccel.spec.inference.tt_contract_exact` reports through ``on_stage``. TT embeddings
contribute their core codes.

Each histogram is summarised by :func:`code_summary`: the share of zeros, of codes in
{-1, 0, 1}, of saturated codes (``qmin`` or ``qmax``), and the effective bits (the entropy of
the code distribution, in bits; ``log2`` of the number of codes for a uniform use of all of
them). ``ttaccel code-stats`` writes the picture (:func:`plot_code_stats`) and the JSON.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ttaccel.spec.artifact import Artifact
from ttaccel.spec.formats import INT8, NumberFormat

__all__ = [
    "HELP",
    "CodeHistogram",
    "add_arguments",
    "artifact_code_stats",
    "code_summary",
    "plot_code_stats",
    "run",
]

HELP = "code histograms (zeros, {-1,0,1}, saturation, entropy) of an artifact's TT layers"


class CodeHistogram:
    """Counts of every legal code of ``fmt`` (``counts[i]`` is code ``fmt.qmin + i``),
    accumulated over any number of :meth:`add` calls."""

    def __init__(self, fmt: NumberFormat) -> None:
        self.fmt = fmt
        self.counts = np.zeros(fmt.qmax - fmt.qmin + 1, dtype=np.int64)

    def add(self, codes: np.ndarray) -> None:
        """Count ``codes`` (any shape, integer values); ValueError for a code outside ``fmt``."""
        codes = np.asarray(codes).reshape(-1).astype(np.int64)
        if codes.size and (codes.min() < self.fmt.qmin or codes.max() > self.fmt.qmax):
            raise ValueError(
                f"codes must lie in [{self.fmt.qmin}, {self.fmt.qmax}] ({self.fmt.name}), "
                f"found [{codes.min()}, {codes.max()}]"
            )
        self.counts += np.bincount(codes - self.fmt.qmin, minlength=self.counts.size)

    def summary(self) -> dict:
        """:func:`code_summary` of the counts, plus ``qmin`` and the counts themselves."""
        return {
            **code_summary(self.counts, self.fmt),
            "qmin": self.fmt.qmin,
            "counts": self.counts.tolist(),
        }


def code_summary(counts: np.ndarray, fmt: NumberFormat) -> dict:
    """Statistics of a code histogram ``counts`` (``counts[i]`` = number of code
    ``fmt.qmin + i``, length ``qmax - qmin + 1``).

    Returns ``{"format", "total", "zero", "small", "saturated", "entropy_bits", "min", "max"}``:
    the shares (0..1) of code 0, of codes in {-1, 0, 1}, of codes at ``qmin`` or ``qmax``, the
    Shannon entropy of the distribution in bits, and the smallest and largest code seen (None
    when empty; shares are 0 then).
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.shape != (fmt.qmax - fmt.qmin + 1,):
        raise ValueError(
            f"counts must have {fmt.qmax - fmt.qmin + 1} entries for {fmt.name}, "
            f"not shape {counts.shape}"
        )
    total = int(counts.sum())
    codes = np.arange(fmt.qmin, fmt.qmax + 1)
    if total == 0:
        return {"format": fmt.name, "total": 0, "zero": 0.0, "small": 0.0, "saturated": 0.0,
                "entropy_bits": 0.0, "min": None, "max": None}  # fmt: skip
    p = counts / total
    nz = p[p > 0]
    used = codes[counts > 0]
    return {
        "format": fmt.name,
        "total": total,
        "zero": float(p[codes == 0].sum()),
        "small": float(p[np.abs(codes) <= 1].sum()),
        "saturated": float(p[(codes == fmt.qmin) | (codes == fmt.qmax)].sum()),
        "entropy_bits": float(-(nz * np.log2(nz)).sum()) + 0.0,
        "min": int(used.min()),
        "max": int(used.max()),
    }


def artifact_code_stats(artifact: Artifact, token_ids: Iterable[Sequence[int]]) -> dict:
    """Code statistics of every TT layer of ``artifact`` over the examples ``token_ids`` (each
    one list of ids, run one example at a time through the golden model).

    Returns ``{"examples", "tokens", "layers": {name: {"kind", "cores", "cores_each", "input",
    "stages", "output", "input_scale", "output_scale"}}, "all_cores"}`` where
    every histogram entry is a :meth:`CodeHistogram.summary`; ``stages`` lists the intermediate
    stages (all but the last, whose codes are ``output``); embeddings have only ``cores`` and
    ``cores_each``. ``all_cores`` pools the cores of every TT layer.
    """
    from ttaccel.spec.inference import BertInference, tt_contract_exact

    fmts = {layer.weight_format for layer in artifact.tt_linears.values()}
    fmts |= {table.weight_format for table in artifact.tt_embeddings.values()}
    pooled = {f.name: CodeHistogram(f) for f in fmts}
    layers: dict[str, dict] = {}
    acts: dict[str, dict] = {}
    for name, layer in artifact.tt_linears.items():
        merged = layer.merged_cores()
        acts[name] = {
            "input": CodeHistogram(INT8),
            "stages": [CodeHistogram(INT8) for _ in merged[:-1]],
            "output": CodeHistogram(INT8),
            "merged": merged,
        }
    for name, layer in [*artifact.tt_linears.items(), *artifact.tt_embeddings.items()]:
        hist = CodeHistogram(layer.weight_format)
        each = []
        for core in layer.cores:
            one = CodeHistogram(layer.weight_format)
            one.add(core)
            hist.add(core)
            pooled[layer.weight_format.name].add(core)
            each.append(one.summary())
        layers[name] = {
            "kind": "linear" if name in artifact.tt_linears else "embedding",
            "cores": hist.summary(),
            "cores_each": each,
        }

    def record(name: str, codes: np.ndarray) -> np.ndarray:
        entry = acts[name]
        layer = artifact.tt_linears[name]
        entry["input"].add(codes)
        out = tt_contract_exact(
            codes, entry["merged"], layer.stage_requants, layer.bias,
            on_stage=lambda k, c: entry["stages"][k].add(c),
        )  # fmt: skip
        entry["output"].add(out)
        return out

    inference = BertInference(artifact, tt_linear=record)
    examples = tokens = 0
    for ids in token_ids:
        inference.logits([list(ids)])
        examples += 1
        tokens += len(ids)
    for name, entry in acts.items():
        layer = artifact.tt_linears[name]
        layers[name].update(
            input=entry["input"].summary(),
            stages=[h.summary() for h in entry["stages"]],
            output=entry["output"].summary(),
            input_scale=layer.input_scale,
            output_scale=layer.output_scale,
        )
    return {
        "examples": examples,
        "tokens": tokens,
        "layers": layers,
        "all_cores": {k: h.summary() for k, h in pooled.items()},
    }


def _short(name: str) -> str:
    """``bert.encoder.layer.3.attention.output.dense`` -> ``L3 attention.output.dense``."""
    prefix = "bert.encoder.layer."
    if name.startswith(prefix):
        index, _, rest = name[len(prefix) :].partition(".")
        return f"L{index} {rest.replace('attention.self.', '')}"
    return name.replace("bert.embeddings.", "")


def plot_code_stats(stats: dict | Sequence[tuple[str, dict]], path: str | Path) -> Path:
    """Draw the per-layer histograms of :func:`artifact_code_stats` results to ``path`` (PNG).

    ``stats``: one result, or ``(label, result)`` pairs drawn side by side in each panel
    (e.g. two initialisations). One panel per TT linear (rows: encoder layers, columns: the
    linears in :data:`~ttaccel.spec.inference.LINEAR_NAMES` order) for the core codes, and the
    same grid for the int8 input / output codes (log-scale counts). Each panel's title gives
    the zero share and the effective bits.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [("", stats)] if isinstance(stats, dict) else list(stats)
    names = [n for n, v in pairs[0][1]["layers"].items() if v["kind"] == "linear"]
    rows: dict[str, list[str]] = {}
    for n in names:
        rows.setdefault(n.split(".")[3] if n.startswith("bert.encoder.layer.") else n, []).append(n)
    nrows, ncols = len(rows), max(len(v) for v in rows.values())
    fig, axes = plt.subplots(2 * nrows, ncols, figsize=(3.0 * ncols, 2.1 * 2 * nrows),
                             squeeze=False)  # fmt: skip
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for r, row_names in enumerate(rows.values()):
        for c in range(ncols):
            ax_core, ax_act = axes[2 * r][c], axes[2 * r + 1][c]
            if c >= len(row_names):
                ax_core.axis("off")
                ax_act.axis("off")
                continue
            name = row_names[c]
            width = 0.8 / len(pairs)
            title_core, title_act = [], []
            for i, (label, result) in enumerate(pairs):
                layer = result["layers"][name]
                core = layer["cores"]
                counts = np.asarray(core["counts"])
                x = np.arange(core["qmin"], core["qmin"] + len(counts))
                ax_core.bar(x + (i - (len(pairs) - 1) / 2) * width, counts / counts.sum(),
                            width=width, color=colors[i % 4], label=label or None)  # fmt: skip
                tag = f"{label}: " if label else ""
                title_core.append(f"{tag}0 {100 * core['zero']:.0f}% H {core['entropy_bits']:.2f}b")
                for what, style in (("input", "-"), ("output", ":")):
                    act = layer.get(what)
                    if not act or not act["total"]:
                        continue
                    a = np.asarray(act["counts"])
                    ax_act.step(np.arange(-128, 128), np.maximum(a, 0.5), where="mid",
                                linestyle=style, color=colors[i % 4],
                                label=f"{tag}{what}")  # fmt: skip
                out = layer.get("output")
                if out and out["total"]:
                    title_act.append(
                        f"{tag}out 0 {100 * out['zero']:.0f}% sat {100 * out['saturated']:.1f}%"
                    )
            ax_core.set_title(f"{_short(name)} cores\n" + "\n".join(title_core), fontsize=7)
            ax_core.tick_params(labelsize=6)
            ax_act.set_yscale("log")
            ax_act.set_title("int8 in (-) / out (:)\n" + "\n".join(title_act), fontsize=7)
            ax_act.tick_params(labelsize=6)
            if r == 0 and c == 0:
                if len(pairs) > 1:
                    ax_core.legend(fontsize=6)
                ax_act.legend(fontsize=5)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def summary_table(stats: dict) -> str:
    """A Markdown table: one row per TT linear (core zeros / {-1,0,1} / entropy, input and
    output zeros, output saturation, output scale)."""
    lines = [
        "| layer | cores 0 | cores {-1,0,1} | core bits | in 0 | in bits | out 0 | out sat | "
        "out bits | out scale |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, layer in stats["layers"].items():
        if layer["kind"] != "linear":
            continue
        c, i, o = layer["cores"], layer["input"], layer["output"]
        lines.append(
            f"| {_short(name)} | {100 * c['zero']:.1f}% | {100 * c['small']:.1f}% | "
            f"{c['entropy_bits']:.2f} | {100 * i['zero']:.1f}% | {i['entropy_bits']:.2f} | "
            f"{100 * o['zero']:.1f}% | {100 * o['saturated']:.2f}% | {o['entropy_bits']:.2f} | "
            f"{layer['output_scale']:.4g} |"
        )
    return "\n".join(lines)


# --- the CLI subcommand ---------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--artifact", type=Path, default=None,
                        help="artifact (default: the bundled one)")  # fmt: skip
    parser.add_argument("--data", type=Path, required=True, help="GLUE folder with dev.tsv")
    parser.add_argument("--limit", type=int, default=64, help="dev sentences to run (default 64)")
    parser.add_argument("--out", type=Path, required=True, help="the picture (PNG)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write JSON here")


def run(args: argparse.Namespace) -> int:
    from ttaccel.host.classify import read_dev_set
    from ttaccel.host.tokenizer import tokenizer_from_artifact
    from ttaccel.spec.artifact import load_artifact

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be a positive integer, not {args.limit}")
    path = args.artifact
    if path is None:
        path = Path(__file__).resolve().parents[1] / "ttaccel" / "data"
        path = path / "sst2-minilm-tt-int4.safetensors"
    artifact = load_artifact(path)
    sentences, _ = read_dev_set(args.data, args.limit)
    tokenizer = tokenizer_from_artifact(artifact)
    ids = [list(tokenizer.encode(s).ids) for s in sentences]
    stats = artifact_code_stats(artifact, ids)
    stats["artifact"] = str(path)
    plot_code_stats(stats, args.out)
    for fmt, pooled in stats["all_cores"].items():
        print(
            f"all {fmt} cores: {pooled['total']} codes, {100 * pooled['zero']:.1f}% zero, "
            f"{100 * pooled['small']:.1f}% in {{-1,0,1}}, {100 * pooled['saturated']:.3f}% "
            f"saturated, {pooled['entropy_bits']:.2f} bits"
        )
    print(summary_table(stats))
    print(f"picture: {args.out}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(stats, indent=1) + "\n")
    return 0
