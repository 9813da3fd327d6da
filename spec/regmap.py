"""The AXI4-Lite control and status registers: the single definition.

The hardware generates its CSR block from :data:`REGMAP`, the host driver takes every offset and
bit position from it, and :func:`render_markdown` writes the table for the docs. Nothing else
may hard-code an offset.

Bus: AXI4-Lite, 32-bit data, byte addresses, registers 4-byte aligned in a
:data:`ADDRESS_SPACE`-byte window; reads of unmapped offsets return 0, writes are ignored.

Access kinds (per field):

``RO``  read only; writes ignored.
``RW``  read/write; reads return the last value written (or the reset value).
``WO``  write-one pulse: writing 1 triggers the action for one cycle; reads return 0.
``W1C`` sticky flag set by hardware, cleared by writing 1; writing 0 has no effect.

A run (see :mod:`.isa`): write ``PROGRAM_LENGTH``; write ``CONTROL.start``; the engine reads the
program (``PROGRAM_LENGTH`` instructions of five 64-bit beats) and then the data from the input
stream; when ``END`` retires, ``STATUS.busy`` falls and ``STATUS.done`` rises; when a run stops
on an error, ``STATUS.busy`` falls and ``STATUS.error`` rises (after the stop sequence of
:mod:`.isa`, "Errors"). The interrupt line is high while ``CONTROL.irq_enable`` and
(``STATUS.done`` or ``STATUS.error``). 64-bit counters are read low word first: reading ``*_LO``
latches the high word into ``*_HI`` so the pair is consistent. Counters clear on ``start``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .accel_config import AccelConfig
from .isa import FORMAT_CODES

__all__ = [
    "ACCESS_KINDS",
    "ADDRESS_SPACE",
    "DATA_WIDTH",
    "ERROR_CODES",
    "IP_IDENTIFIER",
    "IP_VERSION",
    "IP_VLNV",
    "REGMAP",
    "Field",
    "Register",
    "RegisterMap",
    "config_from_registers",
    "config_register_values",
    "render_markdown",
]

DATA_WIDTH = 32
"""AXI4-Lite data width in bits; every register is this wide."""
ADDRESS_SPACE = 0x100
"""Size in bytes of the register window."""
IP_IDENTIFIER = 0x74744143
"""``ID`` register value: ASCII ``"ttAC"``, most significant byte first; stable across versions."""
IP_VLNV = "ttaccel:ttaccel:ttaccel_top:0.2"
"""Vendor:library:name:version of the packaged IP in the Vivado block design; the board driver
binds to it (``pynq.DefaultIP.bindto``). The version follows :data:`IP_VERSION`'s major.minor."""
IP_VERSION = (0, 2, 0)
"""(major, minor, patch) of the register map and instruction set; ``VERSION`` holds it."""
ACCESS_KINDS = ("RO", "RW", "WO", "W1C")

ERROR_CODES: dict[int, str] = {
    0: "none",
    1: "illegal instruction (unknown opcode, reserved bits set, or a field out of range)",
    2: "buffer address out of range",
    3: "program longer than the instruction memory",
    4: "token counter overflow (more than 255 outstanding tokens)",
    5: "input stream ended (TLAST) before the program or a LOAD was complete",
}
"""``STATUS.error_code`` values; the engine stops at the first error with ``STATUS.error`` set
(the stop sequence and what the host does: :mod:`.isa`, "Errors")."""


