# amaranth: UnusedElaboratable=no
"""The generated CSR bank in Amaranth's simulator, against :class:`~ttaccel.sim.regmodel`.

Every register of the spec's map is read back (reset values, ID / VERSION / CONFIG words), RW
fields round-trip under byte strobes, W1C flags set by hardware and cleared by writing 1, WO
fields pulse for exactly one cycle, 64-bit counters read as consistent latched pairs, and a
long random mix of reads and writes (unmapped addresses, every handshake order, random
strobes and hardware events) agrees with the model word for word.
"""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from ttaccel.hw.csr import ADDRESS_WIDTH, CsrBank, constant_words, counter_pairs
from ttaccel.sim.regmodel import RegisterModel, strobe_mask
from ttaccel.sim.runner import test_seed
from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.regmap import ADDRESS_SPACE, IP_IDENTIFIER, REGMAP, RegisterMap

CONFIGS = [
    AccelConfig(),
    AccelConfig(
        rows=8,
        cols=4,
        weight_format="int4",
        max_k=1000,
        act_buffer_depth=2048,
        instruction_depth=77,
        sparse_nm=(4, 8),
    ),
]


class AxiLite:
    """A minimal AXI4-Lite manager for Amaranth testbenches; counts the cycles it spends."""

    def __init__(self, bus):
        self.bus = bus

    async def write(self, ctx, address, data, strb=0xF, order="together", bready_delay=0):
        bus = self.bus
        aw_done = w_done = False
        if order != "w_first":
            ctx.set(bus.awaddr, address)
            ctx.set(bus.awvalid, 1)
        if order != "aw_first":
            ctx.set(bus.wdata, data)
            ctx.set(bus.wstrb, strb)
            ctx.set(bus.wvalid, 1)
        for _ in range(50):
            aw_fire = ctx.get(bus.awvalid) and ctx.get(bus.awready)
            w_fire = ctx.get(bus.wvalid) and ctx.get(bus.wready)
            await ctx.tick()
            if aw_fire:
                aw_done = True
                ctx.set(bus.awvalid, 0)
                if not w_done and order == "aw_first":
                    ctx.set(bus.wdata, data)
                    ctx.set(bus.wstrb, strb)
                    ctx.set(bus.wvalid, 1)
            if w_fire:
                w_done = True
                ctx.set(bus.wvalid, 0)
                if not aw_done and order == "w_first":
                    ctx.set(bus.awaddr, address)
                    ctx.set(bus.awvalid, 1)
            if aw_done and w_done:
                break
        else:
            raise AssertionError(f"write to {address:#x} was not accepted in 50 cycles")
        for _ in range(bready_delay):
            await ctx.tick()
        ctx.set(bus.bready, 1)
        for _ in range(20):
            if ctx.get(bus.bvalid):
                assert ctx.get(bus.bresp) == 0, "write response must be OKAY"
                await ctx.tick()
                ctx.set(bus.bready, 0)
                return
            await ctx.tick()
        raise AssertionError(f"no write response for {address:#x}")

    async def read(self, ctx, address, rready_delay=0):
        bus = self.bus
        ctx.set(bus.araddr, address)
        ctx.set(bus.arvalid, 1)
        for _ in range(20):
            fire = ctx.get(bus.arready)
            await ctx.tick()
            if fire:
                break
        else:
            raise AssertionError(f"read of {address:#x} was not accepted")
        ctx.set(bus.arvalid, 0)
        for _ in range(rready_delay):
            await ctx.tick()
        ctx.set(bus.rready, 1)
        for _ in range(20):
            if ctx.get(bus.rvalid):
                data = ctx.get(bus.rdata)
                assert ctx.get(bus.rresp) == 0, "read response must be OKAY"
                await ctx.tick()
                ctx.set(bus.rready, 0)
                return data
            await ctx.tick()
        raise AssertionError(f"no read data for {address:#x}")


def run(dut, bench, *extra):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    for process in extra:
        sim.add_testbench(process, background=True)
    sim.run()


def make(config):
    return CsrBank(constants=constant_words(config))


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "8x4-int4-4of8"])
def test_every_register_reads_its_reset_or_config_value(config):
    dut, model = make(config), RegisterModel(config)
    got = {}

    async def bench(ctx):
        axi = AxiLite(dut.bus)
        for reg in REGMAP:
            got[reg.name] = await axi.read(ctx, reg.offset)

    run(dut, bench)
    want = {reg.name: model.read(reg.offset) for reg in REGMAP}
    assert got == want
    assert got["ID"] == IP_IDENTIFIER == int.from_bytes(b"ttAC", "big")
    array = REGMAP["CONFIG_ARRAY"]
    assert array.field("rows").extract(got["CONFIG_ARRAY"]) == config.rows % 256
    assert array.field("acc_bits").extract(got["CONFIG_ARRAY"]) == config.acc_bits
    assert REGMAP.field("CONFIG_IMEM", "depth").extract(got["CONFIG_IMEM"]) == (
        config.instruction_depth
    )
    sparse = tuple(
        REGMAP.field("CONFIG_MAX_MODE", f).extract(got["CONFIG_MAX_MODE"])
        for f in ("sparse_n", "sparse_m")
    )
    assert sparse == (config.sparse_nm or (0, 0))  # the N:M mode is advertised


