"""The compiler: programs run by the reference executor equal the golden models exactly."""

import itertools

import numpy as np
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.compiler import (
    LayerDoesNotFit,
    compile_attention_scores,
    compile_dense,
    compile_tt_linear,
    tile_tokens,
    untile_tokens,
    with_prefetch,
)
from ttaccel.spec.formats import BINARY, FORMATS, INT4, INT8, TERNARY, Requant, requantize
from ttaccel.spec.golden import QuantTTLinear, gemm_int, tt_linear_int
from ttaccel.spec.isa import Gemm, HazardError, Load, Machine, execute
from ttaccel.spec.tt import TTShape, best_plan, tt_layer_modes

FORMAT_LIST = sorted(FORMATS.values(), key=lambda f: f.name)


def codes(rng, fmt, size, extreme=False):
    values = [v for v in range(fmt.qmin, fmt.qmax + 1) if fmt.has_zero or v]
    return rng.choice([fmt.qmin, fmt.qmax] if extreme else values, size=size).astype(np.int8)


def random_layer(rng, shape, fmt, plan, extreme, out_format=INT8, with_bias=True):
    cores = tuple(codes(rng, fmt, s, extreme) for s in shape.core_shapes)

    def requant(out):  # small shifts saturate, large ones round to small codes
        return Requant(int(rng.integers(1, 2**16)), int(rng.integers(0, 22)), out)

    return QuantTTLinear(
        cores=cores,
        weight_format=fmt,
        plan=plan,
        merge_requants=tuple(tuple(requant(fmt) for _ in range(b - a - 1)) for a, b in plan),
        stage_requants=tuple(
            requant(INT8 if s < len(plan) - 1 else out_format) for s in range(len(plan))
        ),
        bias=rng.integers(-(2**20), 2**20, size=shape.out_features).astype(np.int32)
        if with_bias
        else None,
        input_scale=1.0,
        output_scale=1.0,
    )


def run_layer(compiled, x, cold=False):
    config = compiled.config
    machine = Machine.empty(config)
    if cold:
        result = execute(compiled.cold(), config, compiled.cold_stream(x), machine)
    else:
        execute(compiled.setup, config, compiled.setup_stream, machine)
        result = execute(compiled.run, config, compiled.input_stream(x), machine)
    assert result.output.size == compiled.output_beats
    return compiled.decode_output(result.output), result


@st.composite
def tt_layers(draw):
    d = draw(st.integers(2, 6))
    mode = st.sampled_from([1, 1, 2, 3, 3, 5])
    in_modes = draw(st.lists(mode, min_size=d, max_size=d))
    out_modes = draw(st.lists(mode, min_size=d, max_size=d))
    ranks = (1, *draw(st.lists(st.integers(1, 6), min_size=d - 1, max_size=d - 1)), 1)
    shape = TTShape(tuple(in_modes), tuple(out_modes), ranks)
    cuts = sorted(draw(st.sets(st.integers(1, d - 1))))
    bounds = [0, *cuts, d]
    plan = tuple(itertools.pairwise(bounds))
    fmt = draw(st.sampled_from(FORMAT_LIST))
    out_format = draw(st.sampled_from(FORMAT_LIST))
    seed = draw(st.integers(0, 2**32 - 1))
    extreme = draw(st.booleans())
    with_bias = draw(st.booleans())
    note(f"shape={shape} plan={plan} fmt={fmt.name} out={out_format.name} seed={seed}")
    rng = np.random.default_rng(seed)
    return random_layer(rng, shape, fmt, plan, extreme, out_format, with_bias), seed


