"""Tensor-train matrix (TT-matrix) layout, TT-SVD, and float contraction with a batch.

Layout (the contract)
    A TT-matrix with ``d`` cores represents a weight ``W`` of shape ``(M, N)`` with
    ``M = prod(in_modes)`` (input features) and ``N = prod(out_modes)`` (output features), used
    as ``y = x @ W``. Core ``k`` has shape ``(r[k], m[k], n[k], r[k+1])`` with ``r[0] = r[d] = 1``
    and::

        W[i, j] = G0[:, i0, j0, :] @ G1[:, i1, j1, :] @ ... @ G{d-1}[:, i{d-1}, j{d-1}, :]

    where ``i = (i0, ..., i{d-1})`` and ``j = (j0, ..., j{d-1})`` are row-major multi-indices
    (``i0`` most significant). A plain TT of the reshaped matrix, as seed 000 uses for linear
    layers (modes ``[24, 32, 32, 24]``: in 24*32, out 32*24), is the special case
    ``in_modes = (24, 32, 1, 1)``, ``out_modes = (1, 1, 32, 24)``: see :func:`tt_layer_modes`.

Contraction
    ``x`` (B, M) is contracted core by core without forming ``W``. Before core ``k`` the state
    has axes ``(B, n0..n{k-1}, r[k], m[k]..m{d-1})``; core ``k`` is one GEMM with
    ``rows = B * prod(n[:k]) * prod(m[k+1:])``, ``K = r[k] * m[k]`` and
    ``N = n[k] * r[k+1]``. A *plan* groups consecutive cores into segments that are merged
    offline (input independent) into one core each, so e.g. seed 000's 4-core layer runs as two
    skinny GEMMs through the rank. :func:`best_plan` picks the plan with the fewest online MACs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

import numpy as np

from .formats import NumberFormat
from .packing import packed_nbytes

__all__ = [
    "Plan",
    "TTShape",
    "balanced_factorization",
    "best_plan",
    "contract_core",
    "merge_cores",
    "merged_shape",
    "plan_macs",
    "tt_contract",
    "tt_layer_modes",
    "tt_shape_of",
    "tt_svd",
    "tt_to_dense",
]

Plan = tuple[tuple[int, int], ...]
"""Consecutive half-open core ranges ``((0, a), (a, b), ..., (z, d))`` merged offline."""


@dataclass(frozen=True)
class TTShape:
    """Modes and ranks of a TT-matrix; validated on construction.

    ``in_modes`` and ``out_modes`` have ``d`` entries each (>= 1); ``ranks`` has ``d + 1`` with
    ``ranks[0] == ranks[d] == 1``.
    """

    in_modes: tuple[int, ...]
    out_modes: tuple[int, ...]
    ranks: tuple[int, ...]

    def __post_init__(self) -> None:
        for name in ("in_modes", "out_modes", "ranks"):
            value = tuple(getattr(self, name))
            if not value or not all(isinstance(v, int | np.integer) and v >= 1 for v in value):
                raise ValueError(
                    f"{name} must be a non-empty list of positive integers, not {value!r}"
                )
            object.__setattr__(self, name, tuple(int(v) for v in value))
        d = len(self.in_modes)
        if len(self.out_modes) != d:
            raise ValueError(
                f"in_modes and out_modes must have the same length, not {len(self.in_modes)} "
                f"and {len(self.out_modes)}"
            )
        if len(self.ranks) != d + 1:
            raise ValueError(
                f"ranks must have {d + 1} entries for {d} cores, not {len(self.ranks)}"
            )
        if self.ranks[0] != 1 or self.ranks[-1] != 1:
            raise ValueError(f"ranks must start and end with 1, not {self.ranks!r}")

    @property
    def num_cores(self) -> int:
        return len(self.in_modes)

    @property
    def in_features(self) -> int:
        return math.prod(self.in_modes)

    @property
    def out_features(self) -> int:
        return math.prod(self.out_modes)

    @property
    def core_shapes(self) -> list[tuple[int, int, int, int]]:
        r, m, n = self.ranks, self.in_modes, self.out_modes
        return [(r[k], m[k], n[k], r[k + 1]) for k in range(self.num_cores)]

    @property
    def num_params(self) -> int:
        """Number of core entries (no bias)."""
        return sum(math.prod(s) for s in self.core_shapes)

    @property
    def max_ranks(self) -> tuple[int, ...]:
        """Largest useful rank at each boundary: ``min(prod (m n) left, prod (m n) right)``."""
        mn = [m * n for m, n in zip(self.in_modes, self.out_modes, strict=True)]
        d = self.num_cores
        return tuple(
            min(math.prod(mn[:k]), math.prod(mn[k:])) if 0 < k < d else 1 for k in range(d + 1)
        )

    def nbytes(self, fmt: NumberFormat) -> int:
        """Bytes of the cores packed at ``fmt``'s width, each core padded to a whole byte."""
        return sum(packed_nbytes(math.prod(s), fmt) for s in self.core_shapes)

    def compression(self) -> float:
        """Dense parameters / TT parameters."""
        return self.in_features * self.out_features / self.num_params