@dataclass(frozen=True)
class Field:
    """A bit field ``[lsb, lsb + width)`` of a register.

    ``reset`` is the value after reset, or None for a read-only value fixed at generation from
    the :class:`~.accel_config.AccelConfig` (see :func:`config_register_values`).
    """

    name: str
    lsb: int
    width: int
    access: str
    reset: int | None
    doc: str

    def __post_init__(self) -> None:
        if self.access not in ACCESS_KINDS:
            raise ValueError(
                f"field {self.name}: access must be one of {ACCESS_KINDS}, not {self.access!r}"
            )
        if not (self.lsb >= 0 and self.width >= 1 and self.lsb + self.width <= DATA_WIDTH):
            raise ValueError(
                f"field {self.name}: bits [{self.lsb}, {self.lsb + self.width}) leave a "
                f"{DATA_WIDTH}-bit register"
            )
        if self.reset is not None and not 0 <= self.reset < 2**self.width:
            raise ValueError(
                f"field {self.name}: reset {self.reset!r} does not fit {self.width} bits"
            )

    @property
    def mask(self) -> int:
        """The field's bits in the register word."""
        return ((1 << self.width) - 1) << self.lsb

    def extract(self, word: int) -> int:
        """The field's value in a register word."""
        return (word >> self.lsb) & ((1 << self.width) - 1)

    def insert(self, word: int, value: int) -> int:
        """``word`` with this field set to ``value`` (ValueError if it does not fit)."""
        if not 0 <= value < 2**self.width:
            raise ValueError(f"field {self.name} is {self.width} bits wide; {value!r} does not fit")
        return (word & ~self.mask) | (value << self.lsb)


@dataclass(frozen=True)
class Register:
    """A 32-bit register at byte ``offset`` with its fields (lowest bit first)."""

    name: str
    offset: int
    fields: tuple[Field, ...]
    doc: str
    width: int = DATA_WIDTH

    def __post_init__(self) -> None:
        if self.offset % 4 or not 0 <= self.offset < ADDRESS_SPACE:
            raise ValueError(
                f"register {self.name}: offset {self.offset:#x} must be 4-byte aligned in "
                f"[0, {ADDRESS_SPACE:#x})"
            )
        if self.width != DATA_WIDTH:
            raise ValueError(f"register {self.name}: width must be {DATA_WIDTH}, not {self.width}")
        used = 0
        for field in self.fields:
            if used & field.mask:
                raise ValueError(f"register {self.name}: field {field.name} overlaps another field")
            used |= field.mask

    @property
    def access(self) -> str:
        """``RO`` when every field is read only, ``RW`` otherwise (the fields say exactly)."""
        return "RO" if all(f.access == "RO" for f in self.fields) else "RW"

    @property
    def reset(self) -> int | None:
        """The register's reset word, or None when a field's value comes from the config."""
        if any(f.reset is None for f in self.fields):
            return None
        word = 0
        for field in self.fields:
            word |= field.reset << field.lsb  # type: ignore[operator]
        return word

    def field(self, name: str) -> Field:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(
            f"register {self.name} has no field {name!r}; it has {[f.name for f in self.fields]}"
        )


class RegisterMap:
    """An ordered, validated set of registers (offsets and names unique)."""

    def __init__(self, registers: tuple[Register, ...]) -> None:
        names, offsets = set(), set()
        for reg in registers:
            if reg.name in names:
                raise ValueError(f"register name {reg.name} appears twice")
            if reg.offset in offsets:
                raise ValueError(f"register {reg.name}: offset {reg.offset:#x} is taken")
            names.add(reg.name)
            offsets.add(reg.offset)
        self._registers = tuple(sorted(registers, key=lambda r: r.offset))
        self._by_name = {r.name: r for r in self._registers}

    def __iter__(self):
        return iter(self._registers)

    def __len__(self) -> int:
        return len(self._registers)

    def __getitem__(self, name: str) -> Register:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no register {name!r}; registers are {list(self._by_name)}") from None

    def offset(self, name: str) -> int:
        """Byte offset of register ``name``."""
        return self[name].offset

    def field(self, register: str, field: str) -> Field:
        """Field ``field`` of register ``register``."""
        return self[register].field(field)


def _flag(name: str, lsb: int, access: str, doc: str, reset: int = 0) -> Field:
    return Field(name, lsb, 1, access, reset, doc)


def _word(name: str, access: str, doc: str, reset: int | None = 0) -> tuple[Field, ...]:
    return (Field(name, 0, 32, access, reset, doc),)


