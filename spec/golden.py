"""Bit-exact integer golden models of what the accelerator computes.

Pure NumPy integer functions, one per operation, shared by the PyTorch export check, the
Amaranth and cocotb testbenches and the host driver. Activations are int8 codes, weights are
codes of the layer's weight format, accumulators are int32 (checked: an accumulator that would
leave int32 raises OverflowError, since the hardware never wraps silently).

A quantized TT-matrix linear layer (seed 000's requantization points, generalised to any plan):

1. offline, each segment of the plan is merged from its cores left to right; after every
   pairwise merge the int32 product is requantized back to the weight format
   (:func:`merge_cores_int`);
2. online, the int8 input is contracted with each merged core in turn (one GEMM each, see
   :func:`ttaccel.spec.tt.contract_core`); after every stage the accumulator is requantized to
   int8; the last stage adds the int32 bias first (:func:`tt_linear_int`).

A quantized N:M sparse linear layer (seed 002, :class:`QuantNMLinear`) is the dense layer its
compressed weight expands to (:func:`ttaccel.spec.nm.nm_expand`):
``requantize(x @ W + bias)`` in int32 (:func:`nm_linear_int`), the same numbers as the one-core
TT layer :meth:`QuantNMLinear.as_tt_linear`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .formats import ACC_BITS, BINARY, NumberFormat, Requant, requantize
from .nm import check_nm, nm_compress, nm_expand
from .tt import Plan, contract_core, merge_cores, merged_shape, tt_shape_of

__all__ = [
    "QuantNMLinear",
    "QuantTTEmbedding",
    "QuantTTLinear",
    "gemm_int",
    "merge_cores_int",
    "nm_linear_int",
    "tt_contract_int",
    "tt_embedding_int",
    "tt_linear_int",
]

_ACC_MIN, _ACC_MAX = -(2 ** (ACC_BITS - 1)), 2 ** (ACC_BITS - 1) - 1


def _check_acc(acc: np.ndarray, what: str) -> np.ndarray:
    if acc.size and (acc.min() < _ACC_MIN or acc.max() > _ACC_MAX):
        raise OverflowError(
            f"{what}: accumulator leaves int{ACC_BITS}: [{int(acc.min())}, {int(acc.max())}]"
        )
    return acc


def gemm_int(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer GEMM ``a @ b`` with int32 accumulation: (R, K) x (K, N) -> int64 array (R, N)
    whose values are checked to fit int32 (OverflowError otherwise)."""
    acc = np.asarray(a, dtype=np.int64) @ np.asarray(b, dtype=np.int64)
    return _check_acc(acc, "gemm")


def merge_cores_int(left: np.ndarray, right: np.ndarray, requant: Requant) -> np.ndarray:
    """Merge two integer cores (see :func:`ttaccel.spec.tt.merge_cores`) and requantize the
    int32 products to ``requant.out_format`` (normally the weight format). Returns int8 codes
    of shape ``(r0, m0 * m1, n0 * n1, r2)``."""
    acc = merge_cores(np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64))
    return requantize(_check_acc(acc, "merge"), requant)


