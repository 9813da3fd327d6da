"""The simulated board: :class:`SimDevice` runs the generated RTL (Verilator) behind the
:class:`~.device.Device` interface.

The model of :class:`ttaccel.hw.top.ZynqTop` and a C++ harness (``host/sim_harness.cpp``) are
built into one shared library per configuration by :mod:`.sim_build`; this module only loads
such a library with :mod:`ctypes` and needs nothing but NumPy and the standard library, so it
also runs where Amaranth and Verilator are not installed (e.g. the pynq test environment),
given a library built elsewhere. :meth:`SimDevice.for_config` builds (lazily importing
:mod:`.sim_build`) and loads in one step.

The harness is the rest of the board: the AXI4-Lite manager (every register access is a real
bus transaction of a few cycles) and the AXI DMA (the input transfer drives ``s_axis`` from a
host buffer, ``TLAST`` on its last beat; the output transfer takes ``m_axis`` into a host
buffer of the armed size and, like the DMA's S2MM, ends early on a ``TLAST``). Simulated time
advances only inside calls:

* a read of ``STATUS`` first runs the model until both transfers are complete or
  ``poll_cycles`` cycles have passed, and then, while ``STATUS.busy`` is set, keeps running
  (reading ``STATUS`` over the bus) up to the same quantum, so a driver polling ``STATUS``
  always makes progress and a hung run costs ``poll_cycles`` simulated cycles per poll (it
  shows as the driver's deadline, not as a frozen process). Reads of other registers take
  their bus cycles only, so a register dump after a hang is one snapshot (counters not
  inflated by a quantum per register);
* :meth:`SimDevice.transfers_done` runs until both transfers are complete or ``poll_cycles``
  have passed (so a DMA-status polling loop makes progress too);
* a register write takes the cycles of its bus transaction only;
* :meth:`SimDevice.run` and :meth:`SimDevice.step` run cycles explicitly.

Options: ``seed`` with ``input_idle`` (probability of an idle cycle before each input beat)
and ``output_stall`` (probability of ``TREADY`` low per cycle) randomise both streams;
:meth:`SimDevice.hold_output` holds ``TREADY`` low (hang tests). The harness checks that the
DUT never withdraws ``m_axis_tvalid`` or changes ``TDATA``/``TLAST`` before a handshake:
:attr:`SimDevice.violations` counts the breaches while an output transfer is armed; after
:meth:`abort_transfers` (the DMA channel is reset and listens to nothing; a soft reset may then
drop the stuck beat) they are counted apart, as ``unarmed_changes`` in :meth:`counters`.
"""

from __future__ import annotations

import contextlib
import ctypes
from pathlib import Path

import numpy as np

from ..spec.regmap import REGMAP
from .device import Device, DeviceError, TransferState

__all__ = ["ABI_VERSION", "COUNTER_NAMES", "SimDevice"]

ABI_VERSION = 3
"""The harness ABI this module speaks (``sb_abi_version()`` of the library)."""

COUNTER_NAMES = (
    "cycles", "in_sent", "in_beats", "out_received", "out_capacity", "out_ended_by_tlast",
    "violations", "tlast_early", "tlast_missing", "keep_errors", "total_sent",
    "total_received", "out_tvalid", "interrupt", "unarmed_changes",
    "in_idle_cycles", "out_stall_cycles",
)  # fmt: skip
"""The harness's counters in ``sb_counters`` order (see ``host/sim_harness.cpp``)."""

_ERRORS = {
    -1: "a transfer is still in progress",
    -2: "the AXI4-Lite transaction got no response (bus time-out)",
    -3: "an argument was out of range",
    -4: "the AXI4-Lite subordinate answered with an error response",
}
_STATUS = REGMAP["STATUS"]
_BUSY_MASK = _STATUS.field("busy").mask
_u64p = ctypes.POINTER(ctypes.c_uint64)


def _bind(lib: ctypes.CDLL) -> None:
    vp, u32, u64, i32 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int32
    signatures = {
        "sb_abi_version": ([], ctypes.c_int),
        "sb_create": ([], vp),
        "sb_destroy": ([vp], None),
        "sb_reset": ([vp, u32], ctypes.c_int),
        "sb_set_stalls": ([vp, u64, ctypes.c_double, ctypes.c_double], ctypes.c_int),
        "sb_hold_output": ([vp, ctypes.c_int], ctypes.c_int),
        "sb_set_polling": ([vp, u64, i32, u32, u64], ctypes.c_int),
        "sb_start_transfers": ([vp, _u64p, u64, _u64p, u64], ctypes.c_int),
        "sb_abort": ([vp], ctypes.c_int),
        "sb_transfers_done": ([vp], ctypes.c_int),
        "sb_step": ([vp, u64], u64),
        "sb_run": ([vp, u64], u64),
        "sb_reg_write": ([vp, u32, u32], ctypes.c_int),
        "sb_reg_read": ([vp, u32, ctypes.POINTER(u32)], ctypes.c_int),
        "sb_reg_read_now": ([vp, u32, ctypes.POINTER(u32)], ctypes.c_int),
        "sb_counters": ([vp, _u64p, u32], ctypes.c_int),
    }
    for name, (args, result) in signatures.items():
        function = getattr(lib, name)
        function.argtypes = args
        function.restype = result


