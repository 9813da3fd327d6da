"""Learnable-scale (LSQ) fake quantization with a straight-through estimator.

Forward (fake-quantize) follows the spec exactly: ``codes = clip(round(x / s), qmin, qmax)``
with ``torch.round`` (half to even, as ``numpy.rint``), value ``codes * s``; ternary is the case
``qmin, qmax = -1, 1`` (codes {-1, 0, 1}, threshold ``s / 2``) and binary, which has no zero, is
``sign(x) * s`` (``x >= 0`` gives +1, as the spec's ``quantize``). Backward: the
straight-through estimator passes the gradient of ``x`` inside the clipping range and zero
outside; the scale gets the LSQ gradient
(Esser et al., ICLR 2020) multiplied by ``1 / sqrt(numel * qmax)`` (LSQ's gradient scaling).
With ``power_of_two=True`` the effective scale is ``2 ** round(log2 s)`` (straight-through in
the log domain), so every requantization becomes a pure shift.

``forward()`` fake-quantizes (float in, float out); :meth:`LsqQuantizer.to_int` gives the
integer codes and the effective scale for export, computed by :func:`ttaccel.spec.formats.quantize`
so export and spec agree by construction.

:func:`quantize_exact` and :func:`requantize_exact` are what the TT layers use: the LSQ value and
gradients, but a forward value equal to the hardware's numbers (the spec's float64
quantization, and requantization by the 16-bit multiplier and shift that export will write),
with the integer codes carried alongside. The TT layers track codes in eval mode, so an
evaluated fake-quant model is the integer model, and the torch and golden accuracies of a
student can only differ through the float parts of inference (LayerNorm, softmax, GELU). In
training they do not (the plain LSQ forward: tracking made a MiniLM QAT step 2-4x slower); the
two forwards differ only where an accumulator sits within the 16-bit multiplier's error of a
rounding tie.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ttaccel.spec.formats import (
    BINARY,
    INT2,
    INT4,
    INT8,
    TERNARY,
    NumberFormat,
    Requant,
    quantize,
)

__all__ = [
    "SCALE_INITS",
    "Exact",
    "LsqQuantizer",
    "fake_quantize",
    "format_for_bits",
    "grad_scale",
    "init_scale",
    "lsq_scale",
    "max_scale",
    "mse_scale",
    "on_codes",
    "percentile_scale",
    "quantize_exact",
    "requantize_exact",
    "round_half_up_ste",
    "round_ste",
    "sign_ste",
    "twn_scale",
]

_BITS = {8: INT8, 4: INT4, 2: INT2}
_NAMED = {"ternary": TERNARY, "binary": BINARY}


def format_for_bits(bits: int | str) -> NumberFormat:
    """The spec format of a weight width: 8, 4 or 2 bits (signed), or a format name
    (``int8``/``int4``/``int2``, ``ternary`` = codes {-1, 0, 1} in 2 bits, ``binary`` = codes
    {-1, +1} in 1 bit)."""
    if isinstance(bits, str):
        for fmt in (*_BITS.values(), *_NAMED.values()):
            if fmt.name == bits:
                return fmt
    if not isinstance(bits, bool) and bits in _BITS:
        return _BITS[bits]
    raise ValueError(
        f"quantization bits must be one of {sorted(_BITS)} or a format name "
        f"(int8/int4/int2/ternary/binary), not {bits!r}"
    )


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``torch.round`` (half to even) forward, identity gradient backward."""
    return x + (torch.round(x) - x).detach()


def round_half_up_ste(x: torch.Tensor) -> torch.Tensor:
    """``floor(x + 0.5)`` (half up, the requantizer's rounding) forward, identity backward."""
    return x + (torch.floor(x + 0.5) - x).detach()


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    """Binary codes forward (``+1`` where ``x >= 0``, else ``-1``: the spec's ``quantize``, which
    maps 0 to +1), identity gradient backward (the straight-through estimator; callers clip
    ``x`` first, so the gradient passes only inside the clipping range)."""
    return x + (torch.where(x >= 0, 1.0, -1.0).to(x.dtype) - x).detach()


