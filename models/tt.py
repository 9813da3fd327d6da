"""TT-matrix layers in PyTorch: ``TTLinear`` and ``TTEmbedding``, float or quantization-aware.

Three layers of code, as in the spec:

* tensor-format helpers (mode factorization, plans including merge cost),
* pure functions mirroring :mod:`ttaccel.spec.tt` in torch (:func:`merge_cores`,
  :func:`contract_core`, :func:`tt_contract`: same axes, same order),
* thin modules.

Layout is the spec's (``spec/tt.py``): core ``k`` has shape ``(r_k, m_k, n_k, r_{k+1})``, the
weight ``W`` is ``(in, out)`` used as ``y = x @ W`` (the transpose of ``nn.Linear.weight``).

Quantization-aware forward of a :class:`TTLinear` (seed 000's order, any plan): fake-quantize
the input (int8) and every core (weight format); merge each plan segment left to right,
fake-quantizing after every pairwise merge (weight format); contract the input with each merged
core, fake-quantizing every stage's output (int8); the bias is added, at the last stage's
accumulator scale, before the last quantization. In eval mode the quantized forward also carries
the integer codes and returns exactly the integer model's numbers (``quantize_exact`` /
``requantize_exact`` of :mod:`ttaccel.models.quant`); in training it is the plain LSQ forward.
:meth:`TTLinear.to_int` turns the learned
scales into the spec's :class:`~ttaccel.spec.golden.QuantTTLinear` through
:func:`ttaccel.spec.ptq.quant_tt_linear_from_scales`, so export and golden agree by construction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache, partial

import numpy as np
import torch
from torch import nn

from ttaccel.spec.formats import INT8, NumberFormat
from ttaccel.spec.golden import QuantTTEmbedding, QuantTTLinear
from ttaccel.spec.ptq import quant_tt_embedding_from_scales, quant_tt_linear_from_scales
from ttaccel.spec.tt import (
    Plan,
    TTShape,
    balanced_factorization,
    best_plan,
    tt_layer_modes,
    tt_svd,
)

from .quant import Exact, LsqQuantizer, on_codes, quantize_exact, requantize_exact, round_ste

__all__ = [
    "TTEmbedding",
    "TTLinear",
    "auto_embedding_modes",
    "auto_linear_modes",
    "cheapest_training_plan",
    "contract_core",
    "merge_cores",
    "resolve_ranks",
    "tt_contract",
    "tt_to_dense",
]


# --- tensor-format helpers -------------------------------------------------------------------


def auto_linear_modes(
    in_features: int, out_features: int, cores_per_side: int = 2
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Seed 000's layout for an ``in x out`` linear: ``cores_per_side`` input cores then as many
    output cores (TT-matrix modes, see :func:`ttaccel.spec.tt.tt_layer_modes`).

    Input modes ascending and output modes descending (768 -> 768 gives ``[24, 32] | [32, 24]``,
    seed 000's choice), so the outer ranks are capped by the small outer modes.
    """
    ins = tuple(sorted(balanced_factorization(in_features, cores_per_side)))
    outs = tuple(sorted(balanced_factorization(out_features, cores_per_side), reverse=True))
    return tt_layer_modes(ins, outs)


