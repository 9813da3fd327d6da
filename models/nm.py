"""Seed 002 (NxMiFormer): N:M semi-structured sparsity with low-bit QAT.

An N:M layer keeps at most ``n`` nonzero weights in every group of ``m`` consecutive inputs of
each output (the reduction dimension, so a sparse MAC array selects ``n`` of ``m``
activations per group; the layout is :mod:`ttaccel.spec.nm`'s). Here it is a dense one-core
:class:`~ttaccel.models.tt.TTLinear` (the weight ``(in, out)`` as core ``(1, in, out, 1)``, as
scheme ``xtc`` stores it) times a 0/1 ``mask`` buffer of the same shape: the float, fake-quant
and integer forwards all use ``core * mask``, so a pruned weight is the code 0 exactly and the
integer layer is N:M by construction (:meth:`NMLinear.to_int`; export compresses it with
:meth:`ttaccel.spec.golden.QuantNMLinear.from_tt_linear`).

Three ways to reach the pattern (:class:`NMTraining`, applied by :class:`NMSchedule` inside the
distillation loop, every step's decision a function of the step and the checkpointed model, so
a killed run resumes exactly):

* ``oneshot``: magnitude pruning once, before calibration and QAT;
* ``gradual``: magnitude pruning every ``prune_every`` steps, the number kept per group going
  from ``m`` to ``n`` on the cubic schedule of Zhu & Gupta (2017)
  ``keep(t) = round(m - (m - n) (1 - (1 - t / T)^3))`` over ``T = prune_steps`` steps; a pruned
  weight stays pruned (magnitudes are taken of ``core * mask``);
* ``admm``: for ``prune_steps`` steps the weights train dense (fake-quantized by STE) with the
  ADMM penalty ``rho / 2 ||W - Z + U||^2``; every ``admm_every`` steps
  ``Z = proj_NM(W + U)`` (magnitude N:M projection) and ``U = U + W - Z``; at step
  ``prune_steps`` the mask becomes the support of ``proj_NM(W + U)`` and QAT continues masked.
  ``Z`` and ``U`` are buffers of the layer (checkpointed with the model, left out of the saved
  student).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ttaccel.spec.nm import check_nm, indices_nbytes
from ttaccel.spec.packing import packed_nbytes
from ttaccel.spec.ptq import quant_tt_linear_from_scales

from .quant import format_for_bits, quantize_exact
from .tt import TTLinear

__all__ = [
    "NM_MODES",
    "NMLinear",
    "NMSchedule",
    "NMTraining",
    "gradual_keep",
    "is_admm_buffer",
    "nm_layer_nbytes",
    "nm_mask",
    "nm_modules",
    "nm_project",
]

NM_MODES = ("oneshot", "gradual", "admm")
_ADMM_BUFFERS = ("admm_z", "admm_u")


def nm_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """The float 0/1 mask keeping the ``n`` largest ``|weight|`` of each group of ``m``
    consecutive inputs. ``weight`` is ``(in_features, out_features)`` (the spec's ``W``, groups
    along dim 0), or any shape ``(1, in, out, 1)`` a one-core TT core has. Ties go to the lower
    input index (a stable sort), as :func:`ttaccel.spec.nm.nm_magnitude_mask`."""
    check_nm(n, m)
    shape = weight.shape
    if weight.ndim == 4 and shape[0] == shape[3] == 1:
        w = weight.detach().reshape(shape[1], shape[2])
    elif weight.ndim == 2:
        w = weight.detach()
    else:
        raise ValueError(
            f"expected an (in, out) weight or a (1, in, out, 1) core, not {tuple(shape)}"
        )
    k, out = w.shape
    if k % m:
        raise ValueError(f"in_features {k} is not a multiple of the group size m = {m}")
    groups = w.abs().reshape(k // m, m, out)
    order = torch.sort(-groups, dim=1, stable=True).indices[:, :n]
    mask = torch.zeros_like(groups)
    mask.scatter_(1, order, 1.0)
    return mask.reshape(shape)


def nm_project(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Euclidean projection onto the N:M set: ``weight * nm_mask(weight, n, m)``."""
    return weight * nm_mask(weight, n, m)


