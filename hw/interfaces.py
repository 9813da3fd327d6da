"""Interfaces shared by the engine and the Zynq top level.

:data:`STREAM_BEAT` is one 64-bit AXI4-Stream beat (``data`` = TDATA, ``last`` = TLAST); the
engine consumes the program and its data from one input stream of such beats and produces one
output stream (see :mod:`ttaccel.spec.isa`). :func:`engine_signature` is the engine's port
list, which the top level connects to its AXI4-Lite registers (:mod:`ttaccel.spec.regmap`) and
to the AXI DMA's streams.
"""

from __future__ import annotations

from amaranth import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..spec.isa import STREAM_BITS

__all__ = ["STREAM_BEAT", "StreamFIFO", "check_config", "engine_signature", "positive_int"]

STREAM_BEAT = data.StructLayout({"data": unsigned(STREAM_BITS), "last": unsigned(1)})
"""One stream beat: ``data`` (TDATA, little-endian 64 bits) and ``last`` (TLAST)."""


def positive_int(value: object, what: str) -> int:
    """``value`` if it is a positive ``int`` (not a bool); else ValueError naming ``what``
    ("Rows must be a positive integer, not 0"). The one parameter check of ``hw/``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")
    return value


def check_config(config: object):
    """``config`` if it is an :class:`~ttaccel.spec.accel_config.AccelConfig`; else TypeError."""
    from ..spec.accel_config import AccelConfig

    if not isinstance(config, AccelConfig):
        raise TypeError(f"Config must be an AccelConfig, not {config!r}")
    return config


def engine_signature() -> wiring.Signature:
    """Ports of the engine (directions as seen by the engine).

    ``inp`` / ``out``: streams of :data:`STREAM_BEAT`; the engine sets ``out.last`` on the last
    beat a run produces. ``start`` / ``soft_reset``: one-cycle pulses (``CONTROL``);
    ``program_length``: instructions to read at start (``PROGRAM_LENGTH``). ``busy`` is high
    from the cycle after ``start`` until END retires or an error stops the run; ``done`` and
    ``error`` pulse for one cycle at that moment, with ``error_code`` / ``error_pc`` valid from
    then until the next ``start``. ``pc``: instructions dispatched in this run. The 64-bit
    counters (``busy_cycles``, ``macs_issued``, ``stall_cycles``, ``instructions_retired``)
    clear on ``start`` and count as the register map documents.
    """
    return wiring.Signature(
        {
            "inp": In(stream.Signature(STREAM_BEAT)),
            "out": Out(stream.Signature(STREAM_BEAT)),
            "start": In(1),
            "soft_reset": In(1),
            "program_length": In(16),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(1),
            "error_code": Out(8),
            "error_pc": Out(16),
            "pc": Out(16),
            "busy_cycles": Out(64),
            "macs_issued": Out(64),
            "stall_cycles": Out(64),
            "instructions_retired": Out(64),
        }
    )


class StreamFIFO(wiring.Component):
    """A first-in first-out queue of stream transfers (``lib.fifo.SyncFIFO`` behind
    ``lib.stream`` ports).

    Parameters (keyword-only): ``layout``, the payload shape; ``depth``, entries (>= 1).
    Ports: ``i`` (``stream`` in), ``o`` (``stream`` out). ``i.ready`` and ``o.valid`` come
    from registers (``SyncFIFO``'s level); a transfer accepted in one cycle is at ``o`` the next.
    """

    def __init__(self, *, layout, depth: int):
        self._depth = positive_int(depth, "Depth")
        self._layout = layout
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    depth = property(lambda self: self._depth)

    def elaborate(self, platform):
        from amaranth import Module, Shape
        from amaranth.lib import fifo

        m = Module()
        width = Shape.cast(self._layout).width
        m.submodules.fifo = queue = fifo.SyncFIFO(width=width, depth=self._depth)
        m.d.comb += [
            queue.w_data.eq(self.i.payload),
            queue.w_en.eq(self.i.valid),
            self.i.ready.eq(queue.w_rdy),
            self.o.payload.eq(queue.r_data),
            self.o.valid.eq(queue.r_rdy),
            queue.r_en.eq(self.o.ready),
        ]
        return m
