"""Float weights of a student read back from its integer artifact (to continue its training).

An artifact keeps integer core codes and requantization constants, not the float scales they
came from: only products and ratios of scales survive. That is enough to rebuild float TT cores
that multiply to the same matrix, because a TT-matrix has a gauge freedom (scale one core by
``a`` and its neighbour by ``1 / a``): :func:`core_scales_of_linear` recovers the product of a
layer's core scales from its constants and spreads it over the cores so that every float core
has the same RMS. QAT then starts from these cores with freshly calibrated scales (the same
calibration as any ``--init-from``), so the codes it starts from are the artifact's up to the
calibration rule's choice of scale. A student of lower ranks starts from the TT-SVD of the
rebuilt matrices at its ranks.

Recovered, for a :class:`~ttaccel.spec.golden.QuantTTLinear` with plan segments ``j`` (merge
ratios ``m``, stage ratios ``r_j``, input and output scales ``s_in``, ``s_out``)::

    prod_k s_k = s_out / s_in * prod_j r_j * prod m        (core scales)
    bias       = bias_codes * r_last * s_out               (float bias)

and for a :class:`~ttaccel.spec.golden.QuantTTEmbedding` ``prod_k s_k = s_out * prod r``.
``multiplier / 2**shift`` approximates each ratio to about 1e-5 relative (``Requant``), which
bounds the error of the rebuilt weights.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ttaccel.spec.artifact import Artifact
from ttaccel.spec.golden import QuantTTEmbedding, QuantTTLinear
from ttaccel.spec.tt import tt_shape_of, tt_svd, tt_to_dense

from .tt import TTEmbedding, TTLinear

__all__ = ["core_scales_of_embedding", "core_scales_of_linear", "state_from_artifact"]


def _balanced(cores: tuple[np.ndarray, ...], product: float) -> list[float]:
    """Scales ``s_k`` with ``prod s_k = product`` and equal RMS of every ``codes_k * s_k``."""
    rms = [max(float(np.sqrt(np.mean(np.asarray(c, dtype=np.float64) ** 2))), 1e-12)
           for c in cores]  # fmt: skip
    # s_k = c / rms_k with c**d = product * prod rms_k (logs: products of 100 scales underflow)
    log_c = (np.log(product) + sum(np.log(r) for r in rms)) / len(cores)
    return [float(np.exp(log_c - np.log(r))) for r in rms]


def core_scales_of_linear(layer: QuantTTLinear) -> list[float]:
    """Per-core float scales (one per core, balanced) consistent with ``layer``'s constants."""
    log_product = np.log(layer.output_scale) - np.log(layer.input_scale)
    log_product += sum(np.log(r.ratio) for r in layer.stage_requants)
    log_product += sum(np.log(r.ratio) for seg in layer.merge_requants for r in seg)
    return _balanced(layer.cores, float(np.exp(log_product)))


def core_scales_of_embedding(table: QuantTTEmbedding) -> list[float]:
    """Per-core float scales (balanced) consistent with ``table``'s constants."""
    log_product = np.log(table.output_scale) + sum(np.log(r.ratio) for r in table.stage_requants)
    return _balanced(table.cores, float(np.exp(log_product)))


def _linear_bias(layer: QuantTTLinear) -> np.ndarray | None:
    if layer.bias is None:
        return None
    return layer.bias.astype(np.float64) * layer.stage_requants[-1].ratio * layer.output_scale


def _at_ranks(name: str, cores: list[np.ndarray], module: TTLinear | TTEmbedding) -> list:
    """``cores`` re-decomposed at ``module``'s ranks (TT-SVD of their dense matrix: rank
    reduction of a trained student); ValueError naming the layer when the modes differ."""
    shape = tt_shape_of(cores)
    if (shape.in_modes, shape.out_modes) != (module.shape.in_modes, module.shape.out_modes):
        raise ValueError(
            f"TT layer {name}: the artifact's modes {list(shape.in_modes)} x "
            f"{list(shape.out_modes)} differ from the student's {list(module.shape.in_modes)} x "
            f"{list(module.shape.out_modes)}"
        )
    dense = tt_to_dense(cores)
    return tt_svd(dense, shape.in_modes, shape.out_modes, module.shape.ranks)[0]


def state_from_artifact(artifact: Artifact, model: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict for ``model`` (a student built with the artifact's TT shapes) holding the
    artifact's weights: float cores ``codes_k * s_k`` (float32, the cores' own shapes
    ``(r, m, n, r')``), TT biases, and every float tensor by its name. Rows of a table the
    artifact trimmed (the position embeddings past ``max_length``) keep ``model``'s values.

    A TT layer whose ranks differ from ``model``'s is re-decomposed at ``model``'s ranks (the
    TT-SVD of its dense matrix: a lower-rank student starts from the trained one).

    Raises ValueError naming the module or tensor when the artifact lacks one of ``model``'s TT
    layers, holds one ``model`` does not have, or a shape differs (another mode, or a float
    tensor of another shape).
    """
    own = model.state_dict()
    tts = {n: m for n, m in model.named_modules() if isinstance(m, TTLinear | TTEmbedding)}
    stored = {**artifact.tt_linears, **artifact.tt_embeddings}
    missing = sorted(set(tts) - set(stored))
    extra = sorted(set(stored) - set(tts))
    if missing or extra:
        raise ValueError(
            f"the artifact's TT layers differ from the student's: missing {missing}, "
            f"not in the student {extra}"
        )
    state: dict[str, np.ndarray] = {}
    for name, module in tts.items():
        layer = stored[name]
        if isinstance(module, TTLinear) != isinstance(layer, QuantTTLinear):
            raise ValueError(f"TT layer {name}: the artifact and the student differ in kind")
        if isinstance(layer, QuantTTLinear):
            scales = core_scales_of_linear(layer)
            bias = _linear_bias(layer)
            if bias is not None:
                state[f"{name}.bias"] = bias
        else:
            scales = core_scales_of_embedding(layer)
        cores = [np.asarray(c, dtype=np.float64) * s
                 for c, s in zip(layer.cores, scales, strict=True)]  # fmt: skip
        wanted = [tuple(c.shape) for c in module.cores]
        if [c.shape for c in cores] != wanted:
            cores = _at_ranks(name, cores, module)
        for k, core in enumerate(cores):
            state[f"{name}.cores.{k}"] = core
    state.update(artifact.tensors)
    result = {}
    for key, value in state.items():
        if key not in own:
            raise ValueError(f"artifact tensor {key} has no place in the student")
        target = own[key]
        value = torch.as_tensor(np.asarray(value), dtype=target.dtype)
        if value.shape != target.shape:
            trimmed = (value.ndim == target.ndim and value.shape[1:] == target.shape[1:]
                       and value.shape[0] < target.shape[0])  # fmt: skip
            if not trimmed:
                raise ValueError(
                    f"artifact tensor {key} has shape {tuple(value.shape)}, the student's is "
                    f"{tuple(target.shape)}"
                )
            value = torch.cat([value, target[value.shape[0] :]])
        result[key] = value
    return result
