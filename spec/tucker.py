"""Tucker decomposition with a matrix bank shared across layers (seed 001, Ren et al. 2022).

The method
    Every encoder weight ``W`` (spec convention: shape ``(in, out)``, ``y = x @ W``) is cut into
    square ``d x d`` blocks, ``d`` the hidden size: a ``d -> d`` weight (attention Q, K, V, O)
    is one block, a ``d -> B*d`` weight (FFN in) is ``B`` blocks along its outputs, a
    ``B*d -> d`` weight (FFN out) ``B`` blocks along its inputs. Block ``b`` is::

        W_b = V @ S_b @ U.T        V (d, r), U (d, r): the bank's factors, shared by all blocks
        S_b = sum_j mix[b, j] * C[core_ids[j]]      C (l, r, r): the bank of cores

    One :class:`TuckerBank` holds ``V``, ``U`` and ``C`` for every layer that names it; a layer
    (:class:`QuantTuckerLinear`) holds only its ``k`` core ids, its mixing coefficients
    ``mix (B, k)`` and its bias.

Integer form: a 3-core TT-matrix (:func:`tucker_as_tt_linear`)
    With :mod:`.tt`'s TT-matrix convention (row-major multi-indices, the first core's digit
    most significant, ``W[i, j] = G0[:, i0, j0, :] @ G1[:, i1, j1, :] @ G2[:, i2, j2, :]``) a
    Tucker linear is exactly the TT-matrix with cores::

        core 0 = V    as (1, d, 1, r)          G0[0, i0, 0, :] = V[i0, :]
        core 1 = S_b  as (r, m1, n1, r)
        core 2 = U.T  as (r, 1, d, 1)          G2[:, 0, j2, 0] = U[j2, :]

    and, by shape (``B`` = number of blocks = ``mix.shape[0]``):

    ===================  ==============  ===============  =============================
    shape                in_modes        out_modes        core 1
    ===================  ==============  ===============  =============================
    d -> d  (B = 1)      (d, 1, 1)       (1, 1, d)        (r, 1, 1, r), ``[:, 0, 0] = S_0``
    d -> B*d             (d, 1, 1)       (1, B, d)        (r, 1, B, r), ``[:, 0, b] = S_b``
    B*d -> d             (d, B, 1)       (1, 1, d)        (r, B, 1, r), ``[:, b, 0] = S_b``
    ===================  ==============  ===============  =============================

    Feature orders this implies (checked against :func:`.tt.tt_to_dense` in the tests):

    * ``d -> B*d``: output feature ``j = b*d + j2``, the blocks are contiguous in the output,
      ``W[:, b*d:(b+1)*d] = V S_b U^T``;
    * ``B*d -> d``: input feature ``i = i0*B + b``, block ``b`` owns the **interleaved** inputs
      ``b, b + B, b + 2B, ...``: ``W[b::B, :] = V S_b U^T``. (V's digit ``i0`` comes first
      because core 0 is contracted first; a contiguous split would need the block digit before
      it.) A float model must cut its FFN-out weight the same way.

    The layer runs in three online stages, no offline merge: plan ``((0, 1), (1, 2), (2, 3))``,
    ``merge_requants ((), (), ())``; stage 0 is ``x @ V`` (int8 out), stage 1 the ``S_b`` (int8
    out), stage 2 ``@ U.T`` plus the int32 bias (int8 out). The golden model is the TT golden
    model (:func:`.golden.tt_linear_int`) of that expansion.

The bank merge (offline, integer; :func:`tucker_block_cores`)
    ``acc[b] = sum_j mix[b, j] * C[core_ids[j]]`` is computed in int64, checked to fit int32
    (OverflowError otherwise, as every accumulator of the spec), and requantized with
    ``mix_requant`` (:func:`.formats.requantize`, no bias) to codes of the bank's weight format:
    the ``S_b`` codes, at scale ``s_S``.

Scales (real value = code * scale; :func:`quant_tucker_linear_from_scales`)
    ``s_V``, ``s_U``, ``s_C``: one per bank tensor; ``s_mix``: the layer's mix codes;
    ``s_S``: its ``S_b`` codes; ``s_in``: int8 input; ``s_t``, ``s_s``, ``s_out``: the int8
    outputs of stages 0, 1, 2. Requant ratios: mix ``s_mix * s_C / s_S`` (out: weight format),
    stages ``s_in * s_V / s_t``, ``s_t * s_S / s_s``, ``s_s * s_U / s_out`` (out: int8); the bias
    is int32 at ``s_s * s_U``.

Weight formats: :data:`.formats.INT8` and :data:`.formats.INT4` for the bank (and so for
``S_b``); the mix codes are INT8. Everything else is refused with a ValueError naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .formats import ACC_BITS, INT4, INT8, NumberFormat, Requant, quantize_bias, requantize
from .golden import QuantTTLinear, tt_linear_int

__all__ = [
    "TUCKER_MIX_FORMATS",
    "TUCKER_PLAN",
    "TUCKER_WEIGHT_FORMATS",
    "QuantTuckerLinear",
    "TuckerBank",
    "check_tucker",
    "quant_tucker_linear_from_scales",
    "tucker_as_tt_linear",
    "tucker_block_cores",
    "tucker_linear_int",
    "tucker_modes",
]

TUCKER_WEIGHT_FORMATS = (INT8, INT4)
"""Formats a bank's codes (V, U, C and so the merged S_b) may take."""
TUCKER_MIX_FORMATS = (INT8,)
"""Formats a layer's mixing coefficients may take."""
TUCKER_PLAN = ((0, 1), (1, 2), (2, 3))
"""Three online stages, no offline merge."""