@settings(max_examples=150)
@given(
    layer_seed=tt_layers(),
    tokens=st.integers(1, 40),
    array=st.sampled_from([(1, 1), (2, 3), (4, 4), (3, 5), (8, 8), (16, 16)]),
    cold=st.booleans(),
)
def test_random_tt_layers_run_exactly(layer_seed, tokens, array, cold):
    layer, seed = layer_seed
    print(f"replay: seed={seed} tokens={tokens} array={array}")
    rng = np.random.default_rng(seed + 1)
    # Deep buffers, yet within the xc7z020's 140 RAMB36 (a square int8 array keeps two ABUFs).
    depth = 2**15 if max(array) <= 4 else 2**14
    act_depth = 2**15 if max(array) <= 4 else 2**13
    config = AccelConfig(
        rows=array[0],
        cols=array[1],
        max_rank=6,
        weight_buffer_depth=depth,
        act_buffer_depth=act_depth,
    )
    x = codes(
        rng, INT8, (tokens, int(np.prod([c.shape[1] for c in layer.cores]))), extreme=seed % 3 == 0
    )
    try:
        compiled = compile_tt_linear(layer, tokens, config)
    except LayerDoesNotFit as error:  # a fully merged 6-core layer can outgrow the buffers
        assert "depth" in str(error) or "max_k" in str(error), str(error)  # or the array's K
        assume(False)
    got, _ = run_layer(compiled, x, cold)
    np.testing.assert_array_equal(got, tt_linear_int(x, layer))


@pytest.mark.parametrize("fmt", [INT8, INT4, TERNARY, BINARY])
def test_config_weight_format_matches_layer(fmt):
    rng = np.random.default_rng(3)
    shape = TTShape((3, 5, 1), (1, 3, 5), (1, 4, 3, 1))
    layer = random_layer(rng, shape, fmt, best_plan(shape, 20), extreme=False)
    config = AccelConfig(rows=4, cols=4, weight_format=fmt)
    x = codes(rng, INT8, (20, 15))
    got, _ = run_layer(compile_tt_linear(layer, 20, config), x)
    np.testing.assert_array_equal(got, tt_linear_int(x, layer))


@pytest.mark.parametrize(
    ("name", "in_modes", "out_modes", "ranks", "tokens"),
    [
        ("attention", (24, 32), (32, 24), (1, 24, 30, 24, 1), 128),
        ("ffn", (32, 24), (48, 64), (1, 30, 30, 30, 1), 128),
        ("ffn_out", (64, 48), (24, 32), (1, 30, 30, 30, 1), 64),
    ],
)
def test_seed_000_layers_run_exactly_on_the_default_config(
    name, in_modes, out_modes, ranks, tokens
):
    rng = np.random.default_rng(0)
    shape = TTShape(*tt_layer_modes(in_modes, out_modes), ranks)
    plan = best_plan(shape, tokens)
    layer = random_layer(rng, shape, INT8, plan, extreme=False)
    config = AccelConfig()
    compiled = compile_tt_linear(layer, tokens, config)
    x = codes(rng, INT8, (tokens, shape.in_features))
    got, result = run_layer(compiled, x)
    np.testing.assert_array_equal(got, tt_linear_int(x, layer))
    assert compiled.useful_macs == tokens * sum(s.p * s.r * s.k * s.n for s in compiled.stages)
    assert result.macs_issued >= compiled.useful_macs


@pytest.mark.parametrize("resident", [True, False])
@pytest.mark.parametrize(("m", "n", "tokens"), [(100, 37, 13), (7, 1, 1), (64, 64, 32)])
def test_dense_gemm_equals_gemm_int_and_requantize(resident, m, n, tokens):
    rng = np.random.default_rng(m * n + tokens)
    weight = codes(rng, INT8, (m, n))
    bias = rng.integers(-5000, 5000, size=n).astype(np.int32)
    requant = Requant(12345, 20)
    config = AccelConfig(rows=4, cols=4, weight_buffer_depth=1024 if resident else 256)
    compiled = compile_dense(weight, INT8, requant, tokens, config, bias, resident=resident)
    assert any(isinstance(i, Load) for i in compiled.run)
    x = codes(rng, INT8, (tokens, m))
    got, _ = run_layer(compiled, x)
    np.testing.assert_array_equal(got, requantize(gemm_int(x, weight), requant, bias))
    streamed_weights = any(isinstance(i, Load) and i.buffer.name == "WBUF" for i in compiled.run)
    assert streamed_weights == (not resident)


def test_dense_chooses_streaming_when_weights_do_not_fit():
    rng = np.random.default_rng(5)
    weight = codes(rng, INT4, (64, 40))
    config = AccelConfig(rows=4, cols=4, weight_buffer_depth=128)
    compiled = compile_dense(weight, INT4, Requant(1, 4, INT4), 9, config)
    x = codes(rng, INT8, (9, 64))
    got, _ = run_layer(compiled, x)
    np.testing.assert_array_equal(got, requantize(gemm_int(x, weight), Requant(1, 4, INT4)))
    assert len([i for i in compiled.run if isinstance(i, Gemm)]) == 10  # one per column tile


