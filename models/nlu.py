"""Joint intent detection + slot filling (ATIS-style) with a TT-compressed, low-bit BERT.

:class:`JointBert` is a Hugging Face ``BertModel`` with two heads, as JointBERT (Chen et al.
2019): ``classifier`` (intent, on the pooled ``[CLS]`` output: ``tanh(pooler(h_CLS))``) and
``slot_classifier`` (a slot tag for every token, on the last hidden states). The loss is intent
cross-entropy plus slot cross-entropy over the first sub-token of every word
(:mod:`ttaccel.models.nlu_data`).

Three kinds of model (:data:`MODEL_KINDS`):

* ``tt``: a small BERT trained from scratch (random initialisation, no pretrained encoder
  weights; the MiniLM WordPiece vocabulary is reused) whose word embedding, encoder linears and
  pooler are TT-matrices from the start (:class:`~ttaccel.models.tt.TTLinear`,
  :class:`~ttaccel.models.tt.TTEmbedding` with random cores, no SVD), trained end to end with
  QAT (LSQ learnable scales, :mod:`ttaccel.models.quant`) at ``--bits`` 8 or 4, or in float;
* ``dense``: the same shape with ordinary dense layers, fp32, trained the same way;
* ``minilm``: the bundled pretrained MiniLM-L6 with the same joint head, fine-tuned (fp32).

:func:`train_nlu` trains with :func:`~ttaccel.models.train.train_loop` (resumable from
``OUT/state.pt``), scores the test split and, for a quantized TT model, exports the artifact
(architecture ``bert-joint-intent-slot``, docs/artifact.md) and scores it through the spec's
integer golden model (:class:`ttaccel.spec.inference.BertInference`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ttaccel.spec.artifact import Artifact, load_artifact
from ttaccel.spec.inference import JOINT_ARCHITECTURE, BertInference
from ttaccel.spec.packing import packed_nbytes

from .compress import (
    _parent,
    calibrate,
    enable_quantization,
    load_student,
    save_student,
    size_report,
)
from .config import CompressionConfig, LayerRule, check_modes
from .data import batches, load_tokenizer
from .nlu_data import IGNORE, NluEncoded, NluLabels, encode_nlu, load_nlu_labels, load_nlu_split
from .nlu_metrics import nlu_metrics
from .quant import LsqQuantizer, format_for_bits
from .train import LoopConfig, train_loop
from .tt import (
    TTEmbedding,
    TTLinear,
    auto_embedding_modes,
    auto_linear_modes,
    resolve_ranks,
    tt_layer_modes,
)

__all__ = [
    "MODEL_KINDS",
    "JointBert",
    "JointOutput",
    "ScratchShape",
    "build_joint_model",
    "export_nlu",
    "golden_predict",
    "joint_loss",
    "load_nlu_student",
    "nlu_artifact",
    "predict",
    "score",
    "train_nlu",
    "tt_from_scratch",
]

MODEL_KINDS = ("tt", "dense", "minilm")
_POOLER = "bert.pooler.dense"


class JointOutput(NamedTuple):
    """``intent_logits`` (B, intents) and ``slot_logits`` (B, T, slots), float."""

    intent_logits: torch.Tensor
    slot_logits: torch.Tensor


class JointBert(nn.Module):
    """``BertModel`` + intent head on the pooled ``[CLS]`` + slot head on every token.

    ``config``: a ``BertConfig`` whose ``num_labels`` is the number of intents;
    ``num_slot_labels``: slot classes; ``bert``: an existing ``BertModel`` (the pretrained
    baseline), else a randomly initialised one. Module names are those of
    ``BertForSequenceClassification`` (``bert.*``, ``classifier``) plus ``slot_classifier``.
    """

    def __init__(self, config, num_slot_labels: int, *, bert: nn.Module | None = None) -> None:
        from transformers import BertModel

        super().__init__()
        if not isinstance(num_slot_labels, int) or num_slot_labels < 1:
            raise ValueError(f"num_slot_labels must be a positive integer, not {num_slot_labels!r}")
        config._attn_implementation = "eager"  # the golden model's attention, op for op
        self.config = config
        self.num_slot_labels = num_slot_labels
        self.bert = bert if bert is not None else BertModel(config, add_pooling_layer=True)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.slot_classifier = nn.Linear(config.hidden_size, num_slot_labels)
        for head in (self.classifier, self.slot_classifier):
            nn.init.normal_(head.weight, std=config.initializer_range)
            nn.init.zeros_(head.bias)

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> JointOutput:  # fmt: skip
        """int64 ids (B, T) (and type ids, 1/0 mask) -> :class:`JointOutput`."""
        out = self.bert(input_ids=input_ids, token_type_ids=token_type_ids,
                        attention_mask=attention_mask)  # fmt: skip
        return JointOutput(
            self.classifier(self.dropout(out.pooler_output)),
            self.slot_classifier(self.dropout(out.last_hidden_state)),
        )


def joint_loss(out: JointOutput, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """Intent cross-entropy + slot cross-entropy (mean over tokens whose ``token_labels`` is not
    :data:`~ttaccel.models.nlu_data.IGNORE`); returns ``(loss, {"intent_ce", "slot_ce"})``."""
    intent = F.cross_entropy(out.intent_logits, batch["labels"])
    slots = out.slot_logits.shape[-1]
    slot = F.cross_entropy(out.slot_logits.reshape(-1, slots),
                           batch["token_labels"].reshape(-1), ignore_index=IGNORE)  # fmt: skip
    return intent + slot, {"intent_ce": float(intent.detach()), "slot_ce": float(slot.detach())}


# --- building the models ------------------------------------------------------------------------


class ScratchShape(NamedTuple):
    """The from-scratch model's shape (``tt`` and ``dense`` kinds)."""

    layers: int = 2
    hidden: int = 384
    heads: int = 6
    ffn: int = 1536


