"""The simulated board's harness checks, shown to fire on small misbehaving stand-ins.

Each stand-in is a hand-written Verilog ``ttaccel_top`` with ZynqTop's ports: a minimal
AXI4-Lite subordinate (reads return the ID word) that swallows the input stream and offers a
stream of counting beats on ``m_axis``. Variant ``good`` keeps an offered beat until it is
taken; ``withdraws`` drops ``TVALID`` after a cycle of back-pressure; ``changes`` keeps
``TVALID`` but moves ``TDATA`` on; ``no_tlast`` never sets ``TLAST``. The real RTL is checked by
tests/host/test_sim_device.py; these tests show that its zero counts mean something.
"""

from __future__ import annotations

import numpy as np
import pytest

from ttaccel.host.sim import SimDevice
from ttaccel.host.sim_build import build_from_verilog
from ttaccel.spec.regmap import IP_IDENTIFIER

BEATS = 40  # the stand-in sends TLAST on every BEATS-th beat (unless no_tlast)

STAND_IN = """
module ttaccel_top(
  input aclk, input aresetn,
  input [7:0] s_axi_awaddr, input s_axi_awvalid, output s_axi_awready,
  input [31:0] s_axi_wdata, input [3:0] s_axi_wstrb, input s_axi_wvalid, output s_axi_wready,
  output [1:0] s_axi_bresp, output reg s_axi_bvalid, input s_axi_bready,
  input [7:0] s_axi_araddr, input s_axi_arvalid, output s_axi_arready,
  output reg [31:0] s_axi_rdata, output [1:0] s_axi_rresp, output reg s_axi_rvalid,
  input s_axi_rready,
  input [63:0] s_axis_tdata, input s_axis_tlast, input s_axis_tvalid, output s_axis_tready,
  output reg [63:0] m_axis_tdata, output [7:0] m_axis_tkeep, output m_axis_tlast,
  output reg m_axis_tvalid, input m_axis_tready,
  output interrupt);
  localparam WITHDRAW = @WITHDRAW@, CHANGE = @CHANGE@, TLAST = @TLAST@;
  assign s_axi_awready = !s_axi_bvalid;
  assign s_axi_wready = !s_axi_bvalid;
  assign s_axi_bresp = 2'b00;
  assign s_axi_arready = !s_axi_rvalid;
  assign s_axi_rresp = 2'b00;
  assign s_axis_tready = 1'b1;
  assign m_axis_tkeep = 8'hFF;
  assign m_axis_tlast = TLAST && (m_axis_tdata % @BEATS@ == @BEATS@ - 1);
  assign interrupt = 1'b0;
  always @(posedge aclk) begin
    if (!aresetn) begin
      s_axi_bvalid <= 0; s_axi_rvalid <= 0; s_axi_rdata <= 0;
      m_axis_tvalid <= 0; m_axis_tdata <= 0;
    end else begin
      if (s_axi_awvalid && s_axi_wvalid && !s_axi_bvalid) s_axi_bvalid <= 1;
      else if (s_axi_bready) s_axi_bvalid <= 0;
      if (s_axi_arvalid && !s_axi_rvalid) begin
        s_axi_rvalid <= 1; s_axi_rdata <= 32'h@ID@;
      end else if (s_axi_rready) s_axi_rvalid <= 0;
      if (m_axis_tvalid && m_axis_tready) m_axis_tdata <= m_axis_tdata + 1;
      else if (m_axis_tvalid && WITHDRAW) m_axis_tvalid <= 0;
      else if (m_axis_tvalid && CHANGE) m_axis_tdata <= m_axis_tdata + 64'h100;
      else m_axis_tvalid <= 1;
    end
  end
endmodule
"""

VARIANTS = {
    "good": {"WITHDRAW": 0, "CHANGE": 0, "TLAST": 1},
    "withdraws": {"WITHDRAW": 1, "CHANGE": 0, "TLAST": 1},
    "changes": {"WITHDRAW": 0, "CHANGE": 1, "TLAST": 1},
    "no_tlast": {"WITHDRAW": 0, "CHANGE": 0, "TLAST": 0},
}


def stand_in(variant: str) -> str:
    text = STAND_IN.replace("@BEATS@", str(BEATS)).replace("@ID@", f"{IP_IDENTIFIER:08x}")
    for name, value in VARIANTS[variant].items():
        text = text.replace(f"@{name}@", str(value))
    return text


@pytest.fixture(scope="module", params=list(VARIANTS))
def board(request):
    built = build_from_verilog(stand_in(request.param), {"stand_in": request.param})
    return request.param, built.library


def test_checks_count_exactly_what_the_stand_in_breaks(board):
    variant, library = board
    with SimDevice(library, seed=7, output_stall=0.5) as dev:
        assert dev.read("ID") == IP_IDENTIFIER  # the bus works on every variant
        dev.start_transfers(np.arange(10, dtype=np.uint64), BEATS)
        dev.run(100 * BEATS)
        counters = dev.counters()
        assert counters["in_sent"] == 10 and counters["out_stall_cycles"] > 0
        broken = counters["violations"]
        if variant in ("good", "no_tlast"):
            assert broken == 0, f"{variant}: {counters}"
        else:
            assert broken > 0, f"{variant}: the checker missed the broken beats ({counters})"
        if variant in ("good", "no_tlast"):
            # beats arrive in order, none lost or repeated, despite the back-pressure
            np.testing.assert_array_equal(dev.received(), np.arange(BEATS, dtype=np.uint64))
            ended = variant == "good"
            assert counters["out_ended_by_tlast"] == ended
            assert counters["tlast_missing"] == (not ended)


def test_without_back_pressure_nothing_is_broken(board):
    variant, library = board
    with SimDevice(library) as dev:
        dev.start_transfers(np.empty(0, np.uint64), BEATS)
        dev.run(100 * BEATS)
        assert dev.violations == 0, variant
        assert dev.counters()["out_stall_cycles"] == 0
        got = dev.received()  # consecutive beats; early only where the stand-in sent TLAST
        np.testing.assert_array_equal(got - got[0], np.arange(got.size, dtype=np.uint64))
        assert got.size == BEATS or int(got[-1]) % BEATS == BEATS - 1, got
