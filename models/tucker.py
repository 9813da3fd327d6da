"""Seed 001: Tucker decomposition with a matrix bank shared across layers, in PyTorch.

The format is :mod:`ttaccel.spec.tucker`'s (read its module docstring: it is the contract).
Every encoder weight ``W`` (spec convention ``(in, out)``, ``y = x @ W``: the transpose of
``nn.Linear.weight``) is cut into ``d x d`` blocks, ``d`` the hidden size (``d -> B*d``: block
``b`` is ``W[:, b*d:(b+1)*d]``; ``B*d -> d``: block ``b`` is the interleaved rows ``W[b::B]``),
and each block is ``W_b = V @ S_b @ U.T`` with ``S_b = sum_j mix[b, j] * C[j]``:

* :class:`TuckerBank` holds ``V`` (``in_factor``, (d, r)), ``U`` (``out_factor``, (d, r)) and
  the bank of cores ``C`` (``cores``, (l, r, r)); one bank serves every layer of its scope
  (the whole encoder, or one encoder layer), registered once on the model
  (``model.tucker_banks[name]``, see :func:`attach_banks`);
* :class:`TuckerLinear` holds its mixing coefficients ``mix`` (B, l) and bias, and only a
  reference to its bank (not a submodule: the bank's parameters exist once, in the state dict
  and in the optimizer). Its core ids are all ``l`` cores of the bank, in order.

:func:`tucker_init` is the initialisation from a trained model: for the blocks ``W_1 .. W_n``
of a bank's scope, ``V`` = the top ``r`` left singular vectors of ``[W_1 .. W_n]`` side by side,
``U`` = those of ``[W_1.T .. W_n.T]``, ``G_i = V.T W_i U``; the bank and the mix are the rank-``l``
truncated SVD of the ``(n, r*r)`` matrix of the stacked ``vec(G_i)`` (the cores are its right
singular vectors, so every core has unit Frobenius norm and one scale serves the bank; the
mix carries the singular values). ``r = d`` and ``l = n`` reproduce every weight to float64
precision.

Quantization-aware forward (seed 000's LSQ quantizers, :class:`~ttaccel.models.quant.LsqQuantizer`):
``V``, ``U`` and ``C`` are fake-quantized to the weight format (INT8 or INT4) with one learned
scale each, per bank; each layer's ``mix`` to INT8 with its own scale; each layer's ``S_b``
(all its blocks, one scale) is the requantization of the integer ``mix @ C`` products to the
weight format; the input and the three stage outputs (``t = x @ V``, ``s = t @ S``,
``y = s @ U.T + bias``) are INT8. The three stages are the 3-core TT-matrix of
:func:`ttaccel.spec.tucker.tucker_as_tt_linear` (V as ``(1, d, 1, r)``, S as ``(r, m1, n1, r)``,
U.T as ``(r, 1, d, 1)``, plan ``((0, 1), (1, 2), (2, 3))``), contracted by
:func:`ttaccel.models.tt.contract_core`. In eval mode the forward carries the integer codes
(:func:`~ttaccel.models.quant.quantize_exact` / :func:`~ttaccel.models.quant.requantize_exact`),
so it returns the integer model's numbers exactly, as the TT layers do; in training it is the
plain LSQ forward. :meth:`TuckerLinear.to_int` and :meth:`TuckerBank.to_int` turn the learned
scales into the spec's :class:`~ttaccel.spec.tucker.QuantTuckerLinear` and
:class:`~ttaccel.spec.tucker.TuckerBank` through
:func:`~ttaccel.spec.tucker.quant_tucker_linear_from_scales`, so export and golden agree by
construction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ttaccel.spec.formats import INT8, NumberFormat
from ttaccel.spec.packing import packed_nbytes
from ttaccel.spec.tucker import (
    TUCKER_WEIGHT_FORMATS,
    QuantTuckerLinear,
    quant_tucker_linear_from_scales,
    tucker_modes,
)
from ttaccel.spec.tucker import TuckerBank as QuantTuckerBank

from .quant import Exact, LsqQuantizer, on_codes, quantize_exact, requantize_exact, round_ste
from .tt import contract_core

__all__ = [
    "BANK_SCOPES",
    "MAX_TUCKER_RANK",
    "TuckerBank",
    "TuckerLinear",
    "assemble_blocks",
    "attach_banks",
    "bank_nbytes",
    "block_weights",
    "tucker_banks",
    "tucker_init",
    "tucker_layer_nbytes",
    "tucker_modules",
]

BANK_SCOPES = ("model", "layer")
"""``model``: one bank for every Tucker linear of the encoder; ``layer``: one per encoder layer."""
MAX_TUCKER_RANK = 64
"""The largest rank a Tucker bank may have (the engine's on-chip factor buffers)."""


# --- blocks and the initialisation ------------------------------------------------------------


def block_weights(weight: np.ndarray, d: int) -> list[np.ndarray]:
    """The ``d x d`` blocks of a spec-convention weight ``(in, out)`` in block order.

    ``d -> B*d``: block ``b`` is ``weight[:, b*d:(b+1)*d]``; ``B*d -> d``: the interleaved rows
    ``weight[b::B, :]`` (:mod:`ttaccel.spec.tucker`'s feature orders). ValueError for another
    shape."""
    weight = np.asarray(weight)
    if weight.ndim != 2:
        raise ValueError(f"weight must be (in, out), not shape {weight.shape}")
    in_modes, _, blocks = tucker_modes(weight.shape[0], weight.shape[1], d)
    if in_modes[1] > 1:
        return [weight[b::blocks, :] for b in range(blocks)]
    return [weight[:, b * d : (b + 1) * d] for b in range(blocks)]


def assemble_blocks(
    blocks: Sequence[np.ndarray], in_features: int, out_features: int
) -> np.ndarray:
    """The ``(in, out)`` weight whose :func:`block_weights` are ``blocks`` (the inverse)."""
    d = np.asarray(blocks[0]).shape[0]
    in_modes, _, count = tucker_modes(in_features, out_features, d)
    if len(blocks) != count:
        raise ValueError(f"{in_features} -> {out_features} has {count} blocks, not {len(blocks)}")
    weight = np.zeros((in_features, out_features), dtype=np.result_type(*blocks))
    for b, block in enumerate(blocks):
        if in_modes[1] > 1:
            weight[b::count, :] = block
        else:
            weight[:, b * d : (b + 1) * d] = block
    return weight


def tucker_init(
    blocks: Sequence[np.ndarray], rank: int, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The Tucker bank of ``blocks`` (n float ``(d, d)`` arrays) at ``rank`` r and bank ``size``
    l (module docstring), in float64.

    Returns ``(V (d, r), U (d, r), C (l, r, r), mix (n, l))`` with ``blocks[i] ~= V @ (mix[i] .
    C) @ U.T``. ValueError when ``rank`` is not in ``1 .. d`` or ``size`` not in
    ``1 .. min(n, r*r)`` (a bank larger than its blocks, or than the space of ``r x r`` cores)."""
    mats = [np.asarray(b, dtype=np.float64) for b in blocks]
    if not mats:
        raise ValueError("tucker_init needs at least one block")
    d = mats[0].shape[0]
    for i, m in enumerate(mats):
        if m.shape != (d, d):
            raise ValueError(f"block {i} has shape {m.shape}, expected ({d}, {d})")
    n = len(mats)
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= d:
        raise ValueError(f"rank must be an integer in 1 .. {d} (the block size), not {rank!r}")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= min(n, rank**2):
        raise ValueError(
            f"bank_size must be an integer in 1 .. {min(n, rank**2)} (the bank's {n} blocks, at "
            f"most rank^2 = {rank**2} independent cores), not {size!r}"
        )
    in_factor = np.linalg.svd(np.concatenate(mats, axis=1), full_matrices=False)[0][:, :rank]
    out_factor = np.linalg.svd(np.concatenate([m.T for m in mats], axis=1),
                               full_matrices=False)[0][:, :rank]  # fmt: skip
    g = np.stack([(in_factor.T @ m @ out_factor).reshape(-1) for m in mats])  # (n, r*r)
    left, sigma, right = np.linalg.svd(g, full_matrices=False)
    mix = left[:, :size] * sigma[:size]
    cores = right[:size].reshape(size, rank, rank)
    return in_factor, out_factor, cores, mix


def _relative_error(weight: np.ndarray, approx: np.ndarray) -> float:
    norm = float(np.linalg.norm(weight))
    return float(np.linalg.norm(weight - approx)) / norm if norm > 0 else 0.0


# --- modules -----------------------------------------------------------------------------------


class TuckerBank(nn.Module):
    """A shared bank: ``in_factor`` V (d, r), ``out_factor`` U (d, r), ``cores`` C (l, r, r),
    float parameters; after :meth:`enable_quantization` each has one LSQ quantizer
    (``in_factor_q``, ``out_factor_q``, ``cores_q``) of the weight format."""

    def __init__(self, d: int, rank: int, size: int) -> None:
        super().__init__()
        for name, value in (("d", d), ("rank", rank), ("size", size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TuckerBank {name} must be a positive integer, not {value!r}")
        if rank > d:
            raise ValueError(f"TuckerBank rank {rank} is larger than the block size d = {d}")
        self.in_factor = nn.Parameter(torch.randn(d, rank) / math.sqrt(d))
        self.out_factor = nn.Parameter(torch.randn(d, rank) / math.sqrt(d))
        self.cores = nn.Parameter(torch.randn(size, rank, rank) / rank)
        self.weight_format: NumberFormat | None = None

    @property
    def d(self) -> int:
        return int(self.in_factor.shape[0])

    @property
    def rank(self) -> int:
        return int(self.in_factor.shape[1])

    @property
    def size(self) -> int:
        return int(self.cores.shape[0])

    @property
    def quantized(self) -> bool:
        return self.weight_format is not None

    def extra_repr(self) -> str:
        return f"d={self.d}, rank={self.rank}, size={self.size}, weight_format={self.weight_format}"

    def enable_quantization(
        self, weight_format: NumberFormat, *, power_of_two: bool = False, weight_init: str = "max"
    ) -> None:
        """One LSQ quantizer of ``weight_format`` (INT8 or INT4) per bank tensor, initialised
        by ``weight_init`` (:func:`ttaccel.models.quant.init_scale`)."""
        if weight_format not in TUCKER_WEIGHT_FORMATS:
            raise ValueError(
                f"a Tucker bank's weight format must be one of "
                f"{[f.name for f in TUCKER_WEIGHT_FORMATS]}, not {weight_format.name}"
            )
        self.weight_format = weight_format
        for name in ("in_factor_q", "out_factor_q", "cores_q"):
            setattr(self, name, LsqQuantizer(weight_format, power_of_two=power_of_two,
                                             init=weight_init))  # fmt: skip

    def quantized_tensors(self, track: bool) -> tuple[Exact, Exact, Exact]:
        """``(V, U, C)`` fake-quantized, with their codes when ``track`` (eval)."""
        return (
            quantize_exact(self.in_factor_q, self.in_factor, track=track),
            quantize_exact(self.out_factor_q, self.out_factor, track=track),
            quantize_exact(self.cores_q, self.cores, track=track),
        )

    def scales(self) -> tuple[float, float, float]:
        """The effective scales ``(s_V, s_U, s_C)``."""
        return (self.in_factor_q.effective_scale(), self.out_factor_q.effective_scale(),
                self.cores_q.effective_scale())  # fmt: skip

    def to_int(self) -> QuantTuckerBank:
        """The spec's integer bank (codes by the spec's ``quantize``, as
        :meth:`LsqQuantizer.to_int`); the quantizers must be calibrated (a forward of a layer
        using the bank)."""
        if not self.quantized or not bool(self.cores_q.initialized):
            raise ValueError(
                "to_int needs a quantized, calibrated TuckerBank (run a forward first)"
            )
        v, _ = self.in_factor_q.to_int(self.in_factor)
        u, _ = self.out_factor_q.to_int(self.out_factor)
        c, _ = self.cores_q.to_int(self.cores)
        return QuantTuckerBank(v, u, c, self.weight_format)


class TuckerLinear(nn.Module):
    """``y = x @ W + b`` with ``W``'s ``d x d`` blocks ``V @ S_b @ U.T`` from a shared ``bank``.

    ``in_features``/``out_features``: ``d -> d``, ``d -> B*d`` or ``B*d -> d`` for the bank's
    ``d``; ``bank_name``: the bank's key in ``model.tucker_banks`` (recorded by save and export).
    Parameters: ``mix`` (B, l) and ``bias`` (out,). The bank is held by reference only (it is
    registered once, on the model). Input ``(..., in_features)`` float, output
    ``(..., out_features)`` float.

    Modes: float; quantization-aware after :meth:`enable_quantization` (int8 input, mix, stage
    outputs; ``S_b`` at the bank's weight format); ``int_mode = True`` runs the spec's golden
    layer (:func:`ttaccel.spec.tucker.tucker_as_tt_linear`) through the torch integer simulation
    (inference only).
    """

    def __init__(
        self, in_features: int, out_features: int, bank: TuckerBank, bank_name: str, *,
        bias: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        if not isinstance(bank, TuckerBank):
            raise ValueError(f"bank must be a TuckerBank, not {type(bank).__name__}")
        self.in_modes, self.out_modes, self.blocks = tucker_modes(in_features, out_features,
                                                                  bank.d)  # fmt: skip
        self.in_features, self.out_features = in_features, out_features
        self._bank = (bank,)  # a tuple: not a submodule, the model owns the bank
        self.bank_name = bank_name
        self.mix = nn.Parameter(torch.randn(self.blocks, bank.size) / math.sqrt(bank.size))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.weight_format: NumberFormat | None = None
        self.int_mode = False
        self.svd_error = float("nan")

    @property
    def bank(self) -> TuckerBank:
        return self._bank[0]

    @property
    def artifact_bank_name(self) -> str:
        """The bank's name in the artifact: its module path, ``tucker_banks.<bank_name>``."""
        return f"tucker_banks.{self.bank_name}"

    @property
    def quantized(self) -> bool:
        return self.weight_format is not None

    def extra_repr(self) -> str:
        return (
            f"{self.in_features}, {self.out_features}, blocks={self.blocks}, "
            f"bank={self.bank_name!r}, weight_format={self.weight_format}"
        )

    def enable_quantization(
        self, weight_format: NumberFormat, *, power_of_two: bool = False,
        weight_init: str = "max", activation_init: str = "max",
    ) -> None:  # fmt: skip
        """LSQ quantizers: int8 ``input_q``, int8 ``mix_q`` (initialised by ``weight_init``),
        ``block_q`` for ``S_b`` at ``weight_format`` (a requantization: half up), three int8
        ``stage_q`` (``activation_init``). The bank's quantizers are the bank's own."""
        self.weight_format = weight_format

        def q(fmt: NumberFormat, half_up: bool, init: str) -> LsqQuantizer:
            return LsqQuantizer(fmt, power_of_two=power_of_two, half_up=half_up, init=init)

        self.input_q = q(INT8, False, activation_init)
        self.mix_q = q(INT8, False, weight_init)
        self.block_q = q(weight_format, True, weight_init)
        self.stage_q = nn.ModuleList(q(INT8, True, activation_init) for _ in range(3))

    # -- the three cores --

    def _core1(self, blocks: torch.Tensor) -> torch.Tensor:
        """``S`` (B, r, r) -> the TT core ``(r, m1, n1, r)`` (block ``b`` at ``[:, b, 0]`` for
        ``B*d -> d``, at ``[:, 0, b]`` otherwise)."""
        r = blocks.shape[-1]
        m1, n1 = self.in_modes[1], self.out_modes[1]
        return blocks.reshape(m1, n1, r, r).permute(2, 0, 1, 3)

    def block_matrices(self) -> torch.Tensor:
        """The float ``S_b`` (B, r, r) = ``mix @ C`` (no quantization)."""
        bank = self.bank
        return (self.mix @ bank.cores.reshape(bank.size, -1)).reshape(self.blocks, bank.rank,
                                                                      bank.rank)  # fmt: skip

    def tt_cores(self) -> list[torch.Tensor]:
        """The float 3-core TT form ``[V (1, d, 1, r), S (r, m1, n1, r), U.T (r, 1, d, 1)]``."""
        bank = self.bank
        d, r = bank.d, bank.rank
        return [bank.in_factor.reshape(1, d, 1, r), self._core1(self.block_matrices()),
                bank.out_factor.T.reshape(r, 1, d, 1)]  # fmt: skip

    def dense_weight(self) -> torch.Tensor:
        """The float ``W`` (in, out) (tests and reports)."""
        from .tt import tt_to_dense

        return tt_to_dense(self.tt_cores())

    def _quantized_cores(self, track: bool) -> list[Exact]:
        bank = self.bank
        d, r = bank.d, bank.rank
        v, u, c = bank.quantized_tensors(track)
        mix = quantize_exact(self.mix_q, self.mix, track=track)
        flat = c.map(lambda t: t.reshape(bank.size, -1))
        acc_value = (mix.value @ flat.value).reshape(self.blocks, r, r)
        acc_codes = on_codes(lambda a, b: (a @ b).reshape(self.blocks, r, r), mix.codes,
                             flat.codes)  # fmt: skip
        blocks = requantize_exact(self.block_q, acc_value, acc_codes, mix.scale * c.scale)
        return [v.map(lambda t: t.reshape(1, d, 1, r)), blocks.map(self._core1),
                u.map(lambda t: t.T.reshape(r, 1, d, 1))]  # fmt: skip

    # -- forward paths --

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_features)
        if self.int_mode:
            out = self._forward_int(flat)
        elif self.quantized:
            out = self._forward_fake_quant(flat)
        else:
            out = self._forward_float(flat)
        return out.reshape(*lead, self.out_features)

    def _forward_float(self, x: torch.Tensor) -> torch.Tensor:
        state = x.reshape(x.shape[0], 1, self.in_modes[0], -1)
        cores = self.tt_cores()
        for k, core in enumerate(cores):
            state = _next_state(contract_core(state, core), cores, k)
        out = state.reshape(x.shape[0], -1)
        return out + self.bias if self.bias is not None else out

    def _forward_fake_quant(self, x: torch.Tensor) -> torch.Tensor:
        track = not self.training  # exact hardware numbers in eval, plain LSQ in training
        cores = self._quantized_cores(track)
        batch = x.shape[0]
        state = quantize_exact(self.input_q, x, track=track)
        state = state.map(lambda t: t.reshape(batch, 1, self.in_modes[0], -1))
        for s, core in enumerate(cores):
            acc = Exact(contract_core(state.value, core.value),
                        on_codes(contract_core, state.codes, core.codes),
                        state.scale * core.scale)  # fmt: skip
            if s == len(cores) - 1:
                acc = acc.map(lambda t: t.reshape(batch, -1))
                if self.bias is not None:
                    acc = self._add_bias(acc)
                return requantize_exact(self.stage_q[s], *acc).value
            out = requantize_exact(self.stage_q[s], *acc)
            state = out.map(lambda t, k=s: _next_state(t, [c.value for c in cores], k))
        raise AssertionError("unreachable")

    def _add_bias(self, acc: Exact) -> Exact:
        """The bias at the accumulator's scale (the spec's ``quantize_bias``), added."""
        codes = round_ste(self.bias / acc.scale)
        value = acc.value + codes * acc.scale
        add = lambda c: c + torch.clamp(codes.double(), -(2**31), 2**31 - 1)  # noqa: E731
        return Exact(value, on_codes(add, acc.codes), acc.scale)

    # -- export and integer simulation --

    def to_int(self) -> QuantTuckerLinear:
        """The spec's integer layer (its bank: :meth:`TuckerBank.to_int`) from the learned
        scales, by :func:`ttaccel.spec.tucker.quant_tucker_linear_from_scales`. Quantization
        must be enabled and calibrated."""
        if not self.quantized or not bool(self.input_q.initialized):
            raise ValueError(
                "to_int needs a quantized, calibrated TuckerLinear (run a forward first)"
            )
        s_v, s_u, s_c = self.bank.scales()
        mix_codes, s_mix = self.mix_q.to_int(self.mix)
        bias = None if self.bias is None else self.bias.detach().double().cpu().numpy()
        return quant_tucker_linear_from_scales(
            bank=self.artifact_bank_name, core_ids=np.arange(self.bank.size), mix_codes=mix_codes,
            weight_format=self.weight_format, in_features=self.in_features,
            out_features=self.out_features, input_scale=self.input_q.effective_scale(),
            in_factor_scale=s_v, out_factor_scale=s_u, core_scale=s_c, mix_scale=s_mix,
            block_scale=self.block_q.effective_scale(),
            stage_scales=[q.effective_scale() for q in self.stage_q], bias=bias,
        )  # fmt: skip

    def _forward_int(self, x: torch.Tensor) -> torch.Tensor:
        from ttaccel.spec.tucker import tucker_as_tt_linear

        from .intsim import dequantize, quantize_input, tt_linear_int

        layer = tucker_as_tt_linear(self.to_int(), self.bank.to_int())
        codes = quantize_input(x, layer.input_scale)
        return dequantize(tt_linear_int(codes, layer), layer.output_scale).to(x.dtype)


def _next_state(state: torch.Tensor, cores: Sequence[torch.Tensor], k: int) -> torch.Tensor:
    """Stage ``k``'s output ``(P, n, r', R)`` as stage ``k + 1``'s input (``tt_contract``'s
    reshape); after the last stage, unchanged."""
    if k + 1 == len(cores):
        return state
    p, n, r_next, rest = state.shape
    next_m = cores[k + 1].shape[1]
    return state.reshape(p * n, r_next, next_m, rest // next_m)


# --- model level ------------------------------------------------------------------------------


def tucker_modules(model: nn.Module) -> dict[str, TuckerLinear]:
    """The Tucker linears of a model by module name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, TuckerLinear)}


def tucker_banks(model: nn.Module) -> dict[str, TuckerBank]:
    """The model's banks by name (``model.tucker_banks``; empty when it has none)."""
    banks = getattr(model, "tucker_banks", None)
    return dict(banks.items()) if isinstance(banks, nn.ModuleDict) else {}


def attach_banks(model: nn.Module, banks: dict[str, TuckerBank]) -> None:
    """Register ``banks`` once, on the model, as ``model.tucker_banks`` (an ``nn.ModuleDict``:
    state-dict keys ``tucker_banks.<name>.in_factor`` etc.)."""
    model.tucker_banks = nn.ModuleDict(banks)


def bank_nbytes(bank: TuckerBank, weight_bits: int | None) -> int:
    """Bytes of a bank as export writes it: V, U and C packed at ``weight_bits`` (4 bytes a
    value when None: a float student)."""
    count = bank.in_factor.numel() + bank.out_factor.numel() + bank.cores.numel()
    if weight_bits is None:
        return 4 * count
    from .quant import format_for_bits

    fmt = format_for_bits(weight_bits)
    return sum(packed_nbytes(t.numel(), fmt) for t in (bank.in_factor, bank.out_factor,
                                                       bank.cores))  # fmt: skip


def tucker_layer_nbytes(layer: TuckerLinear, weight_bits: int | None) -> int:
    """Bytes of a layer besides its bank, as export writes it: the mix (int8, or fp32 when
    float), its core ids (uint16 each) and the bias (4 bytes each)."""
    per = 1 if weight_bits is not None else 4
    bias = 4 * layer.bias.numel() if layer.bias is not None else 0
    return per * layer.mix.numel() + 2 * layer.bank.size + bias


def build_banks(
    model: nn.Module, modules: Sequence[str], rank: int, size: int, scope: str,
) -> dict:  # fmt: skip
    """Replace the ``nn.Linear`` modules named in ``modules`` (``bert.encoder.layer.<i>...``) by
    :class:`TuckerLinear` layers initialised by :func:`tucker_init` from their weights, with one
    bank per ``scope`` (``model``: bank ``encoder``; ``layer``: bank ``layer<i>``), registered by
    :func:`attach_banks`; biases copied. Returns ``{module: {"kind": "linear", "svd_error",
    "bank", "blocks"}}`` (``svd_error``: the relative Frobenius error of the weight's Tucker
    reconstruction). ValueError for a module that is not a Linear or not of a Tucker shape, a
    rank above ``d`` or :data:`MAX_TUCKER_RANK`, or a bank size above its blocks."""
    if scope not in BANK_SCOPES:
        raise ValueError(f"bank_scope must be one of {list(BANK_SCOPES)}, not {scope!r}")
    d = int(model.config.hidden_size)
    if not 1 <= rank <= min(d, MAX_TUCKER_RANK):
        raise ValueError(
            f"rank {rank} must be in 1 .. {min(d, MAX_TUCKER_RANK)} (at most the hidden size "
            f"{d} and {MAX_TUCKER_RANK})"
        )
    groups: dict[str, list[str]] = {}
    for name in modules:
        if scope == "model":
            key = "encoder"
        else:
            parts = name.split(".")
            if len(parts) < 4 or parts[:3] != ["bert", "encoder", "layer"]:
                raise ValueError(
                    f"layer {name}: bank_scope 'layer' needs an encoder layer's linear"
                )
            key = f"layer{parts[3]}"
        groups.setdefault(key, []).append(name)
    report, banks = {}, {}
    for key, names in groups.items():
        weights, blocks = {}, []
        for name in names:
            module = model.get_submodule(name)
            if not isinstance(module, nn.Linear):
                raise ValueError(f"layer {name} is a {type(module).__name__}, not a Linear")
            weight = module.weight.detach().double().cpu().numpy().T
            try:
                weights[name] = (weight, block_weights(weight, d))
            except ValueError as error:
                raise ValueError(f"layer {name}: {error}") from None
            blocks.extend(weights[name][1])
        if size > len(blocks):
            raise ValueError(
                f"bank_size {size} is larger than bank {key!r}'s {len(blocks)} blocks (scope "
                f"{scope!r}): at most {len(blocks)}"
            )
        try:
            v, u, c, mix = tucker_init(blocks, rank, size)
        except ValueError as error:
            raise ValueError(f"bank {key!r}: {error}") from None
        bank = TuckerBank(d, rank, size)
        with torch.no_grad():
            bank.in_factor.copy_(torch.from_numpy(v))
            bank.out_factor.copy_(torch.from_numpy(u))
            bank.cores.copy_(torch.from_numpy(c))
        banks[key] = bank
        row = 0
        for name in names:
            module = model.get_submodule(name)
            weight, own = weights[name]
            layer = TuckerLinear(module.in_features, module.out_features, bank, key,
                                 bias=module.bias is not None)  # fmt: skip
            with torch.no_grad():
                layer.mix.copy_(torch.from_numpy(mix[row : row + len(own)]))
                if module.bias is not None:
                    layer.bias.copy_(module.bias.detach())
            approx = assemble_blocks(
                [v @ np.tensordot(mix[row + b], c, axes=1) @ u.T for b in range(len(own))],
                module.in_features, module.out_features,
            )  # fmt: skip
            row += len(own)
            layer.svd_error = _relative_error(weight, approx)
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name), attr, layer)
            report[name] = {"kind": "linear", "svd_error": layer.svd_error, "bank": key,
                            "blocks": layer.blocks}  # fmt: skip
    attach_banks(model, banks)
    return report
