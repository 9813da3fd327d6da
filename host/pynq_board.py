"""The ``pynq`` backend: the accelerator on a PYNQ-Z2 through PYNQ's drivers.

The overlay is a bitstream and its hardware handoff with one base name (``ttaccel.bit`` +
``ttaccel.hwh``, written by the Vivado scripts of :mod:`ttaccel.hw.vivado`). Before PYNQ is
touched, :func:`read_hwh` checks the ``.hwh``: it must contain exactly one accelerator IP with
the VLNV :data:`~ttaccel.spec.regmap.IP_VLNV` (found by VLNV, whatever its instance name; the
script names it ``accel``) and one AXI DMA (``xilinx.com:ip:axi_dma:7.1``, instance ``dma``) in
simple mode with 64-bit memory-mapped and stream sides, and every high-performance port the PS7
enables must be 64 bits wide (the PYNQ-Z2 boot image fixes the HP width; PYNQ reconfigures it
only on Zynq UltraScale+).

Then ``pynq.Overlay`` loads the bitstream; the accelerator gets the driver
:func:`accelerator_driver` (a ``pynq.DefaultIP`` bound to the VLNV), the DMA PYNQ's own
``pynq.lib.dma.DMA``. ``pynq`` is imported only here, inside :class:`PynqDevice` and
:func:`accelerator_driver`: importing :mod:`ttaccel.host` needs NumPy alone.

Transfers (see :class:`~.device.Device`)
    Two ``pynq.allocate`` buffers of uint64 beats, one per direction, allocated at the first
    transfer and reused; a transfer that needs more than a buffer holds frees it and allocates
    one of whole 4 KiB pages, at least twice the old size. :meth:`PynqDevice.close` frees both.
    The S2MM channel is armed *before* the MM2S transfer starts (the engine's output
    back-pressure would otherwise stall the input). PYNQ's MM2S ``transfer`` flushes the send
    buffer from the CPU cache; this backend invalidates the receive buffer after S2MM reports
    idle (both are no-ops for the default non-cacheable buffers, ``cacheable=False``).

    Nothing here waits without a bound: :meth:`PynqDevice.transfers_done` reads both channels'
    status registers once per call (the driver polls it against its deadline) and calls a
    channel's ``wait()`` only after the channel has reported idle, when it returns at once.

Length limit
    In simple mode the AXI DMA's ``LENGTH`` register is ``c_sg_length_width`` bits wide, so one
    transfer moves at most ``2**c_sg_length_width - 1`` bytes (Vivado's default width 14 is
    16 KiB; the script sets 26, 64 MiB). A larger transfer is refused with
    :class:`~.device.DeviceError`; it is not split, because MM2S ends every simple-mode
    transfer with ``TLAST`` and the engine takes ``TLAST`` as the end of its input (error 5).
"""

from __future__ import annotations

import functools
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..spec.regmap import IP_VLNV
from .device import Device, DeviceError, TransferState

__all__ = [
    "DMA_REGISTERS",
    "DMA_VLNV",
    "STREAM_BITS",
    "OverlayHardware",
    "PynqDevice",
    "accelerator_driver",
    "overlay_files",
    "read_hwh",
]

DMA_VLNV = "xilinx.com:ip:axi_dma:7.1"
"""The AXI DMA the overlay uses (``pynq.lib.dma.DMA`` binds to it)."""
STREAM_BITS = 64
"""Width of the DMA's memory-mapped and stream data and of the PS7's HP port, in bits."""
LENGTH_WIDTH_ADVISED = 26
"""``c_sg_length_width`` the Vivado script sets: 64 MiB - 1 per transfer."""

DMA_REGISTERS = {
    "MM2S_DMACR": 0x00,
    "MM2S_DMASR": 0x04,
    "MM2S_SA": 0x18,
    "MM2S_SA_MSB": 0x1C,
    "MM2S_LENGTH": 0x28,
    "S2MM_DMACR": 0x30,
    "S2MM_DMASR": 0x34,
    "S2MM_DA": 0x48,
    "S2MM_DA_MSB": 0x4C,
    "S2MM_LENGTH": 0x58,
}
"""Byte offsets of the AXI DMA's simple-mode registers (Xilinx PG021)."""

# DMACR / DMASR bits (PG021): run/stop and soft reset; halted, idle and the error flags.
DMACR_RS, DMACR_RESET = 1 << 0, 1 << 2
DMASR_HALTED, DMASR_IDLE = 1 << 0, 1 << 1
DMASR_ERRORS = {4: "DMAIntErr", 5: "DMASlvErr", 6: "DMADecErr"}
_ERROR_MASK = sum(1 << bit for bit in DMASR_ERRORS)

