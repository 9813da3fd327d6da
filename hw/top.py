"""The Zynq top level: the engine behind AXI4-Lite registers and two AXI4-Stream ports.

:class:`ZynqTop` is the module a Vivado block design instantiates next to the Zynq PS7 and an
AXI DMA (see ``docs/hardware.md`` and :mod:`ttaccel.hw.vivado`). It is the only place where
AXI names appear; Vivado infers its bus interfaces from them:

=================  =========  ==============================================================
port               direction  meaning
=================  =========  ==============================================================
``aclk``           in         the one clock (the PS7's ``FCLK_CLK0``); every port is synchronous
``aresetn``        in         active-low reset, synchronous to ``aclk`` (``proc_sys_reset``)
``s_axi_*``        sub        AXI4-Lite control and status registers (:mod:`ttaccel.spec.regmap`)
``s_axis_*``       sub        64-bit AXI4-Stream in (``TDATA``, ``TLAST``): the DMA's MM2S
``m_axis_*``       mgr        64-bit AXI4-Stream out (``TDATA``, ``TKEEP``, ``TLAST``): S2MM
``interrupt``      out        level, high while (``STATUS.done`` or ``STATUS.error``) and
                             ``CONTROL.irq_enable``
=================  =========  ==============================================================

Streams carry :data:`ttaccel.hw.interfaces.STREAM_BEAT` (``TDATA`` little endian); the engine
reads the program and its data from ``s_axis`` and writes results to ``m_axis`` with
``TLAST`` on the last beat of a run. ``m_axis_tkeep`` is all ones: the engine always sends
whole 64-bit beats (zero padded). ``s_axis`` has no ``TKEEP``: the host sends whole beats.

Register wiring: ``CONTROL.start`` / ``CONTROL.soft_reset`` pulse the engine's ``start`` /
``soft_reset``; ``PROGRAM_LENGTH`` drives ``program_length``; ``STATUS.done`` / ``STATUS.error``
are sticky flags set by the engine's one-cycle ``done`` / ``error`` and cleared by writing 1,
by ``start`` or by ``soft_reset``; ``STATUS.busy``, ``error_code``, ``error_pc``, ``PC`` and
the four 64-bit counters read the engine's outputs. ``interrupt`` is registered: it follows
``(STATUS.done or STATUS.error) and CONTROL.irq_enable`` one cycle later.
"""

from __future__ import annotations

from amaranth import ClockDomain, ClockSignal, Module, ResetSignal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..spec.accel_config import AccelConfig
from ..spec.isa import STREAM_BITS
from .csr import CsrBank, axi_lite_signature, constant_words
from .interfaces import engine_signature

__all__ = ["COUNTER_PORTS", "ZynqTop"]

COUNTER_PORTS = {
    "busy_cycles": "busy_cycles",
    "macs_issued": "macs_issued",
    "stall_cycles": "stall_cycles",
    "instructions": "instructions_retired",
}
"""Register-map counter name (lower case, without ``_LO``/``_HI``) -> engine port."""

_STREAM_BYTES = STREAM_BITS // 8

# Vivado reads these attributes to group the ports into interfaces (clock, reset, interrupt).
_VIVADO_ATTRS = {
    "aclk": {
        "X_INTERFACE_INFO": "xilinx.com:signal:clock:1.0 aclk CLK",
        "X_INTERFACE_PARAMETER": "ASSOCIATED_BUSIF s_axi:s_axis:m_axis, ASSOCIATED_RESET aresetn",
    },
    "aresetn": {
        "X_INTERFACE_INFO": "xilinx.com:signal:reset:1.0 aresetn RST",
        "X_INTERFACE_PARAMETER": "POLARITY ACTIVE_LOW",
    },
    "interrupt": {
        "X_INTERFACE_INFO": "xilinx.com:signal:interrupt:1.0 interrupt INTERRUPT",
        "X_INTERFACE_PARAMETER": "SENSITIVITY LEVEL_HIGH",
    },
}