def _counter(name: str, offset: int, doc: str) -> tuple[Register, Register]:
    return (
        Register(
            f"{name}_LO",
            offset,
            _word("value", "RO", f"bits 31..0 of {doc}"),
            f"{doc}, low word; reading it latches {name}_HI.",
        ),
        Register(
            f"{name}_HI",
            offset + 4,
            _word("value", "RO", f"bits 63..32 of {doc}"),
            f"{doc}, high word as latched by the last read of {name}_LO.",
        ),
    )


REGMAP = RegisterMap(
    (
        Register(
            "ID",
            0x00,
            _word("ip_id", "RO", "ASCII 'ttAC', most significant byte first", IP_IDENTIFIER),
            "Stable IP identifier; the driver checks it before anything else.",
        ),
        Register(
            "VERSION",
            0x04,
            (
                Field("patch", 0, 8, "RO", IP_VERSION[2], "patch version"),
                Field("minor", 8, 8, "RO", IP_VERSION[1], "minor version (compatible additions)"),
                Field(
                    "major",
                    16,
                    8,
                    "RO",
                    IP_VERSION[0],
                    "major version (incompatible ISA/register changes)",
                ),
            ),
            "Register map and instruction-set version.",
        ),
        Register(
            "CONTROL",
            0x08,
            (
                _flag(
                    "start",
                    0,
                    "WO",
                    "start a run: clear done/error and the counters, read the program",
                ),
                _flag(
                    "soft_reset",
                    1,
                    "WO",
                    "abort and return every engine, queue, token counter and "
                    "stream interface to idle and clear STATUS.done/error; a beat already "
                    "offered on the output stream stays offered until accepted; buffer "
                    "contents are kept",
                ),
                _flag(
                    "irq_enable",
                    2,
                    "RW",
                    "drive the interrupt line while STATUS.done or STATUS.error is set",
                ),
            ),
            "Run control.",
        ),
        Register(
            "STATUS",
            0x0C,
            (
                _flag("busy", 0, "RO", "a run is in progress"),
                _flag("done", 1, "W1C", "the last run retired END (sticky; the interrupt source)"),
                _flag(
                    "error",
                    2,
                    "W1C",
                    "the last run stopped on an error (sticky; an interrupt source)",
                ),
                Field("error_code", 8, 8, "RO", 0, "the first error of the last run (ERROR_CODES)"),
                Field(
                    "error_pc", 16, 16, "RO", 0, "index of the instruction that raised the error"
                ),
            ),
            "Run status.",
        ),
        Register(
            "PROGRAM_LENGTH",
            0x10,
            (
                Field(
                    "instructions",
                    0,
                    16,
                    "RW",
                    0,
                    "number of instructions to read at start (END last)",
                ),
            ),
            "Program length; the program is the first 5 * instructions beats of the input stream.",
        ),
        Register(
            "PC",
            0x14,
            (Field("dispatched", 0, 16, "RO", 0, "instructions dispatched so far in this run"),),
            "Progress, for debugging a stalled run.",
        ),
        Register(
            "CONFIG_ARRAY",
            0x18,
            (
                Field("rows", 0, 8, "RO", None, "array rows (tokens per tile); 0 means 256"),
                Field("cols", 8, 8, "RO", None, "array columns; 0 means 256"),
                Field("weight_format", 16, 4, "RO", None, "weight format code (isa.FORMAT_CODES)"),
                Field("acc_bits", 20, 6, "RO", None, "accumulator width"),
            ),
            "The generated array (from AccelConfig), so the driver can check the bitstream.",
        ),
        Register(
            "CONFIG_ABUF",
            0x1C,
            (Field("depth", 0, 17, "RO", None, "activation buffer depth in A-words"),),
            "Activation buffer depth.",
        ),
        Register(
            "CONFIG_WBUF",
            0x20,
            (Field("depth", 0, 17, "RO", None, "weight buffer depth in B-words"),),
            "Weight buffer depth.",
        ),
        Register(
            "CONFIG_BIAS",
            0x24,
            (Field("depth", 0, 17, "RO", None, "bias buffer depth in int32 entries"),),
            "Bias buffer depth.",
        ),
        Register(
            "CONFIG_IMEM",
            0x28,
            (Field("depth", 0, 17, "RO", None, "instruction memory depth"),),
            "Instruction memory depth.",
        ),
        Register(
            "CONFIG_MAX_K",
            0x2C,
            (Field("max_k", 0, 16, "RO", None, "longest GEMM reduction (AccelConfig.max_k)"),),
            "The longest reduction a GEMM may have.",
        ),
        Register(
            "CONFIG_TT",
            0x30,
            (
                Field("max_rank", 0, 16, "RO", None, "largest TT rank the compiler accepts"),
                Field("max_cores", 16, 8, "RO", None, "most TT cores per layer"),
                Field("queue_depth", 24, 8, "RO", None, "dispatch queue entries; 0 means 256"),
            ),
            "The TT envelope and dispatch queues (AccelConfig.max_rank/max_cores/queue_depth).",
        ),
        Register(
            "CONFIG_MAX_MODE",
            0x34,
            (
                Field("max_mode", 0, 16, "RO", None, "largest unmerged TT input or output mode"),
                Field("dsp_packing", 16, 1, "RO", None, "1: two int8 MACs per DSP48E1"),
                Field(
                    "sparse_n",
                    17,
                    4,
                    "RO",
                    None,
                    "N of the N:M sparse GEMM mode (AccelConfig.sparse_nm); 0: no sparse mode",
                ),
                Field(
                    "sparse_m",
                    21,
                    4,
                    "RO",
                    None,
                    "M (group size) of the N:M sparse GEMM mode; 0: no sparse mode",
                ),
            ),
            "The largest TT mode, the DSP packing of the MAC lanes and the N:M sparse GEMM mode "
            "(GEMM bit 14 is legal only where sparse_m is not 0).",
        ),
        Register(
            "CONFIG_CLOCK",
            0x38,
            (Field("khz", 0, 20, "RO", None, "target clock the design was generated for, kHz"),),
            "The configured clock (AccelConfig.clock_mhz), for latency projections.",
        ),
        *_counter("BUSY_CYCLES", 0x40, "clock cycles with STATUS.busy set"),
        *_counter(
            "MACS_ISSUED", 0x48, "lane-MACs issued: rows * valid columns per tile per K step"
        ),
        *_counter("STALL_CYCLES", 0x50, "busy cycles in which the array issued no MAC"),
        *_counter("INSTRUCTIONS", 0x58, "instructions retired"),
    )
)
"""The register map (see the module docstring)."""


