"""Open a device by backend name: the one place the CLI and the demo choose a backend.

``reference``: the spec's functional model (:mod:`.reference`), NumPy only.
``sim``: the simulated board, the generated RTL in Verilator (:mod:`.sim`; building it needs
Amaranth and Verilator, loading a built one only NumPy).
``pynq``: the PYNQ-Z2 with the overlay (:mod:`.pynq_board`; needs pynq, on the board).
"""

from __future__ import annotations

from pathlib import Path

from ..spec.accel_config import AccelConfig
from .device import Device

__all__ = ["BACKENDS", "SIM_DEMO_CONFIG", "load_config", "open_device"]

BACKENDS = ("reference", "sim", "pynq")

SIM_DEMO_CONFIG = AccelConfig(
    rows=8,
    cols=8,
    weight_buffer_depth=32768,
    act_buffer_depth=4096,
    bias_buffer_depth=4096,
    instruction_depth=1024,
)
"""The simulated board of ``make demo`` and the ``sim`` backend's default: an 8 x 8 int8
array (Verilator builds it in a few minutes here; 16 x 16 takes 7-10) whose buffers hold two
consecutive layers of the bundled MiniLM-L6 artifact, so every layer's cores are prefetched
during the previous layer (weights 256 KiB, activations 32 KiB)."""


def load_config(path: str | Path | None, backend: str) -> AccelConfig:
    """The configuration a ``reference`` or ``sim`` device is built for: the JSON file at
    ``path`` (:meth:`AccelConfig.from_json`), else the backend's default (the demo board for
    ``sim``, the default :class:`AccelConfig` for ``reference``)."""
    if path is not None:
        return AccelConfig.from_json(Path(path).read_text())
    return SIM_DEMO_CONFIG if backend == "sim" else AccelConfig()


def open_device(
    backend: str,
    *,
    config: AccelConfig | None = None,
    overlay: str | Path | None = None,
    seed: int = 0,
    input_idle: float = 0.0,
    output_stall: float = 0.0,
) -> Device:
    """A :class:`~.device.Device` of ``backend`` (one of :data:`BACKENDS`).

    ``config``: the configuration to model (``reference``) or build (``sim``; default
    :data:`SIM_DEMO_CONFIG`); the board reads its own from the registers and takes the
    ``overlay`` path (``.bit`` with its ``.hwh`` beside it) instead. ``seed``, ``input_idle``,
    ``output_stall``: random idle cycles and back-pressure of the simulated board's streams.
    Raises ValueError naming the backend or the option that does not apply.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if backend != "pynq" and overlay is not None:
        raise ValueError(f"--overlay is for the pynq backend; the {backend} backend has none")
    if backend != "sim" and (input_idle or output_stall):
        raise ValueError("stream idle cycles and back-pressure apply to the sim backend only")
    if backend == "reference":
        from .reference import ReferenceDevice

        return ReferenceDevice(config or AccelConfig())
    if backend == "sim":
        from .sim import SimDevice

        return SimDevice.for_config(
            config or SIM_DEMO_CONFIG, seed=seed, input_idle=input_idle, output_stall=output_stall
        )
    if config is not None:
        raise ValueError("the pynq backend reads its configuration from the board: no --config")
    if overlay is None:
        raise ValueError("the pynq backend needs --overlay PATH (the .bit with its .hwh beside it)")
    from .pynq_board import PynqDevice

    return PynqDevice(overlay)