def nm_layer_nbytes(
    in_features: int, out_features: int, n: int, m: int, bits: int | str | None, *,
    bias: bool = True,
) -> int:  # fmt: skip
    """Bytes export writes for an N:M layer: ``out * (in / m) * n`` kept values packed at
    ``bits`` (4 bytes each when None: a float student), as many ``log2(m)``-bit indices, and
    the int32 bias (``4 * out``) with ``bias``."""
    count = out_features * (in_features // m) * n
    values = 4 * count if bits is None else packed_nbytes(count, format_for_bits(bits))
    return values + indices_nbytes(count, m) + (4 * out_features if bias else 0)


def gradual_keep(step: int, n: int, m: int, prune_steps: int) -> int:
    """Weights kept per group of ``m`` at ``step`` of gradual pruning: ``m`` at step 0, ``n``
    from ``prune_steps`` on, ``round(m - (m - n)(1 - (1 - t/T)^3))`` between."""
    if prune_steps <= 0 or step >= prune_steps:
        return n
    frac = 1.0 - (1.0 - step / prune_steps) ** 3
    return max(n, min(m, round(m - (m - n) * frac)))


class NMLinear(TTLinear):
    """A dense linear pruned N:M along its input dimension (see the module docstring).

    ``in_features`` must be a multiple of ``m``. ``bits``: the weight format this layer is
    quantized at (8, 4, 2, ``"ternary"``, or None for float), resolved from the config's rule;
    :func:`ttaccel.models.compress.enable_quantization` reads it. ``mask``: float buffer
    ``(1, in, out, 1)``, all ones until pruned (:meth:`prune_`).
    """

    def __init__(
        self, in_features: int, out_features: int, n: int, m: int, *, bias: bool = True,
        bits: int | str | None = None,
    ) -> None:  # fmt: skip
        super().__init__((in_features,), (out_features,), (1, 1), bias=bias, plan=((0, 1),))
        self.n, self.m = check_nm(n, m, name="NMLinear")
        if in_features % m:
            raise ValueError(
                f"in_features {in_features} is not a multiple of the N:M group size m = {m}"
            )
        if bits == "binary":
            raise ValueError("an N:M layer cannot take binary weights (no zero code)")
        self.bits = bits
        self.register_buffer("mask", torch.ones(self.shape.core_shapes[0]))

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, nm={self.n}:{self.m}, bits={self.bits}"

    @classmethod
    def from_dense(
        cls, linear: nn.Linear, n: int, m: int, *, bits: int | str | None = None
    ) -> NMLinear:
        """An unpruned N:M layer holding ``linear``'s weight (transposed into the core) and
        bias; call :meth:`prune_` to apply the pattern."""
        layer = cls(linear.in_features, linear.out_features, n, m,
                    bias=linear.bias is not None, bits=bits)  # fmt: skip
        with torch.no_grad():
            layer.cores[0].copy_(linear.weight.detach().T.reshape(layer.cores[0].shape))
            if linear.bias is not None:
                layer.bias.copy_(linear.bias.detach())
        layer.svd_error = 0.0
        return layer

    # -- the pattern --

    def masked_core(self) -> torch.Tensor:
        """``core * mask`` (1, in, out, 1): the weight every forward uses."""
        return self.cores[0] * self.mask

    @torch.no_grad()
    def prune_(self, keep: int | None = None) -> None:
        """Magnitude pruning in place: the mask keeps the ``keep`` (default ``n``) largest
        ``|core * mask|`` of every group (already pruned weights are never revived)."""
        self.mask.copy_(nm_mask(self.masked_core(), keep or self.n, self.m))

    def is_nm(self) -> bool:
        """Whether the mask keeps at most ``n`` of every group of ``m``."""
        groups = self.mask.reshape(self.in_features // self.m, self.m, self.out_features)
        return bool((groups.sum(1) <= self.n).all())

    def compressed_nbytes(self) -> int:
        """Bytes of the compressed weight (kept values at ``bits``, fp32 when float, plus
        ``log2(m)``-bit indices), bias not included: what export writes."""
        return nm_layer_nbytes(
            self.in_features, self.out_features, self.n, self.m, self.bits, bias=False
        )

    # -- ADMM state --

    def enable_admm(self) -> None:
        """Register the ADMM buffers ``admm_z`` (= the N:M projection of the weight) and
        ``admm_u`` (zeros), if absent."""
        if not hasattr(self, "admm_z"):
            w = self.cores[0].detach()
            self.register_buffer("admm_z", nm_project(w, self.n, self.m).clone())
            self.register_buffer("admm_u", torch.zeros_like(w))

    # -- forwards (TTLinear's, on the masked core) --

    def _forward_float(self, x: torch.Tensor) -> torch.Tensor:
        out = x @ self.masked_core().reshape(self.in_features, self.out_features)
        return out + self.bias if self.bias is not None else out

    def _quantized_merged_cores(self, track: bool):
        return [quantize_exact(self.core_q[0], self.masked_core(), track=track)]

    def to_int(self):
        """The integer one-core layer of the masked weight (zero codes where pruned), constants
        as :meth:`TTLinear.to_int`."""
        if not self.quantized or not bool(self.input_q.initialized):
            raise ValueError("to_int needs a quantized, calibrated NMLinear (run a forward first)")
        codes, scale = self.core_q[0].to_int(self.masked_core())
        bias = None if self.bias is None else self.bias.detach().double().cpu().numpy()
        return quant_tt_linear_from_scales(
            [codes], [scale], self.weight_format, self.plan, [[]],
            [self.stage_q[0].effective_scale()], self.input_q.effective_scale(), bias,
        )  # fmt: skip


def nm_modules(model: nn.Module) -> dict[str, NMLinear]:
    """The N:M layers of a model by module name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, NMLinear)}


def is_admm_buffer(state_key: str) -> bool:
    """Whether a state-dict key is ADMM training state (left out of a saved student)."""
    return state_key.rsplit(".", 1)[-1] in _ADMM_BUFFERS


@dataclass(frozen=True)
class NMTraining:
    """How the N:M pattern is reached during training (see the module docstring).

    ``mode``: ``oneshot``, ``gradual`` or ``admm``; ``prune_steps``: the gradual schedule's or
    the ADMM phase's length ``T`` (steps; ignored by ``oneshot``); ``prune_every``: gradual
    mask updates every this many steps; ``rho``: the ADMM penalty weight; ``admm_every``: steps
    between the ADMM ``Z`` / ``U`` updates."""

    mode: str = "oneshot"
    prune_steps: int = 200
    prune_every: int = 50
    rho: float = 1e-3
    admm_every: int = 20

    def __post_init__(self) -> None:
        if self.mode not in NM_MODES:
            raise ValueError(
                f"N:M training mode must be one of {list(NM_MODES)}, not {self.mode!r}"
            )
        for key in ("prune_steps", "prune_every", "admm_every"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer, not {value!r}")
        if not (math.isfinite(self.rho) and self.rho > 0):
            raise ValueError(f"rho must be positive and finite, not {self.rho!r}")


class NMSchedule:
    """Applies an :class:`NMTraining` to the N:M layers of ``model``.

    :meth:`prepare` runs once before calibration (``oneshot``: prune now; ``admm``: ADMM
    buffers); :meth:`wrap` turns a ``loss_fn(net, batch, step)`` into one that first updates
    masks / ADMM variables for ``step`` (:meth:`before_step`) and adds the ADMM penalty while
    the ADMM phase lasts (logged as ``admm``, with ``kept``: weights kept per group)."""

    def __init__(self, model: nn.Module, training: NMTraining) -> None:
        self.layers = list(nm_modules(model).values())
        if not self.layers:
            raise ValueError("the model has no N:M layers (scheme 'nm')")
        self.training = training

    def prepare(self) -> None:
        mode = self.training.mode
        for layer in self.layers:
            if mode == "oneshot":
                layer.prune_()
            elif mode == "admm":
                layer.enable_admm()

    @torch.no_grad()
    def before_step(self, step: int) -> None:
        """The scheduled mask / ADMM updates of ``step`` (before its forward)."""
        t = self.training
        if (
            t.mode == "gradual"
            and step <= t.prune_steps
            and (step % t.prune_every == 0 or step == t.prune_steps)
        ):
            for layer in self.layers:
                layer.prune_(gradual_keep(step, layer.n, layer.m, t.prune_steps))
        elif t.mode == "admm":
            if step == t.prune_steps:
                for layer in self.layers:
                    w = layer.cores[0] + layer.admm_u
                    layer.mask.copy_(nm_mask(w, layer.n, layer.m))
            elif 0 < step < t.prune_steps and step % t.admm_every == 0:
                for layer in self.layers:
                    w = layer.cores[0]
                    layer.admm_z.copy_(nm_project(w + layer.admm_u, layer.n, layer.m))
                    layer.admm_u.add_(w - layer.admm_z)

    def penalty(self, step: int) -> torch.Tensor | None:
        """``rho / 2 sum ||W - Z + U||^2`` during the ADMM phase, else None."""
        t = self.training
        if t.mode != "admm" or step >= t.prune_steps:
            return None
        total = sum(((l.cores[0] - l.admm_z + l.admm_u) ** 2).sum() for l in self.layers)  # noqa: E741
        return 0.5 * t.rho * total

    def wrap(self, loss_fn):
        def nm_loss(net, batch, step):
            self.before_step(step)
            loss, logs = loss_fn(net, batch, step)
            extra = self.penalty(step)
            if extra is not None:
                loss = loss + extra
                logs["admm"] = float(extra.detach())
            logs["kept"] = float(
                sum(float(l.mask.sum()) for l in self.layers)  # noqa: E741
                / sum(l.mask.numel() / l.m for l in self.layers)  # noqa: E741
            )
            return loss, logs

        return nm_loss