_ACC_MIN, _ACC_MAX = -(2 ** (ACC_BITS - 1)), 2 ** (ACC_BITS - 1) - 1


def _check_format(fmt: NumberFormat, allowed: Sequence[NumberFormat], what: str) -> None:
    if not isinstance(fmt, NumberFormat) or fmt not in allowed:
        name = fmt.name if isinstance(fmt, NumberFormat) else repr(fmt)
        raise ValueError(
            f"{what} must be one of {[f.name for f in allowed]} for a Tucker layer, not {name}"
        )


def _check_codes(codes: np.ndarray, fmt: NumberFormat, what: str) -> None:
    if not np.issubdtype(np.asarray(codes).dtype, np.integer):
        raise ValueError(f"{what} must hold integer codes, not {np.asarray(codes).dtype}")
    bad = ~fmt.valid(codes)
    if bad.any():
        at = tuple(int(v[0]) for v in np.nonzero(bad))
        raise ValueError(
            f"{what}{list(at)} = {int(np.asarray(codes)[at])} is not a legal {fmt.name} code "
            f"([{fmt.qmin}, {fmt.qmax}])"
        )


@dataclass(frozen=True)
class TuckerBank:
    """A shared Tucker matrix bank: integer codes of ``weight_format`` (INT8 or INT4).

    ``in_factor``: ``V`` codes ``(d, r)``, row ``i`` = input feature ``i`` of a block;
    ``out_factor``: ``U`` codes ``(d, r)``, row ``j`` = output feature ``j`` of a block;
    ``cores``: ``C`` codes ``(l, r, r)``, ``cores[c][p, q]`` couples V's rank ``p`` to U's
    rank ``q``. Stored as int8 arrays. Shapes and codes are checked on construction
    (ValueError naming the tensor).
    """

    in_factor: np.ndarray
    out_factor: np.ndarray
    cores: np.ndarray
    weight_format: NumberFormat

    def __post_init__(self) -> None:
        _check_format(self.weight_format, TUCKER_WEIGHT_FORMATS, "bank weight_format")
        for name in ("in_factor", "out_factor", "cores"):
            value = np.asarray(getattr(self, name))
            want = 3 if name == "cores" else 2
            if value.ndim != want or 0 in value.shape:
                shape = "(l, r, r)" if name == "cores" else "(d, r)"
                raise ValueError(f"{name} must be a non-empty {shape} array, not {value.shape}")
            _check_codes(value, self.weight_format, name)
            object.__setattr__(self, name, value.astype(np.int8))
        d, r = self.in_factor.shape
        if self.out_factor.shape != (d, r):
            raise ValueError(
                f"out_factor must have in_factor's shape ({d}, {r}), not {self.out_factor.shape}"
            )
        if self.cores.shape[1:] != (r, r):
            raise ValueError(
                f"cores must have shape (l, {r}, {r}) for rank {r}, not {self.cores.shape}"
            )

    @property
    def d(self) -> int:
        """Block size (the hidden size)."""
        return int(self.in_factor.shape[0])

    @property
    def r(self) -> int:
        """Tucker rank."""
        return int(self.in_factor.shape[1])

    @property
    def size(self) -> int:
        """Number of cores ``l`` in the bank."""
        return int(self.cores.shape[0])