def grad_scale(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Identity forward; multiplies the gradient by ``factor`` backward."""
    return x * factor + (x - x * factor).detach()


def fake_quantize(
    x: torch.Tensor, scale: torch.Tensor, fmt: NumberFormat, *, power_of_two: bool = False,
    grad_factor: float = 1.0, half_up: bool = False,
) -> torch.Tensor:  # fmt: skip
    """``clip(round(x / s), qmin, qmax) * s`` with STE/LSQ gradients (see module docstring).

    ``scale`` is a positive scalar tensor; ``x`` any shape. Rounding is half to even (the spec's
    ``quantize``), or half up with ``half_up`` (the spec's ``requantize``, used where the
    integer model requantizes an accumulator). Binary (no zero): ``sign(clip(x / s, -1, 1)) * s``
    by :func:`sign_ste`, the same LSQ form (the gradient of ``x`` passes where ``|x| <= s``; the
    scale gets ``sign - x / s`` inside, ``sign`` outside). Returns a float tensor like ``x``.
    """
    s = grad_scale(scale, grad_factor)
    if power_of_two:
        s = torch.exp2(round_ste(torch.log2(s)))
    rounder = sign_ste if fmt == BINARY else round_half_up_ste if half_up else round_ste
    q = rounder(torch.clamp(x / s, fmt.qmin, fmt.qmax))
    return q * s


# --- scale initialisation ---------------------------------------------------------------------

SCALE_INITS = ("max", "lsq", "mse", "percentile", "twn")
"""The initial-scale rules :func:`init_scale` knows: ``max`` (``max|x| / qmax``, seed 000's and
the old default), ``lsq`` (LSQ's ``2 mean|x| / sqrt(qmax)``), ``mse`` (:func:`mse_scale`),
``percentile`` (:func:`percentile_scale`) and ``twn`` (:func:`twn_scale`, ternary and binary
weights only)."""

_SEARCH_SAMPLES = 1 << 18


def max_scale(x: torch.Tensor, fmt: NumberFormat) -> float:
    """``max|x| / qmax``: no value clips, every code below ``s / 2`` rounds to 0."""
    peak = float(x.detach().abs().max()) if x.numel() else 0.0
    return peak / fmt.qpos


def lsq_scale(x: torch.Tensor, fmt: NumberFormat) -> float:
    """LSQ's initialisation (Esser et al. 2020): ``2 mean|x| / sqrt(qmax)``."""
    return 2.0 * float(x.detach().abs().mean()) / math.sqrt(fmt.qpos) if x.numel() else 0.0


def percentile_scale(x: torch.Tensor, fmt: NumberFormat, percentile: float = 99.9) -> float:
    """The ``percentile``-th percentile of ``|x|`` divided by ``qmax`` (values above it clip).
    At most 2**18 evenly strided elements of a large tensor are looked at."""
    a = _sample(x.detach().abs().reshape(-1))
    return float(torch.quantile(a.double(), percentile / 100.0)) / fmt.qpos if a.numel() else 0.0


def twn_scale(x: torch.Tensor, fmt: NumberFormat) -> float:
    """The TWN / BWN initial scale of ternary or binary weights (XTC's quantizers).

    Ternary: ``1.4 mean|x|``. With codes ``clip(round(x / s), -1, 1)`` the zero threshold is
    ``s / 2 = 0.7 mean|x|``, Ternary Weight Networks' threshold (Li et al. 2016); for Gaussian
    weights the values kept, ``+-s = +-1.12 sigma``, are within 6% of TWN's optimal
    ``mean{|x| : |x| > threshold} = 1.18 sigma``, so one scale serves both. Binary:
    ``mean|x|`` (Binary Weight Networks, Rastegari et al. 2016), the scale minimising
    ``||x - s sign(x)||^2``. ``max|x|`` would zero almost every ternary weight (threshold
    ``max|x| / 2``). Raises ValueError for another format.
    """
    mean = float(x.detach().abs().mean()) if x.numel() else 0.0
    if fmt == TERNARY:
        return 1.4 * mean
    if fmt == BINARY:
        return mean
    raise ValueError(
        f"the twn scale init is for ternary or binary weights, not {fmt.name} "
        f"(use max, lsq, mse or percentile)"
    )


def _sample(flat: torch.Tensor) -> torch.Tensor:
    """A deterministic, evenly strided subset of at most ``_SEARCH_SAMPLES`` elements."""
    if flat.numel() <= _SEARCH_SAMPLES:
        return flat
    step = math.ceil(flat.numel() / _SEARCH_SAMPLES)
    return flat[::step]


def mse_scale(x: torch.Tensor, fmt: NumberFormat, *, steps: int = 200) -> float:
    """The scale minimising ``sum (x - clip(round(x / s), qmin, qmax) s)**2``.

    Searched over ``s = max_scale(x) * k / steps`` for ``k = 1 .. steps`` (so never larger than
    :func:`max_scale`: the search includes it), in float64 with half-to-even rounding as the
    spec's ``quantize``; at most 2**18 evenly strided elements of a large tensor are used.
    Returns 0.0 for an all-zero tensor.
    """
    flat = _sample(x.detach().reshape(-1)).double()
    if fmt == BINARY:  # codes sign(x) whatever s: the error is least at s = mean|x| (BWN)
        return float(flat.abs().mean())
    peak = max_scale(flat, fmt)
    if peak == 0.0:
        return 0.0
    best, best_err = peak, math.inf
    for k in range(1, steps + 1):
        s = peak * k / steps
        codes = torch.clamp(torch.round(flat / s), fmt.qmin, fmt.qmax)
        err = float(((codes * s - flat) ** 2).sum())
        if err < best_err:
            best, best_err = s, err
    return best


def init_scale(x: torch.Tensor, fmt: NumberFormat, method: str = "max") -> float:
    """The initial scale of ``x`` by ``method`` (one of :data:`SCALE_INITS`); 1.0 when ``x`` is
    all zero (no scale quantizes it better than another)."""
    rules = {"max": max_scale, "lsq": lsq_scale, "mse": mse_scale, "percentile": percentile_scale,
             "twn": twn_scale}  # fmt: skip
    if method not in rules:
        raise ValueError(f"scale init must be one of {list(SCALE_INITS)}, not {method!r}")
    scale = rules[method](x, fmt)
    return scale if scale > 0 else 1.0


class LsqQuantizer(nn.Module):
    """One learnable-scale symmetric quantizer (a single scale per tensor).

    ``fmt``: the code format (int8/int4/int2, ternary, binary). The scale is initialised lazily
    from the first tensor seen (the first forward, or :meth:`init_from`) by :func:`init_scale`
    with ``init``: ``max`` (``max|x| / qmax``, seed 000's core initialisation and the default),
    ``lsq``, ``mse``, ``percentile`` or ``twn`` (ternary / binary weights: TWN's and BWN's
    scales, see :func:`twn_scale`). ``half_up`` selects the requantizer's rounding (for quantization
    points that are requantizations of integer accumulators).
    """

    def __init__(
        self, fmt: NumberFormat, *, power_of_two: bool = False, half_up: bool = False,
        init: str = "max",
    ) -> None:  # fmt: skip
        super().__init__()
        if init not in SCALE_INITS:
            raise ValueError(f"scale init must be one of {list(SCALE_INITS)}, not {init!r}")
        self.fmt = fmt
        self.power_of_two = power_of_two
        self.half_up = half_up
        self.init = init
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("initialized", torch.tensor(False))

    def extra_repr(self) -> str:
        return (
            f"{self.fmt.name}, power_of_two={self.power_of_two}, half_up={self.half_up}, "
            f"init={self.init}"
        )

    @torch.no_grad()
    def init_from(self, x: torch.Tensor) -> None:
        """Set the scale to :func:`init_scale` of ``x`` by this quantizer's ``init`` rule."""
        self.scale.fill_(init_scale(x, self.fmt, self.init))
        self.initialized.fill_(True)

    def effective_scale(self) -> float:
        """The scale the codes are at: the learned one, rounded to a power of two if asked."""
        s = float(self.scale.detach().abs())
        return 2.0 ** round(math.log2(s)) if self.power_of_two else s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not bool(self.initialized):
            self.init_from(x)
        factor = 1.0 / math.sqrt(max(1, x.numel()) * self.fmt.qpos)
        return fake_quantize(
            x, self.scale.abs().to(x.dtype), self.fmt, power_of_two=self.power_of_two,
            grad_factor=factor, half_up=self.half_up,
        )  # fmt: skip

    def to_int(self, x: torch.Tensor) -> tuple[np.ndarray, float]:
        """Integer codes of ``x`` (int8 array, same shape) and the effective scale, by the spec's
        :func:`~ttaccel.spec.formats.quantize` (float64 division, half-to-even rounding)."""
        scale = self.effective_scale()
        return quantize(x.detach().double().cpu().numpy(), scale, self.fmt), scale


class Exact(NamedTuple):
    """A fake-quantized tensor together with the integer codes the hardware holds for it.

    ``value``: float, carries the LSQ / straight-through gradients, and in the forward equals
    ``codes * scale`` rounded to its dtype; ``codes``: the same numbers as integer-valued
    float64 (no gradient), or None where they are not tracked (training: ``value`` is then the
    plain LSQ fake quantization); ``scale``: their effective scale.
    """

    value: torch.Tensor
    codes: torch.Tensor | None
    scale: float

    def map(self, fn) -> Exact:
        """``fn`` (a reshape or an index) applied to the value and to the codes."""
        return Exact(fn(self.value), on_codes(fn, self.codes), self.scale)


def on_codes(op, *codes: torch.Tensor | None) -> torch.Tensor | None:
    """``op(*codes)`` without gradient, or None when any operand's codes are not tracked."""
    if any(c is None for c in codes):
        return None
    with torch.no_grad():
        return op(*codes)


def _forward_as(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` in the forward, ``x``'s gradient in the backward."""
    return x + (value.to(x.dtype) - x).detach()


def quantize_exact(q: LsqQuantizer, x: torch.Tensor, *, track: bool = True) -> Exact:
    """``q(x)`` with codes computed as the spec's ``quantize`` (float64 division of ``x``, half
    to even, clipped to ``q.fmt``): the codes export writes for a core, or the golden model
    computes for a float32 input. ``track=False``: plain ``q(x)``, codes None."""
    lsq = q(x)
    scale = q.effective_scale()
    if not track:
        return Exact(lsq, None, scale)
    with torch.no_grad():
        if q.fmt == BINARY:  # the spec's quantize: the sign, 0 -> +1
            codes = torch.where(x.detach().double() >= 0, 1.0, -1.0).double()
        else:
            codes = torch.clamp(torch.round(x.detach().double() / scale), q.fmt.qmin, q.fmt.qmax)
    return Exact(_forward_as(lsq, codes * scale), codes, scale)


def requantize_exact(
    q: LsqQuantizer, acc_value: torch.Tensor, acc_codes: torch.Tensor | None, acc_scale: float
) -> Exact:
    """Requantize an accumulator to ``q``'s format as the hardware does.

    ``acc_value`` (float, with gradients) and ``acc_codes`` (the same accumulator as exact
    integers in float64, any shape) at scale ``acc_scale``. The codes are
    ``sat((acc * M + 2**(shift-1)) >> shift)`` with ``(M, shift)`` =
    ``Requant.from_ratio(acc_scale / s_out)``, the constants export writes (so ``acc_scale``
    must be formed in export's order: ``scale_in * core_scale``); the gradient is ``q``'s LSQ
    gradient of ``acc_value``. OverflowError if an accumulator leaves int32 (as the golden).
    ``acc_codes`` None (not tracked): plain ``q(acc_value)``, codes None.
    """
    from .intsim import requantize  # intsim imports tt, which imports this module

    lsq = q(acc_value)
    scale = q.effective_scale()
    if acc_codes is None:
        return Exact(lsq, None, scale)
    with torch.no_grad():
        requant = Requant.from_ratio(acc_scale / scale, q.fmt)
        codes = requantize(acc_codes.to(torch.int64), requant).double()
    return Exact(_forward_as(lsq, codes * scale), codes, scale)
