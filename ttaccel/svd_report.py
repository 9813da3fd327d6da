"""Compress real MiniLM-L6 weight matrices with TT-SVD and run the integer golden contraction.

For each chosen linear layer of the pretrained checkpoint: decompose its weight into a
seed-000-style TT (input modes, then output modes) at a few rank caps, quantize the cores and
128 real token embeddings to integers with max-abs scales, run the bit-exact integer golden
contraction, and print compression, approximation and quantization errors, and MACs per token
against the dense layer.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "TT-compress real MiniLM weights and run the integer golden TT contraction"

_LAYERS = {
    "query": ("encoder.layer.0.attention.self.query.weight", ((16, 24), (24, 16))),
    "ffn-in": ("encoder.layer.0.intermediate.dense.weight", ((16, 24), (32, 48))),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", type=Path, default=None,
        help="Hugging Face BERT folder with model.safetensors (default: the bundled MiniLM-L6)",
    )  # fmt: skip
    parser.add_argument(
        "--ranks", type=int, nargs="+", default=[8, 16, 32, 64],
        help="TT rank caps to try (default: 8 16 32 64)",
    )  # fmt: skip
    parser.add_argument(
        "--weight-format", default="int8", choices=["int8", "int4", "int2"],
        help="number format of the TT cores (default: int8)",
    )  # fmt: skip
    parser.add_argument(
        "--tokens", type=int, default=128, help="token vectors to contract (default: 128)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed choosing the tokens (default: 0)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ttaccel.pretrained import default_checkpoint_dir
    from ttaccel.spec.formats import dequantize, format_by_name, quantize
    from ttaccel.spec.ptq import calibrate_tt_linear
    from ttaccel.spec.safetensors_io import load_safetensors
    from ttaccel.spec.tt import TTShape, best_plan, plan_macs, tt_contract, tt_layer_modes, tt_svd

    folder = args.checkpoint or default_checkpoint_dir()
    weights_file = Path(folder) / "model.safetensors"
    if not weights_file.is_file():
        raise FileNotFoundError(f"checkpoint folder {folder} has no model.safetensors")
    tensors, _ = load_safetensors(weights_file)
    fmt = format_by_name(args.weight_format)
    embeddings = tensors["embeddings.word_embeddings.weight"]
    rng = np.random.default_rng(args.seed)
    tokens = embeddings[rng.choice(embeddings.shape[0], size=args.tokens, replace=False)]
    print(f"checkpoint: {weights_file}")
    print(f"inputs: {args.tokens} word-embedding rows (seed {args.seed}); cores: {fmt.name}\n")
    header = (
        f"{'layer':8} {'rank':>4} {'params':>8} {'compr':>7} {'tt err':>8} {'int err':>8} "
        f"{'MAC/tok':>8} {'dense MAC':>9} {'plan':>16}"
    )
    print(header)
    print("-" * len(header))
    for name, (key, (in_modes, out_modes)) in _LAYERS.items():
        weight = tensors[key].T.astype(np.float64)  # PyTorch stores (out, in); we use x @ W
        x = tokens[:, : weight.shape[0]].astype(np.float64)
        dense = x @ weight
        modes = tt_layer_modes(in_modes, out_modes)
        for rank in args.ranks:
            cores, tt_error = tt_svd(weight, *modes, rank)
            shape = TTShape(*modes, (*tuple(c.shape[0] for c in cores), 1))
            plan = best_plan(shape, args.tokens)
            layer = calibrate_tt_linear(cores, x, fmt, plan)
            x_codes = quantize(x, layer.input_scale, format_by_name("int8"))
            y = dequantize(layer(x_codes), layer.output_scale)
            float_tt = tt_contract(x, cores)
            int_error = np.linalg.norm(y - float_tt) / np.linalg.norm(float_tt)
            online, _ = plan_macs(shape, plan)
            print(
                f"{name:8} {rank:4d} {shape.num_params:8d} {shape.compression():6.1f}x "
                f"{tt_error:8.4f} {int_error:8.4f} {sum(online):8d} {weight.size:9d} "
                f"{list(plan)!s:>16}"
            )
        print(f"{'':8} dense output norm {np.linalg.norm(dense):.1f}")
    print(
        "\ntt err: ||W - W_tt|| / ||W||; int err: integer golden output vs float TT output "
        "(relative, Frobenius); MAC/tok: online MACs per token of the cheapest plan."
    )
    return 0