def test_tile_untile_round_trip():
    x = np.arange(7 * 5).reshape(7, 5)
    tiled = tile_tokens(x, 3)
    assert tiled.shape == (3, 5, 3)
    assert tiled[1, 2, 0] == x[3, 2] and tiled[2, 0, 1] == 0  # padded token
    np.testing.assert_array_equal(untile_tokens(tiled, 7), x)


def test_the_pipeline_overlaps_loads_and_needs_no_fences():
    rng = np.random.default_rng(6)
    shape = TTShape(*tt_layer_modes((8, 8), (8, 8)), (1, 4, 6, 4, 1))
    layer = random_layer(rng, shape, INT8, best_plan(shape, 64), extreme=False)
    compiled = compile_tt_linear(layer, 64, AccelConfig(rows=16, cols=16))  # 4 column blocks
    gemms = [i for i in compiled.run if isinstance(i, Gemm)]
    loads = [i for i in compiled.run if isinstance(i, Load)]
    assert not any(g.fence for g in gemms)
    assert len(loads) == compiled.blocks == 4
    assert [ld.wait for ld in loads] == [False, False, True, True]
    assert all(ld.signal for ld in loads)


def layer_of(shape, fmt=INT8):
    return random_layer(np.random.default_rng(0), shape, fmt, best_plan(shape), extreme=False)


@pytest.mark.parametrize(
    ("layer", "tokens", "config", "message"),
    [
        (
            layer_of(TTShape((2,) * 5, (2,) * 5, (1, 2, 2, 2, 2, 1))),
            4,
            AccelConfig(max_cores=4),
            "number of TT cores is 5, but the configuration's max_cores is 4",
        ),
        (
            layer_of(TTShape((4, 4), (4, 4), (1, 9, 1))),
            4,
            AccelConfig(max_rank=8),
            "largest TT rank is 9, but the configuration's max_rank is 8",
        ),
        (
            layer_of(TTShape((4, 4), (4, 4), (1, 2, 1))),
            4,
            AccelConfig(max_mode=3),
            "largest input mode is 4, but the configuration's max_mode is 3",
        ),
        (
            layer_of(TTShape((64, 1), (1, 4), (1, 4, 1))),
            4,
            AccelConfig(max_k=32),
            "stage 0's reduction K = r \\* m is 64, but the configuration's max_k is 32",
        ),
        (
            layer_of(TTShape((64, 1), (1, 64), (1, 8, 1))),
            4,
            AccelConfig(rows=16, cols=16, weight_buffer_depth=64),  # B-words of 16 lanes
            "merged cores' B-words is 96, but the configuration's weight_buffer_depth is 64",
        ),
        (
            layer_of(TTShape((64, 1), (1, 64), (1, 8, 1))),
            4,
            AccelConfig(act_buffer_depth=64),
            "act_buffer_depth is 64",
        ),
        (
            layer_of(TTShape((8, 1), (1, 64), (1, 8, 1))),
            4,
            AccelConfig(bias_buffer_depth=32),
            "bias length \\(out_features\\) is 64, but the configuration's bias_buffer_depth is 32",
        ),
        (
            layer_of(TTShape((4, 1), (1, 4), (1, 2, 1))),
            16 * 40,
            AccelConfig(instruction_depth=64),
            "instruction_depth \\(instructions\\) is 64",
        ),
        (
            layer_of(TTShape((4, 1), (1, 4), (1, 2, 1)), INT8),
            4,
            AccelConfig(weight_format=INT4),
            "weight format: the layer's int8 codes are not all int4 codes",
        ),
    ],
)
def test_layers_that_do_not_fit_name_the_dimension_and_the_limit(layer, tokens, config, message):
    with pytest.raises(LayerDoesNotFit, match=message):
        compile_tt_linear(layer, tokens, config)