@dataclass(frozen=True)
class QuantTuckerLinear:
    """One integer Tucker linear: everything besides its bank's tensors.

    ``bank``: the name of its :class:`TuckerBank` in the artifact; ``core_ids`` ``(k,)``:
    distinct indices into the bank's cores; ``mix`` ``(B, k)``: codes of ``mix_format`` (INT8),
    ``mix[b, j]`` weighs core ``core_ids[j]`` in block ``b``; ``mix_requant``: the bank merge's
    int32 accumulator -> ``S_b`` codes of the bank's weight format; ``stage_requants``: the three
    online stages' requants (int8 out); ``bias``: int32 ``(out_features,)`` at the last stage's
    accumulator scale ``s_s * s_U``, or None; ``input_scale`` / ``output_scale``: float scales of
    the int8 input and output codes.

    Checks that need no bank happen on construction (ValueError naming the field); the rest
    (ids in range, features vs the bank's ``d``, formats agree) in :func:`check_tucker`.
    """

    bank: str
    core_ids: np.ndarray
    mix: np.ndarray
    mix_format: NumberFormat
    mix_requant: Requant
    stage_requants: tuple[Requant, Requant, Requant]
    bias: np.ndarray | None
    in_features: int
    out_features: int
    input_scale: float
    output_scale: float

    def __post_init__(self) -> None:
        if not isinstance(self.bank, str) or not self.bank:
            raise ValueError(f"bank must be a non-empty name, not {self.bank!r}")
        ids = np.asarray(self.core_ids)
        if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(
                f"core_ids must be a non-empty 1-D integer array, not {ids.dtype} {ids.shape}"
            )
        if (ids < 0).any():
            at = int(np.argmax(ids < 0))
            raise ValueError(f"core_ids[{at}] = {int(ids[at])} is negative")
        _, first, counts = np.unique(ids, return_index=True, return_counts=True)
        if (counts > 1).any():
            dup = int(ids[first[np.argmax(counts > 1)]])
            where = np.nonzero(ids == dup)[0].tolist()
            raise ValueError(f"core_ids repeat core {dup} at positions {where}")
        object.__setattr__(self, "core_ids", ids.astype(np.int64))
        _check_format(self.mix_format, TUCKER_MIX_FORMATS, "mix_format")
        mix = np.asarray(self.mix)
        if mix.ndim != 2 or mix.shape[0] < 1 or mix.shape[1] != ids.size:
            raise ValueError(
                f"mix must have shape (B, {ids.size}) for {ids.size} core ids, not {mix.shape}"
            )
        _check_codes(mix, self.mix_format, "mix")
        object.__setattr__(self, "mix", mix.astype(np.int8))
        if not isinstance(self.mix_requant, Requant):
            raise ValueError(f"mix_requant must be a Requant, not {self.mix_requant!r}")
        _check_format(self.mix_requant.out_format, TUCKER_WEIGHT_FORMATS, "mix_requant.out_format")
        requants = tuple(self.stage_requants)
        if len(requants) != 3 or not all(isinstance(q, Requant) for q in requants):
            raise ValueError(f"stage_requants must be three Requants, not {self.stage_requants!r}")
        for s, q in enumerate(requants):
            if q.out_format != INT8:
                raise ValueError(
                    f"stage_requants[{s}].out_format must be int8, not {q.out_format.name}"
                )
        object.__setattr__(self, "stage_requants", requants)
        for name in ("in_features", "out_features"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
            object.__setattr__(self, name, int(value))
        if self.bias is not None:
            bias = np.asarray(self.bias)
            if bias.shape != (self.out_features,) or not np.issubdtype(bias.dtype, np.integer):
                raise ValueError(
                    f"bias must be int32 of shape ({self.out_features},), not {bias.dtype} "
                    f"{bias.shape}"
                )
            if bias.size and (bias.min() < _ACC_MIN or bias.max() > _ACC_MAX):
                raise ValueError("bias holds values outside int32")
            object.__setattr__(self, "bias", bias.astype(np.int32))
        for name in ("input_scale", "output_scale"):
            value = float(getattr(self, name))
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be positive and finite, not {value!r}")
            object.__setattr__(self, name, value)

    @property
    def blocks(self) -> int:
        """``B``: the number of ``d x d`` blocks (rows of ``mix``)."""
        return int(self.mix.shape[0])


def tucker_modes(
    in_features: int, out_features: int, d: int
) -> tuple[tuple[int, int, int], tuple[int, int, int], int]:
    """``(in_modes, out_modes, B)`` of the 3-core TT form (module docstring's table).

    Raises ValueError when the shape is not ``d -> d``, ``d -> B*d`` or ``B*d -> d``.
    """
    if in_features == d and out_features % d == 0:
        blocks = out_features // d
        return (d, 1, 1), (1, blocks, d), blocks
    if out_features == d and in_features % d == 0:
        blocks = in_features // d
        return (d, blocks, 1), (1, 1, d), blocks
    raise ValueError(
        f"a Tucker linear with block size d = {d} must map d -> d, d -> B*d or B*d -> d, "
        f"not {in_features} -> {out_features}"
    )


def check_tucker(layer: QuantTuckerLinear, bank: TuckerBank, name: str) -> None:
    """Check ``layer`` against ``bank``; ValueError whose message starts with ``name`` (the
    layer's module name) and names the field: a core id outside the bank, features that are
    not ``d`` / ``B*d`` for the bank's ``d``, ``mix`` rows that disagree with ``B``, a
    ``mix_requant`` whose output format is not the bank's weight format."""
    if not isinstance(layer, QuantTuckerLinear) or not isinstance(bank, TuckerBank):
        raise ValueError(f"{name}: expected a QuantTuckerLinear and a TuckerBank")
    ids = layer.core_ids
    if (ids >= bank.size).any():
        at = int(np.argmax(ids >= bank.size))
        raise ValueError(
            f"{name}.core_ids: core_ids[{at}] = {int(ids[at])} is outside bank {layer.bank!r} "
            f"of {bank.size} cores"
        )
    try:
        _, _, blocks = tucker_modes(layer.in_features, layer.out_features, bank.d)
    except ValueError as error:
        raise ValueError(f"{name}: {error} (bank {layer.bank!r})") from None
    if layer.mix.shape != (blocks, ids.size):
        raise ValueError(
            f"{name}.mix: shape {layer.mix.shape}, but {layer.in_features} -> "
            f"{layer.out_features} with d = {bank.d} has {blocks} blocks and {ids.size} core "
            f"ids: expected ({blocks}, {ids.size})"
        )
    if layer.mix_requant.out_format != bank.weight_format:
        raise ValueError(
            f"{name}.mix_requant: out_format {layer.mix_requant.out_format.name} is not bank "
            f"{layer.bank!r}'s weight format {bank.weight_format.name}"
        )


def tucker_block_cores(layer: QuantTuckerLinear, bank: TuckerBank) -> np.ndarray:
    """The bank merge: ``S`` codes ``(B, r, r)`` int8 of the bank's weight format.

    ``acc[b] = sum_j mix[b, j] * cores[core_ids[j]]`` exactly in int64; OverflowError if any
    entry leaves int32 (it cannot for k * 127 * 128 < 2**31, i.e. k < 2**17); requantized with
    ``layer.mix_requant`` (round half up, saturating). Checks ``layer`` against ``bank`` first
    (:func:`check_tucker`)."""
    check_tucker(layer, bank, "tucker layer")
    selected = bank.cores[layer.core_ids].astype(np.int64)  # (k, r, r)
    acc = np.einsum("bj,jpq->bpq", layer.mix.astype(np.int64), selected)
    if acc.size and (acc.min() < _ACC_MIN or acc.max() > _ACC_MAX):
        raise OverflowError(
            f"bank merge: accumulator leaves int{ACC_BITS}: [{int(acc.min())}, {int(acc.max())}]"
        )
    return requantize(acc, layer.mix_requant)


def tucker_as_tt_linear(layer: QuantTuckerLinear, bank: TuckerBank) -> QuantTTLinear:
    """The layer as the 3-core :class:`~.golden.QuantTTLinear` of the module docstring's table
    (cores int8 of the bank's weight format, plan :data:`TUCKER_PLAN`, no merge requants, the
    layer's stage requants, bias and scales). Computes the bank merge each call."""
    blocks_s = tucker_block_cores(layer, bank)  # checks the layer against the bank
    d, r = bank.d, bank.r
    in_modes, out_modes, blocks = tucker_modes(layer.in_features, layer.out_features, d)
    core1 = np.zeros((r, in_modes[1], out_modes[1], r), dtype=np.int8)
    for b in range(blocks):
        if in_modes[1] > 1:
            core1[:, b, 0, :] = blocks_s[b]
        else:
            core1[:, 0, b, :] = blocks_s[b]
    cores = (
        bank.in_factor.reshape(1, d, 1, r),
        core1,
        np.ascontiguousarray(bank.out_factor.T).reshape(r, 1, d, 1),
    )
    return QuantTTLinear(
        cores=cores,
        weight_format=bank.weight_format,
        plan=TUCKER_PLAN,
        merge_requants=((), (), ()),
        stage_requants=layer.stage_requants,
        bias=layer.bias,
        input_scale=layer.input_scale,
        output_scale=layer.output_scale,
    )


def tucker_linear_int(x: np.ndarray, layer: QuantTuckerLinear, bank: TuckerBank) -> np.ndarray:
    """Run the layer on int8 codes ``x`` (batch, in_features): int8 codes (batch,
    out_features), the TT golden model of :func:`tucker_as_tt_linear`."""
    return tt_linear_int(x, tucker_as_tt_linear(layer, bank))


def quant_tucker_linear_from_scales(
    *,
    bank: str,
    core_ids: Sequence[int] | np.ndarray,
    mix_codes: np.ndarray,
    weight_format: NumberFormat,
    in_features: int,
    out_features: int,
    input_scale: float,
    in_factor_scale: float,
    out_factor_scale: float,
    core_scale: float,
    mix_scale: float,
    block_scale: float,
    stage_scales: Sequence[float],
    bias: np.ndarray | None = None,
) -> QuantTuckerLinear:
    """Assemble a :class:`QuantTuckerLinear` from integer codes and float scales, the way
    :func:`.ptq.quant_tt_linear_from_scales` does for TT.

    ``input_scale`` = s_in, ``in_factor_scale`` = s_V, ``out_factor_scale`` = s_U,
    ``core_scale`` = s_C (the bank's scales), ``mix_scale`` = s_mix (of ``mix_codes``, INT8
    (B, k)), ``block_scale`` = s_S (of the merged ``S_b`` codes), ``stage_scales`` =
    ``(s_t, s_s, s_out)``; ``bias``: float (out_features,) or None. Requants:
    ``mix_requant = from_ratio(s_mix * s_C / s_S, weight_format)``, stages
    ``from_ratio(s_in * s_V / s_t)``, ``(s_t * s_S / s_s)``, ``(s_s * s_U / s_out)`` (int8),
    bias :func:`.formats.quantize_bias` at ``s_s * s_U``. ``weight_format`` is the bank's (INT8 or
    INT4)."""
    _check_format(weight_format, TUCKER_WEIGHT_FORMATS, "weight_format")
    stage_scales = tuple(float(s) for s in stage_scales)
    if len(stage_scales) != 3:
        raise ValueError(f"stage_scales must be (s_t, s_s, s_out), not {stage_scales!r}")
    s_t, s_s, s_out = stage_scales
    stage_requants = (
        Requant.from_ratio(input_scale * in_factor_scale / s_t, INT8),
        Requant.from_ratio(s_t * block_scale / s_s, INT8),
        Requant.from_ratio(s_s * out_factor_scale / s_out, INT8),
    )
    bias_codes = None if bias is None else quantize_bias(bias, s_s * out_factor_scale)
    return QuantTuckerLinear(
        bank=bank,
        core_ids=np.asarray(core_ids, dtype=np.int64),
        mix=np.asarray(mix_codes),
        mix_format=INT8,
        mix_requant=Requant.from_ratio(mix_scale * core_scale / block_scale, weight_format),
        stage_requants=stage_requants,
        bias=bias_codes,
        in_features=int(in_features),
        out_features=int(out_features),
        input_scale=float(input_scale),
        output_scale=s_out,
    )