def config_register_values(config: AccelConfig) -> dict[str, int]:
    """Words of the ``CONFIG_*`` registers for a generated configuration."""
    values: dict[str, dict[str, int]] = {
        "CONFIG_ARRAY": {
            "rows": config.rows % 256,
            "cols": config.cols % 256,
            "weight_format": FORMAT_CODES[config.weight_format.name],
            "acc_bits": config.acc_bits,
        },
        "CONFIG_ABUF": {"depth": config.act_buffer_depth},
        "CONFIG_WBUF": {"depth": config.weight_buffer_depth},
        "CONFIG_BIAS": {"depth": config.bias_buffer_depth},
        "CONFIG_IMEM": {"depth": config.instruction_depth},
        "CONFIG_MAX_K": {"max_k": config.max_k},
        "CONFIG_TT": {
            "max_rank": config.max_rank,
            "max_cores": config.max_cores,
            "queue_depth": config.queue_depth % 256,
        },
        "CONFIG_MAX_MODE": {
            "max_mode": config.max_mode,
            "dsp_packing": int(config.dsp_packing),
            "sparse_n": 0 if config.sparse_nm is None else config.sparse_nm[0],
            "sparse_m": 0 if config.sparse_nm is None else config.sparse_nm[1],
        },
        "CONFIG_CLOCK": {"khz": round(config.clock_mhz * 1000)},
    }
    words = {}
    for reg_name, fields in values.items():
        reg, word = REGMAP[reg_name], 0
        for name, value in fields.items():
            word = reg.field(name).insert(word, value)
        words[reg_name] = word
    return words


