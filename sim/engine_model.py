"""A test fixture with the engine's ports: echoes and accumulates, drives status and counters.

:class:`EchoAccumulateEngine` is NOT the accelerator; it stands in for it so the Zynq top level
(registers, AXI wiring, streams, interrupt, reset) can be verified without the TT engine.
Behaviour (all of it checked by ``sim/tb_top.py`` against :func:`expected_run`):

* ``start`` while idle: clears ``pc``, the counters, ``error_code`` / ``error_pc``; ``busy``
  from the next cycle. ``program_length`` = 0 finishes at once (``done``, no beats).
* Each input beat ``n`` (``n`` = 0 .. ``program_length`` - 1) leaves as one output beat with
  ``data = (input data + sum of earlier input data) mod 2**64`` and ``last`` on beat
  ``program_length`` - 1; after that transfer ``busy`` falls and ``done`` pulses.
* An input beat with ``TLAST`` before beat ``program_length`` - 1 is consumed, not echoed, and
  stops the run with ``error`` and ``error_code`` 5 (input ended early), ``error_pc`` = ``n``.
* ``soft_reset``: back to idle, no ``done``.
* ``pc``: input beats consumed. Counters: ``busy_cycles`` (cycles with ``busy``),
  ``macs_issued`` (the sum of all input data, modulo 2**64: it exercises the high words),
  ``stall_cycles`` (busy cycles without an input transfer), ``instructions_retired`` (output
  beats sent).
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring

from ttaccel.hw.interfaces import engine_signature

__all__ = ["EARLY_END_ERROR", "EchoAccumulateEngine", "expected_run"]

EARLY_END_ERROR = 5
"""``error_code`` for an input stream that ends (TLAST) early: the spec's code for that case."""
MASK64 = 2**64 - 1


def expected_run(beats: list[int], program_length: int) -> list[int]:
    """Output data the model sends for input ``beats`` (a full run of ``program_length``)."""
    out, total = [], 0
    for data in beats[:program_length]:
        out.append((data + total) & MASK64)
        total = (total + data) & MASK64
    return out


class EchoAccumulateEngine(wiring.Component):
    """Stand-in engine for top-level tests (module docstring)."""

    def __init__(self):
        super().__init__(engine_signature())

    def elaborate(self, platform):
        m = Module()
        inp, out = self.inp, self.out
        total = Signal(64)
        count = Signal(16)
        take = Signal()  # an input beat transfers this cycle
        final = Signal()  # this input beat is the run's last

        m.d.comb += [
            inp.ready.eq(self.busy & (~out.valid | out.ready)),
            take.eq(inp.valid & inp.ready),
            final.eq(count == self.program_length - 1),
        ]
        m.d.sync += [self.done.eq(0), self.error.eq(0)]

        with m.If(out.valid & out.ready):
            m.d.sync += [
                out.valid.eq(0),
                self.instructions_retired.eq(self.instructions_retired + 1),
            ]
            with m.If(out.payload.last):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]

        with m.If(self.busy):
            m.d.sync += self.busy_cycles.eq(self.busy_cycles + 1)
            with m.If(~take):
                m.d.sync += self.stall_cycles.eq(self.stall_cycles + 1)

        with m.If(take):
            m.d.sync += [
                count.eq(count + 1),
                self.pc.eq(self.pc + 1),
                total.eq(total + inp.payload.data),
                self.macs_issued.eq(self.macs_issued + inp.payload.data),
            ]
            with m.If(inp.payload.last & ~final):
                m.d.sync += [
                    self.busy.eq(0),
                    self.error.eq(1),
                    self.error_code.eq(EARLY_END_ERROR),
                    self.error_pc.eq(count),
                ]
            with m.Else():
                m.d.sync += [
                    out.valid.eq(1),
                    out.payload.data.eq(inp.payload.data + total),
                    out.payload.last.eq(final),
                ]

        with m.If(self.start & ~self.busy):
            m.d.sync += [
                count.eq(0),
                total.eq(0),
                self.pc.eq(0),
                self.error_code.eq(0),
                self.error_pc.eq(0),
                self.busy_cycles.eq(0),
                self.macs_issued.eq(0),
                self.stall_cycles.eq(0),
                self.instructions_retired.eq(0),
            ]
            with m.If(self.program_length == 0):
                m.d.sync += self.done.eq(1)
            with m.Else():
                m.d.sync += self.busy.eq(1)

        with m.If(self.soft_reset):
            m.d.sync += [self.busy.eq(0), out.valid.eq(0), self.done.eq(0), count.eq(0)]
        return m
