"""The device layer: what the driver needs of an accelerator, and nothing more.

Every backend (the board through pynq, the simulated board in Verilator, the spec's functional
model) implements :class:`Device`: 32-bit register access by *name* (offsets come from
:data:`ttaccel.spec.regmap.REGMAP` inside this module, never from driver code), one input
transfer of 64-bit beats (the AXI DMA's MM2S channel), one output transfer of a known number of
beats (S2MM), and a way to abandon both after a hang. The driver (:mod:`.driver`) owns the
run protocol on top of it: program length, start, poll ``STATUS`` with a deadline, counters.

Transfers
    :meth:`Device.start_transfers` arms the output transfer first and then starts the input
    transfer, as a DMA driver must (otherwise the accelerator's output back-pressure can
    deadlock the run). Both proceed while the driver polls registers; :meth:`transfers_done`
    says when both have completed, :meth:`received` returns the output beats. A backend may
    run the accelerator only while the driver polls (the simulated board advances simulated
    time on every register read, so a polling loop always makes progress and a hang is seen
    as a deadline, not as a frozen Python process).

Beats are ``numpy.uint64`` arrays, beat ``i`` little endian as the stream's ``TDATA``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

from ..spec.regmap import REGMAP

__all__ = ["Device", "DeviceError", "TransferState"]


class DeviceError(RuntimeError):
    """A backend could not do what was asked (no board, a bad overlay, a transfer refused)."""


@dataclass(frozen=True)
class TransferState:
    """Progress of the two stream transfers (for time-out reports).

    ``sent`` / ``received``: beats transferred so far out of ``to_send`` / ``to_receive``;
    ``extra``: backend-specific status words (on the board: both DMA channels' status
    registers), by name.
    """

    sent: int
    to_send: int
    received: int
    to_receive: int
    extra: dict[str, int | str] = field(default_factory=dict)


class Device(abc.ABC):
    """An accelerator behind AXI4-Lite registers and two 64-bit AXI4-Stream transfers."""

    #: short backend name for messages and reports ("reference", "sim", "pynq")
    backend: str = "device"

    # -- registers ---------------------------------------------------------------------------

    @abc.abstractmethod
    def _read_word(self, offset: int) -> int:
        """The 32-bit word at byte ``offset`` of the register window."""

    @abc.abstractmethod
    def _write_word(self, offset: int, value: int) -> None:
        """Write the 32-bit ``value`` at byte ``offset`` of the register window."""

    def read(self, register: str) -> int:
        """The whole 32-bit word of ``register`` (a name of :data:`REGMAP`)."""
        return int(self._read_word(REGMAP.offset(register))) & 0xFFFF_FFFF

    def read_field(self, register: str, field_name: str) -> int:
        """One field of ``register``."""
        return REGMAP.field(register, field_name).extract(self.read(register))

    def write(self, register: str, **fields: int) -> None:
        """Write ``register`` with the named fields set and every other bit zero (so a WO or
        W1C field not named is not triggered)."""
        reg, word = REGMAP[register], 0
        for name, value in fields.items():
            word = reg.field(name).insert(word, int(value))
        self._write_word(reg.offset, word)

    def read_counter(self, name: str) -> int:
        """A 64-bit counter (``BUSY_CYCLES``, ``MACS_ISSUED``, ...): low word first, which
        latches the high word."""
        low = self.read(f"{name}_LO")
        return (self.read(f"{name}_HI") << 32) | low

    # -- streams -----------------------------------------------------------------------------

    @abc.abstractmethod
    def start_transfers(self, send: np.ndarray, receive_beats: int) -> None:
        """Arm an output transfer of exactly ``receive_beats`` beats (0: none), then start
        sending ``send`` (uint64 beats, ``TLAST`` on the last one). Raises
        :class:`DeviceError` when a transfer is still in progress or too large for the
        backend."""

    @abc.abstractmethod
    def transfers_done(self) -> bool:
        """True when the input has been sent whole and the armed output has arrived whole."""

    @abc.abstractmethod
    def received(self) -> np.ndarray:
        """The beats received by the armed output transfer so far (a copy, uint64)."""

    @abc.abstractmethod
    def transfer_state(self) -> TransferState:
        """Progress of both transfers, for a time-out report."""

    @abc.abstractmethod
    def abort_transfers(self) -> None:
        """Abandon both transfers (after a hang); the next :meth:`start_transfers` starts
        clean. Call before the accelerator's soft reset."""

    def close(self) -> None:
        """Release the backend's resources (buffers, the simulator); the default has none."""
        return None

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