def _scratch_config(vocab_size: int, shape: ScratchShape, num_intents: int, max_length: int):
    from transformers import BertConfig

    if shape.hidden % shape.heads:
        raise ValueError(f"hidden size {shape.hidden} is not a multiple of {shape.heads} heads")
    return BertConfig(
        vocab_size=vocab_size, hidden_size=shape.hidden, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, intermediate_size=shape.ffn, hidden_act="gelu",
        max_position_embeddings=max_length, type_vocab_size=2, num_labels=num_intents,
        layer_norm_eps=1e-12,
    )  # fmt: skip


def tt_from_scratch(model: nn.Module, cfg: CompressionConfig) -> dict:
    """Replace the modules ``cfg`` names by randomly initialised TT layers (no SVD), in place.

    Modes and ranks are resolved as :func:`~ttaccel.models.compress.apply_compression` does
    (automatic modes unless the rule gives them; ranks capped by what the modes allow); the
    cores start at :class:`~ttaccel.models.tt.TTLinear`'s / ``TTEmbedding``'s random
    initialisation (entries of the product of variance ``1 / in_features``, or 0.02**2 for the
    embedding). Quantizers are added when ``cfg.weight_bits`` is set (uncalibrated). Returns
    ``{module name: {"in_modes", "out_modes", "ranks"}}``.
    """
    names = {n for n, _ in model.named_modules()}
    report = {}
    for item in cfg.resolve(names, model.config.num_hidden_layers):
        module, rule = model.get_submodule(item.module), item.rule
        if item.kind == "embedding":
            rows, cols = module.weight.shape
            check_modes(rule, item.module, rows, cols, embedding=True)
            modes = ((rule.in_modes, rule.out_modes) if rule.in_modes is not None
                     else auto_embedding_modes(rows, cols))  # fmt: skip
            new = TTEmbedding(rows, *modes, resolve_ranks(modes, rule.rank),
                              padding_idx=module.padding_idx)  # fmt: skip
        else:
            check_modes(rule, item.module, module.in_features, module.out_features,
                        embedding=False)  # fmt: skip
            modes = (tt_layer_modes(rule.in_modes, rule.out_modes) if rule.in_modes is not None
                     else auto_linear_modes(module.in_features, module.out_features,
                                            rule.cores_per_side))  # fmt: skip
            new = TTLinear(*modes, resolve_ranks(modes, rule.rank), bias=module.bias is not None)
        parent, attr = _parent(model, item.module)
        setattr(parent, attr, new)
        s = new.shape
        report[item.module] = {"in_modes": list(s.in_modes), "out_modes": list(s.out_modes),
                               "ranks": list(s.ranks)}  # fmt: skip
    if cfg.weight_bits is not None:
        enable_quantization(model, cfg)
    return report


