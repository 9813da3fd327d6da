"""cocotb module of tests/hw/test_gate_level.py: one short program on the synthesized netlist.

The netlist is yosys ``synth_xilinx`` output (LUTs, flip-flops, CARRY4, DSP48E1, LUT-RAM),
simulated with yosys's cell models. The run is the one sim/tb_top_engine.py sends to the RTL
(two GEMMs, one to the stream with bias, one to ABUF then STOREd at int4), here once and
without stalls; results, ``STATUS``, ``PC`` and ``MACS_ISSUED`` are compared with
:func:`ttaccel.spec.isa.execute_stream`.

Configuration (``TTACCEL_TB``): ``seed``, ``config`` (the AccelConfig of the netlist).
"""

from __future__ import annotations

import cocotb
import numpy as np

from ttaccel.sim.tb import tb_config
from ttaccel.sim.tb_top_engine import make_run
from ttaccel.sim.topbench import DONE, IRQ_ENABLE, START, TopBench
from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.isa import encode_program, execute_stream


@cocotb.test()
async def a_short_program_on_the_netlist(dut):
    cfg = tb_config()
    config = AccelConfig.from_dict(cfg["config"])
    tb = TopBench(dut, cfg["seed"])
    rng = np.random.default_rng(cfg["seed"])
    await tb.reset()
    k, n = (
        int(rng.integers(2, config.rows + 1)),
        int(rng.integers(config.cols + 1, 2 * config.cols + 1)),
    )
    program, data = make_run(config, rng, k, n)
    stream = np.concatenate([encode_program(program), data])
    want = execute_stream(stream, len(program), config)
    dut._log.info(f"k={k} n={n}: {len(program)} instructions, {len(want.output)} output beats")
    await tb.write("PROGRAM_LENGTH", len(program))
    await tb.write("CONTROL", IRQ_ENABLE | START)
    await tb.source.send(tb.frame([int(w) for w in encode_program(program)]))
    await tb.source.send(tb.frame([int(w) for w in data]))
    got = await tb.receive_words(len(want.output), timeout_cycles=20000)
    assert got == [int(w) for w in want.output], "netlist results differ from execute_stream"
    assert await tb.wait_status(DONE) == DONE
    assert await tb.read("PC") == len(program)
    assert await tb.read64("MACS_ISSUED") == want.macs_issued
    assert tb.source.empty() and tb.sink.empty()
