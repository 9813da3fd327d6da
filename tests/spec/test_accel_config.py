"""AccelConfig: validation, JSON round trip, derived widths and resource estimates."""

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttaccel.spec.accel_config import DEVICES, AccelConfig, bram36_blocks
from ttaccel.spec.formats import BINARY, FORMATS, INT4, INT8, TERNARY


def test_default_is_a_pynq_z2_design():
    config = AccelConfig()
    limits = DEVICES["xc7z020"]
    assert (config.rows, config.cols, config.lanes) == (12, 32, 384)
    assert config.weight_format == INT8 and config.activation_format == INT8
    assert config.stream_bits == 64
    # Two int8 MACs per DSP48E1 (384 / 2), two per requantizer lane (12 lanes), one for the
    # dispatcher's bound multiplier, one for the execute engine's `* rows` (12 is no shift).
    assert config.dsp_estimate == {"mac": 192, "requant": 24, "dispatch": 1, "address": 1}
    assert config.dsp_total == 218  # yosys synth_xilinx of the 12 x 32 top: 218 DSP48E1
    assert config.dsp_total >= 0.8 * limits.dsp48
    # RAMB36 in the cheapest aspect ratio: WBUF 256 bits x 8192 as 29 x 2 blocks of 9 x 4096;
    # ABUF 96 x 4096: 11 blocks; BIAS 32 x 4096: 4; instructions 320 x 1024 as 36 x 1024: 9.
    # rows != cols: no second ABUF copy (no b_from_abuf).
    assert config.bram36_estimate == {
        "weight_buffer": 58,
        "act_buffer": 11,
        "bias_buffer": 4,
        "instructions": 9,
    }
    assert config.bram36_total == 82  # yosys synth_xilinx of the 12 x 32 top: 82 RAMB36
    assert config.bram36_total <= 0.8 * limits.bram36
    assert not config.supports_b_from_abuf
    assert config.acc_bits == 28  # 4096 * 128 * 128 = 2**26 needs 27 magnitude bits + sign
    assert config.weight_buffer_bytes == 256 * 1024 and config.act_buffer_bytes == 48 * 1024
    assert "12x32" in config.summary()


def test_square_reference_keeps_b_from_abuf():
    # The 16 x 16 configuration of the seed-000 utilization figures (docs/hardware.md): square,
    # so attention scores run on the engine, but over the board budget (133 of 140 RAMB36).
    config = AccelConfig(rows=16, cols=16, weight_buffer_depth=16384, act_buffer_depth=8192)
    assert config.supports_b_from_abuf
    assert config.dsp_estimate == {"mac": 128, "requant": 32, "dispatch": 1, "address": 0}
    assert config.bram36_estimate["act_buffer_b_operand"] == 30
    assert config.bram36_total == 133  # yosys synth_xilinx of that top: 133 RAMB36


