"""cocotb testbench of ``test_packed_dsp.PackedProductChecker``: run its sweep of all 2**24
(a, w0, w1) triples, then read its error counters; once with a fault injected into its oracle
(the comparison must catch exactly the corrupted cycles), once clean (no error at all)."""

import cocotb
from cocotb.triggers import RisingEdge, Timer

from ttaccel.sim.tb import Harness, tb_config


async def sweep(dut, *, fault: bool, cycles: int) -> tuple[int, int, tuple[int, int]]:
    """Reset, run ``cycles`` cycles (one wait: no Python per cycle), read the counters."""
    dut.fault.value = int(fault)
    harness = Harness(dut)
    await harness.start(count_cycles=False)
    await Timer(10 * cycles, unit="ns")
    await RisingEdge(dut.clk)
    bad = (dut.bad_a.value.to_signed(), dut.bad_w0.value.to_signed())
    return int(dut.checked.value), int(dut.errors.value), bad


@cocotb.test()
async def injected_fault_is_caught(dut):
    """The corrupted pair (a, w0) = (0, -128) lies in the first a = 0 stretch of the sweep."""
    cfg = tb_config()
    checked, errors, bad = await sweep(dut, fault=True, cycles=cfg["a_stride"] + 16)
    assert checked >= cfg["a_stride"], checked
    assert errors == cfg["fault_errors"] and bad == (0, -128), f"{errors} errors, first {bad}"


@cocotb.test()
async def every_product_is_exact(dut):
    cfg = tb_config()
    checked, errors, bad = await sweep(dut, fault=False, cycles=cfg["cycles"] + 16)
    assert int(dut.done.value), "the sweep did not finish"
    assert checked == cfg["cycles"], f"{checked} of {cfg['cycles']} cycles compared"
    assert errors == 0, f"{errors} cycles with a wrong product, first (a, w0) = {bad}"
    dut._log.info("all 2**24 (a, w0, w1) products exact")