def tt_config(
    rank: int, embedding_rank: int, bits: int | None, scale_init: str = "mse"
) -> CompressionConfig:
    """All encoder linears and the pooler at ``rank``, the word embedding at
    ``embedding_rank``; cores at ``bits`` (None: float), scales initialised by ``scale_init``."""
    rules = (LayerRule("encoder", rank), LayerRule(_POOLER, rank),
             LayerRule("word_embeddings", embedding_rank))  # fmt: skip
    return CompressionConfig(rules, bits, weight_scale_init=scale_init,
                             activation_scale_init=scale_init)  # fmt: skip


def build_joint_model(
    kind: str, labels: NluLabels, *, vocab_size: int, max_length: int,
    shape: ScratchShape | None = None, cfg: CompressionConfig | None = None,
    checkpoint: str | Path | None = None,
) -> JointBert:  # fmt: skip
    """A fresh model of ``kind`` (:data:`MODEL_KINDS`); ``tt`` needs ``cfg``, ``minilm`` the
    pretrained ``checkpoint`` folder. Seed torch before calling for a reproducible init."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"model kind must be one of {list(MODEL_KINDS)}, not {kind!r}")
    intents, slots = len(labels.intents), len(labels.slots)
    shape = shape or ScratchShape()
    if kind == "minilm":
        from transformers import BertModel
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the checkpoint has no pooler: initialised, expected
        try:
            bert = BertModel.from_pretrained(str(checkpoint), attn_implementation="eager")
        finally:
            hf_logging.set_verbosity(verbosity)
        config = bert.config
        config.num_labels = intents
        return JointBert(config, slots, bert=bert)
    model = JointBert(_scratch_config(vocab_size, shape, intents, max_length), slots)
    if kind == "tt":
        if cfg is None:
            raise ValueError("a tt model needs a compression config")
        tt_from_scratch(model, cfg)
    return model


def load_nlu_student(student_dir: str | Path) -> tuple[JointBert, CompressionConfig, dict]:
    """A saved TT joint model (``OUT/student`` of :func:`train_nlu`), eval mode."""
    return load_student(
        student_dir, build=lambda hf, meta: JointBert(hf, int(meta["nlu"]["num_slot_labels"]))
    )


# --- prediction and scores ------------------------------------------------------------------


def _word_tags(starts: Sequence[int], token_pred: np.ndarray, outside: int) -> list[int]:
    """The tag of every word: the prediction at its first sub-token (``outside`` when cut)."""
    return [int(token_pred[s]) if s >= 0 else outside for s in starts]


@torch.no_grad()
def predict(
    model: nn.Module, data: Sequence[NluEncoded], labels: NluLabels, batch_size: int = 128
) -> tuple[np.ndarray, list[list[int]]]:
    """Intent ids (N,) and word-level slot ids of every example (torch, eval mode)."""
    was_training = model.training
    model.eval()
    intents, words, done = [], [], 0
    outside = labels.slots.index("O")
    for batch in batches(data, batch_size, shuffle=False):
        out = model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                    attention_mask=batch["attention_mask"])  # fmt: skip
        intents.append(out.intent_logits.argmax(-1).numpy())
        slot_pred = out.slot_logits.argmax(-1).numpy()
        for row in range(slot_pred.shape[0]):
            words.append(_word_tags(data[done + row].word_starts, slot_pred[row], outside))
        done += slot_pred.shape[0]
    model.train(was_training)
    return np.concatenate(intents), words


def score(
    data: Sequence[NluEncoded], labels: NluLabels, intent_pred: Sequence[int],
    word_pred: Sequence[Sequence[int]],
) -> dict[str, float]:  # fmt: skip
    """:func:`~ttaccel.models.nlu_metrics.nlu_metrics` of predictions against ``data``'s gold
    labels (tags by name, after the UNK mapping)."""
    names = labels.slots
    return nlu_metrics(
        [e.label for e in data], list(intent_pred),
        [[names[i] for i in e.word_slot_ids] for e in data],
        [[names[i] for i in p] for p in word_pred],
    )  # fmt: skip


def golden_predict(
    inference: BertInference, data: Sequence[NluEncoded], labels: NluLabels, batch: int = 32
) -> tuple[np.ndarray, list[list[int]], np.ndarray, list[np.ndarray]]:
    """Intent ids, word slot ids, intent logits (N, C) and per-example token slot logits
    (T_i, S) through the spec's model (:meth:`BertInference.joint_logits`)."""
    outside = labels.slots.index("O")
    intent_logits, slot_logits = [], []
    for i in range(0, len(data), batch):
        chunk = data[i : i + batch]
        il, sl = inference.joint_logits([e.input_ids for e in chunk],
                                        [e.token_type_ids for e in chunk])  # fmt: skip
        intent_logits.append(il)
        slot_logits += sl
    logits = np.concatenate(intent_logits)
    words = [_word_tags(e.word_starts, s.argmax(-1), outside)
             for e, s in zip(data, slot_logits, strict=True)]  # fmt: skip
    return logits.argmax(-1), words, logits, slot_logits