def tt_contract_int(
    x: np.ndarray,
    cores: Sequence[np.ndarray],
    stage_requants: Sequence[Requant],
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """Integer contraction of int8 codes ``x`` (B, M) with already merged integer ``cores``.

    After stage ``k`` the int32 accumulators are requantized with ``stage_requants[k]``; the
    last stage adds ``bias`` (int32, shape (N,)) before requantizing. Returns codes (B, N) of the
    last requant's output format.
    """
    shape = tt_shape_of(cores)
    if len(stage_requants) != shape.num_cores:
        raise ValueError(f"need {shape.num_cores} stage requants, got {len(stage_requants)}")
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != shape.in_features:
        raise ValueError(f"x must have shape (B, {shape.in_features}), not {x.shape}")
    batch = x.shape[0]
    state = x.astype(np.int64).reshape(batch, 1, shape.in_modes[0], -1)
    for k, (core, requant) in enumerate(zip(cores, stage_requants, strict=True)):
        acc = _check_acc(contract_core(state, np.asarray(core, dtype=np.int64)), f"stage {k}")
        p, n, r_next, rest = acc.shape
        if k == shape.num_cores - 1:
            # acc axes: (batch * n_0..n_{d-2}, n_{d-1}, 1, 1) -> (B, N)
            out = acc.reshape(batch, shape.out_features)
            return requantize(out, requant, bias)
        codes = requantize(acc, requant).astype(np.int64)
        next_m = shape.in_modes[k + 1]
        state = codes.reshape(p * n, r_next, next_m, rest // next_m)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class QuantTTLinear:
    """An integer TT-matrix linear layer, everything the hardware needs to run it.

    ``cores``: int8 arrays of codes of ``weight_format``, shapes ``(r, m, n, r')``;
    ``plan``: consecutive segments merged offline; ``merge_requants[s]``: the
    ``len(segment) - 1`` requants of segment ``s``'s pairwise merges (output: weight format);
    ``stage_requants[s]``: the requant after online stage ``s`` (int8 output; the last one
    brings the result to the layer's output scale); ``bias``: int32 (N,) at the last stage's
    accumulator scale, or None. ``input_scale`` and ``output_scale`` are the float scales of
    the int8 input and output codes.
    """

    cores: tuple[np.ndarray, ...]
    weight_format: NumberFormat
    plan: Plan
    merge_requants: tuple[tuple[Requant, ...], ...]
    stage_requants: tuple[Requant, ...]
    bias: np.ndarray | None
    input_scale: float
    output_scale: float

    def __post_init__(self) -> None:
        shape = tt_shape_of(self.cores)
        merged = merged_shape(shape, self.plan)  # validates the plan
        for k, core in enumerate(self.cores):
            bad = ~self.weight_format.valid(core)
            if bad.any():
                raise ValueError(
                    f"core {k} holds {int(np.asarray(core)[bad][0])}, not a legal "
                    f"{self.weight_format.name} code"
                )
        for s, (a, b) in enumerate(self.plan):
            if len(self.merge_requants[s]) != b - a - 1:
                raise ValueError(
                    f"segment {s} {(a, b)} merges {b - a - 1} times but has "
                    f"{len(self.merge_requants[s])} merge requants"
                )
        if len(self.stage_requants) != merged.num_cores:
            raise ValueError(
                f"{merged.num_cores} stages need as many stage requants, "
                f"not {len(self.stage_requants)}"
            )
        if self.bias is not None and np.shape(self.bias) != (shape.out_features,):
            raise ValueError(
                f"bias must have shape ({shape.out_features},), not {np.shape(self.bias)}"
            )

    def merged_cores(self) -> list[np.ndarray]:
        """The per-stage integer cores: each segment merged with :func:`merge_cores_int`."""
        merged = []
        for (a, b), requants in zip(self.plan, self.merge_requants, strict=True):
            core = np.asarray(self.cores[a])
            for k, requant in zip(range(a + 1, b), requants, strict=True):
                core = merge_cores_int(core, self.cores[k], requant)
            merged.append(core)
        return merged

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """int8 codes (B, in_features) -> int8 codes (B, out_features)."""
        return tt_linear_int(x, self)


def tt_linear_int(x: np.ndarray, layer: QuantTTLinear) -> np.ndarray:
    """Run :class:`QuantTTLinear` on int8 codes ``x`` (B, M); returns int8 codes (B, N)."""
    return tt_contract_int(x, layer.merged_cores(), layer.stage_requants, layer.bias)


@dataclass(frozen=True)
class QuantNMLinear:
    """An integer N:M sparse linear layer in compressed form (see :mod:`ttaccel.spec.nm`).

    ``values``: int8 codes of ``weight_format``, shape ``(out_features, in_features // m, n)``;
    ``indices``: uint8 positions ``0 .. m-1`` inside each group of ``m`` inputs, same shape,
    strictly ascending per group (output row, then group, then slot: the order a weight
    buffer streams). ``requant``: the one requant of the int32 accumulator (plus ``bias``, int32
    (out_features,) at the accumulator scale ``input_scale * weight_scale``, or None) to int8
    codes at ``output_scale``; ``input_scale``: the scale of the int8 input codes.

    Binary weights have no zero, so they cannot be pruned: ValueError. Every other check
    (shapes, index range and order, legal codes) raises ValueError naming what is wrong.
    """

    values: np.ndarray
    indices: np.ndarray
    n: int
    m: int
    in_features: int
    weight_format: NumberFormat
    requant: Requant
    bias: np.ndarray | None
    input_scale: float
    output_scale: float

    def __post_init__(self) -> None:
        check_nm(self.n, self.m)
        if self.weight_format == BINARY:
            raise ValueError(
                "an N:M layer cannot take binary weights: binary codes {-1, +1} have no zero "
                "for the pruned positions (use int8, int4, int2 or ternary)"
            )
        dense = self.dense_codes()  # checks shapes, index range and order
        bad = ~self.weight_format.valid(self.values)
        if bad.any():
            raise ValueError(
                f"values hold {int(np.asarray(self.values)[bad][0])}, not a legal "
                f"{self.weight_format.name} code"
            )
        if self.bias is not None and np.shape(self.bias) != (dense.shape[0],):
            raise ValueError(f"bias must have shape ({dense.shape[0]},), not {np.shape(self.bias)}")

    @property
    def out_features(self) -> int:
        return int(np.shape(self.values)[0])

    def dense_codes(self) -> np.ndarray:
        """The weight as dense int8 codes ``(out_features, in_features)`` (PyTorch's
        ``Linear.weight`` orientation), zeros at the pruned positions: :func:`nm_expand`."""
        return nm_expand(self.values, self.indices, self.n, self.m, self.in_features)

    def as_tt_linear(self) -> QuantTTLinear:
        """The same layer as a one-core (dense) :class:`QuantTTLinear`: core ``(1, in, out, 1)``
        = the expanded weight transposed, the same requant, bias and scales. This is what the
        engine runs where its sparse GEMM mode cannot take the layer
        (:func:`ttaccel.spec.compiler.compile_layer`), and what :class:`BertInference` uses."""
        weight = self.dense_codes().T
        return QuantTTLinear(
            cores=(np.ascontiguousarray(weight).reshape(1, *weight.shape, 1),),
            weight_format=self.weight_format, plan=((0, 1),), merge_requants=((),),
            stage_requants=(self.requant,), bias=self.bias, input_scale=self.input_scale,
            output_scale=self.output_scale,
        )  # fmt: skip

    @classmethod
    def from_tt_linear(cls, layer: QuantTTLinear, n: int, m: int, *, name: str = "weight"):
        """Compress a one-core (dense) :class:`QuantTTLinear` whose weight is N:M sparse.
        Raises ValueError naming ``name`` when it has more than one core or a group of ``m``
        inputs holds more than ``n`` nonzero codes."""
        if len(layer.cores) != 1:
            raise ValueError(
                f"{name}: only a dense (one-core) layer can be stored N:M, not {len(layer.cores)} "
                "TT cores"
            )
        core = np.asarray(layer.cores[0])
        weight = core.reshape(core.shape[1], core.shape[2]).T  # (out, in)
        values, indices = nm_compress(weight, n, m, name=name)
        return cls(values, indices, n, m, int(core.shape[1]), layer.weight_format,
                   layer.stage_requants[0], layer.bias, layer.input_scale,
                   layer.output_scale)  # fmt: skip

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """int8 codes (B, in_features) -> int8 codes (B, out_features)."""
        return nm_linear_int(x, self)


def nm_linear_int(x: np.ndarray, layer: QuantNMLinear) -> np.ndarray:
    """Run :class:`QuantNMLinear` on int8 codes ``x`` (B, in_features): the int32 GEMM with the
    expanded weight (:func:`gemm_int`, overflow checked), the bias added and requantized to
    int8 codes (B, out_features) in one step (:func:`~ttaccel.spec.formats.requantize`)."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != layer.in_features:
        raise ValueError(f"x must have shape (B, {layer.in_features}), not {x.shape}")
    acc = gemm_int(x, layer.dense_codes().T)
    return requantize(acc, layer.requant, layer.bias)


@dataclass(frozen=True)
class QuantTTEmbedding:
    """An integer TT-matrix embedding table, looked up row by row without forming the table.

    ``cores``: int8 arrays of codes of ``weight_format`` with shapes ``(r, v_k, n_k, r')``; the
    table has ``prod(v)`` rows of which the first ``num_embeddings`` are valid ids and
    ``prod(n)`` columns. ``stage_requants[k - 1]`` requantizes the product after core ``k``
    (``d - 1`` entries, int8 output); ``output_scale`` is the scale of the returned codes (the
    core-0 scale when there is a single core).
    """

    cores: tuple[np.ndarray, ...]
    weight_format: NumberFormat
    stage_requants: tuple[Requant, ...]
    num_embeddings: int
    output_scale: float

    def __post_init__(self) -> None:
        shape = tt_shape_of(self.cores)
        if len(self.stage_requants) != shape.num_cores - 1:
            raise ValueError(
                f"{shape.num_cores} cores need {shape.num_cores - 1} stage requants, "
                f"not {len(self.stage_requants)}"
            )
        if not 1 <= self.num_embeddings <= shape.in_features:
            raise ValueError(
                f"num_embeddings must be in [1, {shape.in_features}] (the product of the row "
                f"modes), not {self.num_embeddings}"
            )
        for k, core in enumerate(self.cores):
            if (~self.weight_format.valid(core)).any():
                raise ValueError(f"core {k} holds codes outside {self.weight_format.name}")

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        return tt_embedding_int(ids, self)


def tt_embedding_int(ids: np.ndarray, layer: QuantTTEmbedding) -> np.ndarray:
    """Look up integer rows: ids (B,) in [0, num_embeddings) -> int8 codes (B, N).

    Row ``i`` has row-major digits ``(i_0, ..., i_{d-1})`` over the row modes. The state starts
    as the core-0 slice ``G0[0, i_0]`` (n_0, r_1); each next core multiplies it by
    ``G_k[:, i_k]`` reshaped ``(r_k, n_k * r_{k+1})`` in int32 and is requantized with
    ``stage_requants[k - 1]``; columns come out row-major over ``(n_0, ..., n_{d-1})``.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be a 1-D integer array, not {ids.dtype} of shape {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= layer.num_embeddings):
        raise ValueError(
            f"ids must lie in [0, {layer.num_embeddings}), found [{ids.min()}, {ids.max()}]"
        )
    shape = tt_shape_of(layer.cores)
    digits = (
        np.stack(np.unravel_index(ids, shape.in_modes), axis=1)
        if ids.size
        else np.zeros((0, shape.num_cores), dtype=np.int64)
    )
    state = np.asarray(layer.cores[0], dtype=np.int64)[0][digits[:, 0]]  # (B, n0, r1)
    for k in range(1, shape.num_cores):
        core = np.asarray(layer.cores[k], dtype=np.int64)
        r, _, n, r_next = core.shape
        slices = core[:, digits[:, k]].transpose(1, 0, 2, 3).reshape(-1, r, n * r_next)
        acc = _check_acc(np.matmul(state, slices), f"embedding stage {k}")  # (B, N_so_far, n*r')
        state = requantize(acc, layer.stage_requants[k - 1]).astype(np.int64)
        state = state.reshape(ids.size, -1, r_next)
    return state.reshape(ids.size, shape.out_features).astype(np.int8)