_PAGE_BEATS = 4096 // 8
_HALT_TIMEOUT_S = 0.2
_RESET_TIMEOUT_S = 1.0


def _words(word: int) -> str:
    """A DMASR word with its set flags spelled out, for error messages."""
    names = ["halted"] if word & DMASR_HALTED else ["running"]
    names += ["idle"] if word & DMASR_IDLE else []
    names += [name for bit, name in DMASR_ERRORS.items() if word >> bit & 1]
    return f"{word:#010x} ({', '.join(names)})"


# -- the overlay's description ---------------------------------------------------------------


@dataclass(frozen=True)
class OverlayHardware:
    """What the backend needs to know about an overlay's block design.

    ``accel_name`` / ``dma_name``: the IP blocks' names in PYNQ's ``ip_dict`` (the block
    design's hierarchical path without the leading ``/``); ``length_width``: the DMA's
    ``c_sg_length_width``; ``hp_widths``: the data width of each high-performance port the
    PS7 enables (empty when the description has no PS7, as an ``ip_dict`` does).
    """

    accel_name: str
    dma_name: str
    length_width: int
    hp_widths: dict[str, int] = field(default_factory=dict)

    @property
    def max_transfer_bytes(self) -> int:
        """The largest single DMA transfer, ``2**length_width - 1`` bytes."""
        return (1 << self.length_width) - 1

    @classmethod
    def from_ip_dict(
        cls, ip_dict: Mapping[str, Mapping], source: str = "ip_dict"
    ) -> OverlayHardware:
        """The hardware described by PYNQ IP descriptions (``Overlay.ip_dict``: name ->
        ``{"type": VLNV, "parameters": {...}, ...}``); checks as :func:`read_hwh` does."""
        modules = [
            (name, str(entry.get("type", "")), dict(entry.get("parameters", {})))
            for name, entry in ip_dict.items()
        ]
        return _hardware_from_modules(modules, source)


def overlay_files(overlay: str | Path) -> tuple[Path, Path]:
    """The ``.bit`` and ``.hwh`` of ``overlay`` (either file's path, or the path without a
    suffix). Raises :class:`~.device.DeviceError` naming the file that is missing."""
    path = Path(overlay)
    base = path.with_suffix("") if path.suffix in (".bit", ".hwh") else path
    bit, hwh = base.with_suffix(".bit"), base.with_suffix(".hwh")
    for file, what in ((bit, "bitstream"), (hwh, "hardware handoff")):
        if not file.is_file():
            raise DeviceError(
                f"overlay {overlay}: the {what} {file} does not exist (a PYNQ overlay is "
                f"{bit.name} and {hwh.name} side by side; `make synth` writes the Vivado "
                f"scripts that build both, see docs/board.md)"
            )
    return bit, hwh


def read_hwh(hwh: str | Path) -> OverlayHardware:
    """Parse and check a Vivado hardware handoff (see the module docstring).

    Raises :class:`~.device.DeviceError` naming the file and what was expected and found:
    not XML, no or several accelerator IPs (a different version of ours is named as such),
    no or several AXI DMAs, a DMA in scatter-gather mode or without both channels, a data
    width other than 64 bits, a narrower HP port.
    """
    hwh = Path(hwh)
    try:
        root = ET.parse(hwh).getroot()
    except (ET.ParseError, OSError) as error:
        raise DeviceError(f"hardware handoff {hwh}: cannot be read as XML ({error})") from None
    modules = []
    for module in root.iter("MODULE"):
        name = (module.get("FULLNAME") or module.get("INSTANCE") or "").lstrip("/")
        params = {
            p.get("NAME", ""): p.get("VALUE", "")
            for p in module.iter("PARAMETER")
            if p.get("NAME") is not None
        }
        modules.append((name, module.get("VLNV", ""), params))
    return _hardware_from_modules(modules, f"hardware handoff {hwh}")


def _upper(params: Mapping[str, object]) -> dict[str, str]:
    # Vivado writes some parameter names in upper case, PYNQ's ip_dict in lower case.
    return {key.upper(): str(value) for key, value in params.items()}


def _int_param(params: dict[str, str], name: str, where: str) -> int:
    if name not in params:
        raise DeviceError(f"{where}: parameter {name.lower()} is missing")
    try:
        return int(params[name], 0)
    except ValueError:
        raise DeviceError(
            f"{where}: parameter {name.lower()} is {params[name]!r}, not an integer"
        ) from None


