"""Configuration of one generated accelerator, its validation and resource estimates.

An :class:`AccelConfig` fixes everything the generator needs and everything the compiler, the
cycle model and the host driver must know about a bitstream:

* the MAC array: ``rows x cols`` processing elements, output stationary (PE ``(i, j)`` owns one
  output and accumulates over K), int8 activations times weights of ``weight_format``;
* the on-chip buffers (block RAM), all word addressed with :data:`ADDRESS_BITS`-bit addresses:
  the activation buffer holds *A-words* of ``rows`` int8 lanes, the weight buffer *B-words* of
  ``cols`` lanes of ``weight_format`` codes, the bias buffer int32 entries, the instruction
  memory 320-bit instructions (see :mod:`.isa`);
* the envelope of TT layers the generator promises to run (``max_cores``, ``max_rank``,
  ``max_mode``, ``max_k``), from which the accumulator width follows;
* the AXI4-Stream data width (64 bits, the PYNQ-Z2's HP port) and the target clock.

Resource estimates are pure arithmetic (no synthesis), calibrated against yosys
``synth_xilinx`` of the generated top level (``ttaccel synth``): DSP48E1 slices for the MAC
lanes (int8 only: two int8 multiplies per DSP48E1 with packing, one without; int4, int2,
ternary and binary multiply in LUTs, as ``hw/pe.py`` builds them), for the requantizers and
for the dispatcher's bound multiplier; RAMB36E1 blocks for the memories; and a rough linear
LUT / flip-flop estimate (:attr:`AccelConfig.logic_estimate`). The AXI DMA and interconnect
of the block design are not counted: leave headroom for them.

JSON: :meth:`AccelConfig.to_json` writes one flat object with formats by name;
:meth:`AccelConfig.from_json` accepts such an object (missing keys take the default, unknown
keys are an error) and validates it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from .formats import FORMATS, INT8, NumberFormat

__all__ = [
    "ADDRESS_BITS",
    "DEVICES",
    "DISPATCH_DSPS",
    "INSTRUCTION_BITS",
    "LOGIC_CALIBRATION",
    "LUT_MULTIPLIER_LUTS",
    "NAMED_CONFIGS",
    "REQUANT_DSPS_PER_LANE",
    "SQUARE_16X16",
    "AccelConfig",
    "DeviceLimits",
    "bram36_blocks",
]

ADDRESS_BITS = 16
"""Width of every buffer address, count and stride field in an instruction (see :mod:`.isa`)."""
INSTRUCTION_BITS = 320
"""Width of one instruction word (five 64-bit stream beats)."""
REQUANT_DSPS_PER_LANE = 2
"""A requantizer multiplies the 33-bit ``acc + bias`` by a 16-bit multiplier: two DSP48E1."""
LOGIC_CALIBRATION = (7459.0, 72.7, 4455.0, 100.0)
"""``(luts, luts per lane, flip-flops, flip-flops per lane)`` of :attr:`AccelConfig.logic_estimate`:
the line through yosys ``synth_xilinx`` of the 8 x 8 (12,112 LUT, 10,858 FF) and 12 x 32 int8
tops (35,373 / 42,870) after issue 9's timing step 20, two hold slots per array row
(docs/results.md, "synth-resources"; was (5470, 78.2, 2750, 73.6) through 8 x 8 and 18 x 18
before the pipelining, which underestimated today's flip-flops by 28 % at 12 x 32)."""
LUT_MULTIPLIER_LUTS = {"int4": 24, "int2": 8, "ternary": 6, "binary": 4}
"""Extra LUTs per lane of the LUT multipliers (shift-and-add, select, negate) over int8's DSP
lanes; an estimate from the adder widths, not fitted."""
DISPATCH_DSPS = 1
"""The dispatcher's bound-check multiplier (``hw/dispatch.py``): one DSP48E1 (yosys counts one
DSP48E1 more than the MAC lanes and requantizers in every configuration measured)."""


@dataclass(frozen=True)
class DeviceLimits:
    """The resources of one FPGA that configurations are checked against."""

    name: str
    dsp48: int
    bram36: int
    luts: int
    flip_flops: int
    carry4: int


DEVICES: dict[str, DeviceLimits] = {
    # PYNQ-Z2 (Zynq-7020): 13,300 slices of 4 LUT6, 8 flip-flops and one CARRY4 each.
    "xc7z020": DeviceLimits(
        "xc7z020", dsp48=220, bram36=140, luts=53200, flip_flops=106400, carry4=13300
    ),
}

# RAMB36E1 simple-dual-port aspect ratios (data width incl. parity, depth).
_BRAM36_SHAPES = ((1, 32768), (2, 16384), (4, 8192), (9, 4096), (18, 2048), (36, 1024), (72, 512))


def bram36_blocks(depth: int, width_bits: int) -> int:
    """RAMB36E1 blocks for a ``depth x width_bits`` memory: the best single aspect ratio,
    ``ceil(width / w) * ceil(depth / d)`` over the block's (w, d) shapes."""
    if depth <= 0 or width_bits <= 0:
        return 0
    return min(math.ceil(width_bits / w) * math.ceil(depth / d) for w, d in _BRAM36_SHAPES)


def _positive_int(owner: str, name: str, value: Any, upper: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner} {name} must be a positive integer, not {value!r}")
    if upper is not None and value > upper:
        raise ValueError(f"{owner} {name} must be at most {upper}, not {value!r}")


@dataclass(frozen=True)
class AccelConfig:
    """One generated accelerator (all fields keyword-friendly; validated on construction).

    ``rows`` x ``cols``: the output-stationary MAC array; a tile is ``rows`` GEMM rows (tokens)
    by ``cols`` GEMM columns. ``activation_format``: int8 (the only one supported).
    ``weight_format``: the weight codes the PEs multiply (int8, int4, int2, ternary, binary).
    ``dsp_packing``: pack two int8 or four int4 multiplies into one DSP48E1.
    ``weight_buffer_depth``: B-words of ``cols`` weight lanes. ``act_buffer_depth``: A-words of
    ``rows`` int8 lanes. ``bias_buffer_depth``: int32 entries. ``instruction_depth``:
    instructions the program memory holds. ``queue_depth``: per-engine dispatch queue entries.
    ``max_cores``, ``max_rank``, ``max_mode``: the TT layers the compiler accepts (cores of a
    layer, any TT rank, any unmerged input or output mode). ``max_k``: the longest reduction
    of one GEMM; fixes :attr:`acc_bits`. ``stream_bits``: AXI4-Stream data width (64).
    ``clock_mhz``: target clock. ``device``: a key of :data:`DEVICES`; the estimates must fit.
    ``sparse_nm``: ``(N, M)`` builds the N:M sparse GEMM mode (``GEMM.sparse``, see
    :mod:`.isa`, "Sparse GEMMs"): B-word lanes carry a ``log2(M)``-bit index beside the code,
    the activation buffer gets a second read port, and each PE selects one of a group's ``M``
    activations by index. ``M`` must be 2, 4 or 8 and ``N = M / 2`` (two A-words enter per
    array beat); weights need a zero code (not binary). None (the default) builds none of it.
    """

    # The default is the fastest configuration that fits the xc7z020 with room for the DMA
    # (`ttaccel synth --fit xc7z020`, docs/hardware.md): 218 of 220 DSP48E1, 82 of 140 RAMB36.
    rows: int = 12
    cols: int = 32
    activation_format: NumberFormat = INT8
    weight_format: NumberFormat = INT8
    dsp_packing: bool = True
    weight_buffer_depth: int = 8192  # any two consecutive layers of seed 000 and the bundled model
    act_buffer_depth: int = 4096
    bias_buffer_depth: int = 4096
    instruction_depth: int = 1024
    queue_depth: int = 8
    max_cores: int = 8
    max_rank: int = 64
    max_mode: int = 1024
    max_k: int = 4096
    stream_bits: int = 64
    clock_mhz: float = 100.0
    device: str = "xc7z020"
    sparse_nm: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        owner = "AccelConfig"
        _positive_int(owner, "rows", self.rows, 256)
        _positive_int(owner, "cols", self.cols, 256)
        for name in ("activation_format", "weight_format"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, _format(name, value))
            elif not isinstance(value, NumberFormat) or FORMATS.get(value.name) != value:
                raise ValueError(f"{owner} {name} must be one of {sorted(FORMATS)}, not {value!r}")
        if self.activation_format != INT8:
            raise ValueError(
                f"{owner} activation_format must be int8 (the only activation format the "
                f"array supports), not {self.activation_format.name!r}"
            )
        if not isinstance(self.dsp_packing, bool):
            raise ValueError(f"{owner} dsp_packing must be a bool, not {self.dsp_packing!r}")
        for name in ("weight_buffer_depth", "act_buffer_depth", "bias_buffer_depth"):
            _positive_int(owner, name, getattr(self, name), 2**ADDRESS_BITS)
        _positive_int(owner, "instruction_depth", self.instruction_depth, 2**ADDRESS_BITS)
        _positive_int(owner, "queue_depth", self.queue_depth, 256)
        _positive_int(owner, "max_cores", self.max_cores, 64)
        _positive_int(owner, "max_rank", self.max_rank, 2**ADDRESS_BITS - 1)
        _positive_int(owner, "max_mode", self.max_mode, 2**ADDRESS_BITS - 1)
        _positive_int(owner, "max_k", self.max_k, 2**ADDRESS_BITS - 1)
        if self.stream_bits != 64:
            raise ValueError(
                f"{owner} stream_bits must be 64 (the PYNQ-Z2 HP port and AXI DMA width), "
                f"not {self.stream_bits!r}"
            )
        if (
            isinstance(self.clock_mhz, bool)
            or not isinstance(self.clock_mhz, int | float)
            or not 1 <= self.clock_mhz <= 1000
        ):
            raise ValueError(
                f"{owner} clock_mhz must be a number in [1, 1000], not {self.clock_mhz!r}"
            )
        object.__setattr__(self, "clock_mhz", float(self.clock_mhz))
        self._check_sparse_nm(owner)
        if self.device not in DEVICES:
            raise ValueError(
                f"{owner} device must be one of {sorted(DEVICES)}, not {self.device!r}"
            )
        if self.acc_bits > 32:
            raise ValueError(
                f"{owner} max_k {self.max_k} needs a {self.acc_bits}-bit accumulator; the "
                f"requantizer takes at most 32 bits (max_k <= {self.max_k_for_acc(32)})"
            )
        limits = DEVICES[self.device]
        if self.dsp_total > limits.dsp48:
            raise ValueError(
                f"{owner} needs {self.dsp_total} DSP48E1 ({self.dsp_estimate}), but "
                f"{limits.name} has {limits.dsp48}"
            )
        if self.bram36_total > limits.bram36:
            raise ValueError(
                f"{owner} needs {self.bram36_total} RAMB36 ({self.bram36_estimate}), but "
                f"{limits.name} has {limits.bram36}"
            )

    def _check_sparse_nm(self, owner: str) -> None:
        value = self.sparse_nm
        if value is None:
            return
        if isinstance(value, list):
            value = tuple(value)
            object.__setattr__(self, "sparse_nm", value)
        if (
            not isinstance(value, tuple)
            or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) for v in value)
            or value[1] not in (2, 4, 8)
            or value[0] * 2 != value[1]
        ):
            raise ValueError(
                f"{owner} sparse_nm must be None or (N, M) with M in (2, 4, 8) and N = M / 2 "
                f"(the array takes two A-words per beat), not {self.sparse_nm!r}"
            )
        if not self.weight_format.has_zero:
            raise ValueError(
                f"{owner} sparse_nm needs a weight format with a zero code (pruned weights), "
                f"not {self.weight_format.name}"
            )

    # -- the array ---------------------------------------------------------------------------

    @property
    def lanes(self) -> int:
        """MAC lanes (PEs): ``rows * cols``."""
        return self.rows * self.cols

    @property
    def product_magnitude(self) -> int:
        """Largest ``|a * w|`` of one MAC: ``128 * max|w|`` (int8 activations)."""
        w = self.weight_format
        return max(-self.activation_format.qmin, self.activation_format.qmax) * max(-w.qmin, w.qmax)

    @property
    def acc_bits(self) -> int:
        """Accumulator width that never overflows: a sum of ``max_k`` products, each at most
        :attr:`product_magnitude` in magnitude, needs ``1 + bit_length(max_k * magnitude)``
        signed bits (28 for int8 x int8 at ``max_k = 4096``)."""
        return 1 + (self.max_k * self.product_magnitude).bit_length()

    def max_k_for_acc(self, bits: int) -> int:
        """The largest ``max_k`` whose worst case fits a ``bits``-bit accumulator."""
        return (2 ** (bits - 1) - 1) // self.product_magnitude

    @property
    def macs_per_dsp(self) -> int:
        """MACs one DSP48E1 performs per cycle; 0 when the lanes use LUTs only.

        int8: 2 with ``dsp_packing`` and an even ``rows`` (two tokens sharing one weight on
        the 25 x 18 multiplier, ``hw/transposed.py``), else 1. int4 and int2 multiply by
        shift-and-add in LUTs, ternary and binary by select or negate: 0, whatever
        ``dsp_packing`` says."""
        if self.weight_format == INT8:
            return 2 if self.dsp_packing and self.rows % 2 == 0 else 1
        return 0

    @property
    def a_word_bits(self) -> int:
        """Bits of one activation-buffer word: ``rows`` int8 lanes."""
        return self.rows * self.activation_format.bits

    @property
    def sparse_index_bits(self) -> int:
        """Bits of a B-word lane's N:M index: ``log2(M)``, or 0 without ``sparse_nm``."""
        return 0 if self.sparse_nm is None else (self.sparse_nm[1] - 1).bit_length()

    @property
    def b_lane_bits(self) -> int:
        """Bits of one B-word lane: the weight code, then (``sparse_nm``) its index above it."""
        return self.weight_format.bits + self.sparse_index_bits

    @property
    def b_word_bits(self) -> int:
        """Bits of one weight-buffer word: ``cols`` lanes of :attr:`b_lane_bits`."""
        return self.cols * self.b_lane_bits

    @property
    def second_abuf_read(self) -> bool:
        """The activation buffer is built twice (a second read port): for ``b_from_abuf``
        (B operand) or ``sparse_nm`` (a GEMM beat's second A-word)."""
        return self.supports_b_from_abuf or self.sparse_nm is not None

    @property
    def peak_gmacs(self) -> float:
        """Peak MACs per second in GMAC/s: ``lanes * clock``."""
        return self.lanes * self.clock_mhz / 1000.0

    # -- resources ---------------------------------------------------------------------------

    @property
    def dsp_estimate(self) -> dict[str, int]:
        """DSP48E1 by use: ``mac`` (``lanes / macs_per_dsp``), ``requant``
        (:data:`REQUANT_DSPS_PER_LANE` per row: the drain requantizes one A-word per cycle),
        ``dispatch`` (:data:`DISPATCH_DSPS`) and ``address``: yosys maps a multiply by a
        constant that is not a power of two onto a DSP48E1, one for the load engine's
        ``count * word bits`` when an A-word or B-word is not a power-of-two bits wide, one for
        the execute engine's ``* cols`` when ``cols`` is not a power of two (18 x 18: 2,
        12 x 32: 1; its small ``* rows`` stays in LUTs)."""
        mac = self.lanes // self.macs_per_dsp if self.macs_per_dsp else 0

        def not_power_of_two(n: int) -> bool:
            return n & (n - 1) != 0

        address = int(not_power_of_two(self.a_word_bits) or not_power_of_two(self.b_word_bits))
        address += int(not_power_of_two(self.cols))
        return {
            "mac": mac,
            "requant": self.rows * REQUANT_DSPS_PER_LANE,
            "dispatch": DISPATCH_DSPS,
            "address": address,
        }

    @property
    def dsp_total(self) -> int:
        return sum(self.dsp_estimate.values())

    @property
    def logic_estimate(self) -> dict[str, int]:
        """Rough ``luts`` (logic and LUT-RAM) and ``flip_flops`` of the whole top level: a
        fixed part (dispatcher, load engine, registers, AXI wiring) plus a cost per MAC lane
        (accumulators, operand skew, drain), fitted to yosys ``synth_xilinx`` of int8
        configurations (:data:`LOGIC_CALIBRATION`); a LUT multiplier (int4, int2) adds
        :data:`LUT_MULTIPLIER_LUTS` per lane. A pre-filter for ``ttaccel synth --fit``, not a
        substitute for synthesis (expect +-15%)."""
        base_lut, lane_lut, base_ff, lane_ff = LOGIC_CALIBRATION
        extra = LUT_MULTIPLIER_LUTS.get(self.weight_format.name, 0)
        return {
            "luts": round(base_lut + (lane_lut + extra) * self.lanes),
            "flip_flops": round(base_ff + lane_ff * self.lanes),
        }

    @property
    def bram36_estimate(self) -> dict[str, int]:
        """RAMB36E1 blocks per memory (see :func:`bram36_blocks`).

        When :attr:`supports_b_from_abuf`, a GEMM reads two A-words (A and B operands) and
        writes one result per cycle, so the activation buffer is built twice
        (``act_buffer_b_operand``); a ``sparse_nm`` build reads two A-words per beat and builds
        it twice too (``act_buffer_second_read``, when there is no B-operand copy).
        """
        act_buffer = bram36_blocks(self.act_buffer_depth, self.a_word_bits)
        estimate = {
            "weight_buffer": bram36_blocks(self.weight_buffer_depth, self.b_word_bits),
            "act_buffer": act_buffer,
            "bias_buffer": bram36_blocks(self.bias_buffer_depth, 32),
            "instructions": bram36_blocks(self.instruction_depth, INSTRUCTION_BITS),
        }
        if self.supports_b_from_abuf:
            estimate["act_buffer_b_operand"] = act_buffer
        elif self.sparse_nm is not None:
            estimate["act_buffer_second_read"] = act_buffer
        return estimate

    @property
    def supports_b_from_abuf(self) -> bool:
        """GEMMs may read their B operand from ABUF (int8 x int8, e.g. attention scores):
        needs ``rows == cols`` and int8 weights."""
        return self.rows == self.cols and self.weight_format == INT8

    @property
    def bram36_total(self) -> int:
        return sum(self.bram36_estimate.values())

    @property
    def weight_buffer_bytes(self) -> int:
        return self.weight_buffer_depth * self.b_word_bits // 8

    @property
    def act_buffer_bytes(self) -> int:
        return self.act_buffer_depth * self.a_word_bits // 8

    # -- JSON --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict: formats by name, every field present."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, NumberFormat):
                value = value.name
            elif isinstance(value, tuple):
                value = list(value)
            out[field.name] = value
        return out

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text of :meth:`to_dict` (keys in field order)."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccelConfig:
        """Inverse of :meth:`to_dict`; missing keys take their default, unknown keys raise."""
        if not isinstance(data, dict):
            raise ValueError(f"AccelConfig JSON must be an object, not {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"AccelConfig has no field(s) {unknown}; expected some of {sorted(known)}"
            )
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> AccelConfig:
        """Parse and validate JSON text written by :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"AccelConfig JSON does not parse: {error}") from None
        return cls.from_dict(data)

    def summary(self) -> str:
        """One line for logs and reports."""
        sparse = "" if self.sparse_nm is None else f" {self.sparse_nm[0]}:{self.sparse_nm[1]}"
        return (
            f"{self.rows}x{self.cols} {self.activation_format.name}x{self.weight_format.name}"
            f"{sparse} "
            f"@ {self.clock_mhz:g} MHz: {self.peak_gmacs:g} GMAC/s peak, acc {self.acc_bits} bit, "
            f"{self.dsp_total} DSP48E1, {self.bram36_total} RAMB36 "
            f"(weights {self.weight_buffer_bytes // 1024} KiB, activations "
            f"{self.act_buffer_bytes // 1024} KiB)"
        )


SQUARE_16X16 = AccelConfig(rows=16, cols=16, weight_buffer_depth=16384, act_buffer_depth=8192)
"""The default before the board-sized one: a square 16 x 16 array (``b_from_abuf``, so the
attention scores run on the engine) with room for two of seed 000's FFN layers' cores. It fits
the xc7z020 (161 DSP48E1, 133 RAMB36) but leaves no block RAM for the DMA; the seed-000
utilization figures of docs/hardware.md were measured on it."""

NAMED_CONFIGS: dict[str, AccelConfig] = {"default": AccelConfig(), "16x16": SQUARE_16X16}
"""The configurations the measurement scripts (``--config NAME``) compare side by side."""


def _format(name: str, value: str) -> NumberFormat:
    try:
        return FORMATS[value]
    except KeyError:
        raise ValueError(
            f"AccelConfig {name} must be one of {sorted(FORMATS)}, not {value!r}"
        ) from None
