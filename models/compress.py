"""Compress a Hugging Face BERT into TT layers and train the student (QAT, distillation).

* :func:`apply_compression` replaces the configured ``nn.Linear`` / ``nn.Embedding`` modules of a
  ``BertForSequenceClassification`` by :class:`~ttaccel.models.tt.TTLinear` /
  :class:`~ttaccel.models.tt.TTEmbedding` initialised by TT-SVD, and enables quantization.
* :func:`train_student` trains it against the dense teacher, either end to end (task
  cross-entropy + logits distillation) or layer by layer (hidden-state MSE + (1 - cosine) +
  attention KL, one more encoder layer joining every ``layer_steps`` steps, then logits
  distillation and the task loss once all layers are in), or in one stage (``onestage``, XTC's:
  every term from the first step). With layer reduction (``keep_layers``, seed 003) student
  layer ``i`` is distilled against the teacher layer it was initialised from.
* :func:`save_student` / :func:`load_student`: a student folder (``student.json``,
  ``student.pt``, the tokenizer) that rebuilds the exact module structure without an SVD.
* :func:`size_report`: bytes of the dense and compressed models (whole and encoder linears).

Scheme ``nm`` (seed 002) makes :class:`~ttaccel.models.nm.NMLinear` layers (dense, masked N:M,
each at its rule's bits); ``train_student(..., nm_training=...)`` chooses how the pattern is
reached (one-shot or gradual magnitude pruning, or ADMM: :class:`~ttaccel.models.nm.NMTraining`).

Scheme ``tucker`` (seed 001) makes :class:`~ttaccel.models.tucker.TuckerLinear` layers from
shared banks (one for the encoder or one per encoder layer, ``model.tucker_banks``),
initialised from the teacher's weights by :func:`~ttaccel.models.tucker.build_banks`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ttaccel.spec.packing import packed_nbytes

from .config import CompressionConfig, ResolvedLayer, check_modes
from .data import batches, load_encoded_splits, load_tokenizer
from .nm import NMLinear, NMSchedule, NMTraining, is_admm_buffer
from .quant import LsqQuantizer, format_for_bits
from .teacher import check_checkpoint_dir, classification_loss, load_bert_classifier, make_eval_fn
from .train import LoopConfig, dist_info, train_loop
from .tt import TTEmbedding, TTLinear, tt_layer_modes
from .tucker import (
    TuckerBank,
    TuckerLinear,
    attach_banks,
    bank_nbytes,
    build_banks,
    tucker_banks,
    tucker_layer_nbytes,
    tucker_modules,
)
from .xtc import reduce_layers, teacher_layer_map

__all__ = [
    "apply_compression",
    "calibrate",
    "distill_losses",
    "load_student",
    "save_student",
    "size_report",
    "train_student",
    "tt_modules",
]

METHODS = ("e2e", "layerwise", "onestage")


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, attr = name.rpartition(".")
    return model.get_submodule(parent_name), attr


def tt_modules(model: nn.Module) -> dict[str, TTLinear | TTEmbedding]:
    """The TT modules of a model by their module name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, TTLinear | TTEmbedding)}


def apply_compression(model: nn.Module, cfg: CompressionConfig, *, quantize: bool = True) -> dict:
    """Replace the modules ``cfg`` names by TT layers (TT-SVD of their weights), in place.

    With ``quantize`` and ``cfg.weight_bits`` set, quantizers are added (uncalibrated: run
    :func:`calibrate`). Returns ``{module name: {"svd_error", "in_modes", "out_modes",
    "ranks", "plan"}}``. Raises ValueError for unknown names, modes that do not multiply to
    the layer's dimensions, or ranks larger than the modes allow.
    """
    names = {n for n, _ in model.named_modules()}
    num_layers = model.config.num_hidden_layers
    report = {}
    tucker_linears = []
    for item in cfg.resolve(names, num_layers):
        if cfg.scheme == "tucker" and item.kind == "linear":
            tucker_linears.append(item.module)  # built together: they share banks
            continue
        module = model.get_submodule(item.module)
        report[item.module] = _compress_one(model, item, module, cfg)
    if tucker_linears:
        report.update(build_banks(model, tucker_linears, cfg.tucker_rank, cfg.bank_size,
                                  cfg.bank_scope))  # fmt: skip
    if quantize and cfg.weight_bits is not None:
        enable_quantization(model, cfg)
    return report