class ZynqTop(wiring.Component):
    """The accelerator for one :class:`~ttaccel.spec.accel_config.AccelConfig` with AXI ports.

    ``engine``: the component behind the registers and streams; it must have exactly the
    ports of :func:`~ttaccel.hw.interfaces.engine_signature`. Default: ``Engine(config=config)``
    from :mod:`ttaccel.hw.engine`. (Tests pass a small stand-in from ``sim/``.)
    """

    def __init__(self, *, config: AccelConfig, engine: wiring.Component | None = None):
        if not isinstance(config, AccelConfig):
            raise ValueError(f"Config must be an AccelConfig, not {config!r}")
        if engine is None:
            from .engine import Engine

            engine = Engine(config=config)
        expected = engine_signature()
        if not isinstance(engine, wiring.Component) or engine.signature.members != (
            expected.members
        ):
            raise ValueError(
                f"Engine must be a component with the ports of engine_signature() "
                f"({sorted(expected.members)}), not {engine!r}"
            )
        self._config = config
        self._engine = engine
        self._csr = CsrBank(constants=constant_words(config))

        members = {"aclk": In(1), "aresetn": In(1)}
        for name, member in axi_lite_signature().members.items():
            members[f"s_axi_{name}"] = member.flip()  # we are the subordinate
        members.update({
            "s_axis_tdata": In(STREAM_BITS), "s_axis_tlast": In(1),
            "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
            "m_axis_tdata": Out(STREAM_BITS), "m_axis_tkeep": Out(_STREAM_BYTES),
            "m_axis_tlast": Out(1), "m_axis_tvalid": Out(1), "m_axis_tready": In(1),
            "interrupt": Out(1),
        })  # fmt: skip
        super().__init__(members)
        for port, attrs in _VIVADO_ATTRS.items():
            getattr(self, port).attrs.update(attrs)

    @property
    def config(self) -> AccelConfig:
        return self._config

    @property
    def engine(self) -> wiring.Component:
        return self._engine

    @property
    def csr(self) -> CsrBank:
        return self._csr

    def elaborate(self, platform):
        m = Module()
        m.submodules.csr = csr = self._csr
        m.submodules.engine = engine = self._engine

        # -- clock and reset: AXI's aclk / active-low aresetn become Amaranth's sync domain.
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [
            ClockSignal("sync").eq(self.aclk),
            ResetSignal("sync").eq(~self.aresetn),
        ]

        # -- AXI4-Lite: s_axi_* to the register bank, by channel signal name.
        for name, member in axi_lite_signature().members.items():
            outer, inner = getattr(self, f"s_axi_{name}"), getattr(csr.bus, name)
            if member.flow == Out:  # driven by the manager
                m.d.comb += inner.eq(outer)
            else:
                m.d.comb += outer.eq(inner)

        # -- AXI4-Stream in (MM2S) and out (S2MM).
        m.d.comb += [
            engine.inp.payload.data.eq(self.s_axis_tdata),
            engine.inp.payload.last.eq(self.s_axis_tlast),
            engine.inp.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(engine.inp.ready),
            self.m_axis_tdata.eq(engine.out.payload.data),
            self.m_axis_tlast.eq(engine.out.payload.last),
            self.m_axis_tkeep.eq((1 << _STREAM_BYTES) - 1),
            self.m_axis_tvalid.eq(engine.out.valid),
            engine.out.ready.eq(self.m_axis_tready),
        ]

        # -- registers <-> engine.
        regs = csr.fields
        m.d.comb += [
            engine.start.eq(regs.control.start),
            engine.soft_reset.eq(regs.control.soft_reset),
            engine.program_length.eq(regs.program_length.instructions),
            regs.status.busy.eq(engine.busy),
            regs.status.done.set.eq(engine.done),
            regs.status.done.clear.eq(regs.control.start | regs.control.soft_reset),
            regs.status.error.set.eq(engine.error),
            regs.status.error.clear.eq(regs.control.start | regs.control.soft_reset),
            regs.status.error_code.eq(engine.error_code),
            regs.status.error_pc.eq(engine.error_pc),
            regs.pc.dispatched.eq(engine.pc),
        ]
        for counter, port in COUNTER_PORTS.items():
            m.d.comb += getattr(csr.counters, counter).eq(getattr(engine, port))

        # -- interrupt: registered, so the PS sees a clean level; a run's end either way.
        status = regs.status
        m.d.sync += self.interrupt.eq(
            (status.done.value | status.error.value) & regs.control.irq_enable
        )
        return m
