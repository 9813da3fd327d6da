"""The driver: one run protocol over any :class:`~.device.Device`.

:class:`Accelerator` opens a device, checks that it is a ttaccel engine of a register-map
version this driver speaks (``ID``, ``VERSION``), rebuilds the generated
:class:`~ttaccel.spec.accel_config.AccelConfig` from the ``CONFIG_*`` registers, and runs
programs:

1. ``PROGRAM_LENGTH`` <- instructions; ``CONTROL.start``;
2. arm the output transfer for the program's known number of result beats, then send the
   program (5 beats per instruction) followed by its data;
3. poll ``STATUS`` until ``done`` (or ``error``) and both transfers have completed, never past
   the deadline;
4. read the counters (busy cycles, MACs issued, stall cycles, instructions retired).

On a time-out the driver reads a register dump (STATUS with error code and error PC, PC, the
counters, the transfers' progress and any backend status words such as the board's DMA status
registers), recovers (abandons both transfers, pulses ``CONTROL.soft_reset``; the on-chip
buffers keep their contents, so the next run is exact) and raises :class:`AcceleratorTimeout`
carrying the dump. A run that stops with ``STATUS.error`` raises :class:`AcceleratorError`
after the same recovery. The driver never waits without a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..spec.accel_config import AccelConfig
from ..spec.isa import Gemm, Instruction, encode_program, gemm_beats
from ..spec.regmap import ERROR_CODES, IP_IDENTIFIER, IP_VERSION, REGMAP, config_from_registers
from .device import Device

__all__ = [
    "Accelerator",
    "AcceleratorError",
    "AcceleratorTimeout",
    "IncompatibleDevice",
    "RunCounters",
    "RunResult",
    "program_macs",
]

CONFIG_REGISTERS = tuple(r.name for r in REGMAP if r.name.startswith("CONFIG_"))
COUNTERS = ("BUSY_CYCLES", "MACS_ISSUED", "STALL_CYCLES", "INSTRUCTIONS")


class IncompatibleDevice(ValueError):
    """The device is not a ttaccel engine this driver can drive (ID or version mismatch)."""


class AcceleratorError(RuntimeError):
    """A run stopped with ``STATUS.error``; ``dump`` holds the registers read afterwards."""

    def __init__(self, message: str, dump: dict) -> None:
        super().__init__(f"{message}\n{format_dump(dump)}")
        self.dump = dump


class AcceleratorTimeout(AcceleratorError):
    """A run did not finish before its deadline; ``dump`` holds the registers at the time-out."""


@dataclass(frozen=True)
class RunCounters:
    """The hardware counters of one run (:data:`~ttaccel.spec.regmap.REGMAP`'s 64-bit ones)."""

    busy_cycles: int
    macs_issued: int
    stall_cycles: int
    instructions: int


@dataclass(frozen=True)
class RunResult:
    """One program run: ``output`` beats (uint64), the counters, host wall seconds."""

    output: np.ndarray
    counters: RunCounters
    wall_s: float
    polls: int = 0
    extra: dict = field(default_factory=dict)


def program_macs(program: Sequence[Instruction], config: AccelConfig) -> int:
    """Lane-MACs the compiled ``program`` issues, counted from its GEMMs as ``MACS_ISSUED``
    counts them: ``rows * n * beats`` per row tile (padded tokens included, padded columns
    not), ``beats`` = ``k``, or ``k * N / M`` for a sparse GEMM
    (:func:`~ttaccel.spec.isa.gemm_beats`)."""
    return sum(
        g.row_tiles * gemm_beats(g, config) * config.rows * g.n
        for g in program
        if isinstance(g, Gemm)
    )


def format_dump(dump: dict) -> str:
    """A register dump as indented ``name: value`` lines (hex for register words)."""
    lines = []
    for key, value in dump.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k}={v}" for k, v in value.items())
            lines.append(f"  {key}: {inner}")
        else:
            lines.append(f"  {key}: {value}")
    return "\n".join(lines)


