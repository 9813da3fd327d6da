"""cocotb testbench of ``hw.memory.RegisteredReadMemory``: random writes, reads and output
enables each cycle (a few addresses, the lowest and highest among them, so reads meet their
own cycle's writes), every cycle's ``r_data`` checked against a Python model of the contract:
a read sees the memory before its cycle's write, ``r_data`` is the read word of the last
cycle with ``r_data_en``."""

import random

import cocotb
from cocotb.triggers import FallingEdge, RisingEdge

from ttaccel.sim.tb import Harness, tb_config


@cocotb.test()
async def every_read_matches_the_model(dut):
    cfg = tb_config()
    width, depth, cycles = cfg["width"], cfg["depth"], cfg["cycles"]
    rng = random.Random(cfg["seed"])
    addresses = sorted({0, 1, depth - 1, depth // 2, *rng.sample(range(depth), min(4, depth))})
    harness = Harness(dut)
    for name in ("w_en", "r_en", "r_data_en", "w_addr", "r_addr", "w_data"):
        getattr(dut, name).value = 0
    await harness.start()
    memory = {}  # address -> word; never written reads as 0 (both builds start at 0)
    read_word, output = 0, 0
    for cycle in range(cycles):
        w_en, r_en, r_data_en = (rng.random() < p for p in (0.4, 0.6, 0.7))
        w_addr, r_addr = rng.choice(addresses), rng.choice(addresses)
        w_data = rng.getrandbits(width)
        dut.w_en.value, dut.w_addr.value, dut.w_data.value = int(w_en), w_addr, w_data
        dut.r_en.value, dut.r_addr.value, dut.r_data_en.value = int(r_en), r_addr, int(r_data_en)
        await RisingEdge(dut.clk)
        # This edge: the output register takes the read word of before, the read stage reads
        # the memory as it was, then the write lands.
        if r_data_en:
            output = read_word
        if r_en:
            read_word = memory.get(r_addr, 0)
        if w_en:
            memory[w_addr] = w_data
        await FallingEdge(dut.clk)  # settled; the next cycle's inputs are set from here
        got = int(dut.r_data.value)
        assert got == output, f"cycle {cycle}: r_data {got:#x}, expected {output:#x}"
    dut._log.info(f"{cycles} cycles of {width} x {depth}: every r_data as the model says")