def enable_quantization(model: nn.Module, cfg: CompressionConfig) -> None:
    """Add LSQ quantizers (``cfg.weight_bits`` cores, int8 activations) to every TT module; an
    N:M layer's weight gets its own ``bits`` (its rule's, default the config's)."""
    fmt = format_for_bits(cfg.weight_bits)
    for layer in [*tt_modules(model).values(), *tucker_modules(model).values()]:
        own = format_for_bits(layer.bits) if isinstance(layer, NMLinear) and layer.bits else fmt
        layer.enable_quantization(
            own, power_of_two=cfg.power_of_two, weight_init=cfg.weight_scale_init,
            activation_init=cfg.activation_scale_init,
        )  # fmt: skip
    for bank in tucker_banks(model).values():
        bank.enable_quantization(fmt, power_of_two=cfg.power_of_two,
                                 weight_init=cfg.weight_scale_init)  # fmt: skip


def _compress_one(
    model: nn.Module, item: ResolvedLayer, module: nn.Module, cfg: CompressionConfig
) -> dict:
    """One module replaced: scheme ``tt`` by TT-SVD at the rule's modes and rank, scheme
    ``xtc`` by its dense weight as a one-core TT-matrix (modes ``[in] x [out]``, ranks 1),
    scheme ``nm`` by an unpruned :class:`NMLinear` of the rule's pattern and bits."""
    rule = item.rule
    dense = cfg.scheme == "xtc"
    if item.kind == "embedding":
        if not isinstance(module, nn.Embedding):
            raise ValueError(f"layer {item.module} is a {type(module).__name__}, not an Embedding")
        rows, cols = module.weight.shape
        check_modes(rule, item.module, rows, cols, embedding=True)
        modes = ((rows,), (cols,)) if dense else (rule.in_modes, rule.out_modes)
        try:
            new = TTEmbedding.from_embedding(module, 1 if dense else rule.rank, *modes)
        except ValueError as error:
            raise ValueError(f"layer {item.module}: {error}") from None
    else:
        if not isinstance(module, nn.Linear):
            raise ValueError(f"layer {item.module} is a {type(module).__name__}, not a Linear")
        check_modes(rule, item.module, module.in_features, module.out_features, embedding=False)
        if cfg.scheme == "nm":
            bits = rule.weight_bits if rule.weight_bits is not None else cfg.weight_bits
            try:
                new = NMLinear.from_dense(module, *rule.nm, bits=bits)
            except ValueError as error:
                raise ValueError(f"layer {item.module}: {error}") from None
        elif dense:
            in_modes, out_modes = (module.in_features,), (module.out_features,)
        elif rule.in_modes is not None:
            in_modes, out_modes = tt_layer_modes(rule.in_modes, rule.out_modes)
        else:
            from .tt import auto_linear_modes

            in_modes, out_modes = auto_linear_modes(
                module.in_features, module.out_features, rule.cores_per_side
            )
        if cfg.scheme != "nm":
            try:
                new = TTLinear.from_linear(module, 1 if dense else rule.rank, in_modes, out_modes)
            except ValueError as error:
                raise ValueError(f"layer {item.module}: {error}") from None
    parent, attr = _parent(model, item.module)
    setattr(parent, attr, new)
    return {
        "kind": item.kind, "svd_error": new.svd_error,
        "in_modes": list(new.shape.in_modes), "out_modes": list(new.shape.out_modes),
        "ranks": list(new.shape.ranks),
        "plan": [list(s) for s in new.plan] if isinstance(new, TTLinear) else None,
    }  # fmt: skip


def _forward(model, batch, **kwargs):
    return model(
        input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
        attention_mask=batch["attention_mask"], **kwargs,
    )  # fmt: skip


@torch.no_grad()
def calibrate(model: nn.Module, batch: dict) -> None:
    """Initialise every quantizer's scale from one forward of ``batch`` (by each quantizer's
    rule: the config's ``weight_scale_init`` / ``activation_scale_init``, default
    ``max|x| / qmax``).

    Call before wrapping in DDP, with the same batch on every rank, so replicas start equal.
    """
    was_training = model.training
    model.eval()
    _forward(model, batch)
    model.train(was_training)


