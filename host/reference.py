"""The ``reference`` backend: the spec's functional model behind the :class:`~.device.Device`
interface.

Registers behave as :mod:`ttaccel.spec.regmap` documents them (ID, VERSION and ``CONFIG_*``
from the configuration; RW/WO/W1C fields; 64-bit counters read low word first); a run is
:func:`ttaccel.spec.isa.execute_stream` on the input transfer, with the buffers (resident
cores, bias) kept between runs and across a soft reset as in the hardware. It needs NumPy only:
it is the fast path for whole-model runs anywhere and the CPU fallback on a board without the
overlay.

Timing is not simulated: a run completes at the first ``STATUS`` read after both ``start`` and
the input transfer. ``MACS_ISSUED`` and ``INSTRUCTIONS`` are the executor's counts (what the
hardware counts); ``BUSY_CYCLES`` and ``STALL_CYCLES`` are the analytic cycle model's
prediction (:func:`ttaccel.spec.cycle_model.simulate`, within 1% of the RTL), so reports
over this backend say "modelled". A program that fails in the executor ends the run with
``STATUS.error`` and an error code of :data:`~ttaccel.spec.regmap.ERROR_CODES`. An output
transfer armed for fewer beats than the run sends leaves the run busy forever (the real
accelerator would wait on back-pressure), so the driver's time-out path is testable here too.
"""

from __future__ import annotations

import numpy as np

from ..spec.accel_config import AccelConfig
from ..spec.cycle_model import simulate
from ..spec.isa import BEATS_PER_INSTRUCTION, HazardError, Machine, decode_program, execute
from ..spec.regmap import IP_IDENTIFIER, IP_VERSION, REGMAP, config_register_values
from .device import Device, DeviceError, TransferState

__all__ = ["ReferenceDevice"]

_COUNTERS = ("BUSY_CYCLES", "MACS_ISSUED", "STALL_CYCLES", "INSTRUCTIONS")


_ERROR_MESSAGES = (
    ("instruction memory", 3),  # program longer than the instruction memory
    ("beats", 5),  # the input stream ended before the program or a LOAD was complete
    ("addresses reach", 2),  # spec.isa: an address outside its buffer
)


def _error_code(error: Exception) -> int:
    """The hardware's error code (:data:`ERROR_CODES`) for an executor exception, by the
    executor's message; anything else is an illegal instruction (1)."""
    text = str(error)
    return next((code for fragment, code in _ERROR_MESSAGES if fragment in text), 1)


