"""Seed 003 (XTC): layer reduction of a BERT teacher and the student-to-teacher layer map.

XTC (Wu et al., NeurIPS 2022) compresses a fine-tuned BERT in one stage: keep ``k`` of its
encoder layers (initialised from those teacher layers), quantize every weight to ternary or
binary with 8-bit activations, and train long with knowledge distillation from the teacher
(logits and hidden states, student layer ``i`` against the teacher layer it came from).

Here the quantized layers are the TT layers of :mod:`ttaccel.models.tt` with a single core
(``in_modes = [in]``, ``out_modes = [out]``, ranks ``[1, 1]``: the dense weight itself), so
export, artifact, golden model and host run them unchanged; this module holds what is new:
:func:`reduce_layers` and :func:`teacher_layer_map`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = ["reduce_layers", "teacher_layer_map"]


def reduce_layers(model: nn.Module, keep_layers: Sequence[int]) -> nn.Module:
    """Keep encoder layers ``keep_layers`` of a ``BertForSequenceClassification`` (or any model
    with ``.bert.encoder.layer``), in that order, in place: student layer ``i`` is teacher layer
    ``keep_layers[i]`` (its weights, not a copy), ``config.num_hidden_layers`` becomes ``k``
    and Hugging Face's ``layer_idx`` attributes are renumbered ``0 .. k-1``. Returns ``model``.

    Raises ValueError naming ``keep_layers`` when an index is out of range or repeated.
    """
    layers = model.bert.encoder.layer
    count = len(layers)
    keep = [int(i) for i in keep_layers]
    if not keep:
        raise ValueError("keep_layers must name at least one teacher layer")
    for i in keep:
        if not 0 <= i < count:
            raise ValueError(f"keep_layers has {i}; the teacher has encoder layers 0..{count - 1}")
    if len(set(keep)) != len(keep):
        raise ValueError(f"keep_layers {keep} names a teacher layer twice")
    model.bert.encoder.layer = nn.ModuleList(layers[i] for i in keep)
    for new_index, layer in enumerate(model.bert.encoder.layer):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    model.config.num_hidden_layers = len(keep)
    return model


def teacher_layer_map(keep_layers: Sequence[int] | None, student_layers: int) -> tuple[int, ...]:
    """The teacher encoder layer each student layer is distilled against: ``keep_layers``
    itself (the layer it was initialised from), or the identity ``0 .. student_layers - 1``
    without layer reduction."""
    if keep_layers is None:
        return tuple(range(student_layers))
    if len(keep_layers) != student_layers:
        raise ValueError(
            f"keep_layers {list(keep_layers)} has {len(keep_layers)} entries; the student has "
            f"{student_layers} encoder layers"
        )
    return tuple(int(i) for i in keep_layers)