# --- export ------------------------------------------------------------------------------------


def nlu_artifact(model: JointBert, meta: dict, vocab: list[str], tokenizer: dict) -> Artifact:
    """The artifact of a quantized TT joint model: :func:`ttaccel.models.export.student_artifact`
    (TT layers, float tensors including ``slot_classifier.*``) with the model description of
    architecture ``bert-joint-intent-slot`` (``num_slot_labels``, the label names)."""
    from .export import student_artifact

    artifact = student_artifact(model, meta, vocab, tokenizer)
    nlu = meta["nlu"]
    artifact.model_config.update(
        architecture=JOINT_ARCHITECTURE, num_slot_labels=int(nlu["num_slot_labels"]),
        intent_labels=list(nlu["intent_labels"]), slot_labels=list(nlu["slot_labels"]),
    )  # fmt: skip
    return artifact


def export_nlu(student_dir: str | Path, out_path: str | Path) -> dict:
    """Write the artifact of a saved TT joint model; returns ``{"artifact", "file_bytes"}``."""
    from .export import _tokenizer_settings, _vocab, write_artifact

    student_dir = Path(student_dir)
    model, _, meta = load_nlu_student(student_dir)
    artifact = nlu_artifact(model, meta, _vocab(student_dir), _tokenizer_settings(student_dir))
    out_path = write_artifact(artifact, out_path)
    return {"artifact": str(out_path), "file_bytes": out_path.stat().st_size,
            "payload_bytes": artifact.nbytes()}  # fmt: skip


# --- sizes -------------------------------------------------------------------------------------


def _embedding_bytes(model: nn.Module, bits: int | None) -> int:
    table = model.bert.embeddings.word_embeddings
    if isinstance(table, TTEmbedding):
        if bits is None:
            return 4 * sum(c.numel() for c in table.cores)
        fmt = format_for_bits(bits)
        return sum(packed_nbytes(c.numel(), fmt) for c in table.cores)
    return 4 * table.weight.numel()