def auto_embedding_modes(
    num_embeddings: int, dim: int, num_cores: int = 4, max_padding: float = 0.02
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Row and column modes for an ``num_embeddings x dim`` TT-matrix table.

    The vocabulary is padded (by at most ``max_padding`` of its size) to the number whose
    balanced factorization into ``num_cores`` parts is most even; rows descending, columns
    ascending (seed 000: ``[16, 20, 10, 10] x [4, 4, 8, 6]``).
    """
    best = None
    for padded in range(num_embeddings, int(num_embeddings * (1 + max_padding)) + 2):
        parts = balanced_factorization(padded, num_cores)
        if min(parts) < 2:
            continue
        score = max(parts) / min(parts)
        if best is None or score < best[0] - 1e-9:
            best = (score, parts)
    rows = best[1] if best is not None else balanced_factorization(num_embeddings, num_cores)
    cols = tuple(sorted(balanced_factorization(dim, num_cores)))
    return tuple(rows), cols


def resolve_ranks(shape_modes: tuple[Sequence[int], Sequence[int]], ranks) -> tuple[int, ...]:
    """Full rank list ``(1, r_1, ..., r_{d-1}, 1)`` for the given modes.

    ``ranks`` is an int (a cap on every inner rank, each clipped to the largest useful rank the
    modes allow) or an explicit list of ``d - 1`` inner or ``d + 1`` ranks, each of which must
    not exceed the largest useful rank (ValueError naming the boundary otherwise).
    """
    in_modes, out_modes = (tuple(int(v) for v in m) for m in shape_modes)
    d = len(in_modes)
    max_ranks = TTShape(in_modes, out_modes, (1,) * (d + 1)).max_ranks
    if isinstance(ranks, int | np.integer) and not isinstance(ranks, bool):
        if ranks < 1:
            raise ValueError(f"rank must be a positive integer, not {ranks!r}")
        return tuple(min(int(ranks), m) for m in max_ranks)
    ranks = [int(r) for r in ranks]
    if len(ranks) == d - 1:
        ranks = [1, *ranks, 1]
    if len(ranks) != d + 1 or ranks[0] != 1 or ranks[-1] != 1:
        raise ValueError(
            f"ranks must be an int, {d - 1} inner ranks or {d + 1} ranks starting and ending with "
            f"1 for {d} cores, not {ranks}"
        )
    for k, (r, m) in enumerate(zip(ranks, max_ranks, strict=True)):
        if not 1 <= r <= m:
            raise ValueError(
                f"rank {r} at boundary {k} is larger than the modes {list(in_modes)} x "
                f"{list(out_modes)} allow (at most {m}; the largest useful ranks are "
                f"{list(max_ranks)})"
            )
    return tuple(ranks)


def _segment_cost(shape: TTShape, a: int, b: int, rows: int) -> tuple[int, int]:
    """(online MACs for ``rows`` input vectors, merge MACs) of segment ``[a, b)``."""
    online = (
        rows * math.prod(shape.out_modes[:a]) * math.prod(shape.in_modes[b:]) * shape.ranks[a]
        * math.prod(shape.in_modes[a:b]) * math.prod(shape.out_modes[a:b]) * shape.ranks[b]
    )  # fmt: skip
    merge, m_acc, n_acc = 0, shape.in_modes[a], shape.out_modes[a]
    for k in range(a + 1, b):
        merge += (
            shape.ranks[a]
            * m_acc
            * n_acc
            * shape.ranks[k]
            * shape.in_modes[k]
            * (shape.out_modes[k] * shape.ranks[k + 1])
        )
        m_acc, n_acc = m_acc * shape.in_modes[k], n_acc * shape.out_modes[k]
    return online, merge


@cache
def cheapest_training_plan(shape: TTShape, rows: int) -> Plan:
    """The plan with the fewest MACs for one float forward of ``rows`` vectors when the cores
    change every step, so merging is paid per forward: online MACs plus merge MACs.

    A single segment (the full weight) wins only when forming it is cheaper than contracting.
    """
    d = shape.num_cores
    best: list[tuple[float, Plan]] = [(0, ())] + [(math.inf, ())] * d
    for b in range(1, d + 1):
        for a in range(b):
            online, merge = _segment_cost(shape, a, b, rows)
            cost = best[a][0] + online + merge
            if cost < best[b][0]:
                best[b] = (cost, (*best[a][1], (a, b)))
    return best[d][1]


# --- pure functions (torch mirrors of spec.tt) ---------------------------------------------------


def merge_cores(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """``(r0, m0, n0, r1) x (r1, m1, n1, r2) -> (r0, m0 m1, n0 n1, r2)``, ``m0``/``n0`` the more
    significant digits (as :func:`ttaccel.spec.tt.merge_cores`)."""
    r0, m0, n0, r1 = left.shape
    _, m1, n1, r2 = right.shape
    product = left.reshape(-1, r1) @ right.reshape(r1, -1)
    product = product.reshape(r0, m0, n0, m1, n1, r2).permute(0, 1, 3, 2, 4, 5)
    return product.reshape(r0, m0 * m1, n0 * n1, r2)


def contract_core(state: torch.Tensor, core: torch.Tensor) -> torch.Tensor:
    """One stage as one GEMM: state ``(P, r, m, R)`` x core ``(r, m, n, r')`` -> ``(P, n, r', R)``
    (as :func:`ttaccel.spec.tt.contract_core`)."""
    p, r, m, rest = state.shape
    _, _, n, r_next = core.shape
    if rest == 1:
        out = state.reshape(p, r * m) @ core.reshape(r * m, n * r_next)
        return out.reshape(p, n, r_next, 1)
    rows = state.permute(0, 3, 1, 2).reshape(p * rest, r * m)
    out = rows @ core.reshape(r * m, n * r_next)
    return out.reshape(p, rest, n, r_next).permute(0, 2, 3, 1)


def _next_state(state: torch.Tensor, next_m: int) -> torch.Tensor:
    p, n, r_next, rest = state.shape
    return state.reshape(p * n, r_next, next_m, rest // next_m)


def tt_contract(x: torch.Tensor, cores: Sequence[torch.Tensor]) -> torch.Tensor:
    """``x @ W`` for ``x`` (B, M) and TT cores of ``W``, one GEMM per core; returns (B, N)."""
    batch = x.shape[0]
    state = x.reshape(batch, 1, cores[0].shape[1], -1)
    for k, core in enumerate(cores):
        state = contract_core(state, core)
        next_m = cores[k + 1].shape[1] if k + 1 < len(cores) else 1
        state = _next_state(state, next_m)
    return state.reshape(batch, -1)


def tt_to_dense(cores: Sequence[torch.Tensor]) -> torch.Tensor:
    """The full ``(M, N)`` matrix (tests and tiny layers only)."""
    full = cores[0]
    for core in cores[1:]:
        full = merge_cores(full, core)
    return full.reshape(full.shape[1], full.shape[2])


def _merge_segments(cores: Sequence[torch.Tensor], plan: Plan) -> list[torch.Tensor]:
    merged = []
    for a, b in plan:
        running = cores[a]
        for k in range(a + 1, b):
            running = merge_cores(running, cores[k])
        merged.append(running)
    return merged


# --- modules -----------------------------------------------------------------------------------


class TTLinear(nn.Module):
    """A linear layer ``y = x @ W + b`` whose ``W`` (in, out) is a TT-matrix.

    ``in_modes``/``out_modes``/``ranks``: the TT-matrix shape (see :class:`TTShape`);
    ``plan``: how cores are merged for the quantized (and exported) forward, by default
    :func:`ttaccel.spec.tt.best_plan` (fewest online MACs). Input ``(..., in_features)`` float,
    output ``(..., out_features)`` float.

    Modes: float (default); quantization-aware after :meth:`enable_quantization`
    (fake-quantized, trainable); integer simulation with ``int_mode = True`` (runs the spec's
    integer arithmetic in torch on the constants of :meth:`to_int`; inference only).
    """

    def __init__(
        self,
        in_modes: Sequence[int],
        out_modes: Sequence[int],
        ranks: Sequence[int],
        *,
        bias: bool = True,
        plan: Plan | None = None,
    ) -> None:
        super().__init__()
        self.shape = TTShape(tuple(in_modes), tuple(out_modes), tuple(ranks))
        self.plan: Plan = tuple(plan) if plan is not None else best_plan(self.shape)
        std = (1.0 / self.shape.in_features) ** (0.5 / self.shape.num_cores)
        self.cores = nn.ParameterList(
            nn.Parameter(torch.randn(s) * std / math.sqrt(s[0])) for s in self.shape.core_shapes
        )
        self.bias = nn.Parameter(torch.zeros(self.shape.out_features)) if bias else None
        self.weight_format: NumberFormat | None = None
        self.int_mode = False
        self._int_cache: tuple | None = None

    @property
    def in_features(self) -> int:
        return self.shape.in_features

    @property
    def out_features(self) -> int:
        return self.shape.out_features

    @property
    def quantized(self) -> bool:
        return self.weight_format is not None

    def extra_repr(self) -> str:
        s = self.shape
        return (
            f"in_modes={list(s.in_modes)}, out_modes={list(s.out_modes)}, ranks={list(s.ranks)}, "
            f"plan={self.plan}, weight_format={self.weight_format}"
        )

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        ranks: int | Sequence[int],
        in_modes: Sequence[int] | None = None,
        out_modes: Sequence[int] | None = None,
        *,
        plan: Plan | None = None,
    ) -> TTLinear:
        """TT-SVD of a trained ``nn.Linear`` (its ``weight.T``), bias copied.

        Modes default to :func:`auto_linear_modes`; ``ranks`` as in :func:`resolve_ranks`.
        Full ranks reproduce the layer to floating-point precision. The SVD runs in float64;
        the relative Frobenius error is stored in ``self.svd_error``.
        """
        if in_modes is None or out_modes is None:
            in_modes, out_modes = auto_linear_modes(linear.in_features, linear.out_features)
        in_modes, out_modes = tuple(in_modes), tuple(out_modes)
        if math.prod(in_modes) != linear.in_features or math.prod(out_modes) != linear.out_features:
            raise ValueError(
                f"modes {list(in_modes)} x {list(out_modes)} multiply to "
                f"{math.prod(in_modes)} x {math.prod(out_modes)}, but the layer is "
                f"{linear.in_features} x {linear.out_features}"
            )
        full_ranks = resolve_ranks((in_modes, out_modes), ranks)
        weight = linear.weight.detach().double().cpu().numpy().T
        cores, error = tt_svd(weight, in_modes, out_modes, full_ranks)
        layer = cls(in_modes, out_modes, tt_shape_ranks(cores), bias=linear.bias is not None,
                    plan=plan)  # fmt: skip
        with torch.no_grad():
            for param, core in zip(layer.cores, cores, strict=True):
                param.copy_(torch.from_numpy(core))
            if linear.bias is not None:
                layer.bias.copy_(linear.bias.detach())
        layer.svd_error = error
        return layer

    def enable_quantization(
        self, weight_format: NumberFormat, *, power_of_two: bool = False,
        weight_init: str = "max", activation_init: str = "max",
    ) -> None:  # fmt: skip
        """Add LSQ quantizers: int8 input, ``weight_format`` cores and merges, int8 stage outputs.

        Scales initialise on the first forward, or by :func:`ttaccel.models.compress.calibrate`,
        by the rule ``weight_init`` (cores, merges) or ``activation_init`` (input, stages), see
        :func:`ttaccel.models.quant.init_scale` (default ``max|x| / qmax``).
        """
        self.weight_format = weight_format

        def q(fmt: NumberFormat, half_up: bool, init: str) -> LsqQuantizer:
            return LsqQuantizer(fmt, power_of_two=power_of_two, half_up=half_up, init=init)

        # Input and cores are quantized (half to even); merges and stages are requantizations.
        self.input_q = q(INT8, False, activation_init)
        self.core_q = nn.ModuleList(q(weight_format, False, weight_init) for _ in self.cores)
        self.merge_q = nn.ModuleList(
            nn.ModuleList(q(weight_format, True, weight_init) for _ in range(b - a - 1))
            for a, b in self.plan
        )
        self.stage_q = nn.ModuleList(q(INT8, True, activation_init) for _ in self.plan)

    # -- forward paths --

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_features)
        if self.int_mode:
            out = self._forward_int(flat)
        elif self.quantized:
            out = self._forward_fake_quant(flat)
        else:
            out = self._forward_float(flat)
        return out.reshape(*lead, self.out_features)

    def _forward_float(self, x: torch.Tensor) -> torch.Tensor:
        plan = cheapest_training_plan(self.shape, x.shape[0])
        merged = _merge_segments(list(self.cores), plan)
        out = tt_contract(x, merged)
        return out + self.bias if self.bias is not None else out

    def _quantized_merged_cores(self, track: bool) -> list[Exact]:
        cores = [quantize_exact(q, c, track=track)
                 for q, c in zip(self.core_q, self.cores, strict=True)]  # fmt: skip
        merged = []
        for (a, b), merge_q in zip(self.plan, self.merge_q, strict=True):
            running = cores[a]
            for k, q in zip(range(a + 1, b), merge_q, strict=True):
                codes = on_codes(merge_cores, running.codes, cores[k].codes)
                value = merge_cores(running.value, cores[k].value)
                running = requantize_exact(q, value, codes, running.scale * cores[k].scale)
            merged.append(running)
        return merged

    def _forward_fake_quant(self, x: torch.Tensor) -> torch.Tensor:
        track = not self.training  # exact hardware numbers in eval, plain LSQ in training
        merged = self._quantized_merged_cores(track)
        batch, m0 = x.shape[0], merged[0].value.shape[1]
        state = quantize_exact(self.input_q, x, track=track)
        state = state.map(lambda t: t.reshape(batch, 1, m0, -1))
        last = len(merged) - 1
        for s, core in enumerate(merged):
            acc = Exact(contract_core(state.value, core.value),
                        on_codes(contract_core, state.codes, core.codes),
                        state.scale * core.scale)  # fmt: skip
            if s == last:
                acc = acc.map(lambda t: t.reshape(batch, -1))
                if self.bias is not None:
                    acc = self._add_bias(acc)
                return requantize_exact(self.stage_q[s], *acc).value
            out = requantize_exact(self.stage_q[s], *acc)
            state = out.map(partial(_next_state, next_m=merged[s + 1].value.shape[1]))
        raise AssertionError("unreachable")

    def _add_bias(self, acc: Exact) -> Exact:
        """The bias at the accumulator's scale (the spec's ``quantize_bias``), added."""
        codes = round_ste(self.bias / acc.scale)
        value = acc.value + codes * acc.scale
        add = lambda c: c + torch.clamp(codes.double(), -(2**31), 2**31 - 1)  # noqa: E731
        return Exact(value, on_codes(add, acc.codes), acc.scale)

    # -- export and integer simulation --

    def to_int(self) -> QuantTTLinear:
        """The spec's integer layer from the learned scales (quantization must be enabled and
        calibrated). Cores are quantized by the spec's ``quantize``; constants by
        :func:`ttaccel.spec.ptq.quant_tt_linear_from_scales`."""
        if not self.quantized or not bool(self.input_q.initialized):
            raise ValueError("to_int needs a quantized, calibrated TTLinear (run a forward first)")
        codes, scales = zip(*(q.to_int(c) for q, c in zip(self.core_q, self.cores, strict=True)),
                            strict=True)  # fmt: skip
        merge_scales = [[q.effective_scale() for q in seg] for seg in self.merge_q]
        stage_scales = [q.effective_scale() for q in self.stage_q]
        bias = None if self.bias is None else self.bias.detach().double().cpu().numpy()
        return quant_tt_linear_from_scales(
            list(codes), list(scales), self.weight_format, self.plan, merge_scales, stage_scales,
            self.input_q.effective_scale(), bias,
        )  # fmt: skip

    def _forward_int(self, x: torch.Tensor) -> torch.Tensor:
        from .intsim import dequantize, quantize_input, tt_linear_int

        if self._int_cache is None:
            self._int_cache = (self.to_int(),)
        (layer,) = self._int_cache
        codes = quantize_input(x, layer.input_scale)
        return dequantize(tt_linear_int(codes, layer), layer.output_scale).to(x.dtype)

    def train(self, mode: bool = True) -> TTLinear:
        self._int_cache = None  # parameters may change: rebuild the integer layer
        return super().train(mode)


def tt_shape_ranks(cores: Sequence[np.ndarray]) -> tuple[int, ...]:
    """Ranks ``(r_0, ..., r_d)`` of a list of cores."""
    return (int(cores[0].shape[0]), *(int(c.shape[3]) for c in cores))


class TTEmbedding(nn.Module):
    """An embedding table whose ``(rows, dim)`` matrix is a TT-matrix, looked up row by row.

    ``row_modes`` multiply to the padded number of rows (``>= num_embeddings``), ``col_modes``
    to ``dim``. ``forward(ids)`` takes int64 ids of any shape and returns ``(*ids.shape, dim)``
    float rows without forming the table: the state ``G0[0, i0]`` (n0, r1) is multiplied by
    ``G_k[:, i_k]`` (r_k, n_k r_{k+1}) for each later core, as the spec's
    :func:`~ttaccel.spec.golden.tt_embedding_int`; quantized, every product is fake-quantized
    to int8 and the cores to the weight format.
    """

    def __init__(
        self,
        num_embeddings: int,
        row_modes: Sequence[int],
        col_modes: Sequence[int],
        ranks: Sequence[int],
        *,
        padding_idx: int | None = None,
    ) -> None:
        super().__init__()
        self.shape = TTShape(tuple(row_modes), tuple(col_modes), tuple(ranks))
        if not 1 <= num_embeddings <= self.shape.in_features:
            raise ValueError(
                f"row modes {list(row_modes)} multiply to {self.shape.in_features}, fewer than "
                f"the {num_embeddings} embeddings"
            )
        self.num_embeddings = num_embeddings
        self.padding_idx = padding_idx
        std = 0.02 ** (1.0 / self.shape.num_cores)
        self.cores = nn.ParameterList(
            nn.Parameter(torch.randn(s) * std / math.sqrt(s[0])) for s in self.shape.core_shapes
        )
        self.weight_format: NumberFormat | None = None
        self.int_mode = False

    @property
    def embedding_dim(self) -> int:
        return self.shape.out_features

    @property
    def quantized(self) -> bool:
        return self.weight_format is not None

    def extra_repr(self) -> str:
        s = self.shape
        return (
            f"{self.num_embeddings}, row_modes={list(s.in_modes)}, col_modes={list(s.out_modes)}, "
            f"ranks={list(s.ranks)}, weight_format={self.weight_format}"
        )

    @classmethod
    def from_embedding(
        cls,
        embedding: nn.Embedding,
        ranks: int | Sequence[int],
        row_modes: Sequence[int] | None = None,
        col_modes: Sequence[int] | None = None,
    ) -> TTEmbedding:
        """TT-SVD of a trained table (padded with zero rows to ``prod(row_modes)``)."""
        num, dim = embedding.weight.shape
        if row_modes is None or col_modes is None:
            row_modes, col_modes = auto_embedding_modes(num, dim)
        row_modes, col_modes = tuple(row_modes), tuple(col_modes)
        if math.prod(row_modes) < num or math.prod(col_modes) != dim:
            raise ValueError(
                f"embedding modes {list(row_modes)} x {list(col_modes)} multiply to "
                f"{math.prod(row_modes)} x {math.prod(col_modes)}; need at least {num} rows and "
                f"exactly {dim} columns"
            )
        full_ranks = resolve_ranks((row_modes, col_modes), ranks)
        table = np.zeros((math.prod(row_modes), dim))
        table[:num] = embedding.weight.detach().double().cpu().numpy()
        cores, error = tt_svd(table, row_modes, col_modes, full_ranks)
        layer = cls(num, row_modes, col_modes, tt_shape_ranks(cores),
                    padding_idx=embedding.padding_idx)  # fmt: skip
        with torch.no_grad():
            for param, core in zip(layer.cores, cores, strict=True):
                param.copy_(torch.from_numpy(core))
        layer.svd_error = error
        return layer

    def enable_quantization(
        self, weight_format: NumberFormat, *, power_of_two: bool = False,
        weight_init: str = "max", activation_init: str = "max",
    ) -> None:  # fmt: skip
        """LSQ quantizers for every core (``weight_format``, initialised by ``weight_init``) and
        every product (int8, ``activation_init``); see :func:`ttaccel.models.quant.init_scale`."""
        self.weight_format = weight_format
        self.core_q = nn.ModuleList(
            LsqQuantizer(weight_format, power_of_two=power_of_two, init=weight_init)
            for _ in self.cores
        )
        self.stage_q = nn.ModuleList(
            LsqQuantizer(INT8, power_of_two=power_of_two, half_up=True, init=activation_init)
            for _ in range(len(self.cores) - 1)
        )

    def _digits(self, ids: torch.Tensor) -> list[torch.Tensor]:
        digits, rest = [], ids
        for m in reversed(self.shape.in_modes):
            digits.append(rest % m)
            rest = torch.div(rest, m, rounding_mode="floor")
        return digits[::-1]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.int_mode:
            return self._forward_int(ids)
        flat = ids.reshape(-1)
        digits = self._digits(flat)
        if self.quantized:
            return self._forward_fake_quant(flat, digits).reshape(*ids.shape, self.embedding_dim)
        cores = list(self.cores)
        state = cores[0][0][digits[0]]  # (T, n0, r1)
        for k in range(1, len(cores)):
            state = torch.bmm(state, self._slices(cores[k], digits[k]))  # (T, N_so_far, n r')
            state = state.reshape(flat.shape[0], -1, cores[k].shape[3])
        return state.reshape(*ids.shape, self.embedding_dim)

    @staticmethod
    def _slices(core: torch.Tensor, digit: torch.Tensor) -> torch.Tensor:
        """``core[:, digit]`` of every row as ``(T, r, n * r')``."""
        r, _, n, r_next = core.shape
        return core.permute(1, 0, 2, 3)[digit].reshape(-1, r, n * r_next)

    def _forward_fake_quant(self, flat: torch.Tensor, digits: list[torch.Tensor]) -> torch.Tensor:
        track = not self.training  # exact hardware numbers in eval, plain LSQ in training
        cores = [quantize_exact(q, c, track=track)
                 for q, c in zip(self.core_q, self.cores, strict=True)]  # fmt: skip
        state = cores[0].map(lambda core: core[0][digits[0]])
        for k in range(1, len(cores)):
            slices = cores[k].map(partial(self._slices, digit=digits[k]))
            acc = Exact(torch.bmm(state.value, slices.value),
                        on_codes(torch.bmm, state.codes, slices.codes),
                        state.scale * slices.scale)  # fmt: skip
            r_next = cores[k].value.shape[3]
            state = requantize_exact(self.stage_q[k - 1], *acc)
            state = state.map(lambda t: t.reshape(flat.shape[0], -1, r_next))  # noqa: B023
        return state.value.reshape(flat.shape[0], -1)

    def to_int(self) -> QuantTTEmbedding:
        """The spec's integer table, constants from
        :func:`ttaccel.spec.ptq.quant_tt_embedding_from_scales`."""
        if not self.quantized or (self.stage_q and not bool(self.stage_q[0].initialized)):
            raise ValueError(
                "to_int needs a quantized, calibrated TTEmbedding (run a forward first)"
            )
        codes, scales = zip(*(q.to_int(c) for q, c in zip(self.core_q, self.cores, strict=True)),
                            strict=True)  # fmt: skip
        return quant_tt_embedding_from_scales(
            list(codes), list(scales), self.weight_format,
            [q.effective_scale() for q in self.stage_q], self.num_embeddings,
        )  # fmt: skip

    def _forward_int(self, ids: torch.Tensor) -> torch.Tensor:
        from .intsim import dequantize, tt_embedding_int

        layer = self.to_int()
        codes = tt_embedding_int(ids.reshape(-1), layer)
        rows = dequantize(codes, layer.output_scale)
        return rows.reshape(*ids.shape, self.embedding_dim)