class ReferenceDevice(Device):
    """The functional model of one accelerator configuration (see the module docstring)."""

    backend = "reference"

    def __init__(self, config: AccelConfig | None = None) -> None:
        self.config = AccelConfig() if config is None else config
        major, minor, patch = IP_VERSION
        self._fixed = {
            "ID": IP_IDENTIFIER,
            "VERSION": (major << 16) | (minor << 8) | patch,
            **config_register_values(self.config),
        }
        self._machine = Machine.empty(self.config)
        self._program_length = 0
        self._irq_enable = 0
        self._latched: dict[str, int] = {}
        self.last_error = ""
        """The executor's message for the last run that stopped with an error."""
        self._clear_run()
        self._idle_transfers()

    # -- state -------------------------------------------------------------------------------

    def _clear_run(self) -> None:
        self._busy = False
        self._done = False
        self._error = False
        self._error_code = 0
        self._error_pc = 0
        self._pc = 0
        self._counters = dict.fromkeys(_COUNTERS, 0)

    def _idle_transfers(self) -> None:
        self._send: np.ndarray | None = None
        self._receive_beats = 0
        self._output = np.empty(0, np.uint64)
        self._consumed = 0

    def _run(self) -> None:
        """Execute the started program once its input has arrived."""
        if not self._busy or self._send is None or not self._send.size or self._consumed:
            return  # not started, or no input transfer yet (a receive-only one brings none)
        stream, length = self._send, self._program_length
        head = length * BEATS_PER_INSTRUCTION
        try:
            if length > self.config.instruction_depth:
                raise ValueError("program longer than the instruction memory")
            if length < 1 or head > stream.size:
                raise ValueError(f"PROGRAM_LENGTH {length} needs {head} beats; stream ended")
            program = decode_program(stream[:head])
            result = execute(program, self.config, stream[head:], self._machine, check=False)
        except (ValueError, OverflowError, HazardError) as error:
            self.last_error = f"{type(error).__name__}: {error}"
            self._consumed = stream.size
            self._busy, self._error = False, True
            self._error_code = _error_code(error)
            return
        self._consumed = stream.size
        self._output = result.output
        self._pc = len(program)
        if result.output.size > self._receive_beats:
            return  # the output transfer is too short: the engine waits for ready forever
        report = simulate(program, self.config)
        self._counters = {
            "BUSY_CYCLES": report.cycles,
            "MACS_ISSUED": result.macs_issued,
            "STALL_CYCLES": report.stall_cycles,
            "INSTRUCTIONS": result.instructions,
        }
        self._busy, self._done = False, True

    # -- registers ---------------------------------------------------------------------------

    def _read_word(self, offset: int) -> int:
        name = next((r.name for r in REGMAP if r.offset == offset), None)
        if name is None:
            return 0  # unmapped offsets read 0
        if name in self._fixed:
            return self._fixed[name]
        if name == "STATUS":
            self._run()
            reg, word = REGMAP["STATUS"], 0
            for field, value in (
                ("busy", self._busy), ("done", self._done), ("error", self._error),
                ("error_code", self._error_code), ("error_pc", self._error_pc),
            ):  # fmt: skip
                word = reg.field(field).insert(word, int(value))
            return word
        if name == "CONTROL":
            return REGMAP.field("CONTROL", "irq_enable").insert(0, self._irq_enable)
        if name == "PROGRAM_LENGTH":
            return self._program_length
        if name == "PC":
            return self._pc
        base, half = name.rsplit("_", 1)
        value = self._counters[base]
        if half == "LO":
            self._latched[base] = value >> 32
            return value & 0xFFFF_FFFF
        return self._latched.get(base, 0)

    def _write_word(self, offset: int, value: int) -> None:
        name = next((r.name for r in REGMAP if r.offset == offset), None)
        if name == "PROGRAM_LENGTH":
            self._program_length = REGMAP.field(name, "instructions").extract(value)
        elif name == "STATUS":
            if REGMAP.field(name, "done").extract(value):
                self._done = False
            if REGMAP.field(name, "error").extract(value):
                self._error = False
        elif name == "CONTROL":
            control = REGMAP["CONTROL"]
            self._irq_enable = control.field("irq_enable").extract(value)
            if control.field("soft_reset").extract(value):
                self._clear_run()
            if control.field("start").extract(value) and not self._busy:
                self._clear_run()
                self._busy = True
                self._consumed = 0

    # -- streams -----------------------------------------------------------------------------

    def _transfers_complete(self) -> bool:
        sent = self._send is None or self._consumed == self._send.size
        return sent and self._output.size == self._receive_beats

    def start_transfers(self, send: np.ndarray, receive_beats: int) -> None:
        if self._send is not None and self._consumed and not self._transfers_complete():
            raise DeviceError("a transfer is still in progress: abort_transfers() first")
        self._idle_transfers()
        self._receive_beats = int(receive_beats)
        self._send = np.array(send, dtype=np.uint64).reshape(-1)

    def transfers_done(self) -> bool:
        self._run()
        return self._transfers_complete()

    def received(self) -> np.ndarray:
        return self._output[: self._receive_beats].copy()

    def transfer_state(self) -> TransferState:
        to_send = 0 if self._send is None else int(self._send.size)
        return TransferState(
            sent=self._consumed,
            to_send=to_send,
            received=min(int(self._output.size), self._receive_beats),
            to_receive=self._receive_beats,
            extra={"executor error": self.last_error} if self._error else {},
        )

    def abort_transfers(self) -> None:
        self._idle_transfers()
