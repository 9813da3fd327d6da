# amaranth: UnusedElaboratable=no
"""``hw.memory.RegisteredReadMemory``: its DP16KD tiling, which build instantiates DP16KD, and
both builds (the portable ``Memory`` and the ECP5 proxy's DP16KD with ``sim/models/DP16KD.v``)
against the same cycle-by-cycle model of its contract (``sim/tb_memory.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from amaranth.back import verilog

from ttaccel.hw.dsp import ECP5_PROXY
from ttaccel.hw.memory import RegisteredReadMemory, dp16kd_tiling
from ttaccel.sim.runner import run_cocotb, test_seed

DP16KD_MODEL = Path(__file__).resolve().parent / "models" / "DP16KD.v"


@pytest.mark.parametrize(
    ("width", "depth", "tiling"),
    [
        (64, 1024, (10, 18, 4)),  # 1K x 18: ABUF of an 8 x 8 array
        (320, 256, (10, 18, 18)),  # the instruction memory
        (32, 4096, (12, 4, 8)),  # the default's BIAS
        (40, 8192, (13, 2, 20)),  # the default's WBUF
        (3, 16384, (14, 1, 3)),
        (3, 16385, None),  # deeper than one block: left to yosys
    ],
)
def test_dp16kd_tiling(width, depth, tiling):
    assert dp16kd_tiling(width, depth) == tiling


def test_only_the_ecp5_platform_gets_dp16kd():
    def count(platform, depth=1024):
        text = verilog.convert(RegisteredReadMemory(width=20, depth=depth), platform=platform)
        return text.count("DP16KD ")

    assert count(None) == 0
    assert count(ECP5_PROXY) == 2
    assert count(ECP5_PROXY, depth=16385) == 0


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="Depth must be a positive integer, not 0"):
        RegisteredReadMemory(width=8, depth=0)
    with pytest.raises(ValueError, match="Width must be a positive integer, not -1"):
        RegisteredReadMemory(width=-1, depth=8)


@pytest.mark.parametrize("ecp5", [False, True], ids=["portable", "ecp5"])
@pytest.mark.parametrize(("width", "depth"), [(20, 1000), (5, 4096), (3, 16384)])
def test_reads_match_the_model(width, depth, ecp5):
    """(20, 1000): two 1K x 18 tiles, the second half spare; (5, 4096): 4K x 4 tiles;
    (3, 16384): 16K x 1."""
    tb = {"width": width, "depth": depth, "cycles": 3000, "seed": test_seed()}
    run_cocotb(
        RegisteredReadMemory(width=width, depth=depth),
        sim="verilator",
        config_name=f"memory-{width}x{depth}-{'ecp5' if ecp5 else 'portable'}",
        test_module="ttaccel.sim.tb_memory",
        config=tb,
        platform=ECP5_PROXY if ecp5 else None,
        extra_sources=[DP16KD_MODEL] if ecp5 else [],
    )