def _hardware_from_modules(modules: list[tuple[str, str, dict]], source: str) -> OverlayHardware:
    vendor_lib_name = IP_VLNV.rsplit(":", 1)[0]
    accels = [name for name, vlnv, _ in modules if vlnv == IP_VLNV]
    if len(accels) != 1:
        others = sorted(
            f"{name} ({vlnv})"
            for name, vlnv, _ in modules
            if vlnv.rsplit(":", 1)[0] == vendor_lib_name and vlnv != IP_VLNV
        )
        if others and not accels:
            raise DeviceError(
                f"{source}: the accelerator IP is {', '.join(others)}, this driver binds to "
                f"{IP_VLNV}: rebuild the overlay from this ttaccel version or install the "
                f"ttaccel that generated it"
            )
        found = sorted({vlnv for _, vlnv, _ in modules if vlnv})
        raise DeviceError(
            f"{source}: expected exactly one IP with VLNV {IP_VLNV} (the ttaccel "
            f"accelerator), found {len(accels)} {accels if accels else ''}; the block design's "
            f"IP are {found}"
        )
    dmas = [(name, params) for name, vlnv, params in modules if vlnv == DMA_VLNV]
    if len(dmas) != 1:
        raise DeviceError(
            f"{source}: expected exactly one AXI DMA ({DMA_VLNV}), found "
            f"{[name for name, _ in dmas]}"
        )
    dma_name, dma_params = dmas[0][0], _upper(dmas[0][1])
    where = f"{source}: AXI DMA {dma_name}"
    if dma_params.get("C_INCLUDE_SG", "0") not in ("0", ""):
        raise DeviceError(f"{where}: c_include_sg must be 0 (simple mode), not 1")
    for channel in ("MM2S", "S2MM"):
        if _int_param(dma_params, f"C_INCLUDE_{channel}", where) != 1:
            raise DeviceError(f"{where}: c_include_{channel.lower()} must be 1 (both channels)")
    for width in (
        "C_M_AXI_MM2S_DATA_WIDTH",
        "C_M_AXIS_MM2S_TDATA_WIDTH",
        "C_M_AXI_S2MM_DATA_WIDTH",
        "C_S_AXIS_S2MM_TDATA_WIDTH",
    ):
        found = _int_param(dma_params, width, where)
        if found != STREAM_BITS:
            raise DeviceError(f"{where}: {width.lower()} must be {STREAM_BITS}, not {found}")
    length_width = _int_param(dma_params, "C_SG_LENGTH_WIDTH", where)
    if not 8 <= length_width <= LENGTH_WIDTH_ADVISED:
        raise DeviceError(f"{where}: c_sg_length_width must be in [8, 26], not {length_width}")
    hp_widths = {}
    for _, vlnv, params in modules:
        if ":processing_system7:" not in vlnv:
            continue
        upper = _upper(params)
        for port in range(4):
            used = upper.get(f"C_USE_S_AXI_HP{port}", upper.get(f"PCW_USE_S_AXI_HP{port}", "0"))
            width = upper.get(
                f"C_S_AXI_HP{port}_DATA_WIDTH", upper.get(f"PCW_S_AXI_HP{port}_DATA_WIDTH")
            )
            if used == "1" and width is not None:
                hp_widths[f"S_AXI_HP{port}"] = int(width, 0)
    narrow = {port: width for port, width in hp_widths.items() if width != STREAM_BITS}
    if narrow:
        raise DeviceError(
            f"{source}: the PS7's HP ports must be {STREAM_BITS} bits wide for the DMA, found "
            f"{narrow} (set PCW_S_AXI_HP0_DATA_WIDTH 64 in the block design)"
        )
    return OverlayHardware(accels[0], dma_name, length_width, hp_widths)


# -- PYNQ ------------------------------------------------------------------------------------


def _import_pynq():
    try:
        import pynq
    except ImportError as error:
        raise DeviceError(
            f"the pynq backend needs the pynq package (`pip install ttaccel[board]` on the "
            f"board's PYNQ image): {error}"
        ) from None
    return pynq