def distill_losses(
    student_out, teacher_out, mask: torch.Tensor, layers: int, layer_map=None
) -> dict:
    """Layer-wise distillation terms over the first ``layers`` student encoder layers.

    ``student_out``/``teacher_out``: HF outputs with ``hidden_states`` (L + 1 tensors
    (B, T, H)) and ``attentions`` (L tensors (B, heads, T, T)); ``mask`` (B, T) 1 for real
    tokens. ``layer_map[i]``: the teacher layer student layer ``i`` is compared with (default
    the same index; with layer reduction the teacher layer it came from: student hidden state
    ``i + 1`` against teacher hidden state ``layer_map[i] + 1``, the embedding outputs against
    each other). Returns ``{"mse", "cos", "att_kl"}`` summed over the embedding output and the
    active layers, each averaged over real tokens (and heads).
    """
    m = mask.float()
    count = m.sum().clamp_min(1)
    mse = cos = att = torch.zeros(())
    teacher_of = (lambda i: i) if layer_map is None else (lambda i: layer_map[i])
    for i in range(layers + 1):
        t = 0 if i == 0 else teacher_of(i - 1) + 1
        hs, ht = student_out.hidden_states[i], teacher_out.hidden_states[t]
        mse = mse + (((hs - ht) ** 2).mean(-1) * m).sum() / count
        cos = cos + ((1 - F.cosine_similarity(hs, ht, dim=-1)) * m).sum() / count
    for i in range(layers):
        ps, pt = student_out.attentions[i], teacher_out.attentions[teacher_of(i)]
        kl = (pt * (torch.log(pt + 1e-9) - torch.log(ps + 1e-9))).sum(-1)  # (B, heads, T)
        att = att + (kl.mean(1) * m).sum() / count
    return {"mse": mse, "cos": cos, "att_kl": att}


def logits_kd(student_logits, teacher_logits, temperature: float = 2.0) -> torch.Tensor:
    """Soft-label distillation: ``T^2 KL(softmax(t/T) || softmax(s/T))`` (MSE for regression)."""
    if student_logits.shape[-1] == 1:
        return F.mse_loss(student_logits, teacher_logits)
    t = temperature
    return F.kl_div(
        F.log_softmax(student_logits / t, -1), F.log_softmax(teacher_logits / t, -1),
        log_target=True, reduction="batchmean",
    ) * t * t  # fmt: skip