def test_bad_inputs():
    layer = layer_of(TTShape((4, 1), (1, 4), (1, 2, 1)))
    with pytest.raises(ValueError, match="tokens must be a positive integer"):
        compile_tt_linear(layer, 0, AccelConfig())
    compiled = compile_tt_linear(layer, 3, AccelConfig())
    with pytest.raises(ValueError, match=r"x must have shape \(3, 4\)"):
        compiled.input_stream(np.zeros((4, 4), np.int8))
    with pytest.raises(ValueError, match="the program sends"):
        compiled.decode_output(np.zeros(100, np.uint64))
    with pytest.raises(LayerDoesNotFit, match="streamed column tile needs K = 300"):
        compile_dense(
            np.zeros((300, 4), np.int8),
            INT8,
            Requant(1, 0),
            4,
            AccelConfig(weight_buffer_depth=512),
            resident=False,
        )


@pytest.mark.parametrize(("tokens", "head_dim", "array"), [(128, 64, 16), (13, 5, 4), (1, 1, 1)])
def test_attention_scores_are_int8_by_int8_with_keys_from_the_activation_buffer(
    tokens, head_dim, array
):
    rng = np.random.default_rng(tokens)
    config = AccelConfig(rows=array, cols=array)
    requant = Requant(40000, 22)
    compiled = compile_attention_scores(tokens, head_dim, requant, config)
    assert any(isinstance(i, Gemm) and i.b_from_abuf for i in compiled.run)
    q = codes(rng, INT8, (tokens, head_dim), extreme=tokens == 1)
    k = codes(rng, INT8, (tokens, head_dim))
    got, _ = run_layer(compiled, np.concatenate([q, k], axis=1))
    np.testing.assert_array_equal(got, requantize(gemm_int(q, k.T), requant))


def test_attention_scores_need_a_square_int8_array():
    with pytest.raises(LayerDoesNotFit, match="square array with int8 weights, not 4x8 int8"):
        compile_attention_scores(8, 4, Requant(1, 0), AccelConfig(rows=4, cols=8))


def test_low_rank_layer_is_a_two_core_tt_layer():
    rng = np.random.default_rng(8)
    m, n, rank = 48, 40, 6
    shape = TTShape((m, 1), (1, n), (1, rank, 1))
    layer = random_layer(rng, shape, INT4, ((0, 1), (1, 2)), extreme=False)
    compiled = compile_tt_linear(layer, 20, AccelConfig(rows=8, cols=8))
    assert [(s.k, s.n) for s in compiled.stages] == [(m, rank), (rank, n)]
    x = codes(rng, INT8, (20, m))
    got, _ = run_layer(compiled, x)
    np.testing.assert_array_equal(got, tt_linear_int(x, layer))


def test_prefetching_the_next_layers_constants_while_this_one_runs():
    rng = np.random.default_rng(9)
    config = AccelConfig(rows=4, cols=4)
    first_shape = TTShape(*tt_layer_modes((6, 5), (5, 6)), (1, 4, 5, 4, 1))
    second_shape = TTShape(*tt_layer_modes((5, 6), (3, 7)), (1, 3, 4, 3, 1))
    first = random_layer(rng, first_shape, INT8, best_plan(first_shape, 30), extreme=False)
    second = random_layer(rng, second_shape, INT8, best_plan(second_shape, 30), extreme=False)
    a = compile_tt_linear(first, 30, config)
    words = sum(c.count for c in a.constants if c.buffer.name == "WBUF")
    b = compile_tt_linear(second, 30, config, weight_base=words, bias_base=first_shape.out_features)
    a_then_b = with_prefetch(a, b, max_beats=8)
    assert len(a_then_b.run) > len(a.run)
    machine = Machine.empty(config)
    execute(a.setup, config, a.setup_stream, machine)
    x = codes(rng, INT8, (30, 30))
    out = execute(a_then_b.run, config, a_then_b.input_stream(x), machine).output
    y = a_then_b.decode_output(out)
    np.testing.assert_array_equal(y, tt_linear_int(x, first))
    out = execute(b.run, config, b.input_stream(y), machine).output  # no setup: prefetched
    np.testing.assert_array_equal(b.decode_output(out), tt_linear_int(y, second))


def test_prefetching_over_the_running_layers_cores_is_a_race():
    rng = np.random.default_rng(10)
    shape = TTShape(*tt_layer_modes((6, 5), (5, 6)), (1, 4, 5, 4, 1))
    layer = random_layer(rng, shape, INT8, best_plan(shape, 30), extreme=False)
    a = compile_tt_linear(layer, 30, AccelConfig(rows=4, cols=4))
    with pytest.raises(HazardError, match="race"):
        with_prefetch(a, a)