def tt_shape_of(cores: Sequence[np.ndarray]) -> TTShape:
    """Validate a list of 4-D cores and return their :class:`TTShape`.

    Raises ValueError naming the core whose rank does not chain with its neighbour.
    """
    if len(cores) == 0:
        raise ValueError("a TT-matrix needs at least one core")
    for k, core in enumerate(cores):
        if np.ndim(core) != 4:
            raise ValueError(
                f"core {k} must be 4-D (r_in, m, n, r_out), not shape {np.shape(core)}"
            )
    for k in range(1, len(cores)):
        if cores[k].shape[0] != cores[k - 1].shape[3]:
            raise ValueError(
                f"core {k} has input rank {cores[k].shape[0]} but core {k - 1} has output rank "
                f"{cores[k - 1].shape[3]}"
            )
    ranks = (cores[0].shape[0], *(c.shape[3] for c in cores))
    return TTShape(tuple(c.shape[1] for c in cores), tuple(c.shape[2] for c in cores), tuple(ranks))


def tt_layer_modes(
    in_modes: Sequence[int], out_modes: Sequence[int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Seed 000's TT layout for a linear layer as TT-matrix modes.

    Input cores first, output cores after: ``([24, 32], [32, 24])`` becomes
    ``((24, 32, 1, 1), (1, 1, 32, 24))``.
    """
    a, b = len(in_modes), len(out_modes)
    return tuple(in_modes) + (1,) * b, (1,) * a + tuple(out_modes)


def balanced_factorization(n: int, parts: int) -> tuple[int, ...]:
    """Factor ``n`` into ``parts`` integers as equal as possible (largest first).

    Greedy over prime factors: each prime, largest first, multiplies the currently smallest
    part. Parts of 1 appear only if ``n`` has fewer prime factors than ``parts``.
    """
    if not isinstance(n, int) or n < 1 or not isinstance(parts, int) or parts < 1:
        raise ValueError(f"need positive integers, not n={n!r}, parts={parts!r}")
    primes, rest, p = [], n, 2
    while p * p <= rest:
        while rest % p == 0:
            primes.append(p)
            rest //= p
        p += 1
    if rest > 1:
        primes.append(rest)
    result = [1] * parts
    for prime in sorted(primes, reverse=True):
        result[result.index(min(result))] *= prime
    return tuple(sorted(result, reverse=True))


def _rank_caps(ranks: int | Sequence[int], d: int) -> list[int]:
    if isinstance(ranks, int | np.integer):
        return [1] + [int(ranks)] * (d - 1) + [1]
    ranks = [int(r) for r in ranks]
    if len(ranks) == d - 1:
        ranks = [1, *ranks, 1]
    if len(ranks) != d + 1 or ranks[0] != 1 or ranks[-1] != 1 or min(ranks) < 1:
        raise ValueError(
            f"ranks must be an int, {d - 1} inner ranks, or {d + 1} ranks starting and ending "
            f"with 1, not {ranks!r}"
        )
    return ranks


def tt_svd(
    matrix: np.ndarray,
    in_modes: Sequence[int],
    out_modes: Sequence[int],
    ranks: int | Sequence[int],
) -> tuple[list[np.ndarray], float]:
    """Decompose ``matrix`` (M, N) into TT-matrix cores by sequential truncated SVD.

    ``ranks`` caps the ranks (an int for all inner ranks, or a list); the actual rank at a
    boundary is ``min(cap, max_rank)``. Returns ``(cores, relative_error)`` with the cores in
    float64 and ``relative_error = ||W - W_tt||_F / ||W||_F`` measured on the reconstruction.
    Full ranks reconstruct the matrix to floating-point precision.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    in_modes, out_modes = tuple(int(m) for m in in_modes), tuple(int(n) for n in out_modes)
    d = len(in_modes)
    if len(out_modes) != d:
        raise ValueError(f"in_modes {in_modes} and out_modes {out_modes} differ in length")
    if matrix.shape != (math.prod(in_modes), math.prod(out_modes)):
        raise ValueError(
            f"modes {in_modes} x {out_modes} multiply to "
            f"({math.prod(in_modes)}, {math.prod(out_modes)}), but the matrix is {matrix.shape}"
        )
    caps = _rank_caps(ranks, d)
    # (m0..m{d-1}, n0..n{d-1}) -> (m0, n0, m1, n1, ...): core k owns the pair (m_k, n_k).
    tensor = matrix.reshape(in_modes + out_modes)
    tensor = tensor.transpose([ax for k in range(d) for ax in (k, d + k)])
    cores, rank = [], 1
    rest = tensor.reshape(in_modes[0] * out_modes[0], -1)
    for k in range(d - 1):
        u, s, vt = np.linalg.svd(rest, full_matrices=False)
        new_rank = max(1, min(caps[k + 1], s.size))
        cores.append(u[:, :new_rank].reshape(rank, in_modes[k], out_modes[k], new_rank))
        rank = new_rank
        rest = (s[:new_rank, None] * vt[:new_rank]).reshape(
            rank * in_modes[k + 1] * out_modes[k + 1], -1
        )
    cores.append(rest.reshape(rank, in_modes[-1], out_modes[-1], 1))
    norm = np.linalg.norm(matrix)
    error = np.linalg.norm(matrix - tt_to_dense(cores)) / norm if norm > 0 else 0.0
    return cores, float(error)


def merge_cores(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Merge two neighbouring cores into one: ``(r0, m0, n0, r1) x (r1, m1, n1, r2)`` ->
    ``(r0, m0 * m1, n0 * n1, r2)`` with ``m0`` and ``n0`` the more significant digits.

    Exact for integer dtypes (accumulates in the input dtype: pass int64 for integer codes).
    """
    r0, m0, n0, r1 = left.shape
    _, m1, n1, r2 = right.shape
    if right.shape[0] != r1:
        raise ValueError(f"cannot merge cores of shapes {left.shape} and {right.shape}")
    product = left.reshape(-1, r1) @ right.reshape(r1, -1)  # (r0 m0 n0, m1 n1 r2)
    product = product.reshape(r0, m0, n0, m1, n1, r2).transpose(0, 1, 3, 2, 4, 5)
    return product.reshape(r0, m0 * m1, n0 * n1, r2)


def tt_to_dense(cores: Sequence[np.ndarray]) -> np.ndarray:
    """Reconstruct the full ``(M, N)`` matrix (for tests and small layers only)."""
    tt_shape_of(cores)
    full = reduce(merge_cores, cores)
    return full.reshape(full.shape[1], full.shape[2])


def contract_core(state: np.ndarray, core: np.ndarray) -> np.ndarray:
    """One contraction stage as a single GEMM.

    ``state`` has shape ``(P, r, m, R)`` (P = batch x output modes done, R = input modes still
    to come) and ``core`` ``(r, m, n, r_next)``; returns ``(P, n, r_next, R)``. The GEMM has
    ``P * R`` rows, ``K = r * m`` and ``N = n * r_next``. Integer inputs accumulate exactly in
    their dtype (use int64).
    """
    p, r, m, rest = state.shape
    _, _, n, r_next = core.shape
    rows = state.transpose(0, 3, 1, 2).reshape(p * rest, r * m)
    out = rows @ core.reshape(r * m, n * r_next)
    return out.reshape(p, rest, n, r_next).transpose(0, 2, 3, 1)


def tt_contract(x: np.ndarray, cores: Sequence[np.ndarray]) -> np.ndarray:
    """``x @ W`` for a TT-matrix ``W`` without forming ``W``.

    ``x``: (B, M) with ``M = prod(in_modes)``; returns (B, N) in the result dtype of
    ``x @ core``. Cores are contracted left to right, one GEMM each (:func:`contract_core`);
    merge cores first (:func:`merged_cores_for`) to follow a cheaper plan.
    """
    shape = tt_shape_of(cores)
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != shape.in_features:
        raise ValueError(f"x must have shape (B, {shape.in_features}), not {x.shape}")
    state = x.reshape(x.shape[0], 1, shape.in_modes[0], -1)
    for k, core in enumerate(cores):
        state = contract_core(state, core)  # (P, n_k, r_{k+1}, R)
        p, n, r_next, rest = state.shape
        next_m = shape.in_modes[k + 1] if k + 1 < shape.num_cores else 1
        state = state.reshape(p * n, r_next, next_m, rest // next_m)
    return state.reshape(x.shape[0], shape.out_features)


def merged_shape(shape: TTShape, plan: Plan) -> TTShape:
    """The TT shape after merging each segment of ``plan`` into one core."""
    _check_plan(plan, shape.num_cores)
    return TTShape(
        tuple(math.prod(shape.in_modes[a:b]) for a, b in plan),
        tuple(math.prod(shape.out_modes[a:b]) for a, b in plan),
        (*tuple(shape.ranks[a] for a, _ in plan), 1),
    )


def _check_plan(plan: Plan, d: int) -> None:
    starts = [a for a, _ in plan]
    ends = [b for _, b in plan]
    if (
        not plan
        or starts[0] != 0
        or ends[-1] != d
        or starts[1:] != ends[:-1]
        or any(b <= a for a, b in plan)
    ):
        raise ValueError(f"plan {plan!r} does not split cores 0..{d} into consecutive segments")


def plan_macs(shape: TTShape, plan: Plan, batch: int = 1) -> tuple[list[int], int]:
    """MACs of contracting ``batch`` vectors along ``plan``.

    Returns ``(online_macs_per_stage, offline_merge_macs)``. Stage ``s`` over merged core
    ``(r, m, n, r')`` costs ``batch * prod(n before) * prod(m after) * r * m * n * r'``; merging
    is input independent and counted once.
    """
    merged = merged_shape(shape, plan)
    online = []
    for k, (r, m, n, r_next) in enumerate(merged.core_shapes):
        rows = batch * math.prod(merged.out_modes[:k]) * math.prod(merged.in_modes[k + 1 :])
        online.append(rows * r * m * n * r_next)
    offline = 0
    for a, b in plan:
        rank_in, m_acc, n_acc = shape.ranks[a], shape.in_modes[a], shape.out_modes[a]
        for k in range(a + 1, b):
            _, m, n, r_next = shape.core_shapes[k]
            offline += rank_in * m_acc * n_acc * shape.ranks[k] * m * n * r_next
            m_acc, n_acc = m_acc * m, n_acc * n
    return online, offline


def best_plan(shape: TTShape, batch: int = 1) -> Plan:
    """The plan with the fewest online MACs (dynamic programming over segment boundaries).

    Ties go to fewer stages (fewer requantization points).
    """
    d = shape.num_cores
    best: list[tuple[int, int, Plan]] = [(0, 0, ())] + [(math.inf, 0, ())] * d  # type: ignore[list-item]
    for b in range(1, d + 1):
        for a in range(b):
            cost_a, stages_a, plan_a = best[a]
            rows = batch * math.prod(shape.out_modes[:a]) * math.prod(shape.in_modes[b:])
            cost = (
                cost_a
                + rows
                * shape.ranks[a]
                * math.prod(shape.in_modes[a:b])
                * math.prod(shape.out_modes[a:b])
                * shape.ranks[b]
            )
            if (cost, stages_a + 1) < best[b][:2]:
                best[b] = (cost, stages_a + 1, (*plan_a, (a, b)))
    return best[d][2]
