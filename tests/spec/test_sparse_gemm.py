"""The engine's N:M sparse GEMM mode in the spec: configuration, B-word format, ISA field,
reference executor, compiler and cycle model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.compiler import (
    LayerDoesNotFit,
    NMPatternError,
    compile_dense,
    compile_layer,
    compile_nm_linear,
    compile_sparse_linear,
    nm_wbuf_lanes,
    sparse_mode_takes,
)
from ttaccel.spec.cycle_model import simulate
from ttaccel.spec.formats import INT4, INT8, Requant, requantize
from ttaccel.spec.golden import QuantNMLinear, gemm_int, nm_linear_int
from ttaccel.spec.isa import (
    Buffer,
    End,
    Gemm,
    Load,
    Machine,
    check_program,
    decode,
    encode,
    execute,
    gemm_beats,
    pack_b_words,
    unpack_b_words,
)
from ttaccel.spec.nm import nm_compress, nm_expand

SPARSE = AccelConfig(
    rows=4, cols=4, weight_buffer_depth=1024, act_buffer_depth=1024, bias_buffer_depth=256,
    instruction_depth=128, queue_depth=4, max_rank=6, max_mode=256, max_k=256,
    sparse_nm=(2, 4),
)  # fmt: skip
DENSE = dataclasses.replace(SPARSE, sparse_nm=None)


def nm_weights(rng, k, n, keep, group, fmt=INT8):
    w = rng.integers(fmt.qmin, fmt.qmax + 1, size=(k, n))
    w = np.where(w == 0, 1, w).reshape(k // group, group, n)
    mask = np.zeros(w.shape, bool)
    for g in range(k // group):
        for c in range(n):
            mask[g, rng.choice(group, size=int(rng.integers(0, keep + 1)), replace=False), c] = 1
    return (w * mask).reshape(k, n).astype(np.int8)


def sparse_gemm(**fields) -> Gemm:
    base = dict(m_outer=1, m_inner=1, k=8, n=4, a_base=0, a_outer=0, a_inner=0, a_k=1,
                b_base=0, b_tile=4, b_k=1, requant=Requant(1, 0, INT8), dst_stream=True,
                sparse=True)  # fmt: skip
    return Gemm(**{**base, **fields})


def test_config_sparse_nm_is_validated_and_round_trips():
    assert SPARSE.sparse_index_bits == 2 and SPARSE.b_lane_bits == 10
    assert SPARSE.b_word_bits == 40 and DENSE.b_word_bits == 32
    assert AccelConfig.from_json(SPARSE.to_json()) == SPARSE
    assert "act_buffer_second_read" not in SPARSE.bram36_estimate  # the b_from_abuf copy serves
    int4 = dataclasses.replace(DENSE, weight_format="int4", sparse_nm=[4, 8])
    assert int4.sparse_nm == (4, 8) and int4.b_lane_bits == 7
    assert "act_buffer_second_read" in int4.bram36_estimate
    for bad in ((2, 6), (1, 4), (3, 8), "2:4", (2,)):
        with pytest.raises(ValueError, match="sparse_nm must be None or"):
            dataclasses.replace(DENSE, sparse_nm=bad)
    with pytest.raises(ValueError, match="zero code"):
        dataclasses.replace(DENSE, weight_format="binary", sparse_nm=(2, 4))


@pytest.mark.parametrize("config", [SPARSE, dataclasses.replace(DENSE, rows=3, cols=5,
                         weight_format="int4", sparse_nm=(4, 8))])  # fmt: skip
def test_b_words_pack_codes_and_indices(config):
    rng = np.random.default_rng(1)
    fmt, group = config.weight_format, config.sparse_nm[1]
    codes = rng.integers(fmt.qmin, fmt.qmax + 1, size=(9, config.cols)).astype(np.int8)
    index = rng.integers(0, group, size=codes.shape)
    beats = pack_b_words(codes, config, index)
    assert beats.size == -(-9 * config.b_word_bits // 64)
    got_codes, got_index = unpack_b_words(beats, config, 9)
    np.testing.assert_array_equal(got_codes, codes)
    np.testing.assert_array_equal(got_index, index)
    # lane 0 in the low bits: the code, then its index above it
    first = int(beats[0]) & ((1 << config.b_lane_bits) - 1)
    assert first == (int(codes[0, 0]) & ((1 << fmt.bits) - 1)) | int(index[0, 0]) << fmt.bits
    with pytest.raises(ValueError, match="indices must lie in"):
        pack_b_words(codes, config, index + group)


def test_sparse_flag_encodes_in_bit_14_and_is_checked():
    gemm = sparse_gemm()
    assert encode(gemm) >> 14 & 1 and decode(encode(gemm)) == gemm
    assert not encode(dataclasses.replace(gemm, sparse=False)) >> 14 & 1
    end = [End()]
    check_program([gemm, *end], SPARSE)
    with pytest.raises(ValueError, match="sparse needs a configuration with sparse_nm"):
        check_program([gemm, *end], DENSE)
    with pytest.raises(ValueError, match="multiple of M = 4"):
        check_program([sparse_gemm(k=6), *end], SPARSE)
    with pytest.raises(ValueError, match="not b_from_abuf"):
        check_program([sparse_gemm(b_from_abuf=True), *end], SPARSE)
    assert gemm_beats(gemm, SPARSE) == 4 and gemm_beats(gemm, DENSE) == 8
    last = SPARSE.weight_buffer_depth - 4
    check_program([sparse_gemm(b_base=last), *end], SPARSE)  # B-words bounded by k/2 beats
    with pytest.raises(ValueError, match="B addresses reach 1024"):
        check_program([sparse_gemm(b_base=last + 1), *end], SPARSE)


def test_executor_sums_over_beats_with_any_indices():
    """A sparse GEMM (several row and column tiles, strides, repeated indices) equals a loop
    over its beats: ``A[(b // N) * M + index] * code``."""
    rng = np.random.default_rng(2)
    machine = Machine.empty(SPARSE)
    machine.abuf[:] = rng.integers(-128, 128, size=machine.abuf.shape)
    machine.wbuf[:] = rng.integers(-128, 128, size=machine.wbuf.shape)
    machine.wbuf_index[:] = rng.integers(0, 4, size=machine.wbuf.shape)
    g = sparse_gemm(m_outer=2, m_inner=2, k=12, n=10, a_base=3, a_outer=60, a_inner=25, a_k=2,
                    b_base=5, b_tile=14, b_k=2, dst_stream=False, out_base=500,
                    out_outer=20, out_inner=10, out_col=1, requant=Requant(1, 0, INT8))  # fmt: skip
    before = machine.copy()
    result = execute([g, End()], SPARSE, machine=machine, check=False)
    beats = 6
    for p in range(2):
        for q in range(2):
            for c in range(10):
                t, lane = divmod(c, 4)
                acc = np.zeros(4, np.int64)
                for b in range(beats):
                    word = 5 + t * 14 + b * 2
                    kk = (b // 2) * 4 + int(before.wbuf_index[word, lane])
                    a = before.abuf[3 + p * 60 + q * 25 + kk * 2].astype(np.int64)
                    acc += a * int(before.wbuf[word, lane])
                want = requantize(acc, g.requant)
                out = result.machine.abuf[500 + p * 20 + q * 10 + c]
                np.testing.assert_array_equal(out, want)
    assert result.macs_issued == 4 * beats * 4 * 10


@pytest.mark.parametrize(("keep", "group"), [(2, 4), (1, 4), (2, 8), (1, 2)])
def test_compiled_sparse_layer_equals_the_golden_model(keep, group):
    rng = np.random.default_rng(keep * 10 + group)
    k, n, tokens = 48, 9, 7
    w = nm_weights(rng, k, n, keep, group)
    bias = rng.integers(-4000, 4000, size=n).astype(np.int32)
    requant = Requant(23456, 17, INT4)
    x = rng.integers(-128, 128, size=(tokens, k)).astype(np.int8)
    layer = compile_sparse_linear(w, INT8, requant, tokens, SPARSE, bias, name="ffn.0")
    out = execute(layer.cold(), SPARSE, layer.cold_stream(x))
    want = requantize(gemm_int(x, w), requant, bias)
    np.testing.assert_array_equal(layer.decode_output(out.output), want)
    assert all(g.sparse for g in layer.run if isinstance(g, Gemm))
    wbuf = [c for c in layer.constants if c.buffer == Buffer.WBUF]
    assert sum(c.count for c in wbuf) == 3 * k // 2  # 3 column tiles of k * N / M B-words
    dense = compile_dense(w, INT8, requant, tokens, SPARSE, bias, resident=True)
    sparse_model, dense_model = simulate(layer.run, SPARSE), simulate(dense.run, SPARSE)
    assert sparse_model.compute_cycles * 2 == dense_model.compute_cycles
    assert sparse_model.cycles < dense_model.cycles


def test_wbuf_lanes_are_the_artifact_form_transposed_and_bad_patterns_are_named():
    # dense (K, N) = (4, 2): column 0 keeps inputs 1, 3; column 1 keeps 0, 3
    w = np.array([[0, 5], [3, 0], [0, 0], [-2, 7]], np.int8)
    values, indices = nm_compress(w.T, 2, 4)  # the artifact's (out, G, n) form
    lanes, index = nm_wbuf_lanes(values, indices, 2, 4, 4, SPARSE)
    np.testing.assert_array_equal(lanes, [[3, 5], [-2, 7]])
    np.testing.assert_array_equal(index, [[1, 0], [3, 3]])
    # a group with one non-zero (at 2) pads with the lowest unused position, sorted: (0, 2)
    lanes, index = nm_wbuf_lanes(*nm_compress(np.array([[0, 0, 4, 0]]), 2, 4), 2, 4, 4, SPARSE)
    np.testing.assert_array_equal(lanes, [[0], [4]])
    np.testing.assert_array_equal(index, [[0], [2]])
    # a 1:4 / 2:8 weight on the 2:4 build: recompressed to 2:4 (two slots per group of 4)
    rng = np.random.default_rng(7)
    for n, m in ((1, 4), (2, 8)):
        dense = nm_weights(rng, 16, 3, n, m).T  # (out, in)
        lanes, index = nm_wbuf_lanes(*nm_compress(dense, n, m), n, m, 16, SPARSE)
        assert lanes.shape == index.shape == (8, 3)
        rows = (np.arange(8)[:, None] // 2) * 4 + index  # the input each lane multiplies
        back = np.zeros((16, 3), np.int64)
        np.add.at(back, (rows, np.broadcast_to(np.arange(3), rows.shape)), lanes)
        np.testing.assert_array_equal(back, dense.T)
    assert [sparse_mode_takes(n, m, SPARSE) for n, m in ((2, 4), (1, 4), (2, 8), (1, 8),
            (1, 2), (4, 8), (3, 8), (2, 2), (4, 16))] == [1, 1, 1, 1, 1, 0, 0, 0, 0]  # fmt: skip
    assert not sparse_mode_takes(2, 4, DENSE)
    with pytest.raises(NMPatternError, match=r"q_proj: a 4:8 weight is not always 2:4 sparse"):
        nm_wbuf_lanes(*nm_compress(np.zeros((1, 8), np.int8), 4, 8), 4, 8, 8, SPARSE,
                      name="q_proj")  # fmt: skip
    w[2, 1] = 1  # column 1's group now holds 3 non-zeros
    with pytest.raises(NMPatternError, match=r"q_proj is not 2:4 sparse: output row 1, input "
                       r"group 0 \(inputs 0\.\.3\) holds 3"):  # fmt: skip
        compile_sparse_linear(w, INT8, Requant(1, 0, INT8), 1, SPARSE, name="q_proj")
    with pytest.raises(NMPatternError, match="in_features 6 is not a multiple of the group"):
        compile_sparse_linear(np.zeros((6, 2), np.int8), INT8, Requant(1, 0, INT8), 1, SPARSE)
    with pytest.raises(LayerDoesNotFit, match="needs a configuration with sparse_nm"):
        compile_sparse_linear(np.zeros((8, 2), np.int8), INT8, Requant(1, 0, INT8), 1, DENSE)


@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4), (2, 8), (4, 8)])
def test_an_artifact_nm_layer_compiles_from_its_compressed_form(n, m):
    """compile_layer on a QuantNMLinear: sparse GEMMs with the artifact's own lanes where the
    2:4 mode takes the pattern, the dense expansion (4:8) otherwise; golden either way."""
    rng = np.random.default_rng(n * 10 + m)
    k, out, tokens = 32, 6, 5
    dense = nm_weights(rng, k, out, n, m).T
    values, indices = nm_compress(dense, n, m)
    bias = rng.integers(-3000, 3000, size=out).astype(np.int32)
    layer = QuantNMLinear(values, indices, n, m, k, INT8, Requant(20000, 17, INT8), bias,
                          1.0, 1.0)  # fmt: skip
    x = rng.integers(-128, 128, size=(tokens, k)).astype(np.int8)
    compiled = compile_layer(layer, tokens, SPARSE)
    assert compiled.sparse == ((n, m) != (4, 8))
    out_codes = execute(compiled.cold(), SPARSE, compiled.cold_stream(x)).output
    np.testing.assert_array_equal(compiled.decode_output(out_codes), nm_linear_int(x, layer))
    assert not compile_layer(layer, tokens, DENSE).sparse
    if compiled.sparse:
        (wbuf,) = [c for c in compiled.constants if c.buffer == Buffer.WBUF]
        lanes, index = nm_wbuf_lanes(values, indices, n, m, k, SPARSE)
        np.testing.assert_array_equal(wbuf.values[: k // 2, :4], lanes[:, :4])  # column tile 0
        np.testing.assert_array_equal(wbuf.index[: k // 2, :4], index[:, :4])
        if (n, m) == (2, 4):  # the artifact's arrays themselves, transposed
            np.testing.assert_array_equal(lanes, values.reshape(out, -1).T)
    else:
        with pytest.raises(NMPatternError, match=r"layer\.q: a 4:8 weight is not always 2:4"):
            compile_nm_linear(layer, tokens, SPARSE, name="layer.q")
    np.testing.assert_array_equal(nm_expand(values, indices, n, m, k), dense)


def test_dense_layers_run_unchanged_on_a_sparse_build():
    rng = np.random.default_rng(5)
    w = rng.integers(-128, 128, size=(20, 6)).astype(np.int8)
    x = rng.integers(-128, 128, size=(5, 20)).astype(np.int8)
    requant = Requant(1000, 12, INT8)
    layer = compile_dense(w, INT8, requant, 5, SPARSE, resident=True)
    out = execute(layer.cold(), SPARSE, layer.cold_stream(x))
    np.testing.assert_array_equal(layer.decode_output(out.output), requantize(gemm_int(x, w),
                                                                              requant))  # fmt: skip
    on_dense = compile_dense(w, INT8, requant, 5, DENSE, resident=True)
    assert layer.run == on_dense.run
    assert Load in {type(i) for i in layer.setup}
