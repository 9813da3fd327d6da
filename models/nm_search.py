"""Per-layer N:M and bit-width search under a compression budget (seed 002's heuristic).

NxMiFormer picks a heterogeneous configuration (each linear its own N:M pattern and weight
bits) that meets a compression-ratio constraint, by a cheap heuristic instead of training every
candidate. Here, in two steps:

1. **Sensitivity** (:func:`layer_sensitivities`): for every encoder linear of the teacher and
   every candidate :class:`NMOption`, that one layer alone is pruned (one-shot magnitude N:M
   along its inputs) and its weight fake-quantized (MSE-chosen scale), and the damage is
   measured on a few training batches: ``output``, the mean squared difference of the
   teacher's logits against the untouched teacher; or ``layer``, that layer's own relative
   output error ``||X (W' - W)^T||^2 / ||X W^T||^2`` on its recorded inputs ``X`` (one forward
   for all layers, far cheaper).
2. **Greedy descent** (:func:`greedy_search`): every layer starts at its most expensive option;
   while the encoder linears exceed the byte budget, apply the single change (one layer to one
   cheaper option) with the least sensitivity increase per byte saved (a change that lowers the
   sensitivity goes first). Bytes strictly fall each move, so it ends; it fails, naming the
   smallest reachable size, when even the cheapest options exceed the budget.

Bytes are what export writes for an N:M layer (:func:`ttaccel.models.nm.nm_layer_nbytes`: kept
values at the bit width, ``log2(M)``-bit indices, the int32 bias); the budget is a ratio against
the dense fp32 encoder linears (weights and biases), :func:`~ttaccel.models.compress.size_report`'s
``encoder_linear_ratio``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ttaccel.spec.nm import check_nm, parse_nm

from .config import LAYER_GROUPS, CompressionConfig, LayerRule
from .nm import nm_layer_nbytes, nm_mask
from .quant import format_for_bits, init_scale

__all__ = [
    "MEASURES",
    "NMOption",
    "encoder_linears",
    "greedy_search",
    "layer_sensitivities",
    "parse_options",
    "search_config",
]

MEASURES = ("output", "layer")
_LINEAR_SUFFIXES = (
    "attention.self.query", "attention.self.key", "attention.self.value",
    "attention.output.dense", "intermediate.dense", "output.dense",
)  # fmt: skip
assert len(_LINEAR_SUFFIXES) == len(LAYER_GROUPS["encoder"])


@dataclass(frozen=True)
class NMOption:
    """One candidate for a layer: N:M pattern ``(n, m)`` and weight ``bits`` (8, 4, 2 or
    ``"ternary"``)."""

    n: int
    m: int
    bits: int | str

    def __post_init__(self) -> None:
        check_nm(self.n, self.m)
        if self.bits == "binary":
            raise ValueError("an N:M layer cannot take binary weights (no zero code)")
        format_for_bits(self.bits)  # ValueError for an unknown width

    @property
    def key(self) -> str:
        """``"2:4/8"``: pattern / bits."""
        return f"{self.n}:{self.m}/{self.bits}"

    def nbytes(self, in_features: int, out_features: int, bias: bool = True) -> int:
        return nm_layer_nbytes(in_features, out_features, self.n, self.m, self.bits, bias=bias)


def parse_options(patterns: Sequence[str], bits: Sequence[int | str]) -> list[NMOption]:
    """Every pattern (``"2:4"``) crossed with every bit width."""
    return [NMOption(*parse_nm(p, name="--patterns"), b) for p in patterns for b in bits]


def encoder_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """The six ``nn.Linear`` of every encoder layer by module name, in forward order."""
    out = {}
    for i, layer in enumerate(model.bert.encoder.layer):
        for suffix in _LINEAR_SUFFIXES:
            out[f"bert.encoder.layer.{i}.{suffix}"] = layer.get_submodule(suffix)
    return out


@torch.no_grad()
def _compressed_weight(weight: torch.Tensor, option: NMOption) -> torch.Tensor:
    """``weight`` (out, in) pruned N:M along ``in`` by magnitude and fake-quantized at
    ``option.bits`` with the MSE scale of the kept weights."""
    mask = nm_mask(weight.T, option.n, option.m).T
    pruned = weight * mask
    fmt = format_for_bits(option.bits)
    scale = init_scale(pruned, fmt, "mse")
    return torch.clamp(torch.round(pruned / scale), fmt.qmin, fmt.qmax) * scale


def _forward(model, batch):
    return model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                 attention_mask=batch["attention_mask"]).logits  # fmt: skip


@torch.no_grad()
def layer_sensitivities(
    model: nn.Module, batches: Sequence[dict], options: Sequence[NMOption], *,
    measure: str = "output",
) -> dict[str, dict[str, float]]:  # fmt: skip
    """``{module name: {option.key: sensitivity}}`` for every encoder linear of ``model`` (a
    float ``BertForSequenceClassification``, left unchanged) over ``batches`` (dicts of
    ``input_ids``, ``token_type_ids``, ``attention_mask``), by ``measure`` (see the module
    docstring; real tokens only for ``layer``). A layer whose inputs are not a multiple of an
    option's ``m`` gets ``inf`` for it."""
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {list(MEASURES)}, not {measure!r}")
    if not batches:
        raise ValueError("the sensitivity needs at least one batch")
    model.eval()
    linears = encoder_linears(model)
    result: dict[str, dict[str, float]] = {name: {} for name in linears}
    if measure == "output":
        reference = [_forward(model, b) for b in batches]
        for name, linear in linears.items():
            original = linear.weight.detach().clone()
            for option in options:
                if linear.in_features % option.m:
                    result[name][option.key] = float("inf")
                    continue
                linear.weight.copy_(_compressed_weight(original, option))
                err = sum(float(((_forward(model, b) - r) ** 2).mean())
                          for b, r in zip(batches, reference, strict=True))  # fmt: skip
                result[name][option.key] = err / len(batches)
            linear.weight.copy_(original)
        return result
    inputs: dict[str, list[torch.Tensor]] = {name: [] for name in linears}
    hooks = []
    for name, linear in linears.items():

        def keep(module, args, _out, name=name):
            inputs[name].append(args[0].detach())

        hooks.append(linear.register_forward_hook(keep))
    try:
        for b in batches:
            _forward(model, b)
    finally:
        for h in hooks:
            h.remove()
    masks = [b["attention_mask"].bool() for b in batches]
    for name, linear in linears.items():
        x = torch.cat([xi[mi] for xi, mi in zip(inputs[name], masks, strict=True)])  # real tokens
        w = linear.weight.detach()
        ref = x @ w.T
        norm = float((ref**2).sum()) or 1.0
        for option in options:
            if linear.in_features % option.m:
                result[name][option.key] = float("inf")
                continue
            diff = x @ (_compressed_weight(w, option) - w).T
            result[name][option.key] = float((diff**2).sum()) / norm
    return result