@functools.cache
def accelerator_driver() -> type:
    """The ``pynq.DefaultIP`` subclass bound to :data:`~ttaccel.spec.regmap.IP_VLNV`
    (defined, and so registered with PYNQ, at the first call; imports pynq)."""
    pynq = _import_pynq()

    class TtaccelIP(pynq.DefaultIP):
        """PYNQ's driver for the ttaccel accelerator: its AXI4-Lite register window
        (``read`` / ``write`` of 32-bit words at byte offsets of :data:`REGMAP`)."""

        bindto = [IP_VLNV]  # noqa: RUF012 (PYNQ's registration reads a list)

    return TtaccelIP


def _lookup(overlay, name: str):
    # ip_dict names are hierarchical paths; the overlay exposes them as nested attributes.
    item = overlay
    for part in name.split("/"):
        item = getattr(item, part)
    return item


class PynqDevice(Device):
    """The accelerator of a loaded PYNQ overlay (see the module docstring).

    ``overlay``: path of the ``.bit`` (its ``.hwh`` beside it), or of either file without
    suffix; ``download``: program the FPGA (False: the bitstream is already loaded);
    ``cacheable``: allocate CPU-cached transfer buffers (flushed and invalidated around each
    transfer) instead of PYNQ's default uncached ones. Raises :class:`~.device.DeviceError`
    for a missing or mismatched overlay file, when pynq is not installed and when pynq finds
    no device (not on the board, or not root).
    """

    backend = "pynq"

    def __init__(
        self, overlay: str | Path, *, download: bool = True, cacheable: bool = False
    ) -> None:
        bit, hwh = overlay_files(overlay)
        hardware = read_hwh(hwh)
        pynq = _import_pynq()
        driver = accelerator_driver()
        try:
            loaded = pynq.Overlay(str(bit), download=download)
        except RuntimeError as error:  # "No Devices Found" off the board or without root
            raise DeviceError(
                f"pynq could not load the overlay {bit}: {error} (run on the PYNQ-Z2, as root)"
            ) from error
        self._attach(
            _lookup(loaded, hardware.accel_name),
            _lookup(loaded, hardware.dma_name),
            hardware,
            driver,
            cacheable,
        )
        self.overlay = loaded

    @classmethod
    def from_ip_dict(cls, ip_dict: Mapping[str, Mapping], *, cacheable: bool = False) -> PynqDevice:
        """The backend over PYNQ IP descriptions without an ``Overlay`` (``ip_dict`` as in
        ``Overlay.ip_dict``, each entry with ``"device"``, ``"phys_addr"``, ``"addr_range"``,
        ``"type"``, ``"parameters"`` and ``"interrupts"``): the drivers are made as
        ``Overlay`` makes them. For a design loaded by other means, and for tests against a
        stand-in ``pynq.Device``."""
        hardware = OverlayHardware.from_ip_dict(ip_dict)
        driver = accelerator_driver()
        from pynq.lib.dma import DMA

        self = cls.__new__(cls)
        self._attach(
            driver(dict(ip_dict[hardware.accel_name])),
            DMA(dict(ip_dict[hardware.dma_name])),
            hardware,
            driver,
            cacheable,
        )
        self.overlay = None
        return self

    def _attach(self, accel, dma, hardware: OverlayHardware, driver: type, cacheable: bool):
        if not isinstance(accel, driver):
            raise DeviceError(
                f"overlay IP {hardware.accel_name} got the driver {type(accel).__name__}, not "
                f"ttaccel's {driver.__name__} (is another driver bound to {IP_VLNV}?)"
            )
        from pynq.lib.dma import DMA

        if not isinstance(dma, DMA):
            raise DeviceError(
                f"overlay IP {hardware.dma_name} got the driver {type(dma).__name__}, not "
                f"pynq.lib.dma.DMA"
            )
        if dma.sendchannel is None or dma.recvchannel is None:
            raise DeviceError(f"AXI DMA {hardware.dma_name} lacks its MM2S or S2MM channel")
        self.hardware = hardware
        self._accel, self._dma = accel, dma
        self._cacheable = bool(cacheable)
        self._buffers: dict[str, object] = {}
        self._to_send = self._to_receive = 0
        self._armed = False
        self._output = np.zeros(0, dtype=np.uint64)

    # -- registers ---------------------------------------------------------------------------

    def _read_word(self, offset: int) -> int:
        return int(self._accel.read(offset))

    def _write_word(self, offset: int, value: int) -> None:
        self._accel.write(offset, int(value) & 0xFFFF_FFFF)

    def _dma_read(self, name: str) -> int:
        return int(self._dma.mmio.read(DMA_REGISTERS[name]))

    def _dma_write(self, name: str, value: int) -> None:
        self._dma.mmio.write(DMA_REGISTERS[name], int(value))

    # -- buffers -----------------------------------------------------------------------------

    def _buffer(self, kind: str, beats: int):
        """The ``kind`` ("send"/"receive") buffer, holding at least ``beats`` beats."""
        buffer = self._buffers.get(kind)
        if buffer is not None and buffer.shape[0] >= beats:
            return buffer
        size = -(-max(beats, 1) // _PAGE_BEATS) * _PAGE_BEATS
        if buffer is not None:
            size = max(size, 2 * buffer.shape[0])  # grow geometrically: few re-allocations
            self._free(kind)
        pynq = _import_pynq()
        buffer = pynq.allocate(
            shape=(size,), dtype=np.uint64, target=self._dma.device, cacheable=self._cacheable
        )
        self._buffers[kind] = buffer
        return buffer

    def _free(self, kind: str) -> None:
        buffer = self._buffers.pop(kind, None)
        if buffer is not None:
            buffer.freebuffer()  # PynqBuffer.close() is a deprecated no-op in pynq 3.x/4.x

    def close(self) -> None:
        """Free both transfer buffers (idempotent); the overlay stays loaded."""
        for kind in list(self._buffers):
            self._free(kind)

    # -- streams -----------------------------------------------------------------------------

    def _check_length(self, what: str, nbytes: int) -> None:
        limit = self.hardware.max_transfer_bytes
        if nbytes > limit:
            raise DeviceError(
                f"the {what} transfer of {nbytes} bytes exceeds the AXI DMA's limit of {limit} "
                f"bytes (c_sg_length_width={self.hardware.length_width}): rebuild the overlay "
                f"with c_sg_length_width={LENGTH_WIDTH_ADVISED} (64 MiB; hw/vivado.py sets "
                f"it); this backend does not split transfers (MM2S would end each part with "
                f"TLAST)"
            )

    def start_transfers(self, send: np.ndarray, receive_beats: int) -> None:
        """See :meth:`Device.start_transfers`; also raises :class:`DeviceError` for an empty
        input, a transfer above :attr:`OverlayHardware.max_transfer_bytes` and a DMA channel
        that is halted or in error (call :meth:`abort_transfers`)."""
        beats = np.asarray(send)
        if beats.dtype != np.uint64:
            raise DeviceError(f"send must be uint64 beats, not {beats.dtype}")
        beats = beats.reshape(-1)
        receive_beats = int(receive_beats)
        if self._armed and not self.transfers_done():
            raise DeviceError("a transfer is still in progress: abort_transfers() first")
        if beats.size == 0 and receive_beats == 0:
            raise DeviceError("a transfer needs beats to send or to receive; both are empty")
        if receive_beats < 0:
            raise DeviceError(f"receive_beats must be >= 0, not {receive_beats}")
        self._check_length("input (MM2S)", beats.size * 8)
        self._check_length("output (S2MM)", receive_beats * 8)
        for channel in ("MM2S", "S2MM"):
            status = self._dma_read(f"{channel}_DMASR")
            if status & (DMASR_HALTED | _ERROR_MASK):
                raise DeviceError(
                    f"AXI DMA {channel} channel is not ready: DMASR {_words(status)}; "
                    f"abort_transfers() restarts it"
                )
        if beats.size:
            send_buffer = self._buffer("send", beats.size)
            send_buffer[: beats.size] = beats
        self._output = np.zeros(0, dtype=np.uint64)
        self._to_send, self._to_receive = int(beats.size), receive_beats
        try:
            if receive_beats:
                self._dma.recvchannel.transfer(
                    self._buffer("receive", receive_beats), nbytes=receive_beats * 8
                )
            if beats.size:  # a receive-only transfer drains the output (Accelerator)
                self._dma.sendchannel.transfer(send_buffer, nbytes=beats.size * 8)  # flushes
        except (RuntimeError, ValueError) as error:
            raise DeviceError(
                f"AXI DMA {self.hardware.dma_name} refused the transfer: {error}"
            ) from error
        self._armed = True

    def _statuses(self) -> tuple[int, int]:
        return self._dma_read("MM2S_DMASR"), self._dma_read("S2MM_DMASR")

    def transfers_done(self) -> bool:
        """See :meth:`Device.transfers_done`: one read of each channel's status register.
        Raises :class:`DeviceError` when a channel reports an error, or when S2MM went idle
        with fewer bytes than armed (the engine's ``TLAST`` came early)."""
        if not self._armed:
            return True
        mm2s, s2mm = self._statuses()
        if (mm2s | s2mm) & _ERROR_MASK:
            raise DeviceError(
                f"AXI DMA {self.hardware.dma_name} error: MM2S_DMASR {_words(mm2s)}, "
                f"S2MM_DMASR {_words(s2mm)}; abort_transfers() and soft-reset the accelerator"
            )
        sent = mm2s & DMASR_IDLE or not self._to_send
        if not (sent and (s2mm & DMASR_IDLE or not self._to_receive)):
            return False
        # Both idle: wait() returns at once (reads the byte count, invalidates S2MM's buffer).
        if self._to_send:
            self._dma.sendchannel.wait()
        self._armed = False
        if self._to_receive:
            receiver = self._dma.recvchannel
            receiver.wait()
            if receiver.transferred != self._to_receive * 8:
                raise DeviceError(
                    f"AXI DMA S2MM received {receiver.transferred} bytes, "
                    f"{self._to_receive * 8} were armed (the engine ended its output early)"
                )
            self._output = np.array(self._buffers["receive"][: self._to_receive])
        return True

    def received(self) -> np.ndarray:
        """The output beats once :meth:`transfers_done` has returned True (a copy); an empty
        array before: the DMA in simple mode reports no partial progress."""
        return self._output.copy()

    def transfer_state(self) -> TransferState:
        """Whole transfers only (simple mode has no progress count): ``sent`` / ``received``
        are the full counts once a channel is idle, else 0. ``extra``: ``MM2S_DMASR``,
        ``S2MM_DMASR``, both ``LENGTH`` registers and the channels' ``transferred`` bytes."""
        mm2s, s2mm = self._statuses()
        done = not self._armed
        extra = {
            "MM2S_DMASR": mm2s,
            "S2MM_DMASR": s2mm,
            "MM2S_LENGTH": self._dma_read("MM2S_LENGTH"),
            "S2MM_LENGTH": self._dma_read("S2MM_LENGTH"),
            "mm2s_transferred": int(self._dma.sendchannel.transferred),
            "s2mm_transferred": int(self._dma.recvchannel.transferred),
        }
        received = 0
        if done or s2mm & DMASR_IDLE:
            received = min(extra["S2MM_LENGTH"] // 8, self._to_receive)
        return TransferState(
            sent=self._to_send if done or mm2s & DMASR_IDLE else 0,
            to_send=self._to_send,
            received=received,
            to_receive=self._to_receive,
            extra=extra,
        )

    def _poll(self, registers: tuple[str, ...], mask: int, want: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            if all(self._dma_read(r) & mask == want for r in registers):
                return True
            if time.monotonic() > deadline:
                return False

    def abort_transfers(self) -> None:
        """Stop both channels (run/stop cleared; if they do not halt within 0.2 s, the DMA's
        soft reset), then start them again; the next transfer starts clean. Raises
        :class:`DeviceError` with both status words when the DMA does not come back."""
        statuses = ("MM2S_DMASR", "S2MM_DMASR")
        self._dma_write("MM2S_DMACR", 0)
        self._dma_write("S2MM_DMACR", 0)
        if not self._poll(statuses, DMASR_HALTED, DMASR_HALTED, _HALT_TIMEOUT_S):
            self._dma_write("MM2S_DMACR", DMACR_RESET)  # resets both channels
            controls = ("MM2S_DMACR", "S2MM_DMACR")
            if not self._poll(controls, DMACR_RESET, 0, _RESET_TIMEOUT_S):
                mm2s, s2mm = self._statuses()
                raise DeviceError(
                    f"AXI DMA {self.hardware.dma_name} did not leave its soft reset within "
                    f"{_RESET_TIMEOUT_S} s: MM2S_DMASR {_words(mm2s)}, S2MM_DMASR {_words(s2mm)}"
                )
        for channel, control in (("MM2S", "MM2S_DMACR"), ("S2MM", "S2MM_DMACR")):
            self._dma_write(control, DMACR_RS)
            if not self._poll((f"{channel}_DMASR",), DMASR_HALTED, 0, _RESET_TIMEOUT_S):
                raise DeviceError(
                    f"AXI DMA {channel} channel did not start: DMASR "
                    f"{_words(self._dma_read(f'{channel}_DMASR'))}"
                )
        # PYNQ's start() sets its own control word and forgets the last transfer.
        self._dma.sendchannel.start()
        self._dma.recvchannel.start()
        self._armed = False
        self._to_send = self._to_receive = 0
        self._output = np.zeros(0, dtype=np.uint64)