def _sizes(model: JointBert, reference: JointBert, bits: int | None) -> dict:
    sizes = size_report(model, reference, bits)
    sizes["dense_embedding_bytes"] = _embedding_bytes(reference, None)
    sizes["student_embedding_bytes"] = _embedding_bytes(model, bits)
    sizes["embedding_ratio"] = sizes["dense_embedding_bytes"] / sizes["student_embedding_bytes"]
    return sizes


# --- training ----------------------------------------------------------------------------------


def _encoded_splits(data_dir, labels, tokenizer, max_length, train_subset):
    splits = {}
    for split in ("train", "dev", "test"):
        examples = load_nlu_split(data_dir, split, labels)
        if split == "train" and train_subset is not None:
            examples = examples[:train_subset]
        splits[split] = encode_nlu(examples, tokenizer, max_length)
    return splits


def train_nlu(
    data_dir: str | Path, out_dir: str | Path, *, kind: str = "tt", bits: int | None = 4,
    rank: int = 32, embedding_rank: int = 32, scale_init: str = "mse",
    shape: ScratchShape | None = None, max_length: int = 64,
    checkpoint: str | Path | None = None, train_subset: int | None = None,
    loop: LoopConfig | None = None, golden: bool = True, progress: bool = True,
) -> dict:  # fmt: skip
    """Train a joint intent + slot model of ``kind`` on ``data_dir``'s train split (dev metrics
    while training), score the test split, and write ``OUT/result.json``.

    ``bits`` applies to ``tt`` only (8, 4 or None for float TT); ``rank`` / ``embedding_rank``:
    TT rank caps of the encoder linears and pooler / the word embedding; ``checkpoint``: the
    tokenizer (and, for ``minilm``, the weights), default the bundled MiniLM-L6. A quantized TT
    model is saved to ``OUT/student``, exported to ``OUT/model.safetensors`` and, with
    ``golden``, scored on the test split through the spec's integer model. Rerunning resumes
    from ``OUT/state.pt``. Returns the result dict.
    """
    from ttaccel.pretrained import default_checkpoint_dir

    if kind not in MODEL_KINDS:
        raise ValueError(f"model kind must be one of {list(MODEL_KINDS)}, not {kind!r}")
    if kind != "tt" and bits is not None:
        raise ValueError(f"--bits applies to the tt model only; {kind} trains in fp32")
    loop = loop or LoopConfig()
    shape = shape or ScratchShape()
    out = Path(out_dir)
    checkpoint = Path(checkpoint) if checkpoint is not None else default_checkpoint_dir()
    tokenizer = load_tokenizer(checkpoint)
    labels = load_nlu_labels(data_dir)
    data = _encoded_splits(data_dir, labels, tokenizer, max_length, train_subset)
    cfg = tt_config(rank, embedding_rank, bits, scale_init) if kind == "tt" else None
    torch.manual_seed(loop.seed)
    vocab_size = len(tokenizer)
    model = build_joint_model(kind, labels, vocab_size=vocab_size, max_length=max_length,
                              shape=shape, cfg=cfg, checkpoint=checkpoint)  # fmt: skip
    if cfg is not None and bits is not None:
        calibrate(model, next(batches(data["train"], loop.batch_size, shuffle=True,
                                      seed=loop.seed)))  # fmt: skip

    def loss_fn(net, batch, step):
        out_ = net(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                   attention_mask=batch["attention_mask"])  # fmt: skip
        return joint_loss(out_, batch)

    def eval_fn(net) -> dict[str, float]:
        return score(data["dev"], labels, *predict(net, data["dev"], labels, loop.eval_batch_size))

    # Adam moves every parameter by about lr per step: scales (~1e-2) get a tenth of it.
    scale_params = [m.scale for m in model.modules() if isinstance(m, LsqQuantizer)]
    scale_ids = {id(p) for p in scale_params}
    others = [p for p in model.parameters() if id(p) not in scale_ids]
    groups = [
        {"params": [p for p in others if p.ndim >= 2], "weight_decay": loop.weight_decay},
        {"params": [p for p in others if p.ndim < 2], "weight_decay": 0.0},
        {"params": scale_params, "weight_decay": 0.0, "lr": loop.lr * 0.1},
    ]
    start = time.time()
    dev = train_loop(model, loss_fn, data["train"], eval_fn, loop, out, progress=progress,
                     param_groups=groups)  # fmt: skip
    seconds = time.time() - start
    test = score(data["test"], labels, *predict(model, data["test"], labels, loop.eval_batch_size))
    if kind == "minilm":
        reference = model
    else:
        torch.manual_seed(loop.seed)
        reference = build_joint_model("dense", labels, vocab_size=vocab_size,
                                      max_length=max_length, shape=shape)  # fmt: skip
    result = {
        "task": "ATIS-joint", "model": kind, "bits": bits, "method": "e2e",
        "data": str(data_dir), "checkpoint": str(checkpoint), "max_length": max_length,
        "shape": {k: getattr(model.config, k) for k in (
            "num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size",
            "vocab_size", "max_position_embeddings")},
        "examples": {s: len(d) for s, d in data.items()},
        "cut_words": {s: sum(st < 0 for e in d for st in e.word_starts) for s, d in data.items()},
        "compression": cfg.to_dict() if cfg is not None else None,
        "loop": asdict(loop), "init_from": None, "train_seconds_this_run": round(seconds, 1),
        "dev": dev, "test": test, "sizes": _sizes(model, reference, bits if cfg else None),
    }  # fmt: skip
    if cfg is not None:
        nlu = {"num_slot_labels": len(labels.slots), "intent_labels": list(labels.intents),
               "slot_labels": list(labels.slots)}  # fmt: skip
        save_student(model, cfg, out / "student", teacher_dir=checkpoint, task="ATIS-joint",
                     max_length=max_length, extra={"result": result, "nlu": nlu})  # fmt: skip
        if bits is not None:
            result["export"] = export_nlu(out / "student", out / "model.safetensors")
            if golden:
                result["golden"] = golden_scores(out / "model.safetensors", data["test"], labels,
                                                 model)  # fmt: skip
    (out / "result.json").write_text(json.dumps(result, indent=2))
    return result