def config_from_registers(words: Mapping[str, int], device: str = "xc7z020") -> AccelConfig:
    """The :class:`~.accel_config.AccelConfig` a bitstream was generated from, rebuilt from its
    ``CONFIG_*`` register words (the inverse of :func:`config_register_values`; ``device`` is
    not in the registers). Raises ValueError naming the register when a word is missing or
    describes no valid configuration (e.g. an unknown weight-format code)."""
    missing = [name for name in _CONFIG_REGISTERS if name not in words]
    if missing:
        raise ValueError(f"config_from_registers needs the words of {missing}")

    def get(register: str, field: str) -> int:
        return REGMAP.field(register, field).extract(int(words[register]))

    codes = {code: name for name, code in FORMAT_CODES.items()}
    code = get("CONFIG_ARRAY", "weight_format")
    if code not in codes:
        raise ValueError(f"CONFIG_ARRAY.weight_format {code} is not a format code ({codes})")
    sparse = (get("CONFIG_MAX_MODE", "sparse_n"), get("CONFIG_MAX_MODE", "sparse_m"))
    if sparse != (0, 0) and (sparse[1] not in (2, 4, 8) or 2 * sparse[0] != sparse[1]):
        raise ValueError(
            f"CONFIG_MAX_MODE.sparse_n / sparse_m {sparse[0]} / {sparse[1]} describe no sparse "
            "GEMM mode (0 / 0, or N / M with M in 2, 4, 8 and N = M / 2)"
        )
    return AccelConfig(
        sparse_nm=None if sparse == (0, 0) else sparse,
        rows=get("CONFIG_ARRAY", "rows") or 256,
        cols=get("CONFIG_ARRAY", "cols") or 256,
        weight_format=codes[code],
        dsp_packing=bool(get("CONFIG_MAX_MODE", "dsp_packing")),
        act_buffer_depth=get("CONFIG_ABUF", "depth"),
        weight_buffer_depth=get("CONFIG_WBUF", "depth"),
        bias_buffer_depth=get("CONFIG_BIAS", "depth"),
        instruction_depth=get("CONFIG_IMEM", "depth"),
        queue_depth=get("CONFIG_TT", "queue_depth") or 256,
        max_cores=get("CONFIG_TT", "max_cores"),
        max_rank=get("CONFIG_TT", "max_rank"),
        max_mode=get("CONFIG_MAX_MODE", "max_mode"),
        max_k=get("CONFIG_MAX_K", "max_k"),
        clock_mhz=get("CONFIG_CLOCK", "khz") / 1000,
        device=device,
    )


_CONFIG_REGISTERS = (
    "CONFIG_ARRAY", "CONFIG_ABUF", "CONFIG_WBUF", "CONFIG_BIAS", "CONFIG_IMEM", "CONFIG_MAX_K",
    "CONFIG_TT", "CONFIG_MAX_MODE", "CONFIG_CLOCK",
)  # fmt: skip
"""The registers that :func:`config_from_registers` reads."""


def _bits(field: Field) -> str:
    hi = field.lsb + field.width - 1
    return f"[{field.lsb}]" if field.width == 1 else f"[{hi}:{field.lsb}]"


def render_markdown(regmap: RegisterMap = REGMAP, reset_format: Callable[[int], str] = hex) -> str:
    """The register map as a Markdown table, one row per field (register name, offset and
    description on its first row)."""
    lines = [
        "| offset | register | bits | field | access | reset | description |",
        "|---|---|---|---|---|---|---|",
    ]
    for reg in regmap:
        for i, field in enumerate(reg.fields):
            reset = "config" if field.reset is None else reset_format(field.reset)
            head = (f"`{reg.offset:#04x}`", f"`{reg.name}`") if i == 0 else ("", "")
            doc = f"{reg.doc.rstrip('.')}; {field.doc}" if i == 0 else field.doc
            lines.append(
                f"| {head[0]} | {head[1]} | {_bits(field)} | `{field.name}` | {field.access} "
                f"| {reset} | {doc} |"
            )
    return "\n".join(lines) + "\n"
