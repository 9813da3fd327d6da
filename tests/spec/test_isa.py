"""The instruction set: encoding round trips, the reference executor against naive loops, and
the issue-semantics checks (races, deadlocks, fences)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttaccel.spec.accel_config import INSTRUCTION_BITS, AccelConfig
from ttaccel.spec.formats import FORMATS, INT4, INT8, TERNARY, Requant, requantize
from ttaccel.spec.isa import (
    BEATS_PER_INSTRUCTION,
    Buffer,
    End,
    Gemm,
    HazardError,
    Load,
    Machine,
    Store,
    Sync,
    add_fences,
    check_program,
    decode,
    decode_program,
    encode,
    encode_program,
    encoding_table,
    execute,
    execute_stream,
    happens_before,
    load_beats,
    pack_bias,
    render_encoding_markdown,
)
from ttaccel.spec.packing import pack_words, unpack_words

SMALL = AccelConfig(
    rows=4,
    cols=4,
    weight_buffer_depth=256,
    act_buffer_depth=256,
    bias_buffer_depth=64,
    instruction_depth=64,
    queue_depth=2,
)

u16 = st.integers(0, 2**16 - 1)
count16 = st.integers(1, 2**16 - 1)
formats = st.sampled_from(sorted(FORMATS.values(), key=lambda f: f.name))


@st.composite
def instructions(draw):
    kind = draw(st.sampled_from(["load", "store", "gemm", "sync", "end"]))
    if kind == "load":
        return Load(
            draw(st.sampled_from(list(Buffer))),
            draw(u16),
            draw(count16),
            wait=draw(st.booleans()),
            signal=draw(st.booleans()),
        )
    if kind == "store":
        return Store(
            draw(u16),
            draw(count16),
            draw(formats),
            wait=draw(st.booleans()),
            signal=draw(st.booleans()),
        )
    if kind == "gemm":
        names = [
            "a_base",
            "a_outer",
            "a_inner",
            "a_k",
            "b_base",
            "b_tile",
            "b_k",
            "out_base",
            "out_outer",
            "out_inner",
            "out_col",
            "bias_base",
            "bias_outer",
        ]
        flags = ["bias_en", "dst_stream", "b_from_abuf", "wait", "signal", "fence"]
        return Gemm(
            m_outer=draw(count16),
            m_inner=draw(count16),
            k=draw(count16),
            n=draw(count16),
            requant=Requant(
                draw(st.integers(1, 2**16 - 1)), draw(st.integers(0, 47)), draw(formats)
            ),
            **{name: draw(u16) for name in names},
            **{name: draw(st.booleans()) for name in flags},
        )
    return Sync() if kind == "sync" else End()


@given(instructions())
def test_encode_decode_round_trip(instr):
    word = encode(instr)
    assert 0 <= word < 2**INSTRUCTION_BITS
    assert decode(word) == instr


@given(st.lists(instructions(), max_size=8))
def test_program_beats_round_trip(program):
    beats = encode_program(program)
    assert beats.dtype == np.uint64 and beats.size == BEATS_PER_INSTRUCTION * len(program)
    assert decode_program(beats) == program


def test_field_layout_is_pinned():
    """A known vector per opcode: the hardware decoder is written against these bits."""
    load = Load(Buffer.WBUF, 0x1234, 0x00FF, wait=True, signal=True)
    assert encode(load) == 0x1 | 1 << 4 | 1 << 5 | 1 << 8 | 0x1234 << 16 | 0xFF << 32
    store = Store(7, 9, INT4, signal=True)
    assert encode(store) == 0x3 | 1 << 5 | 1 << 8 | 7 << 16 | 9 << 32
    assert encode(End()) == 0 and encode(Sync()) == 4
    gemm = Gemm(
        m_outer=2,
        m_inner=3,
        k=4,
        n=5,
        a_base=6,
        a_outer=7,
        a_inner=8,
        a_k=9,
        b_base=10,
        b_tile=11,
        b_k=12,
        out_base=13,
        out_outer=14,
        out_inner=15,
        out_col=16,
        bias_base=17,
        requant=Requant(18, 19, TERNARY),
        bias_en=True,
        fence=True,
        bias_outer=20,
    )
    expected = 0x2 | 1 << 6 | 1 << 10 | 3 << 11
    for value, lsb in zip(range(2, 18), range(16, 257, 16), strict=True):
        expected |= value << lsb
    expected |= 18 << 272 | 19 << 288 | 20 << 304
    assert encode(gemm) == expected


def test_encoding_renders_as_markdown():
    text = render_encoding_markdown()
    assert "| `GEMM` (2) | 3:0 | `opcode` |" in text
    assert "| | 319:304 | `bias_outer` |" in text.replace("|  |", "| |")


def test_layouts_fit_and_do_not_overlap():
    for name, layout in encoding_table().items():
        used = 0
        for field, lsb, width in layout:
            mask = ((1 << width) - 1) << lsb
            assert not used & mask, (name, field)
            assert lsb + width <= INSTRUCTION_BITS
            used |= mask


@pytest.mark.parametrize(
    ("word", "message"),
    [
        (0xF, "unknown opcode"),
        (1 << 7, "reserved bits"),
        (0x1 | 3 << 8 | 1 << 32, "LOAD buffer must be one of"),
        (0x1 | 1 << 8, "count must be an integer in"),  # count 0
        (0x3 | 7 << 8 | 1 << 32, "fmt code 7"),
        (0x2, "multiplier must be an integer in"),
        (0x2 | 1 << 272, "m_outer must be an integer in"),
        (1 << INSTRUCTION_BITS, "out of range"),
    ],
)
def test_decode_rejects_malformed_words(word, message):
    with pytest.raises(ValueError, match=message):
        decode(word)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Load(Buffer.ABUF, -1, 1), "LOAD base must be an integer in"),
        (lambda: Load(Buffer.ABUF, 0, 0), "LOAD count must be an integer in"),
        (lambda: Load(5, 0, 1), "LOAD buffer must be one of"),
        (lambda: Store(0, 1, "int3"), "STORE fmt must be one of"),
        (lambda: Load(Buffer.ABUF, 0, 1, wait=1), "LOAD wait must be a bool"),
    ],
)
def test_instruction_fields_are_validated(build, message):
    with pytest.raises(ValueError, match=message):
        build()


# -- executor -----------------------------------------------------------------------------------


def naive_gemm(g: Gemm, config: AccelConfig, machine: Machine):
    """Explicit loops over the documented semantics; returns (abuf writes, stream words)."""
    writes, stream = {}, []
    b_src = machine.abuf if g.b_from_abuf else machine.wbuf
    for p in range(g.m_outer):
        for q in range(g.m_inner):
            for c in range(g.n):
                t, lane = divmod(c, config.cols)
                acc = np.zeros(config.rows, dtype=np.int64)
                for kk in range(g.k):
                    a = machine.abuf[g.a_base + p * g.a_outer + q * g.a_inner + kk * g.a_k]
                    b = b_src[g.b_base + t * g.b_tile + kk * g.b_k][lane]
                    acc += a.astype(np.int64) * int(b)
                bias = machine.bias[g.bias_base + p * g.bias_outer + c] if g.bias_en else None
                word = requantize(acc, g.requant, bias)
                if g.dst_stream:
                    stream.append(word)
                else:
                    writes[g.out_base + p * g.out_outer + q * g.out_inner + c * g.out_col] = word
    return writes, stream


def random_machine(rng, config, weight_format=INT8):
    machine = Machine.empty(config)
    machine.abuf[:] = rng.integers(-128, 128, size=machine.abuf.shape)
    values = [
        v for v in range(weight_format.qmin, weight_format.qmax + 1) if weight_format.has_zero or v
    ]
    machine.wbuf[:] = rng.choice(values, size=machine.wbuf.shape)
    machine.bias[:] = rng.integers(-5000, 5000, size=machine.bias.shape)
    return machine


@settings(max_examples=60)
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 9), st.integers(1, 11)),
    strides=st.tuples(st.integers(0, 20), st.integers(0, 5), st.integers(0, 7)),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    out_format=formats,
)
def test_gemm_matches_naive_loops(seed, shape, strides, flags, out_format):
    rng = np.random.default_rng(seed)
    m_outer, m_inner, k, n = shape
    dst_stream, b_from_abuf, bias_en = flags
    a_outer, a_inner, a_k = strides
    # keep every read below 128 and every write at 128 and above
    a_span = (m_outer - 1) * a_outer + (m_inner - 1) * a_inner + (k - 1) * a_k
    if a_span >= 64:
        a_outer, a_inner, a_k = 0, 1, 1
    tiles = -(-n // SMALL.cols)
    gemm = Gemm(
        m_outer=m_outer,
        m_inner=m_inner,
        k=k,
        n=n,
        a_base=3,
        a_outer=a_outer,
        a_inner=a_inner,
        a_k=a_k,
        b_base=64 if b_from_abuf else 5,
        b_tile=k,
        b_k=1,
        out_base=128,
        out_outer=n * m_inner,
        out_inner=n,
        out_col=1,
        bias_base=2,
        bias_outer=int(rng.integers(0, 5)),
        bias_en=bias_en,
        dst_stream=dst_stream,
        b_from_abuf=b_from_abuf,
        requant=Requant(int(rng.integers(1, 2**16)), int(rng.integers(0, 24)), out_format),
    )
    assert 64 + tiles * k <= 128
    machine = random_machine(rng, SMALL)
    expected_writes, expected_stream = naive_gemm(gemm, SMALL, machine)
    before = machine.copy()
    result = execute([gemm, End()], SMALL, machine=machine)
    if dst_stream:
        words = np.array(expected_stream).reshape(-1)
        np.testing.assert_array_equal(result.output, pack_words(words, out_format, 64))
        np.testing.assert_array_equal(machine.abuf, before.abuf)
    else:
        assert result.output.size == 0
        changed = {int(i) for i in np.nonzero((machine.abuf != before.abuf).any(axis=1))[0]}
        assert changed <= set(expected_writes)
        for address, word in expected_writes.items():
            np.testing.assert_array_equal(machine.abuf[address], word)
    assert result.macs_issued == m_outer * m_inner * k * SMALL.rows * n
    assert result.tiles == m_outer * m_inner * tiles


@pytest.mark.parametrize("fmt", [INT8, INT4, TERNARY, FORMATS["binary"], FORMATS["int2"]])
def test_load_and_store_move_words_unchanged(fmt):
    config = AccelConfig(
        rows=4,
        cols=3,
        weight_format=fmt,
        weight_buffer_depth=64,
        act_buffer_depth=64,
        bias_buffer_depth=16,
    )
    rng = np.random.default_rng(1)
    values = [v for v in range(fmt.qmin, fmt.qmax + 1) if fmt.has_zero or v]
    a_words = rng.integers(-128, 128, size=(5, 4)).astype(np.int8)
    b_words = rng.choice(values, size=(7, 3)).astype(np.int8)
    bias = rng.integers(-(2**31), 2**31, size=3).astype(np.int32)
    program = [
        Load(Buffer.ABUF, 10, 5, signal=True),
        Load(Buffer.WBUF, 20, 7),
        Load(Buffer.BIAS, 1, 3),
        Store(10, 5, INT8, wait=True),
        End(),
    ]
    stream = np.concatenate(
        [
            pack_words(a_words.reshape(-1), INT8),
            pack_words(b_words.reshape(-1), fmt),
            pack_bias(bias),
        ]
    )
    assert load_beats(program[1], config) == -(-7 * 3 * fmt.bits // 64)
    result = execute(program, config, stream)
    np.testing.assert_array_equal(result.machine.abuf[10:15], a_words)
    np.testing.assert_array_equal(result.machine.wbuf[20:27], b_words)
    np.testing.assert_array_equal(result.machine.bias[1:4], bias)
    np.testing.assert_array_equal(unpack_words(result.output, INT8, 20).reshape(5, 4), a_words)


def test_execute_stream_reads_the_program_first():
    rng = np.random.default_rng(2)
    words = rng.integers(-128, 128, size=(3, 4)).astype(np.int8)
    program = [Load(Buffer.ABUF, 0, 3, signal=True), Store(0, 3, wait=True), End()]
    stream = np.concatenate([encode_program(program), pack_words(words.reshape(-1), INT8)])
    result = execute_stream(stream, len(program), SMALL)
    np.testing.assert_array_equal(unpack_words(result.output, INT8, 12).reshape(3, 4), words)
    with pytest.raises(ValueError, match="PROGRAM_LENGTH 9"):
        execute_stream(stream, 9, SMALL)


def test_machine_state_persists_between_runs():
    machine = Machine.empty(SMALL)
    execute([Load(Buffer.WBUF, 0, 1), End()], SMALL, pack_words(np.arange(4), INT8), machine)
    result = execute([End()], SMALL, machine=machine)
    np.testing.assert_array_equal(result.machine.wbuf[0], [0, 1, 2, 3])


def single_tile_gemm(**fields) -> Gemm:
    """A 1 x 1 x 1 GEMM at address 0 (every stride 0), with ``fields`` overriding."""
    defaults = dict(m_outer=1, m_inner=1, k=1, n=1, a_base=0, a_outer=0, a_inner=0, a_k=0,
                    b_base=0, b_tile=0, b_k=0, requant=Requant(1, 0))  # fmt: skip
    return Gemm(**{**defaults, **fields})


@pytest.mark.parametrize(
    ("program", "data", "message"),
    [
        ([Load(Buffer.ABUF, 250, 10), End()], np.zeros(20, np.uint64), "ABUF has 256 words"),
        ([Load(Buffer.BIAS, 0, 4), End()], np.zeros(1, np.uint64), "needs 2 beats at beat 0"),
        ([Load(Buffer.BIAS, 0, 2), End()], np.zeros(3, np.uint64), "consumed 1 input beats"),
        ([Store(0, 1)], (), "last instruction must be END"),
        ([End(), End()], (), "END at instruction 0 is not the last"),
        ([], (), "at least an END"),
        (
            [
                single_tile_gemm(),
                End(),
            ],
            (),
            "writes ABUF words it also reads",
        ),
        (
            [
                single_tile_gemm(n=2, out_base=9, out_col=0),
                End(),
            ],
            (),
            "more than once",
        ),
        (
            [
                single_tile_gemm(k=5000, dst_stream=True),
                End(),
            ],
            (),
            "exceeds the configuration's max_k",
        ),
        (
            [
                single_tile_gemm(n=5, b_base=255, b_tile=1, dst_stream=True),
                End(),
            ],
            (),
            "B addresses reach 256",
        ),
        ([Load(Buffer.ABUF, 0, 1)] * 65 + [End()], np.zeros(130, np.uint64), "instruction memory"),
    ],
)
def test_malformed_programs_and_streams_are_rejected(program, data, message):
    with pytest.raises(ValueError, match=message):
        execute(program, SMALL, data)


def test_b_from_abuf_needs_a_square_int8_array():
    gemm = Gemm(
        m_outer=1,
        m_inner=1,
        k=1,
        n=1,
        a_base=0,
        a_outer=0,
        a_inner=0,
        a_k=0,
        b_base=1,
        b_tile=0,
        b_k=0,
        dst_stream=True,
        b_from_abuf=True,
        requant=Requant(1, 0),
    )
    execute([gemm, End()], SMALL)
    with pytest.raises(ValueError, match="b_from_abuf needs rows == cols"):
        execute([gemm, End()], AccelConfig(rows=4, cols=8))


def test_accumulator_overflow_is_an_error_as_in_the_golden_model():
    config = AccelConfig(
        rows=1, cols=1, weight_buffer_depth=8, act_buffer_depth=8, bias_buffer_depth=8
    )
    machine = Machine.empty(config)
    machine.abuf[0] = -128
    machine.wbuf[0] = -128
    machine.bias[0] = 2**31 - 1
    gemm = Gemm(
        m_outer=1,
        m_inner=1,
        k=1,
        n=1,
        a_base=0,
        a_outer=0,
        a_inner=0,
        a_k=0,
        b_base=0,
        b_tile=0,
        b_k=0,
        bias_en=True,
        dst_stream=True,
        requant=Requant(1, 0),
    )
    with pytest.raises(OverflowError, match="int32"):
        execute([gemm, End()], config, machine=machine)


# -- issue semantics ----------------------------------------------------------------------------


def gemm_reading(a_base, **flags):
    return Gemm(
        m_outer=1,
        m_inner=1,
        k=2,
        n=1,
        a_base=a_base,
        a_outer=0,
        a_inner=0,
        a_k=1,
        b_base=0,
        b_tile=0,
        b_k=1,
        dst_stream=True,
        requant=Requant(1, 0),
        **flags,
    )


def test_tokens_order_loads_and_gemms():
    program = [
        Load(Buffer.ABUF, 0, 2, signal=True),
        gemm_reading(0, wait=True, signal=True),
        Load(Buffer.ABUF, 0, 2, wait=True, signal=True),
        gemm_reading(0, wait=True),
        End(),
    ]
    check_program(program, SMALL)
    clocks = happens_before(program, SMALL.queue_depth)
    assert clocks[1] == (1, 1) and clocks[2] == (2, 1) and clocks[3] == (2, 2)


def test_missing_tokens_are_a_race():
    program = [Load(Buffer.ABUF, 0, 2), gemm_reading(0), End()]
    with pytest.raises(HazardError, match="race: LOAD at instruction 0 and GEMM at instruction 1"):
        check_program(program, SMALL)
    # disjoint addresses need no tokens
    check_program([Load(Buffer.ABUF, 8, 2), gemm_reading(0), End()], SMALL)
    # a barrier orders everything
    check_program([Load(Buffer.ABUF, 0, 2), Sync(), gemm_reading(0), End()], SMALL)


def test_overwriting_an_operand_too_early_is_a_race():
    program = [
        Load(Buffer.ABUF, 0, 2, signal=True),
        gemm_reading(0, wait=True),
        Load(Buffer.ABUF, 0, 2),  # no wait: may overwrite while the GEMM reads
        End(),
    ]
    with pytest.raises(HazardError, match="race: LOAD at instruction 2"):
        check_program(program, SMALL)


def test_deadlocks_are_detected():
    with pytest.raises(HazardError, match="deadlocks"):
        check_program([gemm_reading(0, wait=True), End()], SMALL)
    # a full execute queue in front of the LOAD whose token the queue head waits for
    program = [
        gemm_reading(0, wait=True),
        gemm_reading(0),
        gemm_reading(0),
        Load(Buffer.ABUF, 8, 1, signal=True),
        End(),
    ]
    with pytest.raises(HazardError, match="deadlocks"):
        check_program(program, SMALL)
    check_program(
        program,
        AccelConfig(rows=4, cols=4, weight_buffer_depth=256, act_buffer_depth=256, queue_depth=3),
    )


def test_token_limit():
    program = [Load(Buffer.ABUF, 0, 1, signal=True)] * 256 + [End()]
    config = AccelConfig(rows=4, cols=4, act_buffer_depth=256, instruction_depth=512)
    with pytest.raises(HazardError, match="more than 255 tokens"):
        check_program(program, config)


def test_fences():
    write = Gemm(
        m_outer=1,
        m_inner=1,
        k=1,
        n=2,
        a_base=0,
        a_outer=0,
        a_inner=0,
        a_k=0,
        b_base=0,
        b_tile=0,
        b_k=0,
        out_base=4,
        out_col=1,
        requant=Requant(1, 0),
    )
    read = gemm_reading(4)
    with pytest.raises(HazardError, match="set fence"):
        check_program([write, read, End()], SMALL)
    fenced = add_fences([write, read, End()], SMALL)
    assert fenced[1].fence and not fenced[0].fence
    check_program(fenced, SMALL)
    # only the previous GEMM can still be draining; a STORE waits for everything
    check_program([write, gemm_reading(100), read, End()], SMALL)
    check_program([write, Store(0, 1), read, End()], SMALL)
    assert not any(
        getattr(i, "fence", False)
        for i in add_fences([write, gemm_reading(100), read, End()], SMALL)
    )