def golden_scores(
    artifact_path: str | Path, data: Sequence[NluEncoded], labels: NluLabels,
    model: nn.Module | None = None,
) -> dict:  # fmt: skip
    """Metrics of the artifact through the spec's integer model on ``data``; with the torch
    ``model``, also how its predictions and logits compare with the torch fake-quant model's."""
    inference = BertInference(load_artifact(artifact_path))
    intent, words, intent_logits, slot_logits = golden_predict(inference, data, labels)
    result: dict = {"test": score(data, labels, intent, words)}
    if model is not None:
        t_intent, t_words = predict(model, data, labels)
        result["intent_agreement"] = float(np.mean(intent == t_intent))
        result["word_tag_agreement"] = float(np.mean(
            [a == b for x, y in zip(words, t_words, strict=True) for a, b in zip(x, y, strict=True)]
        ))  # fmt: skip
        t_logits = _torch_logits(model, data)
        result["max_intent_logit_diff"] = float(np.max(np.abs(intent_logits - t_logits[0])))
        result["max_slot_logit_diff"] = float(max(
            np.max(np.abs(g - t)) for g, t in zip(slot_logits, t_logits[1], strict=True)
        ))  # fmt: skip
    return result


@torch.no_grad()
def _torch_logits(model: nn.Module, data: Sequence[NluEncoded], batch_size: int = 64):
    """Intent logits (N, C) and unpadded slot logits (T_i, S) of the torch model, eval mode."""
    model.eval()
    intents, slots, done = [], [], 0
    for batch in batches(data, batch_size, shuffle=False):
        out = model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                    attention_mask=batch["attention_mask"])  # fmt: skip
        intents.append(out.intent_logits.numpy())
        for row in range(out.slot_logits.shape[0]):
            n = len(data[done + row].input_ids)
            slots.append(out.slot_logits[row, :n].numpy())
        done += out.slot_logits.shape[0]
    return np.concatenate(intents), slots
