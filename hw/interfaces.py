"""Interfaces shared by the engine and the Zynq top level.

:data:`STREAM_BEAT` is one 64-bit AXI4-Stream beat (``data`` = TDATA, ``last`` = TLAST); the
engine consumes the program and its data from one input stream of such beats and produces one
output stream (see :mod:`ttaccel.spec.isa`). :func:`engine_signature` is the engine's port
list, which the top level connects to its AXI4-Lite registers (:mod:`ttaccel.spec.regmap`) and
to the AXI DMA's streams.
"""

from __future__ import annotations

from amaranth import Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..spec.isa import STREAM_BITS

__all__ = [
    "STREAM_BEAT",
    "StreamFIFO",
    "check_config",
    "credit_counter",
    "engine_signature",
    "positive_int",
]

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


def credit_counter(m, name: str, capacity: int, *, taken, returned) -> Signal:
    """A count of ``capacity`` credits in ``m``'s ``sync`` domain, named ``name``: ``taken``
    (1 bit, only while the returned flag is set) spends one, ``returned`` (1 bit, at most
    ``capacity`` outstanding) gives one back, both counted at the end of their cycle.
    Returns ``name + "_credit"``, a register: some credit is left (the count after the
    cycle's changes is not 0). It is set from tests of the count (``!= 0``, ``!= 1``) that do
    not wait for the add, so ``taken`` passes one LUT level on its way to it."""
    count = Signal(range(capacity + 1), name=name, init=capacity)
    credit = Signal(name=f"{name}_credit", init=1)
    spent = taken & ~returned
    m.d.sync += [
        count.eq(count - taken + returned),
        credit.eq(Mux(spent, count != 1, returned | (count != 0))),
    ]
    return credit


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

    Parameters (keyword-only): ``layout``, the payload shape; ``depth``, entries (>= 1);
    ``registered_head`` (default False): the head entry sits in a register in front of the
    ``SyncFIFO`` (of ``depth - 1`` entries), so ``o.payload`` comes from flip-flops instead of
    the ``SyncFIFO``'s LUT-RAM read (what a queue head's logic can then be compared against
    without the read in the path). Ports: ``i`` (``stream`` in), ``o`` (``stream`` out).
    ``i.ready`` and ``o.valid`` come from registers (the level); a transfer accepted in one
    cycle is at ``o`` the next, with and without ``registered_head`` (the same cycles: a
    transfer into an empty queue, or while the head leaves and nothing is behind it, goes
    straight into the head register). Capacity ``depth`` either way; ``i.ready`` is low while
    the queue is full, even in a cycle in which ``o`` transfers. At ``depth == 2`` the
    registered head is not built (the plain ``SyncFIFO`` is, with the same cycles): the
    one-entry memory behind the head would be a ``[0:0]`` array that Verilator lints as
    ASCRANGE.

    ``bypass`` (default True; with ``registered_head`` only): a transfer may go straight into
    the head register. Without it every transfer passes the ``SyncFIFO``, so it is at ``o``
    two cycles after it was accepted (one if the queue was not empty: the order of the
    entries and ``i.ready`` are the same), and the ``SyncFIFO``'s write enable depends on
    ``i`` and the level only, not on ``o.ready``: for a queue whose reader needs an entry
    only some cycles after it was written (the tile descriptors).

    ``two_heads`` (default False; with ``registered_head`` and ``bypass``, ``depth`` >= 3):
    the head alternates between two registers (the older one is the head, ``o.payload`` a
    two-way select of them), and a register loads only while it is empty at the start of
    the cycle, so ``o.ready`` reaches the two full flags, the pointer and a register of
    the pop (the level is counted a cycle late; ``i.ready`` is one LUT of four registers),
    not the payload registers' enables or an adder: for a queue whose reader pops it at the
    end of a long test (the execute and load engines' starts, the result descriptors).
    Same cycles, capacity and order as with one head register (the reader sees the next
    entry the cycle after a pop).
    """

    def __init__(
        self,
        *,
        layout,
        depth: int,
        registered_head: bool = False,
        bypass: bool = True,
        two_heads: bool = False,
    ):
        self._depth = positive_int(depth, "Depth")
        flags = (("Registered head", registered_head), ("Bypass", bypass), ("Two heads", two_heads))
        for name, flag in flags:
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, not {flag!r}")
        if not bypass and (not registered_head or self._depth < 3):
            raise ValueError(
                f"Bypass=False needs a registered head and a depth of 3 or more, not "
                f"registered_head={registered_head!r}, depth={self._depth}"
            )
        if two_heads and (not registered_head or not bypass or self._depth < 3):
            raise ValueError(
                f"Two heads need a registered head with bypass and a depth of 3 or more, not "
                f"registered_head={registered_head!r}, bypass={bypass!r}, depth={self._depth}"
            )
        self._layout = layout
        self._registered_head = registered_head
        self._bypass = bypass
        self._two_heads = two_heads
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    depth = property(lambda self: self._depth)
    registered_head = property(lambda self: self._registered_head)
    bypass = property(lambda self: self._bypass)
    two_heads = property(lambda self: self._two_heads)

    def elaborate(self, platform):
        from amaranth import Module, Shape, Signal
        from amaranth.lib import fifo

        m = Module()
        width = Shape.cast(self._layout).width
        if not self._registered_head or self._depth == 2:
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

        if self._two_heads:
            self._elaborate_two_heads(m, width)
            return m

        # The head register and the entries behind it; the head is empty only when nothing
        # is behind it, so it refills from the SyncFIFO first, else from `i` (bypass).
        m.submodules.fifo = rest = fifo.SyncFIFO(width=width, depth=self._depth - 1)
        head = Signal(self._layout, name="head", reset_less=True)
        head_valid = Signal(name="head_valid")
        refill = Signal()  # the head register loads this cycle (it is empty or leaving)
        accept = Signal()
        m.d.comb += [
            self.o.payload.eq(head),
            self.o.valid.eq(head_valid),
            accept.eq(self.i.valid & self.i.ready),
            refill.eq(~head_valid | self.o.ready),
            rest.w_data.eq(self.i.payload),
            rest.r_en.eq(refill),
        ]
        if not self._bypass:  # the head is empty only while the SyncFIFO holds one entry
            m.d.comb += [self.i.ready.eq(rest.w_rdy), rest.w_en.eq(accept)]
            with m.If(refill):
                m.d.sync += [head_valid.eq(rest.r_rdy), head.eq(rest.r_data)]
            return m
        m.d.comb += [
            self.i.ready.eq(rest.w_rdy | ~head_valid),
            rest.w_en.eq(accept & ~(refill & ~rest.r_rdy)),
        ]
        with m.If(refill):
            m.d.sync += head_valid.eq(rest.r_rdy | accept)
            with m.If(rest.r_rdy):
                m.d.sync += head.eq(rest.r_data)
            with m.Elif(accept):
                m.d.sync += head.eq(self.i.payload)
        return m

    def _elaborate_two_heads(self, m, width: int) -> None:
        """Two head registers (``slot0``, ``slot1``; ``older`` says which one is the head)
        in front of a ``SyncFIFO`` of ``depth - 1`` entries (one more than ``level`` lets it
        hold, so it can take a write in the cycle it refills a slot while full)."""
        from amaranth import Mux, Signal
        from amaranth.lib import fifo

        depth = self._depth
        m.submodules.fifo = rest = fifo.SyncFIFO(width=width, depth=depth - 1)
        slots = [Signal(self._layout, name=f"slot{k}", reset_less=True) for k in (0, 1)]
        full = [Signal(name=f"slot{k}_full") for k in (0, 1)]
        older = Signal(name="older")  # the slot holding the head
        # The level is counted a cycle late (step 52, as the engine's token counters):
        # `level` holds the entries of a cycle ago, `pushed` / `popped` last cycle's
        # transfers, so a pop reaches `popped` and the flags only, not an adder. `room`
        # (entries now < depth) selects one of two registered tests of the count by them.
        level = Signal(range(depth + 1), name="level")  # entries held a cycle ago
        pushed, popped = Signal(name="pushed"), Signal(name="popped")
        below = Signal(name="level_below_depth", init=1)  # level < depth
        below_1 = Signal(name="level_below_depth_1", init=1)  # level < depth - 1
        room = Signal()  # entries now < depth (a pop alone leaves room)
        accept, pop = Signal(), Signal()
        m.d.comb += [
            self.o.payload.eq(Mux(older, slots[1], slots[0])),
            self.o.valid.eq(Mux(older, full[1], full[0])),
            self.i.ready.eq(room),
            accept.eq(self.i.valid & room),
            pop.eq(self.o.valid & self.o.ready),
        ]
        # The slot to fill this cycle: the head's if it is empty, else the other one if that
        # is; from the flags alone. It takes the SyncFIFO's oldest entry, or `i` if the
        # SyncFIFO is empty; `i` goes into the SyncFIFO unless it went into a slot.
        targets = [~full[k] & ((older == k) | full[1 - k]) for k in (0, 1)]
        some_target = targets[0] | targets[1]
        incoming = Mux(rest.r_rdy, rest.r_data, self.i.payload)
        m.d.comb += [
            rest.r_en.eq(some_target),
            rest.w_data.eq(self.i.payload),
            rest.w_en.eq(accept & ~(some_target & ~rest.r_rdy)),
        ]
        for k in (0, 1):
            load = targets[k] & (rest.r_rdy | accept)
            with m.If(load):
                m.d.sync += slots[k].eq(incoming)
            m.d.sync += full[k].eq(full[k] & ~(pop & (older == k)) | load)
        level_now = level + pushed - popped
        m.d.comb += room.eq(Mux(pushed == popped, below, popped | below_1))
        m.d.sync += [
            older.eq(older ^ pop),
            level.eq(level_now),
            pushed.eq(accept),
            popped.eq(pop),
            below.eq(level_now < depth),
            below_1.eq(level_now < depth - 1),
        ]