@pytest.mark.parametrize(
    ("fmt", "macs_per_dsp", "acc_bits"),
    # int4 and lower multiply in LUTs (hw/transposed.py): no DSP48E1 for the MAC lanes.
    [(INT8, 2, 28), (INT4, 0, 24), (TERNARY, 0, 21), (BINARY, 0, 21)],
)
def test_weight_format_sets_packing_and_accumulator(fmt, macs_per_dsp, acc_bits):
    config = AccelConfig(weight_format=fmt)
    assert config.macs_per_dsp == macs_per_dsp
    assert config.acc_bits == acc_bits
    worst = config.max_k * config.product_magnitude
    assert worst <= 2 ** (config.acc_bits - 1) - 1 < 2 * worst
    assert config.dsp_estimate["mac"] == (config.lanes // macs_per_dsp if macs_per_dsp else 0)


def test_packing_off_costs_one_dsp_per_lane():
    assert AccelConfig(rows=8, cols=8, dsp_packing=False).dsp_estimate["mac"] == 64
    # Packing pairs two tokens (rows) on one weight: an odd row count cannot pack.
    assert AccelConfig(rows=5, cols=8).dsp_estimate["mac"] == 40
    assert AccelConfig(rows=6, cols=7).dsp_estimate["mac"] == 21
    assert AccelConfig(rows=8, cols=8, weight_format=INT4, dsp_packing=True).dsp_total == 17


def test_constant_multipliers_that_are_not_shifts_take_dsps():
    # As yosys synth_xilinx shows: 18 x 18 (201 DSP48E1) has 144-bit words (count * 144 in
    # the load engine) and the execute engine's * 18; 12 x 32 (218) only 96-bit A-words.
    assert AccelConfig(rows=18, cols=18, weight_buffer_depth=8192).dsp_estimate["address"] == 2
    assert AccelConfig(rows=12, cols=32, weight_buffer_depth=8192).dsp_total == 218
    assert AccelConfig(rows=16, cols=16).dsp_estimate["address"] == 0


def test_logic_estimate_grows_with_lanes_and_lut_multipliers():
    small, big = AccelConfig(rows=8, cols=8), AccelConfig(rows=16, cols=16)
    assert small.logic_estimate["luts"] < big.logic_estimate["luts"]
    assert small.logic_estimate["flip_flops"] < big.logic_estimate["flip_flops"]
    int4 = AccelConfig(rows=8, cols=8, weight_format=INT4)
    assert int4.logic_estimate["luts"] > small.logic_estimate["luts"]
    assert int4.logic_estimate["flip_flops"] == small.logic_estimate["flip_flops"]


def test_bram36_blocks():
    assert bram36_blocks(512, 72) == 1
    assert bram36_blocks(513, 72) == 2
    assert bram36_blocks(32768, 1) == 1
    assert bram36_blocks(8192, 128) == 30
    assert bram36_blocks(0, 8) == 0


@st.composite
def configs(draw):
    rows = draw(st.sampled_from([1, 2, 4, 8]))  # <= 128 lanes: fits even without packing
    return AccelConfig(
        rows=rows,
        cols=draw(st.sampled_from([1, 3, 4, 8, 16])),
        weight_format=draw(st.sampled_from(sorted(FORMATS.values(), key=lambda f: f.name))),
        dsp_packing=draw(st.booleans()),
        weight_buffer_depth=draw(st.integers(1, 4096)),
        act_buffer_depth=draw(st.integers(1, 4096)),
        bias_buffer_depth=draw(st.integers(1, 4096)),
        instruction_depth=draw(st.integers(1, 512)),
        queue_depth=draw(st.integers(1, 16)),
        max_k=draw(st.integers(1, 8192)),
        clock_mhz=draw(st.sampled_from([50, 100.0, 142.857, 150])),
    )


@given(configs())
def test_json_round_trip(config):
    text = config.to_json()
    assert json.loads(text)["weight_format"] == config.weight_format.name
    assert AccelConfig.from_json(text) == config
    assert AccelConfig.from_dict(config.to_dict()) == config


def test_json_missing_keys_take_defaults():
    assert AccelConfig.from_json('{"rows": 8}') == AccelConfig(rows=8)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"rowz": 8}', "no field"),
        ("[1, 2]", "must be an object"),
        ("{", "does not parse"),
        ('{"weight_format": "int3"}', "weight_format must be one of"),
        ('{"rows": "16"}', "rows must be a positive integer"),
    ],
)
def test_bad_json_is_rejected(text, message):
    with pytest.raises(ValueError, match=message):
        AccelConfig.from_json(text)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rows": 0}, "rows must be a positive integer, not 0"),
        ({"cols": True}, "cols must be a positive integer, not True"),
        ({"rows": 300}, "rows must be at most 256"),
        ({"activation_format": INT4}, "activation_format must be int8"),
        ({"weight_format": "int3"}, "weight_format must be one of"),
        ({"stream_bits": 32}, "stream_bits must be 64"),
        ({"act_buffer_depth": 2**16 + 1}, "act_buffer_depth must be at most 65536"),
        ({"act_buffer_depth": 65536}, r"RAMB36 .* xc7z020 has 140"),
        ({"rows": 32, "cols": 32}, r"DSP48E1 .* xc7z020 has 220"),
        ({"clock_mhz": 0}, "clock_mhz must be a number"),
        ({"device": "xc7z010"}, "device must be one of"),
        ({"dsp_packing": 1}, "dsp_packing must be a bool"),
        ({"max_k": 0}, "max_k must be a positive integer"),
    ],
)
def test_validation_names_input_expected_and_found(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AccelConfig(**kwargs)


def test_config_is_frozen():
    config = AccelConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.rows = 8  # type: ignore[misc]
