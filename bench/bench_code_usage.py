"""Code usage of the INT4 TT student at initialisation (before any QAT), old against new rule.

The pretrained MiniLM-L6 (or ``--checkpoint``) is TT-SVD'd as ``ttaccel compress`` does (all 36
encoder linears, rank cap ``--rank``, automatic modes), its quantizers are calibrated on the
first training batch ``ttaccel compress`` would use (batch 32, seed 0, 64 tokens) under each
``weight/activation`` rule pair of ``--inits``, exported to an artifact in memory and run
through the golden model on ``--limit`` dev sentences by :mod:`ttaccel.models.code_stats`.
Prints per-rule totals and, for ``--layer``, each core's scale under every rule with the share
of its values below ``s / 2`` (the ones that round to 0). Writes the picture and the JSON; no
training. Example::

    python bench/bench_code_usage.py --data ../shared/data/SST-2 --limit 32 \\
        --inits max/max,mse/max,mse/mse --plot max/max,mse/mse \\
        --out docs/code-histograms-init.png --json build/code-stats/init.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

from ttaccel.models.code_stats import artifact_code_stats, plot_code_stats
from ttaccel.models.compress import apply_compression, calibrate, enable_quantization, tt_modules
from ttaccel.models.config import CompressionConfig, LayerRule
from ttaccel.models.data import collate, encode, epoch_order, infer_task, load_split, load_tokenizer
from ttaccel.models.export import student_artifact
from ttaccel.models.quant import init_scale
from ttaccel.models.teacher import load_bert_classifier
from ttaccel.pretrained import default_checkpoint_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--inits", default="max/max,mse/mse", help="weight/activation pairs")
    parser.add_argument("--plot", default=None, help="pairs to draw (default: all of --inits)")
    parser.add_argument("--layer", default="bert.encoder.layer.0.output.dense")
    parser.add_argument(
        "--qat-steps",
        type=int,
        default=0,
        help="then this many QAT steps of the first pair (scale drift)",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.time()
    ckpt = args.checkpoint or default_checkpoint_dir()
    tokenizer = load_tokenizer(ckpt)
    task = infer_task(args.data)
    train = load_split(args.data, "train", task)
    order = epoch_order(len(train), 0, 0)
    train_batches = [
        collate(encode([train[i] for i in order[32 * b : 32 * (b + 1)]], tokenizer, 64))
        for b in range(max(1, args.qat_steps))
    ]
    batch = train_batches[0]
    dev = load_split(args.data, "dev", task)[: args.limit]
    dev_ids = [e.input_ids for e in encode(dev, tokenizer, 64)]
    vocab = (ckpt / "vocab.txt").read_text(encoding="utf-8").splitlines()

    base = load_bert_classifier(ckpt, 2)
    apply_compression(base, CompressionConfig((LayerRule("encoder", args.rank),), 4),
                      quantize=False)  # fmt: skip
    print(f"TT-SVD done at {time.time() - start:.0f} s", file=sys.stderr)
    results, scales = [], {}
    for pair in args.inits.split(","):
        w_init, a_init = pair.split("/")
        cfg = CompressionConfig((LayerRule("encoder", args.rank),), 4, weight_scale_init=w_init,
                                activation_scale_init=a_init)  # fmt: skip
        model = copy.deepcopy(base)
        enable_quantization(model, cfg)
        calibrate(model, batch)
        meta = {"hf_config": model.config.to_dict(), "compression": cfg.to_dict()}
        artifact = student_artifact(model, meta, vocab)
        stats = artifact_code_stats(artifact, dev_ids)
        stats["inits"] = pair
        results.append((pair, stats))
        layer = tt_modules(model)[args.layer]
        rows = []
        for k, (q, core) in enumerate(zip(layer.core_q, layer.cores, strict=True)):
            s = q.effective_scale()
            a = core.detach().abs()
            rows.append({"core": k, "numel": core.numel(), "scale": s,
                         "below_half": float((a < s / 2).double().mean()),
                         "max_over_rms": float(a.max() / a.pow(2).mean().sqrt())})  # fmt: skip
        scales[pair] = {
            "cores": rows,
            "input_scale": layer.input_q.effective_scale(),
            "output_scale": layer.stage_q[-1].effective_scale(),
        }
        pooled = stats["all_cores"]["int4"]
        print(f"{pair}: int4 cores {100 * pooled['zero']:.1f}% zero, {100 * pooled['small']:.1f}% "
              f"in {{-1,0,1}}, {pooled['entropy_bits']:.2f} bits; {time.time() - start:.0f} s",
              file=sys.stderr)  # fmt: skip
        if pair == args.inits.split(",")[0]:
            # The other rules on the same cores, for the one layer (no export needed).
            for rule in ("max", "lsq", "mse", "percentile"):
                scales.setdefault("rules", {})[rule] = [
                    {"core": k, "scale": init_scale(c.detach(), layer.weight_format, rule),
                     "below_half": float((c.detach().abs() < init_scale(
                         c.detach(), layer.weight_format, rule) / 2).double().mean())}
                    for k, c in enumerate(layer.cores)
                ]  # fmt: skip
    if args.qat_steps:
        scales["qat"] = _qat_drift(base, ckpt, args, train_batches)
    drawn = args.plot.split(",") if args.plot else [pair for pair, _ in results]
    plot_code_stats([(pair, stats) for pair, stats in results if pair in drawn], args.out)
    out = {"checkpoint": str(ckpt), "rank": args.rank, "layer": args.layer, "scales": scales,
           "results": dict(results), "seconds": time.time() - start}  # fmt: skip
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(scales, indent=1))
    return 0


def _qat_drift(base, ckpt, args, train_batches) -> dict:
    """``--qat-steps`` steps of ``ttaccel compress``'s optimizer (AdamW, lr 1e-4, scales at a
    tenth, no warm-up), end-to-end loss against the dense checkpoint, first ``--inits`` pair:
    how far the scales of ``--layer`` move."""
    from ttaccel.models.compress import make_student_loss
    from ttaccel.models.quant import LsqQuantizer

    w_init, a_init = args.inits.split(",")[0].split("/")
    cfg = CompressionConfig((LayerRule("encoder", args.rank),), 4, weight_scale_init=w_init,
                            activation_scale_init=a_init)  # fmt: skip
    model = copy.deepcopy(base)
    enable_quantization(model, cfg)
    calibrate(model, train_batches[0])
    teacher = load_bert_classifier(ckpt, 2)
    teacher.classifier.load_state_dict(model.classifier.state_dict())
    loss_fn = make_student_loss(teacher, "e2e", model.config.num_hidden_layers, 1)
    scale_params = [m.scale for m in model.modules() if isinstance(m, LsqQuantizer)]
    ids = {id(p) for p in scale_params}
    others = [p for p in model.parameters() if id(p) not in ids]
    optimizer = torch.optim.AdamW([
        {"params": others, "weight_decay": 0.0},
        {"params": scale_params, "weight_decay": 0.0, "lr": 1e-5},
    ], lr=1e-4)  # fmt: skip
    layer = tt_modules(model)[args.layer]
    quantizers = {f"core{k}": q for k, q in enumerate(layer.core_q)}
    quantizers["output"] = layer.stage_q[-1]
    before = {k: q.effective_scale() for k, q in quantizers.items()}
    start = [float(p.detach()) for p in scale_params]
    model.train()
    for step, batch in enumerate(train_batches):
        loss, _ = loss_fn(model, batch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    after = {k: q.effective_scale() for k, q in quantizers.items()}
    every = [abs(float(p.detach()) - s0) for p, s0 in zip(scale_params, start, strict=True)]
    return {"steps": len(train_batches), "before": before, "after": after,
            "moved": {k: after[k] - before[k] for k in before}, "scale_lr": 1e-5,
            "max_move_any_scale": max(every)}  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