def make_student_loss(
    teacher: nn.Module, method: str, num_layers: int, layer_steps: int, layer_map=None
):
    """``loss_fn(net, batch, step)`` for :func:`~ttaccel.models.train.train_loop`.

    ``layerwise``: the distillation terms of :func:`distill_losses` over one more student layer
    every ``layer_steps`` steps, then logits KD and cross-entropy too; ``onestage``: all of
    them from step 0 (XTC); ``e2e``: logits KD and cross-entropy. ``layer_map``: the teacher
    layer of each of the ``num_layers`` student layers (layer reduction), default identity."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, not {method!r}")
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    def loss_fn(net, batch, step):
        layerwise = method in ("layerwise", "onestage")
        with torch.no_grad():
            t_out = _forward(teacher, batch, output_hidden_states=layerwise,
                             output_attentions=layerwise)  # fmt: skip
        s_out = _forward(net, batch, output_hidden_states=layerwise, output_attentions=layerwise)
        logs: dict[str, float] = {}
        loss = torch.zeros(())
        all_in = True
        if layerwise:
            if method == "onestage":
                active = num_layers
            else:
                active = min(num_layers, step // layer_steps + 1)
                all_in = step >= num_layers * layer_steps
            terms = distill_losses(s_out, t_out, batch["attention_mask"], active, layer_map)
            loss = terms["mse"] + terms["cos"] + terms["att_kl"]
            logs.update({k: float(v.detach()) for k, v in terms.items()})
            logs["layers"] = active
        if all_in:
            kd = logits_kd(s_out.logits, t_out.logits)
            ce = classification_loss(s_out.logits, batch["labels"])
            loss = loss + kd + ce
            logs.update(kd=float(kd.detach()), ce=float(ce.detach()))
        return loss, logs

    return loss_fn


def size_report(student: nn.Module, teacher: nn.Module, weight_bits: int | None) -> dict:
    """Model sizes in bytes, dense fp32 teacher against the student.

    Student TT cores count at ``weight_bits`` packed (32 bits when float), TT biases at 4
    bytes (int32 or fp32), every other parameter at fp32; quantizer scales are not counted
    (a few floats per layer). A Tucker bank (scheme ``tucker``) counts once, its V, U and C
    packed at ``weight_bits`` (:func:`~ttaccel.models.tucker.bank_nbytes`), in the encoder
    linears; each Tucker linear adds its int8 mix, uint16 core ids and bias. ``encoder_linear_*``
    counts the six linears of every encoder layer (weights and biases).
    """
    fmt = format_for_bits(weight_bits) if weight_bits is not None else None

    def core_bytes(layer) -> int:
        if isinstance(layer, NMLinear):  # kept values at its bits + log2(m)-bit indices
            return layer.compressed_nbytes()
        if fmt is None:
            return 4 * sum(c.numel() for c in layer.cores)
        return sum(packed_nbytes(c.numel(), fmt) for c in layer.cores)

    def module_bytes(model) -> tuple[int, int]:
        whole = enc = 0
        tts = tt_modules(model)
        skip = set()
        for name, layer in tts.items():
            b = core_bytes(layer) + (4 * layer.bias.numel() if getattr(layer, "bias", None)
                                     is not None else 0)  # fmt: skip
            whole += b
            if ".encoder.layer." in name:
                enc += b
            skip.update(f"{name}.{p}" for p, _ in layer.named_parameters())
        for name, layer in tucker_modules(model).items():
            b = tucker_layer_nbytes(layer, weight_bits)
            whole, enc = whole + b, enc + b
            skip.update(f"{name}.{p}" for p, _ in layer.named_parameters())
        for key, bank in tucker_banks(model).items():  # counted once, however many layers use it
            b = bank_nbytes(bank, weight_bits)
            whole, enc = whole + b, enc + b
            skip.update(f"tucker_banks.{key}.{p}" for p, _ in bank.named_parameters())
        for name, p in model.named_parameters():
            if name in skip:
                continue
            whole += 4 * p.numel()
            if ".encoder.layer." in name and not _is_layernorm(name):
                enc += 4 * p.numel()
        return whole, enc

    dense_whole, dense_enc = module_bytes(teacher)
    whole, enc = module_bytes(student)
    return {
        "dense_bytes": dense_whole, "student_bytes": whole,
        "whole_model_ratio": dense_whole / whole,
        "dense_encoder_linear_bytes": dense_enc, "student_encoder_linear_bytes": enc,
        "encoder_linear_ratio": dense_enc / enc,
    }  # fmt: skip


def _is_layernorm(name: str) -> bool:
    return "LayerNorm" in name


# --- save / load ---------------------------------------------------------------------------


def save_student(
    model: nn.Module, cfg: CompressionConfig, out_dir: str | Path, *, teacher_dir: str | Path,
    task: str, max_length: int, extra: dict | None = None,
) -> Path:  # fmt: skip
    """Write a student folder: ``student.json`` (config, TT shapes, HF config, task),
    ``student.pt`` (state dict: tensors only) and the teacher's tokenizer files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shapes = {}
    for name, layer in tt_modules(model).items():
        shapes[name] = {
            "kind": "linear" if isinstance(layer, TTLinear) else "embedding",
            "in_modes": list(layer.shape.in_modes), "out_modes": list(layer.shape.out_modes),
            "ranks": list(layer.shape.ranks),
            "plan": [list(s) for s in layer.plan] if isinstance(layer, TTLinear) else None,
            "bias": getattr(layer, "bias", None) is not None,
            "num_embeddings": getattr(layer, "num_embeddings", None),
        }  # fmt: skip
        if isinstance(layer, NMLinear):
            shapes[name].update(nm=[layer.n, layer.m], bits=layer.bits)
    banks = tucker_banks(model)
    if banks:
        extra = {**(extra or {}), "tucker": {
            "banks": {k: {"d": b.d, "rank": b.rank, "size": b.size} for k, b in banks.items()},
            "linears": {n: {"in_features": m.in_features, "out_features": m.out_features,
                            "bank": m.bank_name, "bias": m.bias is not None}
                        for n, m in tucker_modules(model).items()},
        }}  # fmt: skip
    meta = {
        "compression": cfg.to_dict(), "tt_shapes": shapes, "hf_config": model.config.to_dict(),
        "teacher": str(Path(teacher_dir).resolve()), "task": task, "max_length": max_length,
        **(extra or {}),
    }  # fmt: skip
    (out / "student.json").write_text(json.dumps(meta, indent=2))
    state = {k: v for k, v in model.state_dict().items() if not is_admm_buffer(k)}
    torch.save(state, out / "student.pt")
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        src = Path(teacher_dir) / f
        if src.is_file():
            shutil.copy(src, out / f)
    return out


