# amaranth: UnusedElaboratable=no
"""AXI4-Stream rules on the top level's output (``sim/tb_top_stream_rules.py``), Icarus: a
normal run under back-pressure, and an error (5) and a soft reset while a beat waits (they
failed before the output path kept a waiting beat through an abort, issue 9 item 5)."""

from __future__ import annotations

from ttaccel.hw.top import ZynqTop
from ttaccel.sim.runner import run_cocotb, test_seed
from ttaccel.sim.test_top_engine import ENGINE_CONFIG


def test_output_holds_until_the_handshake():
    run_cocotb(
        ZynqTop(config=ENGINE_CONFIG), sim="icarus", config_name="top-stream-rules",
        test_module="ttaccel.sim.tb_top_stream_rules",
        config={"seed": test_seed(), "config": ENGINE_CONFIG.to_dict()},
    )  # fmt: skip
