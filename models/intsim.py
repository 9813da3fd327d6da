"""The spec's integer arithmetic re-implemented in torch (int64 tensors), for fast simulation.

An independent implementation of :mod:`ttaccel.spec.golden` on the constants of a
:class:`~ttaccel.spec.golden.QuantTTLinear` / :class:`~ttaccel.spec.golden.QuantTTEmbedding`:
same merges, same GEMM axes, same requantization
``sat(((acc + bias) * multiplier + 2**(shift-1)) >> shift)`` (arithmetic shift, round half
up). Tests check it equals the NumPy golden bit for bit. Accumulators are checked against
int32 like the golden model (OverflowError).
"""

from __future__ import annotations

import torch

from ttaccel.spec.formats import ACC_BITS, BINARY, Requant
from ttaccel.spec.golden import QuantTTEmbedding, QuantTTLinear

from .tt import contract_core, merge_cores

__all__ = ["dequantize", "quantize_input", "requantize", "tt_embedding_int", "tt_linear_int"]

_MIN, _MAX = -(2 ** (ACC_BITS - 1)), 2 ** (ACC_BITS - 1) - 1


def quantize_input(
    x: torch.Tensor, scale: float, qmin: int = -128, qmax: int = 127
) -> torch.Tensor:
    """Float -> int64 codes ``clip(round(x / scale))`` computed in float64, half to even
    (identical to :func:`ttaccel.spec.formats.quantize` on the same float32 values)."""
    return torch.clamp(torch.round(x.double() / scale), qmin, qmax).to(torch.int64)


def dequantize(codes: torch.Tensor, scale: float) -> torch.Tensor:
    """Codes -> float32 ``codes * scale`` (computed in float64 as the spec does)."""
    return (codes.double() * scale).float()


def _check(acc: torch.Tensor, what: str) -> torch.Tensor:
    if acc.numel() and (int(acc.min()) < _MIN or int(acc.max()) > _MAX):
        raise OverflowError(
            f"{what}: accumulator leaves int{ACC_BITS}: [{int(acc.min())}, {int(acc.max())}]"
        )
    return acc


def requantize(
    acc: torch.Tensor, requant: Requant, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """int64 accumulators (..., N) (+ int bias (N,)) -> int64 codes of ``requant.out_format``."""
    total = acc if bias is None else acc + bias
    _check(total, "requantize")
    product = total * requant.multiplier
    if requant.shift > 0:
        product = product + (1 << (requant.shift - 1))
    shifted = torch.bitwise_right_shift(product, requant.shift)
    fmt = requant.out_format
    if fmt == BINARY:
        return torch.where(shifted >= 0, 1, -1).to(torch.int64)
    return torch.clamp(shifted, fmt.qmin, fmt.qmax)


def _merged_cores(layer: QuantTTLinear) -> list[torch.Tensor]:
    merged = []
    for (a, b), requants in zip(layer.plan, layer.merge_requants, strict=True):
        core = torch.as_tensor(layer.cores[a]).to(torch.int64)
        for k, requant in zip(range(a + 1, b), requants, strict=True):
            nxt = torch.as_tensor(layer.cores[k]).to(torch.int64)
            core = requantize(_check(merge_cores(core, nxt), "merge"), requant)
        merged.append(core)
    return merged


def tt_linear_int(codes: torch.Tensor, layer: QuantTTLinear) -> torch.Tensor:
    """int8-valued codes (B, M) (any integer dtype) -> int64 codes (B, N): the integer TT linear."""
    cores = _merged_cores(layer)
    batch = codes.shape[0]
    state = codes.to(torch.int64).reshape(batch, 1, cores[0].shape[1], -1)
    bias = None if layer.bias is None else torch.as_tensor(layer.bias).to(torch.int64)
    last = len(cores) - 1
    for s, (core, requant) in enumerate(zip(cores, layer.stage_requants, strict=True)):
        acc = _check(contract_core(state, core), f"stage {s}")
        if s == last:
            return requantize(acc.reshape(batch, -1), requant, bias)
        p, n, r_next, rest = acc.shape
        nxt = cores[s + 1].shape[1]
        state = requantize(acc, requant).reshape(p * n, r_next, nxt, rest // nxt)
    raise AssertionError("unreachable")


def tt_embedding_int(ids: torch.Tensor, layer: QuantTTEmbedding) -> torch.Tensor:
    """ids (T,) int64 -> int64 codes (T, N): the integer TT embedding lookup."""
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= layer.num_embeddings):
        raise ValueError(
            f"ids must lie in [0, {layer.num_embeddings}), "
            f"found [{int(ids.min())}, {int(ids.max())}]"
        )
    cores = [torch.as_tensor(c).to(torch.int64) for c in layer.cores]
    row_modes = [c.shape[1] for c in cores]
    digits, rest = [], ids.to(torch.int64)
    for m in reversed(row_modes):
        digits.append(rest % m)
        rest = torch.div(rest, m, rounding_mode="floor")
    digits = digits[::-1]
    state = cores[0][0][digits[0]]
    for k in range(1, len(cores)):
        r, _, n, r_next = cores[k].shape
        slices = cores[k].permute(1, 0, 2, 3)[digits[k]].reshape(-1, r, n * r_next)
        acc = _check(torch.bmm(state, slices), f"embedding stage {k}")
        state = requantize(acc, layer.stage_requants[k - 1]).reshape(ids.shape[0], -1, r_next)
    return state.reshape(ids.shape[0], -1)