def _check_probability(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a probability in [0, 1), not {value!r}")
    return float(value)


def _check_count(name: str, value: int, lo: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, not {value!r}")
    return int(value)


class SimDevice(Device):
    """The generated RTL of one configuration in Verilator, as a :class:`~.device.Device`.

    ``library``: a ``libsimboard.so`` from :func:`ttaccel.host.sim_build.build_simboard`.
    ``seed``, ``input_idle``, ``output_stall``: stream randomness (see the module docstring);
    ``poll_cycles``: the simulated-time quantum of a register read; ``reset_cycles``: cycles of
    ``aresetn`` low at start-up; ``axi_timeout``: cycles one AXI4-Lite transaction may take.
    Raises :class:`DeviceError` when the library is missing or speaks another ABI.
    """

    backend = "sim"

    def __init__(
        self,
        library: str | Path,
        *,
        seed: int = 0,
        input_idle: float = 0.0,
        output_stall: float = 0.0,
        poll_cycles: int = 20_000,
        reset_cycles: int = 8,
        axi_timeout: int = 10_000,
    ):
        path = Path(library)
        if not path.is_file():
            raise DeviceError(f"simulated-board library {path} does not exist; build it with "
                              "ttaccel.host.sim_build.build_simboard(config)")  # fmt: skip
        self._board = None
        self.library = path
        self._lib = ctypes.CDLL(str(path.resolve()))
        _bind(self._lib)
        abi = self._lib.sb_abi_version()
        if abi != ABI_VERSION:
            raise DeviceError(f"{path} speaks harness ABI {abi}, this module {ABI_VERSION}")
        self._board = self._lib.sb_create()
        self._send = np.empty(0, np.uint64)  # the host buffers (the "DDR") of the transfers
        self._receive = np.empty(0, np.uint64)
        self._poll_cycles = _check_count("poll_cycles", poll_cycles, 1)
        self._axi_timeout = _check_count("axi_timeout", axi_timeout, 1)
        self._apply_polling()
        self.set_stalls(seed=seed, input_idle=input_idle, output_stall=output_stall)
        self.reset(reset_cycles)

    @classmethod
    def for_config(cls, config, *, build_root=None, progress=..., **options) -> SimDevice:
        """Build (or reuse) the simulated board of ``config`` (an AccelConfig) and open it.

        Needs Amaranth and Verilator (:mod:`.sim_build`, imported here). ``build_root``,
        ``progress``: as :func:`~.sim_build.build_simboard`; ``options``: as the constructor.
        """
        from .sim_build import build_simboard

        kwargs = {} if progress is ... else {"progress": progress}
        built = build_simboard(config, build_root=build_root, **kwargs)
        return cls(built.library, **options)

    # -- plumbing ----------------------------------------------------------------------------

    def _live(self):
        if self._board is None:
            raise DeviceError("the simulated board is closed")
        return self._board

    def _check(self, rc: int, what: str) -> None:
        if rc < 0:
            raise DeviceError(f"simulated board: {what}: {_ERRORS.get(rc, f'error {rc}')}")

    def _apply_polling(self) -> None:
        self._check(
            self._lib.sb_set_polling(self._live(), self._poll_cycles, _STATUS.offset, _BUSY_MASK,
                                     self._axi_timeout),
            "set polling",
        )  # fmt: skip

    # -- registers ---------------------------------------------------------------------------

    def _read_word(self, offset: int) -> int:
        value = ctypes.c_uint32()
        self._check(self._lib.sb_reg_read(self._live(), offset, ctypes.byref(value)),
                    f"read of offset {offset:#x}")  # fmt: skip
        return value.value

    def _write_word(self, offset: int, value: int) -> None:
        self._check(self._lib.sb_reg_write(self._live(), offset, value & 0xFFFF_FFFF),
                    f"write of offset {offset:#x}")  # fmt: skip

    def read_now(self, register: str) -> int:
        """``register``'s word read over the bus without first advancing time (a few cycles)."""
        value = ctypes.c_uint32()
        offset = REGMAP.offset(register)
        self._check(self._lib.sb_reg_read_now(self._live(), offset, ctypes.byref(value)),
                    f"read of {register}")  # fmt: skip
        return value.value

    # -- streams -----------------------------------------------------------------------------

    def start_transfers(self, send: np.ndarray, receive_beats: int) -> None:
        """See :meth:`Device.start_transfers`. ``send``: 1-D integer array of beats (values in
        ``[0, 2**64)``), copied into the board's input buffer."""
        receive_beats = _check_count("receive_beats", receive_beats)
        beats = np.asarray(send)
        if beats.ndim != 1 or beats.dtype.kind not in "ui":
            raise ValueError(
                f"send must be a 1-D array of uint64 beats, not shape {beats.shape} dtype "
                f"{beats.dtype}"
            )
        if beats.dtype.kind == "i" and beats.size and int(beats.min()) < 0:
            raise ValueError(f"send holds a negative beat ({int(beats.min())}); beats are uint64")
        if not self._complete():
            state = self.transfer_state()
            raise DeviceError(
                f"a transfer is still in progress ({state.sent}/{state.to_send} beats sent, "
                f"{state.received}/{state.to_receive} received); call abort_transfers() first"
            )
        self._send = np.ascontiguousarray(beats, dtype=np.uint64).copy()
        self._receive = np.zeros(receive_beats, np.uint64)
        rc = self._lib.sb_start_transfers(
            self._live(),
            self._send.ctypes.data_as(_u64p),
            self._send.size,
            self._receive.ctypes.data_as(_u64p),
            receive_beats,
        )
        self._check(rc, "start transfers")

    def transfers_done(self) -> bool:
        """See :meth:`Device.transfers_done`; polling it advances simulated time like a
        register read: the model runs until both transfers are complete or ``poll_cycles``
        cycles have passed (a DMA's status poll lets the board move on)."""
        self._lib.sb_run(self._live(), self._poll_cycles)
        return self._complete()

    def _complete(self) -> bool:
        return bool(self._lib.sb_transfers_done(self._live()))

    def received(self) -> np.ndarray:
        return self._receive[: self.counters()["out_received"]].copy()

    def transfer_state(self) -> TransferState:
        """Beats sent/received; ``extra``: the harness's counters (``cycles``, ``violations``,
        ``out_tvalid`` (a beat waiting on the output), ``out_ended_by_tlast``, ...)."""
        c = self.counters()
        extra = {k: v for k, v in c.items() if k not in ("in_sent", "in_beats", "out_received",
                                                           "out_capacity")}  # fmt: skip
        return TransferState(c["in_sent"], c["in_beats"], c["out_received"], c["out_capacity"],
                             extra)  # fmt: skip

    def abort_transfers(self) -> None:
        self._check(self._lib.sb_abort(self._live()), "abort transfers")

    # -- simulation controls -----------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        """Every harness counter by name (:data:`COUNTER_NAMES`)."""
        values = (ctypes.c_uint64 * len(COUNTER_NAMES))()
        self._check(self._lib.sb_counters(self._live(), values, len(COUNTER_NAMES)), "counters")
        return dict(zip(COUNTER_NAMES, (int(v) for v in values), strict=True))

    @property
    def cycles(self) -> int:
        """Simulated clock cycles since the board was created."""
        return self.counters()["cycles"]

    @property
    def violations(self) -> int:
        """Output beats the DUT withdrew or changed before their handshake (0 when correct)."""
        return self.counters()["violations"]

    @property
    def interrupt(self) -> bool:
        """The level of the DUT's ``interrupt`` line now."""
        return bool(self.counters()["interrupt"])

    def reset(self, cycles: int = 8) -> None:
        """``aresetn`` low for ``cycles`` cycles (at least 1), then 2 cycles high; both transfers
        are abandoned (the whole board resets)."""
        self._check(self._lib.sb_reset(self._live(), _check_count("cycles", cycles, 1)), "reset")

    def set_stalls(self, *, seed: int = 0, input_idle: float = 0.0, output_stall: float = 0.0):
        """Reseed the stream randomness: ``input_idle`` / ``output_stall`` probabilities."""
        self._check(
            self._lib.sb_set_stalls(self._live(), _check_count("seed", seed) % 2**64,
                                    _check_probability("input_idle", input_idle),
                                    _check_probability("output_stall", output_stall)),
            "set stalls",
        )  # fmt: skip

    def hold_output(self, hold: bool = True) -> None:
        """Hold the output stream's ``TREADY`` low while ``hold`` (a receiver that never reads)."""
        self._check(self._lib.sb_hold_output(self._live(), int(bool(hold))), "hold output")

    def set_poll_cycles(self, cycles: int) -> None:
        """The simulated-time quantum of a register read (see the module docstring)."""
        self._poll_cycles = _check_count("poll_cycles", cycles, 1)
        self._apply_polling()

    def run(self, max_cycles: int) -> int:
        """Run until both transfers are complete or ``max_cycles`` have passed; returns the
        cycles run."""
        return int(self._lib.sb_run(self._live(), _check_count("max_cycles", max_cycles)))

    def step(self, cycles: int) -> None:
        """Run exactly ``cycles`` cycles (the bus idle, the streams moving)."""
        self._lib.sb_step(self._live(), _check_count("cycles", cycles))

    def close(self) -> None:
        """Destroy the model (idempotent); the device is unusable afterwards."""
        if self._board is not None:
            self._lib.sb_destroy(self._board)
            self._board = None

    def __del__(self):
        with contextlib.suppress(Exception):  # interpreter shutdown: ctypes may be gone
            self.close()
