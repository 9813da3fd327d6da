"""A stand-in ``pynq.Device`` for running PYNQ's real drivers off the board.

Runs in the board venv (``build/venv-board``: pynq + NumPy 1.26), never in the development venv;
imported by ``board_checks.py``. :class:`StandInBoard` is a ``pynq.Device`` with the
``REGISTER_RW`` capability (``read_registers`` / ``write_registers``) and ``allocate`` /
``flush`` / ``invalidate``, as PYNQ's own tests build their mock devices. Its address space:

* the accelerator's register window at :data:`ACCEL_BASE`, forwarded word for word to a
  ttaccel :class:`~ttaccel.host.device.Device` (the simulated board: the real RTL in Verilator;
  or the reference backend). Every write is logged in :attr:`StandInBoard.accel_writes`;
* an AXI DMA in simple mode at :data:`DMA_BASE`, emulated after Xilinx PG021 closely enough for
  ``pynq.lib.dma.DMA`` to run unchanged: ``DMACR`` (run/stop, soft reset), ``DMASR`` (halted,
  idle, the three error flags, IOC, write 1 to clear), ``SA``/``DA`` (+ ``_MSB``) and
  ``LENGTH``; writing ``LENGTH`` starts a channel. S2MM must be armed first: starting MM2S
  hands its bytes and the armed S2MM length (0 when none is armed: a run without output) to
  the backend's ``start_transfers``; arming S2MM while that run is in flight is recorded in
  :attr:`StandInBoard.violations` (on silicon the engine's output may have stalled the
  input). Reading a ``DMASR`` polls the backend (which advances simulated time), and a
  finished S2MM writes the output beats to "DDR".

Memory: each ``allocate`` returns a real ``pynq.buffer.PynqBuffer`` at a fake physical address.
For a cacheable buffer the DMA sees a separate "DDR" copy that only ``flush`` (CPU -> DDR) and
``invalidate`` (DDR -> CPU) synchronise, so a missing flush sends stale data and a missing
invalidate returns stale output; a non-cacheable buffer is its own DDR.
"""

from __future__ import annotations

import numpy as np
import pynq
from pynq.buffer import PynqBuffer

from ttaccel.host.pynq_board import DMA_REGISTERS, DMA_VLNV
from ttaccel.spec.regmap import ADDRESS_SPACE, IP_VLNV

ACCEL_BASE = 0x4000_0000
DMA_BASE = 0x4040_0000
WINDOW = 0x1_0000
MEMORY_BASE = 0x1000_0000

_OFFSET_NAMES = {offset: name for name, offset in DMA_REGISTERS.items()}

# PG021 bits (written out here rather than imported, so the emulation checks the backend).
RS, RESET = 0x1, 0x4
HALTED, IDLE, INT_ERR, SLV_ERR, DEC_ERR, IOC_IRQ = 0x1, 0x2, 0x10, 0x20, 0x40, 0x1000
IRQ_BITS = 0x7000


def dma_parameters(length_width: int = 26) -> dict[str, str]:
    """The AXI DMA parameters as PYNQ's ``ip_dict`` carries them (simple mode, 64 bits)."""
    return {
        "c_include_sg": "0",
        "c_include_mm2s": "1",
        "c_include_s2mm": "1",
        "c_include_mm2s_dre": "0",
        "c_include_s2mm_dre": "0",
        "c_micro_dma": "0",
        "c_m_axi_mm2s_data_width": "64",
        "c_m_axis_mm2s_tdata_width": "64",
        "c_m_axi_s2mm_data_width": "64",
        "c_s_axis_s2mm_tdata_width": "64",
        "c_sg_length_width": str(length_width),
    }


class _Channel:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.control = 0
        self.status = HALTED
        self.address = 0
        self.length = 0
        self.active = False