def test_rw_round_trip_with_strobes_and_read_only_writes_ignored():
    config = CONFIGS[0]
    dut, model = make(config), RegisterModel(config)
    rng = random.Random(5)
    mismatches = []

    async def bench(ctx):
        axi = AxiLite(dut.bus)
        for reg in REGMAP:
            for strb in (0xF, 0x1, 0x6, 0x0, 0xC):
                data = rng.getrandbits(32)
                await axi.write(ctx, reg.offset, data, strb)
                model.write(reg.offset, data, strb)
                got = await axi.read(ctx, reg.offset)
                want = model.read(reg.offset)
                if got != want:
                    mismatches.append((reg.name, hex(data), strb, hex(got), hex(want)))
        # The RW field is really stored: PROGRAM_LENGTH takes its full 16 bits and no more.
        await axi.write(ctx, REGMAP.offset("PROGRAM_LENGTH"), 0xFFFF_FFFF)
        assert await axi.read(ctx, REGMAP.offset("PROGRAM_LENGTH")) == 0xFFFF
        assert ctx.get(dut.fields.program_length.instructions) == 0xFFFF

    run(dut, bench)
    assert mismatches == []


def test_w1c_flags_set_by_hardware_cleared_by_writing_one():
    dut = make(CONFIGS[0])
    status = REGMAP["STATUS"]
    done, error = status.field("done"), status.field("error")

    async def bench(ctx):
        axi = AxiLite(dut.bus)
        flags = dut.fields.status
        addr = status.offset
        assert await axi.read(ctx, addr) == 0
        ctx.set(flags.done.set, 1)
        await ctx.tick()
        ctx.set(flags.done.set, 0)
        await ctx.tick()
        word = await axi.read(ctx, addr)
        assert done.extract(word) == 1 and error.extract(word) == 0
        # Writing 0 to done and 1 to error (which is clear) changes nothing.
        await axi.write(ctx, addr, error.mask)
        assert await axi.read(ctx, addr) == done.mask
        ctx.set(flags.error.set, 1)
        await ctx.tick()
        ctx.set(flags.error.set, 0)
        assert await axi.read(ctx, addr) == done.mask | error.mask
        # Writing 1 clears only that flag; the strobe of its byte must be set.
        await axi.write(ctx, addr, done.mask, strb=0xE)
        assert await axi.read(ctx, addr) == done.mask | error.mask
        await axi.write(ctx, addr, done.mask)
        assert await axi.read(ctx, addr) == error.mask
        # The hardware clear input (the top wires CONTROL.start to it) clears too.
        ctx.set(flags.error.clear, 1)
        await ctx.tick()
        ctx.set(flags.error.clear, 0)
        assert await axi.read(ctx, addr) == 0
        # Set wins over clear in the same cycle: no completion is lost.
        ctx.set(flags.done.set, 1)
        ctx.set(flags.done.clear, 1)
        await ctx.tick()
        ctx.set(flags.done.set, 0)
        ctx.set(flags.done.clear, 0)
        assert await axi.read(ctx, addr) == done.mask
        assert ctx.get(flags.done.value) == 1

    run(dut, bench)


def test_wo_fields_pulse_for_exactly_one_cycle_and_read_zero():
    dut = make(CONFIGS[0])
    control = REGMAP["CONTROL"]
    pulses = []

    async def monitor(ctx):
        cycle = 0
        async for _ in ctx.tick():
            cycle += 1
            start, soft = ctx.get(dut.fields.control.start), ctx.get(dut.fields.control.soft_reset)
            if start or soft:
                pulses.append((cycle, start, soft))

    async def bench(ctx):
        axi = AxiLite(dut.bus)
        addr = control.offset
        irq = control.field("irq_enable")
        await axi.write(ctx, addr, control.field("start").mask | irq.mask)
        assert await axi.read(ctx, addr) == irq.mask  # WO reads 0, RW keeps its value
        assert len(pulses) == 1 and pulses[0][1:] == (1, 0)
        await axi.write(ctx, addr, control.field("soft_reset").mask)
        assert await axi.read(ctx, addr) == 0
        assert len(pulses) == 2 and pulses[1][1:] == (0, 1)
        await axi.write(ctx, addr, control.field("start").mask, strb=0x2)  # byte 0 not strobed
        await axi.write(ctx, addr, 0)
        for _ in range(5):
            await ctx.tick()
        assert len(pulses) == 2

    run(dut, bench, monitor)


