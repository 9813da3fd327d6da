"""Helpers of the scheme tests: the float frame of their tiny random BERT artifacts (TT, N:M, XTC,
Tucker): embeddings, LayerNorms, pooler, classifier and the model config, around whatever
integer linears a test puts in, and an artifact file doctored into bad input."""

from __future__ import annotations

import numpy as np


def tiny_bert_frame(
    rng: np.random.Generator, *, hidden: int, ffn: int, vocab: int, layers: int
) -> tuple[dict, dict[str, np.ndarray]]:
    """``(model, tensors)`` of a ``layers``-layer, 2-head BERT classifier (2 labels, 32
    positions) with random float32 weights (normal, std 0.5; LayerNorm gains 1): the
    :class:`~ttaccel.spec.artifact.Artifact`'s ``model`` config and its float tensors. The
    encoder linears are not included."""
    f32 = lambda *s: rng.normal(0, 0.5, s).astype(np.float32)  # noqa: E731
    tensors = {}
    for index in range(layers):
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            tensors[f"bert.encoder.layer.{index}.{ln}.weight"] = np.ones(hidden, np.float32)
            tensors[f"bert.encoder.layer.{index}.{ln}.bias"] = f32(hidden)
    e = "bert.embeddings."
    tensors.update({
        f"{e}word_embeddings.weight": f32(vocab, hidden),
        f"{e}position_embeddings.weight": f32(32, hidden),
        f"{e}token_type_embeddings.weight": f32(2, hidden),
        f"{e}LayerNorm.weight": np.ones(hidden, "f4"), f"{e}LayerNorm.bias": f32(hidden),
        "bert.pooler.dense.weight": f32(hidden, hidden), "bert.pooler.dense.bias": f32(hidden),
        "classifier.weight": f32(2, hidden), "classifier.bias": f32(2),
    })  # fmt: skip
    model = {
        "architecture": "bert-sequence-classification", "hidden_size": hidden,
        "num_hidden_layers": layers, "num_attention_heads": 2, "intermediate_size": ffn,
        "layer_norm_eps": 1e-12, "hidden_act": "gelu", "num_labels": 2,
    }  # fmt: skip
    return model, tensors


def doctored_artifact(path, out, edit):
    """Copy the artifact file ``path`` to ``out`` after ``edit(tensors, manifest)`` changed its
    raw tensors and its manifest in place (to make bad input for the reader's error tests)."""
    import json

    from ttaccel.spec.safetensors_io import load_safetensors, save_safetensors

    tensors, meta = load_safetensors(path)
    manifest = json.loads(meta["ttaccel"])
    edit(tensors, manifest)
    save_safetensors(out, tensors, {"ttaccel": json.dumps(manifest)})
    return out
