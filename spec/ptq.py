"""From float scales to the integer constants of a :class:`~.golden.QuantTTLinear`.

The one place where float scales become requantization multipliers and shifts, shared by the
QAT export (learned scales) and post-training calibration (max-abs scales from data).

Scale bookkeeping (all scales positive floats, real value = code * scale):

* merging the running segment core (scale ``s_left``) with core ``k`` (scale ``s_k``) into a
  core of scale ``s_merged`` uses ``Requant.from_ratio(s_left * s_k / s_merged, weight_format)``;
* online stage ``s`` with input scale ``s_in`` and merged-core scale ``s_core`` writing codes of
  scale ``s_out`` uses ``Requant.from_ratio(s_in * s_core / s_out, INT8)``; the bias is
  quantized to int32 at ``s_in * s_core`` of the last stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .formats import INT8, NumberFormat, Requant, quantize, quantize_bias
from .golden import QuantTTEmbedding, QuantTTLinear
from .tt import Plan, contract_core, merge_cores, tt_shape_of

__all__ = [
    "calibrate_tt_linear",
    "max_abs_scale",
    "quant_tt_embedding_from_scales",
    "quant_tt_linear_from_scales",
]


def max_abs_scale(x: np.ndarray, fmt: NumberFormat) -> float:
    """``max|x| / qmax`` (1.0 for an all-zero tensor), the usual initial scale."""
    peak = float(np.max(np.abs(x))) if np.size(x) else 0.0
    return peak / fmt.qpos if peak > 0 else 1.0


def quant_tt_linear_from_scales(
    core_codes: Sequence[np.ndarray],
    core_scales: Sequence[float],
    weight_format: NumberFormat,
    plan: Plan,
    merge_scales: Sequence[Sequence[float]],
    stage_scales: Sequence[float],
    input_scale: float,
    bias: np.ndarray | None = None,
) -> QuantTTLinear:
    """Assemble a :class:`QuantTTLinear` from integer cores and float scales.

    ``merge_scales[s]`` lists the scale after each pairwise merge of segment ``s``
    (``len(segment) - 1`` entries); ``stage_scales[s]`` is the scale of stage ``s``'s int8
    output, the last one being the layer's output scale; ``bias`` is float (N,) or None.
    """
    merge_requants, stage_requants, merged_core_scales = [], [], []
    for (a, b), scales in zip(plan, merge_scales, strict=True):
        running = core_scales[a]
        requants = []
        for k, merged_scale in zip(range(a + 1, b), scales, strict=True):
            requants.append(
                Requant.from_ratio(running * core_scales[k] / merged_scale, weight_format)
            )
            running = merged_scale
        merge_requants.append(tuple(requants))
        merged_core_scales.append(running)
    scale_in = input_scale
    for core_scale, scale_out in zip(merged_core_scales, stage_scales, strict=True):
        stage_requants.append(Requant.from_ratio(scale_in * core_scale / scale_out, INT8))
        scale_in = scale_out
    bias_codes = None
    if bias is not None:
        acc_scale = (
            input_scale if len(stage_scales) == 1 else stage_scales[-2]
        ) * merged_core_scales[-1]
        bias_codes = quantize_bias(bias, acc_scale)
    return QuantTTLinear(
        cores=tuple(np.asarray(c, dtype=np.int8) for c in core_codes),
        weight_format=weight_format,
        plan=tuple(plan),
        merge_requants=tuple(merge_requants),
        stage_requants=tuple(stage_requants),
        bias=bias_codes,
        input_scale=float(input_scale),
        output_scale=float(stage_scales[-1]),
    )


def calibrate_tt_linear(
    cores: Sequence[np.ndarray],
    x_calib: np.ndarray,
    weight_format: NumberFormat,
    plan: Plan,
    bias: np.ndarray | None = None,
) -> QuantTTLinear:
    """Post-training quantization of float TT cores with max-abs scales measured on
    ``x_calib`` (B, M) float inputs.

    Every scale (input, each core, each merged core, each stage output) is
    :func:`max_abs_scale` of the float tensor it quantizes, computed along the float path.
    """
    shape = tt_shape_of(cores)
    cores = [np.asarray(c, dtype=np.float64) for c in cores]
    core_scales = [max_abs_scale(c, weight_format) for c in cores]
    core_codes = [quantize(c, s, weight_format) for c, s in zip(cores, core_scales, strict=True)]
    merge_scales, merged = [], []
    for a, b in plan:
        running, scales = cores[a], []
        for k in range(a + 1, b):
            running = merge_cores(running, cores[k])
            scales.append(max_abs_scale(running, weight_format))
        merge_scales.append(scales)
        merged.append(running)
    x_calib = np.asarray(x_calib, dtype=np.float64)
    input_scale = max_abs_scale(x_calib, INT8)
    stage_scales = []
    state = x_calib.reshape(x_calib.shape[0], 1, merged[0].shape[1], -1)
    for s, core in enumerate(merged):
        state = contract_core(state, core)
        if s == len(merged) - 1:
            out = state.reshape(x_calib.shape[0], shape.out_features)
            stage_scales.append(max_abs_scale(out if bias is None else out + bias, INT8))
            break
        stage_scales.append(max_abs_scale(state, INT8))
        p, n, r_next, rest = state.shape
        state = state.reshape(p * n, r_next, merged[s + 1].shape[1], rest // merged[s + 1].shape[1])
    return quant_tt_linear_from_scales(
        core_codes, core_scales, weight_format, plan, merge_scales, stage_scales, input_scale, bias
    )


def quant_tt_embedding_from_scales(
    core_codes: Sequence[np.ndarray],
    core_scales: Sequence[float],
    weight_format: NumberFormat,
    stage_scales: Sequence[float],
    num_embeddings: int,
) -> QuantTTEmbedding:
    """Assemble a :class:`QuantTTEmbedding`: ``stage_scales[k - 1]`` is the scale of the int8
    state after core ``k`` (``d - 1`` entries); the requant after core ``k`` implements
    ``state_scale * core_scales[k] / stage_scales[k - 1]``."""
    requants, state_scale = [], core_scales[0]
    for core_scale, scale_out in zip(core_scales[1:], stage_scales, strict=True):
        requants.append(Requant.from_ratio(state_scale * core_scale / scale_out, INT8))
        state_scale = scale_out
    return QuantTTEmbedding(
        cores=tuple(np.asarray(c, dtype=np.int8) for c in core_codes),
        weight_format=weight_format,
        stage_requants=tuple(requants),
        num_embeddings=int(num_embeddings),
        output_scale=float(state_scale),
    )