def greedy_search(
    layers: dict[str, tuple[int, int, bool]],
    options: Sequence[NMOption],
    sensitivities: dict[str, dict[str, float]],
    budget_bytes: int,
) -> tuple[dict[str, NMOption], list[dict]]:
    """The greedy descent of the module docstring. ``layers``: ``{name: (in_features,
    out_features, has_bias)}``; returns ``({name: chosen option}, moves)`` with one
    ``{"layer", "from", "to", "bytes_saved", "sensitivity_added", "total_bytes"}`` per move.
    Raises ValueError when the cheapest options exceed ``budget_bytes``."""
    if not options:
        raise ValueError("the search needs at least one candidate option")
    cost = {n: {o.key: o.nbytes(*shape) for o in options} for n, shape in layers.items()}
    usable = {
        n: sorted(
            (o for o in options if sensitivities[n][o.key] != float("inf")),
            key=lambda o, n=n: (-cost[n][o.key], sensitivities[n][o.key]),
        )
        for n in layers
    }
    for n, opts in usable.items():
        if not opts:
            raise ValueError(f"layer {n}: no candidate option fits its input size")
    chosen = {n: opts[0] for n, opts in usable.items()}
    total = sum(cost[n][o.key] for n, o in chosen.items())
    floor = sum(min(cost[n][o.key] for o in opts) for n, opts in usable.items())
    if floor > budget_bytes:
        raise ValueError(
            f"the budget of {budget_bytes} bytes cannot be met: the cheapest candidates "
            f"({sorted({o.key for o in options})}) still need {floor} bytes"
        )
    moves = []
    while total > budget_bytes:
        best = None
        for n, current in chosen.items():
            for o in usable[n]:
                saved = cost[n][current.key] - cost[n][o.key]
                if saved <= 0:
                    continue
                added = sensitivities[n][o.key] - sensitivities[n][current.key]
                score = (added / saved, -saved)
                if best is None or score < best[0]:
                    best = (score, n, o, saved, added)
        _, n, o, saved, added = best
        moves.append({"layer": n, "from": chosen[n].key, "to": o.key, "bytes_saved": saved,
                      "sensitivity_added": added, "total_bytes": total - saved})  # fmt: skip
        chosen[n] = o
        total -= saved
    return chosen, moves


def search_config(
    chosen: dict[str, NMOption], *, weight_scale_init: str = "mse",
    activation_scale_init: str = "mse",
) -> CompressionConfig:  # fmt: skip
    """The scheme-``nm`` config of a search result: one rule per module (its pattern and bits),
    the config's ``weight_bits`` the most common choice."""
    counts: dict = {}
    for o in chosen.values():
        counts[o.bits] = counts.get(o.bits, 0) + 1
    common = max(counts, key=lambda b: (counts[b], str(b)))
    rules = tuple(
        LayerRule(name, nm=(o.n, o.m), weight_bits=None if o.bits == common else o.bits)
        for name, o in chosen.items()
    )
    return CompressionConfig(rules, common, scheme="nm", weight_scale_init=weight_scale_init,
                             activation_scale_init=activation_scale_init)  # fmt: skip