def test_counters_read_low_first_with_the_high_word_latched():
    dut = make(CONFIGS[0])
    pairs = counter_pairs()
    assert set(pairs) == {"busy_cycles", "macs_issued", "stall_cycles", "instructions"}
    rng = random.Random(9)

    async def bench(ctx):
        axi = AxiLite(dut.bus)
        for name, (low, high) in pairs.items():
            port = getattr(dut.counters, name)
            first = rng.getrandbits(64) | (1 << 40)
            ctx.set(port, first)
            assert await axi.read(ctx, low.offset) == first & 0xFFFF_FFFF
            ctx.set(port, first + (7 << 32))  # the high word moves on before the HI read
            assert await axi.read(ctx, high.offset) == first >> 32
            assert await axi.read(ctx, high.offset) == first >> 32  # HI read has no side effect
            assert await axi.read(ctx, low.offset) == first & 0xFFFF_FFFF
            assert await axi.read(ctx, high.offset) == (first >> 32) + 7

    run(dut, bench)


def test_random_traffic_matches_the_model():
    """Random reads and writes anywhere in the window (and just beyond its aliasing), random
    handshake orders and ready delays, interleaved with hardware events."""
    seed = test_seed()
    rng = random.Random(seed)
    config = CONFIGS[1]
    dut, model = make(config), RegisterModel(config)
    mapped = [reg.offset for reg in REGMAP]
    pairs = counter_pairs()
    failures = []

    async def bench(ctx):
        axi = AxiLite(dut.bus)
        fields = dut.fields
        for step in range(250):
            kind = rng.random()
            if kind < 0.15:  # hardware drives RO fields and counters
                for reg_name, field_name, port in (
                    ("STATUS", "busy", fields.status.busy),
                    ("STATUS", "error_code", fields.status.error_code),
                    ("STATUS", "error_pc", fields.status.error_pc),
                    ("PC", "dispatched", fields.pc.dispatched),
                ):
                    value = rng.getrandbits(len(port))
                    ctx.set(port, value)
                    model.drive(reg_name, field_name, value)
                for name in pairs:
                    value = rng.getrandbits(64)
                    ctx.set(getattr(dut.counters, name), value)
                    model.counters[name.upper()] = value
            elif kind < 0.25:  # a one-cycle flag event
                flag = rng.choice(["done", "error"])
                port = getattr(fields.status, flag)
                s, c = rng.getrandbits(1), rng.getrandbits(1)
                ctx.set(port.set, s)
                ctx.set(port.clear, c)
                await ctx.tick()
                ctx.set(port.set, 0)
                ctx.set(port.clear, 0)
                model.flag_event("STATUS", flag, set_bits=s, clear_bits=c)
            elif kind < 0.6:
                address = rng.choice(mapped) if rng.random() < 0.8 else rng.randrange(ADDRESS_SPACE)
                address |= rng.randrange(4) if rng.random() < 0.2 else 0
                data = rng.getrandbits(32)
                if rng.random() < 0.5:  # set the W1C / WO bits sparsely
                    data &= rng.getrandbits(32) & rng.getrandbits(32)
                strb = 0xF if rng.random() < 0.6 else rng.getrandbits(4)
                order = rng.choice(["together", "aw_first", "w_first"])
                await axi.write(ctx, address, data, strb, order, rng.choice([0, 0, 3]))
                model.write(address, data, strb)
            else:
                address = rng.choice(mapped) if rng.random() < 0.8 else rng.randrange(ADDRESS_SPACE)
                got = await axi.read(ctx, address, rng.choice([0, 0, 2]))
                want = model.read(address)
                if got != want:
                    failures.append((step, hex(address), hex(got), hex(want)))

    run(dut, bench)
    assert failures == [], f"seed {seed}: {failures[:5]}"
    assert strobe_mask(0b0101) == 0x00FF_00FF  # the model's own strobe helper


def test_address_width_covers_exactly_the_window():
    assert 2**ADDRESS_WIDTH == ADDRESS_SPACE


@pytest.mark.parametrize(
    ("constants", "message"),
    [
        ({"CONTROL": 0}, "Constant register CONTROL must be read only, not RW"),
        ({"ID": 0x1234}, "Constant of register ID has ip_id = 4660, but the map fixes it at"),
        ({"CONFIG_ABUF": 2**32}, "Constant of register CONFIG_ABUF must be a 32-bit word"),
    ],
)
def test_rejects_bad_constants(constants, message):
    with pytest.raises(ValueError, match=message):
        CsrBank(constants=constants)


def test_rejects_a_map_that_is_not_a_register_map():
    with pytest.raises(ValueError, match="Register map must be a RegisterMap"):
        CsrBank(constants={}, regmap=list(REGMAP))
    assert isinstance(REGMAP, RegisterMap)