def load_student(
    student_dir: str | Path, *, build=None
) -> tuple[nn.Module, CompressionConfig, dict]:
    """Rebuild a saved student (eval mode). Returns ``(model, config, meta)``.

    ``build(hf_config, meta) -> nn.Module`` makes the model before its TT layers are put in
    (default: ``BertForSequenceClassification(hf_config)``; the joint intent + slot model of
    :mod:`ttaccel.models.nlu` passes its own)."""
    from transformers import BertConfig, BertForSequenceClassification

    folder = Path(student_dir)
    for f in ("student.json", "student.pt"):
        if not (folder / f).is_file():
            found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else "nothing"
            raise FileNotFoundError(f"student folder {folder}: expected {f}, found {found}")
    meta = json.loads((folder / "student.json").read_text())
    cfg = CompressionConfig.from_dict(meta["compression"])
    hf = BertConfig.from_dict(meta["hf_config"])
    hf._attn_implementation = "eager"
    model = build(hf, meta) if build is not None else BertForSequenceClassification(hf)
    for name, s in meta["tt_shapes"].items():
        if s.get("nm"):
            new = NMLinear(s["in_modes"][0], s["out_modes"][0], *s["nm"], bias=s["bias"],
                           bits=s["bits"])  # fmt: skip
        elif s["kind"] == "linear":
            new = TTLinear(s["in_modes"], s["out_modes"], s["ranks"], bias=s["bias"],
                           plan=tuple(tuple(p) for p in s["plan"]))  # fmt: skip
        else:
            new = TTEmbedding(s["num_embeddings"], s["in_modes"], s["out_modes"], s["ranks"],
                              padding_idx=hf.pad_token_id)  # fmt: skip
        parent, attr = _parent(model, name)
        setattr(parent, attr, new)
    if "tucker" in meta:
        banks = {k: TuckerBank(b["d"], b["rank"], b["size"])
                 for k, b in meta["tucker"]["banks"].items()}  # fmt: skip
        for name, s in meta["tucker"]["linears"].items():
            parent, attr = _parent(model, name)
            setattr(
                parent,
                attr,
                TuckerLinear(
                    s["in_features"], s["out_features"], banks[s["bank"]], s["bank"], bias=s["bias"]
                ),
            )
        attach_banks(model, banks)
    if cfg.weight_bits is not None:
        enable_quantization(model, cfg)
    state = torch.load(folder / "student.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return model, cfg, meta


# --- the compress pipeline -------------------------------------------------------------------


def build_student(
    teacher_dir: str | Path, cfg: CompressionConfig, num_labels: int,
    init_from: str | Path | None = None,
) -> tuple[nn.Module, dict]:  # fmt: skip
    """The student: the teacher's weights, compressed by ``cfg``. With ``init_from`` (a saved
    float or quantized student folder with the same TT shapes) its TT cores and other weights
    replace the SVD initialisation before quantizers are added (float -> QAT fine-tuning); an
    artifact (``.safetensors``) gives its weights read back by
    :func:`~ttaccel.models.from_artifact.state_from_artifact` (to continue its QAT).
    ``cfg.keep_layers`` (layer reduction) first keeps those teacher layers
    (:func:`ttaccel.models.xtc.reduce_layers`); the config's layer rules then apply to the
    ``k`` student layers."""
    model = load_bert_classifier(teacher_dir, num_labels)
    if cfg.keep_layers is not None:
        cfg.check_keep_layers(model.config.num_hidden_layers)
        reduce_layers(model, cfg.keep_layers)
    report = apply_compression(model, cfg, quantize=False)
    if init_from is not None and Path(init_from).suffix == ".safetensors":
        from ttaccel.spec.artifact import load_artifact

        from .from_artifact import state_from_artifact

        try:
            state = state_from_artifact(load_artifact(init_from), model)
        except ValueError as error:
            raise ValueError(f"--init-from {init_from}: {error}") from None
        model.load_state_dict(state, strict=False)
    elif init_from is not None:
        init_model, _, _ = load_student(init_from)
        state = {k: v for k, v in init_model.state_dict().items()
                 if "_q." not in k and not k.endswith("_q")}  # fmt: skip
        own = model.state_dict()
        for k, v in state.items():
            if k in own and own[k].shape != v.shape:
                raise ValueError(
                    f"--init-from {init_from}: tensor {k} has shape {tuple(v.shape)}, the "
                    f"student built from the config needs {tuple(own[k].shape)}"
                )
        model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    if cfg.weight_bits is not None:
        enable_quantization(model, cfg)
    return model, report


def train_student(
    teacher_dir: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    cfg: CompressionConfig,
    *,
    method: str = "layerwise",
    layer_steps: int = 100,
    task: str | None = None,
    max_length: int = 64,
    train_subset: int | None = None,
    loop: LoopConfig | None = None,
    init_from: str | Path | None = None,
    progress: bool = True,
    nm_training: NMTraining | None = None,
) -> dict:
    """Compress the teacher at ``teacher_dir`` by ``cfg`` and train the student on
    ``data_dir``. Writes ``{out_dir}/student`` (see :func:`save_student`), metrics and
    ``result.json`` (dev metrics, sizes, settings); returns the result dict.

    ``nm_training`` (scheme ``nm`` only; default one-shot magnitude pruning): how the N:M
    pattern is reached, see :class:`~ttaccel.models.nm.NMTraining`."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, not {method!r}")
    if nm_training is not None and cfg.scheme != "nm":
        raise ValueError(f"N:M training settings are for scheme 'nm', not {cfg.scheme!r}")
    if cfg.scheme == "nm" and nm_training is None:
        nm_training = NMTraining()
    loop = loop or LoopConfig()
    teacher_dir = check_checkpoint_dir(teacher_dir)
    glue, train_enc, dev_enc = load_encoded_splits(
        data_dir, load_tokenizer(teacher_dir), task, max_length, train_subset
    )
    teacher = load_bert_classifier(teacher_dir, glue.num_labels)
    torch.manual_seed(loop.seed)
    student, svd = build_student(teacher_dir, cfg, glue.num_labels, init_from)
    schedule = None
    if nm_training is not None:
        schedule = NMSchedule(student, nm_training)
        schedule.prepare()
    if cfg.weight_bits is not None:
        calibrate(student, next(batches(train_enc, loop.batch_size, shuffle=True, seed=loop.seed)))
    num_layers = student.config.num_hidden_layers
    layer_map = teacher_layer_map(cfg.keep_layers, num_layers)
    loss_fn = make_student_loss(teacher, method, num_layers, layer_steps, layer_map)
    if schedule is not None:
        loss_fn = schedule.wrap(loss_fn)
    eval_fn = make_eval_fn(dev_enc, glue.is_regression, loop.eval_batch_size)
    # Adam moves every parameter by about lr per step: scales (~1e-2) get a tenth of it.
    scale_params = [m.scale for m in student.modules() if isinstance(m, LsqQuantizer)]
    scale_ids = {id(p) for p in scale_params}
    others = [p for p in student.parameters() if id(p) not in scale_ids]
    groups = [
        {"params": [p for p in others if p.ndim >= 2], "weight_decay": loop.weight_decay},
        {"params": [p for p in others if p.ndim < 2], "weight_decay": 0.0},
        {"params": scale_params, "weight_decay": 0.0, "lr": loop.lr * 0.1},
    ]
    dev_metrics = train_loop(student, loss_fn, train_enc, eval_fn, loop, out_dir,
                             progress=progress, param_groups=groups)  # fmt: skip
    sizes = size_report(student, teacher, cfg.weight_bits)
    result = {
        "task": glue.name, "teacher": str(teacher_dir), "method": method,
        "layer_steps": layer_steps, "max_length": max_length, "train_examples": len(train_enc),
        "init_from": None if init_from is None else str(init_from),
        "compression": cfg.to_dict(), "loop": asdict(loop), "dev": dev_metrics, "sizes": sizes,
        "svd_error_mean": sum(v["svd_error"] for v in svd.values()) / max(1, len(svd)),
    }  # fmt: skip
    if nm_training is not None:
        result["nm_training"] = asdict(nm_training)
    rank, _ = dist_info()
    if rank == 0:
        out = Path(out_dir)
        save_student(student, cfg, out / "student", teacher_dir=teacher_dir, task=glue.name,
                     max_length=max_length, extra={"result": result})  # fmt: skip
        (out / "result.json").write_text(json.dumps(result, indent=2))
    return result