class StandInBoard(pynq.Device):
    """The stand-in board around ``accelerator`` (a ttaccel Device); see the module docstring."""

    def __init__(self, accelerator) -> None:
        super().__init__("ttaccel-standin")
        self.capabilities = {"REGISTER_RW": True}
        self.accelerator = accelerator
        self.accel_writes: list[tuple[int, int]] = []
        self.violations: list[str] = []
        self.flushes: list[int] = []
        self.invalidates: list[int] = []
        self.allocations: list[int] = []
        self.mm2s, self.s2mm = _Channel(), _Channel()
        self._host: dict[int, PynqBuffer] = {}
        self._ddr: dict[int, np.ndarray] = {}
        self._next_address = MEMORY_BASE
        self._running = False  # the backend has a run's transfers in flight
        self._receive_only = False  # ... and they are an S2MM transfer without MM2S
        self._prefix = np.empty(0, np.uint64)  # beats S2MM took before MM2S started

    def ip_dict(self, length_width: int = 26) -> dict[str, dict]:
        """PYNQ IP descriptions of the accelerator and the DMA on this device."""
        return {
            "accel": {
                "type": IP_VLNV, "phys_addr": ACCEL_BASE, "addr_range": WINDOW,
                "device": self, "parameters": {}, "interrupts": {}, "fullpath": "accel",
            },
            "dma": {
                "type": DMA_VLNV, "phys_addr": DMA_BASE, "addr_range": WINDOW, "device": self,
                "parameters": dma_parameters(length_width), "interrupts": {}, "fullpath": "dma",
            },
        }  # fmt: skip

    # -- memory ------------------------------------------------------------------------------

    def allocate(self, shape, dtype, cacheable=False, **kwargs):
        bo = len(self.allocations)
        buffer = PynqBuffer(
            shape, dtype, device=self, device_address=self._next_address, bo=bo,
            coherent=not cacheable,
        )  # fmt: skip
        buffer[...] = 0
        raw = np.asarray(buffer).reshape(-1).view(np.uint8)
        self._host[bo] = buffer
        self._ddr[bo] = raw.copy() if cacheable else raw
        self.allocations.append(buffer.nbytes)
        self._next_address += -(-buffer.nbytes // 4096) * 4096
        return buffer

    def _host_bytes(self, bo: int) -> np.ndarray:
        return np.asarray(self._host[bo]).reshape(-1).view(np.uint8)

    def flush(self, bo, offset, vaddr, length):
        self.flushes.append(bo)
        self._ddr[bo][offset : offset + length] = self._host_bytes(bo)[offset : offset + length]

    def invalidate(self, bo, offset, vaddr, length):
        self.invalidates.append(bo)
        self._host_bytes(bo)[offset : offset + length] = self._ddr[bo][offset : offset + length]

    def _ddr_at(self, address: int, nbytes: int) -> np.ndarray | None:
        """The DDR bytes [address, address + nbytes) of one allocation, or None."""
        for bo, buffer in self._host.items():
            start = buffer.physical_address
            if start <= address and address + nbytes <= start + buffer.nbytes:
                return self._ddr[bo][address - start : address - start + nbytes]
        return None

    # -- registers ---------------------------------------------------------------------------

    def read_registers(self, address, length):
        if length != 4:
            raise AssertionError(f"register reads are 32-bit words, not {length} bytes")
        return int(self._read(address)).to_bytes(4, "little")

    def write_registers(self, address, data):
        data = bytes(data)
        for i in range(0, len(data), 4):
            self._write(address + i, int.from_bytes(data[i : i + 4], "little"))

    def _read(self, address: int) -> int:
        if ACCEL_BASE <= address < ACCEL_BASE + WINDOW:
            offset = address - ACCEL_BASE
            return self.accelerator._read_word(offset) if offset < ADDRESS_SPACE else 0
        if DMA_BASE <= address < DMA_BASE + WINDOW:
            return self._dma_read(_OFFSET_NAMES.get(address - DMA_BASE))
        raise AssertionError(f"read of unmapped address {address:#x}")

    def _write(self, address: int, value: int) -> None:
        if ACCEL_BASE <= address < ACCEL_BASE + WINDOW:
            self.accel_writes.append((address - ACCEL_BASE, value))
            self.accelerator._write_word(address - ACCEL_BASE, value)
        elif DMA_BASE <= address < DMA_BASE + WINDOW:
            self._dma_write(_OFFSET_NAMES.get(address - DMA_BASE), value)
        else:
            raise AssertionError(f"write of unmapped address {address:#x}")

    # -- the AXI DMA -------------------------------------------------------------------------

    def _channel(self, name: str) -> _Channel:
        return self.mm2s if name.startswith("MM2S") else self.s2mm

    def _dma_read(self, name: str | None) -> int:
        if name is None:
            return 0
        channel = self._channel(name)
        if name.endswith("DMACR"):
            return channel.control
        if name.endswith("DMASR"):
            self._advance()
            return channel.status
        if name.endswith("MSB"):
            return 0
        if name.endswith("SA") or name.endswith("DA"):
            return channel.address
        return channel.length  # LENGTH: S2MM's holds the bytes received once idle

    def _dma_write(self, name: str | None, value: int) -> None:
        if name is None:
            self.violations.append(f"write {value:#x} to an unmapped DMA register")
            return
        channel = self._channel(name)
        if name.endswith("DMACR"):
            if value & RESET:  # either channel's reset resets the whole DMA
                self.mm2s.reset()
                self.s2mm.reset()
                self._abandon()
                return
            channel.control = value
            if value & RS:
                channel.status &= ~HALTED
            else:
                channel.status |= HALTED
                # A stopped DMA moves no more data: drop the backend's transfer even when this
                # channel had finished (S2MM full while the engine still offers beats).
                channel.active = False
                self._abandon()
        elif name.endswith("DMASR"):
            channel.status &= ~(value & IRQ_BITS)
        elif name.endswith("MSB"):
            if value:
                self.violations.append(f"{name} {value:#x}: addresses are 32-bit here")
        elif name.endswith("SA") or name.endswith("DA"):
            channel.address = value
        else:
            self._start(name[:4], channel, value)

    def _abandon(self) -> None:
        # The run in flight is dropped on both sides (the DMA no longer moves data).
        self.accelerator.abort_transfers()
        self._running = self._receive_only = False
        self._prefix = np.empty(0, np.uint64)

    def _start(self, which: str, channel: _Channel, nbytes: int) -> None:
        if channel.status & HALTED:
            self.violations.append(f"{which} LENGTH written while the channel is halted")
            return
        if channel.active:
            self.violations.append(f"{which} LENGTH written during a transfer")
            return
        channel.length = nbytes
        if nbytes == 0 or nbytes % 8:
            channel.status |= INT_ERR | HALTED
            return
        if self._ddr_at(channel.address, nbytes) is None:
            channel.status |= DEC_ERR | HALTED
            return
        channel.status &= ~IDLE
        channel.active = True
        if which == "MM2S":
            beats = self._ddr_at(channel.address, nbytes).view(np.uint64).copy()
            receive = self.s2mm.length // 8 if self.s2mm.active else 0
            if self._receive_only:
                # S2MM was already taking beats on its own: what it took stays at the start of
                # its buffer (a real S2MM does not restart), the rest comes with this run.
                self._prefix = self.accelerator.received()
                self.accelerator.abort_transfers()
                receive -= self._prefix.size
                self._receive_only = False
            self.accelerator.start_transfers(beats, receive)
            self._running = True
        elif self._running:
            self.violations.append("S2MM armed after MM2S had started")
        else:
            # S2MM alone (e.g. the driver draining a beat left offered after a soft reset):
            # it takes whatever the accelerator offers until MM2S starts, if it does.
            self.accelerator.start_transfers(np.empty(0, np.uint64), nbytes // 8)
            self._receive_only, self._running = True, True

    def _advance(self) -> None:
        """Poll the backend (advancing simulated time) and retire finished channels."""
        if not self._running:
            return  # nothing flows before MM2S starts (an armed S2MM waits for data)
        self.accelerator.transfers_done()
        state = self.accelerator.transfer_state()
        if self.mm2s.active and state.sent == state.to_send:
            self._finish(self.mm2s)
        if self.s2mm.active and state.to_receive and state.received == state.to_receive:
            out = np.concatenate([self._prefix, self.accelerator.received()]).astype(np.uint64)
            self._prefix = np.empty(0, np.uint64)
            self._ddr_at(self.s2mm.address, out.nbytes)[:] = out.view(np.uint8)
            self.s2mm.length = out.nbytes
            self._finish(self.s2mm)
        self._running = self.mm2s.active or self.s2mm.active

    @staticmethod
    def _finish(channel: _Channel) -> None:
        channel.active = False
        channel.status |= IDLE | IOC_IRQ


class OverlayStandIn:
    """What ``pynq.Overlay`` does with a parsed design, minus the bitstream and the ``.hwh``
    parse: PYNQ's own ``_assign_drivers`` picks each IP's driver from PYNQ's registry by VLNV
    (so a missing or wrong ``bindto`` shows), and the drivers become attributes by name."""

    def __init__(self, board: StandInBoard, bitfile: str, download: bool = True) -> None:
        import importlib

        from pynq.overlay import _assign_drivers

        importlib.import_module("pynq.lib")  # as Overlay._register_drivers: PYNQ's own drivers
        self.bitfile, self.download = bitfile, download
        description = {"ip": board.ip_dict(), "hierarchies": {}}
        _assign_drivers(description, False, board)
        self.ip_dict = description["ip"]
        for name, details in self.ip_dict.items():
            setattr(self, name, details["driver"](details))