class Accelerator:
    """A checked, configured accelerator behind ``device``.

    Raises :class:`IncompatibleDevice` when ``ID`` is not :data:`IP_IDENTIFIER` or the major
    or minor version differs from :data:`IP_VERSION` (minor versions add registers this driver
    reads), naming what was found. ``timeout_s``: default deadline of a run in wall-clock
    seconds (generous on the simulated board, where a run is slower than on silicon).
    """

    def __init__(self, device: Device, *, timeout_s: float = 60.0) -> None:
        self.device = device
        self.timeout_s = float(timeout_s)
        found_id = device.read("ID")
        if found_id != IP_IDENTIFIER:
            raise IncompatibleDevice(
                f"the {device.backend} device's ID register reads {found_id:#010x}, not "
                f"{IP_IDENTIFIER:#010x} ('ttAC'): this is not a ttaccel engine (wrong overlay "
                f"or IP address?)"
            )
        version = tuple(device.read_field("VERSION", f) for f in ("major", "minor", "patch"))
        if version[:2] != IP_VERSION[:2]:
            raise IncompatibleDevice(
                f"the {device.backend} device's register map is version "
                f"{'.'.join(map(str, version))}, this driver speaks "
                f"{'.'.join(map(str, IP_VERSION))}: regenerate the hardware or install the "
                f"matching ttaccel"
            )
        self.version = version
        self._drain_before_run = False
        self.config = config_from_registers({name: device.read(name) for name in CONFIG_REGISTERS})
        self.soft_reset()  # a clean start, whatever an earlier process left
        self._drain_before_run = False

    # -- control -----------------------------------------------------------------------------

    def soft_reset(self) -> None:
        """Abandon any transfer and return the engine to idle (buffers keep their contents),
        drain an output beat left offered (:meth:`drain_output`), clear ``done`` / ``error``."""
        self.device.abort_transfers()
        self.device.write("CONTROL", soft_reset=1)
        # Nothing drained may mean the receiver was the fault (never ready): try again before
        # the next run, when it may be.
        self._drain_before_run = self.drain_output() == 0
        self.device.write("STATUS", done=1, error=1)

    def drain_output(self, *, timeout_s: float = 0.05) -> int:
        """Receive and discard what the output stream still offers after a soft reset; returns
        the beats drained (0 or 1).

        AXI4-Stream forbids withdrawing ``TVALID`` before its handshake, so a beat the engine
        was offering when the reset came stays offered (``spec.isa`` documents it) and would
        otherwise be the first beat of the next run's output transfer. The engine offers at
        most one such beat and no register shows it, so the driver arms a one-beat receive and
        waits ``timeout_s`` for it: a beat that is there arrives within cycles, and nothing
        else can arrive after a soft reset."""
        device = self.device
        device.start_transfers(np.empty(0, np.uint64), 1)
        deadline = time.monotonic() + timeout_s
        drained = 0
        while time.monotonic() < deadline:
            if device.transfers_done():
                drained = int(device.received().size)
                break
        device.abort_transfers()
        return drained

    def dump(self) -> dict:
        """The registers a hang or an error report needs, read now."""
        device = self.device
        status = device.read("STATUS")
        field_of = REGMAP["STATUS"].field
        code = field_of("error_code").extract(status)
        state = device.transfer_state()
        dump = {
            "backend": device.backend,
            "STATUS": {
                "word": f"{status:#010x}",
                **{f: field_of(f).extract(status) for f in ("busy", "done", "error")},
                "error_code": f"{code} ({ERROR_CODES.get(code, 'unknown')})",
                "error_pc": field_of("error_pc").extract(status),
            },
            "PC": device.read_field("PC", "dispatched"),
            "counters": {name: device.read_counter(name) for name in COUNTERS},
            "input stream": f"{state.sent} of {state.to_send} beats sent",
            "output stream": f"{state.received} of {state.to_receive} beats received",
        }
        if state.extra:
            dump["backend status"] = dict(state.extra)
        return dump

    def run(
        self,
        program: Sequence[Instruction],
        data: np.ndarray,
        output_beats: int,
        *,
        timeout_s: float | None = None,
    ) -> RunResult:
        """Run ``program`` with input ``data`` (uint64 beats after the program) and receive
        exactly ``output_beats`` result beats. Raises ValueError for a program longer than
        the instruction memory (before touching the device), :class:`AcceleratorTimeout`
        past the deadline and :class:`AcceleratorError` on ``STATUS.error``."""
        program = list(program)
        if not 1 <= len(program) <= self.config.instruction_depth:
            raise ValueError(
                f"a program of {len(program)} instructions does not fit the instruction memory "
                f"of {self.config.instruction_depth}"
            )
        stream = np.concatenate(
            [encode_program(program), np.asarray(data, dtype=np.uint64).reshape(-1)]
        )
        device = self.device
        if self._drain_before_run:
            self._drain_before_run = False
            self.drain_output()
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        start = time.perf_counter()
        device.write("PROGRAM_LENGTH", instructions=len(program))
        device.write("CONTROL", start=1)
        device.start_transfers(stream, output_beats)
        polls = 0
        status_field = REGMAP["STATUS"].field
        while True:
            status = device.read("STATUS")
            polls += 1
            if status_field("error").extract(status):
                dump = self.dump()
                self.soft_reset()
                code = status_field("error_code").extract(status)
                raise AcceleratorError(
                    f"the {device.backend} accelerator stopped with error {code} "
                    f"({ERROR_CODES.get(code, 'unknown')}) at instruction "
                    f"{status_field('error_pc').extract(status)} of {len(program)}",
                    dump,
                )
            if status_field("done").extract(status) and device.transfers_done():
                break
            if time.monotonic() > deadline:
                dump = self.dump()
                self.soft_reset()
                raise AcceleratorTimeout(
                    f"the {device.backend} accelerator did not finish a {len(program)}-"
                    f"instruction program within {timeout_s or self.timeout_s:g} s "
                    f"(soft reset done; the next run starts clean)",
                    dump,
                )
        output = device.received()
        counters = RunCounters(*(device.read_counter(name) for name in COUNTERS))
        device.write("STATUS", done=1)
        return RunResult(output, counters, time.perf_counter() - start, polls)
