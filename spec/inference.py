"""Whole-model inference of a BERT sequence classifier, or of a joint intent + slot model
(``bert-joint-intent-slot``: :meth:`BertInference.joint_logits`), from an artifact (NumPy only).

The integer parts are the spec's golden models: every TT linear (and every N:M sparse linear,
expanded to its dense one-core form by ``Artifact.integer_linears``) runs
:func:`~ttaccel.spec.golden.tt_contract_int` (int8 input codes quantized with the layer's
``input_scale`` by :func:`~ttaccel.spec.formats.quantize`, int8 output codes at its
``output_scale``) and the TT word embedding :func:`~ttaccel.spec.golden.tt_embedding_int`.
Everything else runs in float32 as the PyTorch student does: the embedding sum and LayerNorm,
attention scores, softmax and the context product, residual adds, GELU (erf form), the
pooler (tanh) and the classifier, plus any linear left dense (stored as float tensors). These
are exactly the quantization points of ``ttaccel.models`` (a TT layer fake-quantizes its input
and its output; nothing else is quantized), so the torch fake-quant model and this model agree
up to float rounding and rare requantization ties.

Speed: the integer GEMMs of the TT layers run as float64 BLAS products of the integer codes
(:func:`tt_contract_exact`). Every product and partial sum is an integer below
``128 * 128 * K < 2**53``, so float64 represents it exactly and the result equals
:func:`~ttaccel.spec.golden.tt_contract_int` bit for bit (tested); the int32 accumulator check
and :func:`~ttaccel.spec.formats.requantize` are the golden model's.

Model description (the artifact's ``model_config``, written by ``ttaccel export``)::

    {"architecture": "bert-sequence-classification", "hidden_size": H,
     "num_hidden_layers": L, "num_attention_heads": A, "intermediate_size": I,
     "layer_norm_eps": eps, "hidden_act": "gelu", "num_labels": C, ...}

Float tensors and TT layers carry the Hugging Face module names
(``bert.encoder.layer.0.attention.self.query``; a dense linear stores ``<name>.weight`` as
(out, in) and ``<name>.bias``). Examples are run one by one at their own length, so no padding
mask is needed; linear layers see all tokens of a batch of examples at once (rows are
independent).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np

from .artifact import JOINT_ARCHITECTURE, SEQUENCE_ARCHITECTURE, Artifact
from .formats import ACC_BITS, INT8, Requant, dequantize, quantize, requantize
from .golden import tt_embedding_int
from .tt import contract_core, tt_shape_of

__all__ = [
    "JOINT_ARCHITECTURE",
    "LINEAR_NAMES",
    "SEQUENCE_ARCHITECTURE",
    "BertInference",
    "TTLinearFn",
    "erf",
    "gelu",
    "layer_norm",
    "tt_contract_exact",
]

_ACC_MIN, _ACC_MAX = -(2 ** (ACC_BITS - 1)), 2 ** (ACC_BITS - 1) - 1


def _acc(state: np.ndarray, core: np.ndarray, what: str) -> np.ndarray:
    acc = contract_core(state, core)  # float64 holding exact integers
    if acc.size and (acc.min() < _ACC_MIN or acc.max() > _ACC_MAX):
        raise OverflowError(f"{what}: accumulator leaves int{ACC_BITS}: [{acc.min()}, {acc.max()}]")
    return acc.astype(np.int64)


def tt_contract_exact(
    x: np.ndarray,
    cores: Sequence[np.ndarray],
    stage_requants: Sequence[Requant],
    bias: np.ndarray | None = None,
    *,
    on_stage: Callable[[int, np.ndarray], None] | None = None,
) -> np.ndarray:
    """:func:`~ttaccel.spec.golden.tt_contract_int` with the GEMMs in float64 (exact, see the
    module docstring): int8 codes ``x`` (B, M), merged integer cores, one requant per stage,
    int32 bias at the last stage. Returns int8 codes (B, N).

    ``on_stage(k, codes)``, when given, is called after every stage but the last with that
    stage's requantized int8 codes (shape ``(P, n_k, r_{k+1}, rest)``, the state before it is
    reshaped for stage ``k + 1``); it only observes (the result does not depend on it)."""
    shape = tt_shape_of(cores)
    batch = x.shape[0]
    state = np.asarray(x, dtype=np.float64).reshape(batch, 1, shape.in_modes[0], -1)
    last = shape.num_cores - 1
    for k, (core, requant) in enumerate(zip(cores, stage_requants, strict=True)):
        acc = _acc(state, np.asarray(core, dtype=np.float64), f"stage {k}")
        if k == last:
            return requantize(acc.reshape(batch, shape.out_features), requant, bias)
        p, n, r_next, rest = acc.shape
        nxt = shape.in_modes[k + 1]
        codes = requantize(acc, requant)
        if on_stage is not None:
            on_stage(k, codes)
        codes = codes.astype(np.float64)
        state = codes.reshape(p * n, r_next, nxt, rest // nxt)
    raise AssertionError("unreachable")


_ARCHS = (SEQUENCE_ARCHITECTURE, JOINT_ARCHITECTURE)
LINEAR_NAMES = (
    "attention.self.query", "attention.self.key", "attention.self.value",
    "attention.output.dense", "intermediate.dense", "output.dense",
)  # fmt: skip
"""The linears of one encoder layer (``bert.encoder.layer.{i}.`` + name), in the order
:meth:`BertInference.logits` calls them."""

TTLinearFn = Callable[[str, np.ndarray], np.ndarray]
"""``(layer name, int8 input codes (R, in)) -> int8 output codes (R, out)``: the integer part
of one TT linear, :func:`tt_contract_exact` by default, a device in ``ttaccel.host``."""


def _untimed(step: str) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


def erf(x: np.ndarray) -> np.ndarray:
    """Error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7), float64 internally."""
    x = np.asarray(x, dtype=np.float64)
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-a * a))


def gelu(x: np.ndarray) -> np.ndarray:
    """``x * (1 + erf(x / sqrt 2)) / 2`` (BERT's exact GELU), float32 out."""
    x = np.asarray(x, dtype=np.float32)
    return (0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))).astype(np.float32)


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis in float32 (biased variance, as torch)."""
    x = np.asarray(x, dtype=np.float32)
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return ((x - mean) / np.sqrt(var + np.float32(eps)) * weight + bias).astype(np.float32)


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


class BertInference:
    """A BERT classifier over an :class:`~ttaccel.spec.artifact.Artifact`.

    Merged integer cores of every TT linear are computed once at construction (they are
    input independent). :meth:`logits` maps token ids to float32 logits.

    ``tt_linear``: computes a TT linear's integer part (:data:`TTLinearFn`); it must return
    exactly what :func:`tt_contract_exact` returns (the host's device backends do), so the
    logits do not depend on it. ``timer``: ``timer(step)`` returns a context manager around
    each host step (``embedding``, ``quantize``, ``tt_linear``, ``dequantize``, ``dense``,
    ``attention``, ``softmax``, ``residual``, ``layernorm``, ``gelu``), for profiling.
    """

    def __init__(
        self,
        artifact: Artifact,
        *,
        tt_linear: TTLinearFn | None = None,
        timer: Callable[[str], contextlib.AbstractContextManager] | None = None,
    ) -> None:
        cfg = artifact.model_config
        if cfg.get("architecture") not in _ARCHS:
            raise ValueError(
                f"artifact model architecture must be one of {list(_ARCHS)}, found "
                f"{cfg.get('architecture')!r}"
            )
        for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "layer_norm_eps"):
            if key not in cfg:
                raise ValueError(f"artifact model description lacks {key!r}")
        if cfg.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"hidden_act must be 'gelu', found {cfg.get('hidden_act')!r}")
        self.artifact = artifact
        self.cfg = cfg
        self.hidden = int(cfg["hidden_size"])
        self.layers = int(cfg["num_hidden_layers"])
        self.heads = int(cfg["num_attention_heads"])
        self.eps = float(cfg["layer_norm_eps"])
        # N:M layers (seed 002) run as the dense layers they expand to: one core each.
        self._linears = artifact.integer_linears()
        self._merged = {n: layer.merged_cores() for n, layer in self._linears.items()}
        self.t = artifact.tensors
        self._tt_linear = tt_linear or self.tt_linear_exact
        self._timer = timer or _untimed

    def tt_linear_exact(self, name: str, codes: np.ndarray) -> np.ndarray:
        """The default :data:`TTLinearFn`: the golden integer contraction of TT layer
        ``name`` on int8 ``codes`` (R, in) -> int8 (R, out)."""
        layer = self._linears[name]
        return tt_contract_exact(codes, self._merged[name], layer.stage_requants, layer.bias)

    def _tensor(self, name: str) -> np.ndarray:
        if name not in self.t:
            raise ValueError(f"artifact has no float tensor {name!r} (nor a TT layer for it)")
        return self.t[name]

    def linear(self, name: str, x: np.ndarray) -> np.ndarray:
        """``x`` (R, in) float32 -> (R, out) float32 through TT layer or dense ``name``."""
        layer = self._linears.get(name)
        if layer is None:
            with self._timer("dense"):
                w = self._tensor(f"{name}.weight")
                y = x @ w.T
                if f"{name}.bias" in self.t:
                    y = y + self.t[f"{name}.bias"]
                return y.astype(np.float32)
        with self._timer("quantize"):
            codes = quantize(x, layer.input_scale, INT8)
        with self._timer("tt_linear"):
            out = self._tt_linear(name, codes)
        with self._timer("dequantize"):
            return dequantize(out, layer.output_scale)

    def word_embeddings(self, ids: np.ndarray) -> np.ndarray:
        """ids (T,) -> (T, H) float32 rows (TT integer lookup or the float table)."""
        name = "bert.embeddings.word_embeddings"
        table = self.artifact.tt_embeddings.get(name)
        if table is None:
            return self._tensor(f"{name}.weight")[ids]
        return dequantize(tt_embedding_int(ids, table), table.output_scale)

    def embed(self, ids: np.ndarray, type_ids: np.ndarray) -> np.ndarray:
        e = "bert.embeddings."
        x = self.word_embeddings(ids)
        x = x + self._tensor(f"{e}token_type_embeddings.weight")[type_ids]
        positions = self._tensor(f"{e}position_embeddings.weight")
        if len(ids) > len(positions):
            raise ValueError(
                f"an example of {len(ids)} tokens is longer than the model's "
                f"{len(positions)} positions (bert.embeddings.position_embeddings.weight)"
            )
        x = x + positions[: len(ids)]
        return layer_norm(x, self._tensor(f"{e}LayerNorm.weight"),
                          self._tensor(f"{e}LayerNorm.bias"), self.eps)  # fmt: skip

    def logits(
        self,
        input_ids: Sequence[Sequence[int]],
        token_type_ids: Sequence[Sequence[int]] | None = None,
    ) -> np.ndarray:
        """Token ids of each example (unpadded lists) -> float32 logits (B, num_labels) of the
        sequence classifier (a joint model's intent logits)."""
        x, starts = self.hidden_states(input_ids, token_type_ids)
        return self._intent(x, starts)

    def joint_logits(
        self,
        input_ids: Sequence[Sequence[int]],
        token_type_ids: Sequence[Sequence[int]] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """A joint model (``bert-joint-intent-slot``): float32 intent logits (B, num_labels)
        and, for example ``b`` of ``T_b`` tokens, float32 slot logits (T_b, num_slot_labels):
        ``linear("slot_classifier", x)`` of the last layer's hidden states of every token."""
        if self.cfg["architecture"] != JOINT_ARCHITECTURE:
            raise ValueError(
                f"joint_logits needs a {JOINT_ARCHITECTURE!r} artifact, this one is "
                f"{self.cfg['architecture']!r}"
            )
        x, starts = self.hidden_states(input_ids, token_type_ids)
        slots = self.linear("slot_classifier", x)
        per_example = [slots[starts[b] : starts[b + 1]] for b in range(len(starts) - 1)]
        return self._intent(x, starts), per_example

    def _intent(self, x: np.ndarray, starts: np.ndarray) -> np.ndarray:
        first = x[starts[:-1]]  # the [CLS] token of every example
        pooled = np.tanh(self.linear("bert.pooler.dense", first)).astype(np.float32)
        return self.linear("classifier", pooled)

    def hidden_states(
        self,
        input_ids: Sequence[Sequence[int]],
        token_type_ids: Sequence[Sequence[int]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The last encoder layer's float32 hidden states of every token of every example,
        examples one after another: ``(sum T_b, H)``, and the row offsets ``starts`` (B + 1,)
        (example ``b`` is rows ``starts[b] .. starts[b+1] - 1``, its ``[CLS]`` row
        ``starts[b]``)."""
        ids = [np.asarray(i, dtype=np.int64) for i in input_ids]
        types = (
            [np.zeros_like(i) for i in ids] if token_type_ids is None
            else [np.asarray(t, dtype=np.int64) for t in token_type_ids]
        )  # fmt: skip
        lengths = [len(i) for i in ids]
        if min(lengths, default=1) < 1:
            raise ValueError("every example needs at least one token")
        starts = np.cumsum([0, *lengths])
        timer = self._timer
        with timer("embedding"):
            x = np.concatenate([self.embed(i, t) for i, t in zip(ids, types, strict=True)])
        dh = self.hidden // self.heads
        for layer in range(self.layers):
            p = f"bert.encoder.layer.{layer}."
            q, k, v = (self.linear(p + n, x) for n in LINEAR_NAMES[:3])
            ctx = np.empty_like(x)
            for b in range(len(ids)):
                s = slice(starts[b], starts[b + 1])
                with timer("attention"):
                    qh = q[s].reshape(-1, self.heads, dh).transpose(1, 0, 2)
                    kh = k[s].reshape(-1, self.heads, dh).transpose(1, 0, 2)
                    vh = v[s].reshape(-1, self.heads, dh).transpose(1, 0, 2)
                    scores = (qh @ kh.transpose(0, 2, 1)) * np.float32(dh**-0.5)
                with timer("softmax"):
                    probs = _softmax(scores)
                with timer("attention"):
                    ctx[s] = (probs @ vh).transpose(1, 0, 2).reshape(-1, self.hidden)
            attn = self.linear(p + "attention.output.dense", ctx)
            ln = p + "attention.output.LayerNorm."
            with timer("residual"):
                h = attn + x
            with timer("layernorm"):
                x = layer_norm(h, self._tensor(ln + "weight"), self._tensor(ln + "bias"), self.eps)
            pre = self.linear(p + "intermediate.dense", x)
            with timer("gelu"):
                inter = gelu(pre)
            out = self.linear(p + "output.dense", inter)
            with timer("residual"):
                h = out + x
            with timer("layernorm"):
                x = layer_norm(h, self._tensor(p + "output.LayerNorm.weight"),
                               self._tensor(p + "output.LayerNorm.bias"), self.eps)  # fmt: skip
        return x, starts
