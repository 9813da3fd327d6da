"""Seed 001's shared Tucker bank in the spec: the bank merge, the 3-core TT expansion and its
block orders, the golden model, the float-scale assembly and the error messages.

The references here are written from the method's definition (W_b = V S_b U^T per block, the
FFN-out blocks interleaved over the inputs), not from spec/tucker.py's TT reshapes."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tests.spec.tiny_bert import doctored_artifact, tiny_bert_frame
from ttaccel.spec.artifact import Artifact, ArtifactError, load_artifact, save_artifact
from ttaccel.spec.formats import INT2, INT4, INT8, TERNARY, Requant, quantize, requantize
from ttaccel.spec.golden import tt_linear_int
from ttaccel.spec.inference import BertInference
from ttaccel.spec.safetensors_io import load_safetensors
from ttaccel.spec.tt import tt_to_dense
from ttaccel.spec.tucker import (
    TUCKER_PLAN,
    QuantTuckerLinear,
    TuckerBank,
    check_tucker,
    quant_tucker_linear_from_scales,
    tucker_as_tt_linear,
    tucker_block_cores,
    tucker_linear_int,
)

SEED = 20261202
D, R, L = 8, 3, 6
SHAPES = [(D, D), (D, 4 * D), (4 * D, D), (D, 2 * D), (3 * D, D)]


def random_bank(rng, fmt=INT4, d=D, r=R, size=L) -> TuckerBank:
    def codes(shape):
        return rng.integers(fmt.qmin, fmt.qmax + 1, size=shape)

    return TuckerBank(codes((d, r)), codes((d, r)), codes((size, r, r)), fmt)


def random_layer(rng, bank, in_features, out_features, k=3, bias=True) -> QuantTuckerLinear:
    """Random mix and bias; every requant set from the reference's own accumulators on random
    inputs (peak -> about 3/4 of the code range), so the stages neither vanish nor saturate."""
    blocks = max(in_features, out_features) // bank.d
    fmt = bank.weight_format
    fields = dict(
        bank="encoder",
        core_ids=rng.choice(bank.size, size=k, replace=False),
        mix=rng.integers(-128, 128, size=(blocks, k)),
        mix_format=INT8,
        mix_requant=Requant(1, 0, fmt),
        stage_requants=(Requant(1, 0),) * 3,
        bias=rng.integers(-3000, 3000, size=out_features).astype(np.int32) if bias else None,
        in_features=in_features,
        out_features=out_features,
        input_scale=0.05,
        output_scale=0.1,
    )
    layer = QuantTuckerLinear(**fields)
    peak = np.abs(reference_blocks(layer, bank, raw=True)).max()
    fields["mix_requant"] = Requant.from_ratio(0.75 * fmt.qmax / peak, fmt)
    x = rng.integers(-128, 128, size=(16, in_features))
    requants = []
    for stage in range(3):
        layer = QuantTuckerLinear(**fields)
        acc = reference_forward(x, layer, bank, raw_stage=stage)
        requants.append(Requant.from_ratio(96 / np.abs(acc).max()))
        fields["stage_requants"] = (*requants, *(Requant(1, 0),) * (2 - stage))
    return QuantTuckerLinear(**fields)


def reference_blocks(layer, bank, raw=False) -> np.ndarray:
    """S_b codes written from the definition: a loop over blocks and chosen cores (``raw``:
    the int64 accumulators before the requant)."""
    blocks = []
    for b in range(layer.blocks):
        acc = np.zeros((bank.r, bank.r), dtype=np.int64)
        for j, core_id in enumerate(layer.core_ids):
            acc += int(layer.mix[b, j]) * bank.cores[int(core_id)].astype(np.int64)
        blocks.append(acc if raw else requantize(acc, layer.mix_requant))
    return np.stack(blocks)


def reference_dense(layer, bank) -> np.ndarray:
    """The dense (in, out) int64 weight: V S_b U^T per block, placed by the method's orders."""
    v, u = bank.in_factor.astype(np.int64), bank.out_factor.astype(np.int64)
    s = reference_blocks(layer, bank).astype(np.int64)
    w = np.zeros((layer.in_features, layer.out_features), dtype=np.int64)
    for b in range(layer.blocks):
        block = np.einsum("ip,pq,jq->ij", v, s[b], u)
        if layer.out_features > bank.d:
            w[:, b * bank.d : (b + 1) * bank.d] = block  # contiguous output blocks
        elif layer.in_features > bank.d:
            w[b :: layer.blocks, :] = block  # interleaved input blocks
        else:
            w[:, :] = block
    return w


def reference_forward(x, layer, bank, raw_stage=None) -> np.ndarray:
    """The three integer stages written out per block (int8 requant after each); with
    ``raw_stage`` the int64 accumulators of that stage instead (bias included at stage 2)."""
    v, u = bank.in_factor.astype(np.int64), bank.out_factor.astype(np.int64)
    s = reference_blocks(layer, bank).astype(np.int64)
    q0, q1, q2 = layer.stage_requants
    x = x.astype(np.int64)
    d, blocks = bank.d, layer.blocks
    bias = 0 if layer.bias is None else layer.bias.astype(np.int64)
    if layer.in_features > d:  # B*d -> d: each block reads its interleaved inputs
        acc0 = np.stack([x[:, b::blocks] @ v for b in range(blocks)])
        t = requantize(acc0, q0).astype(np.int64)
        acc1 = sum(t[b] @ s[b] for b in range(blocks))
        acc2 = requantize(acc1, q1).astype(np.int64) @ u.T
    else:
        acc0 = x @ v
        t = requantize(acc0, q0).astype(np.int64)
        acc1 = np.stack([t @ s[b] for b in range(blocks)])
        mids = requantize(acc1, q1).astype(np.int64)
        acc2 = np.concatenate([m @ u.T for m in mids], axis=1)  # block b -> outputs b*d ..
    if raw_stage is not None:
        return (acc0, acc1, acc2 + bias)[raw_stage]
    return requantize(acc2, q2, layer.bias)


@pytest.mark.parametrize("fmt", [INT4, INT8])
@pytest.mark.parametrize("shape", SHAPES)
def test_expansion_is_v_s_ut_per_block(shape, fmt):
    rng = np.random.default_rng([SEED, *shape, fmt.bits])
    print("seed", [SEED, *shape, fmt.bits])
    bank = random_bank(rng, fmt)
    layer = random_layer(rng, bank, *shape)
    np.testing.assert_array_equal(tucker_block_cores(layer, bank), reference_blocks(layer, bank))
    tt = tucker_as_tt_linear(layer, bank)
    assert tt.plan == TUCKER_PLAN == ((0, 1), (1, 2), (2, 3))
    assert tt.merge_requants == ((), (), ())
    assert tt.weight_format == fmt
    dense = tt_to_dense([c.astype(np.int64) for c in tt.cores])
    np.testing.assert_array_equal(dense, reference_dense(layer, bank))


@pytest.mark.parametrize("shape", SHAPES)
def test_golden_matches_per_block_reference(shape):
    rng = np.random.default_rng([SEED, 7, *shape])
    print("seed", [SEED, 7, *shape])
    bank = random_bank(rng)
    layer = random_layer(rng, bank, *shape)
    x = rng.integers(-128, 128, size=(5, shape[0]))
    expected = reference_forward(x, layer, bank)
    np.testing.assert_array_equal(tucker_linear_int(x, layer, bank), expected)
    np.testing.assert_array_equal(tt_linear_int(x, tucker_as_tt_linear(layer, bank)), expected)
    assert len(np.unique(expected)) > 10  # the requants were chosen so nothing is all-saturated


def test_block_orders_one_hot():
    """A single nonzero S entry per block shows where each block lands in W."""
    d, r, blocks = 4, 2, 3
    eye = np.zeros((d, r), np.int64)
    eye[0, 0] = eye[1, 1] = 1
    cores = np.zeros((blocks, r, r), np.int64)
    for b in range(blocks):
        cores[b, 0, 1] = b + 1  # S_b = (b + 1) e_0 e_1^T: W_b[0, 1] = b + 1 only
    bank = TuckerBank(eye, eye, cores, INT8)
    for in_f, out_f in [(d, blocks * d), (blocks * d, d)]:
        layer = QuantTuckerLinear(
            "bank", np.arange(blocks), np.eye(blocks, dtype=np.int64), INT8, Requant(1, 0, INT8),
            (Requant(1, 0),) * 3, None, in_f, out_f, 1.0, 1.0,
        )  # fmt: skip
        w = tt_to_dense([c.astype(np.int64) for c in tucker_as_tt_linear(layer, bank).cores])
        nonzero = {(int(i), int(j)): int(w[i, j]) for i, j in zip(*np.nonzero(w), strict=True)}
        if out_f > d:  # block b at output columns b*d .. : entry (0, b*d + 1)
            assert nonzero == {(0, b * d + 1): b + 1 for b in range(blocks)}
        else:  # block b at inputs b, b + B, ...: its row 0 is input b
            assert nonzero == {(b, 1): b + 1 for b in range(blocks)}


def test_mutant_contiguous_ffn_out_blocks_is_caught():
    """The mutant that reads the FFN-out blocks as contiguous input slices differs from the
    spec's expansion: the reference above would kill it."""
    rng = np.random.default_rng([SEED, 3])
    bank = random_bank(rng)
    layer = random_layer(rng, bank, 4 * D, D)
    dense = tt_to_dense([c.astype(np.int64) for c in tucker_as_tt_linear(layer, bank).cores])
    s = reference_blocks(layer, bank).astype(np.int64)
    v, u = bank.in_factor.astype(np.int64), bank.out_factor.astype(np.int64)
    contiguous = np.concatenate([v @ s[b] @ u.T for b in range(4)], axis=0)
    assert not np.array_equal(dense, contiguous)


def test_from_scales_builds_the_requants_and_tracks_float():
    rng = np.random.default_rng([SEED, 11])
    d, r, size, k, blocks = 16, 4, 5, 3, 4
    v, u = rng.normal(size=(d, r)), rng.normal(size=(d, r))
    c, mix = rng.normal(size=(size, r, r)), rng.normal(size=(blocks, k))
    ids = np.array([4, 0, 2])
    fmt = INT8
    s_v, s_u, s_c = (np.abs(t).max() / 127 for t in (v, u, c))
    s_mix = np.abs(mix).max() / 127
    bank = TuckerBank(quantize(v, s_v, fmt), quantize(u, s_u, fmt), quantize(c, s_c, fmt), fmt)
    mix_codes = quantize(mix, s_mix, INT8)
    s_float = np.einsum("bj,jpq->bpq", mix, c[ids])
    s_s_codes = np.abs(s_float).max() / 127
    x = rng.normal(size=(32, d * blocks))
    w = np.zeros((d * blocks, d))
    for b in range(blocks):
        w[b::blocks] = v @ s_float[b] @ u.T
    bias = rng.normal(size=d)
    s_in = np.abs(x).max() / 127
    t = np.stack([x[:, b::blocks] @ v for b in range(blocks)])
    mid = np.einsum("nbp,bpq->nq", t.transpose(1, 0, 2), s_float)
    y = x @ w + bias
    scales = (np.abs(t).max() / 127, np.abs(mid).max() / 127, np.abs(y).max() / 127)
    layer = quant_tucker_linear_from_scales(
        bank="encoder", core_ids=ids, mix_codes=mix_codes, weight_format=fmt,
        in_features=d * blocks, out_features=d, input_scale=s_in, in_factor_scale=s_v,
        out_factor_scale=s_u, core_scale=s_c, mix_scale=s_mix, block_scale=s_s_codes,
        stage_scales=scales, bias=bias,
    )  # fmt: skip
    ratios = [q.ratio for q in (layer.mix_requant, *layer.stage_requants)]
    expected = [s_mix * s_c / s_s_codes, s_in * s_v / scales[0], scales[0] * s_s_codes / scales[1],
                scales[1] * s_u / scales[2]]  # fmt: skip
    np.testing.assert_allclose(ratios, expected, rtol=2**-15)
    assert layer.mix_requant.out_format == fmt and layer.output_scale == scales[2]
    np.testing.assert_array_equal(layer.bias, np.rint(bias / (scales[1] * s_u)).astype(np.int32))
    codes = tucker_linear_int(quantize(x, s_in, INT8), layer, bank)
    error = np.abs(codes * scales[2] - y).max() / np.abs(y).max()
    assert error < 0.08, error


def test_bank_errors_name_the_tensor():
    rng = np.random.default_rng(0)
    v, c = rng.integers(-8, 8, (D, R)), rng.integers(-8, 8, (L, R, R))
    with pytest.raises(ValueError, match=r"in_factor.*9 is not a legal int4"):
        TuckerBank(np.full((D, R), 9), v, c, INT4)
    with pytest.raises(ValueError, match="out_factor must have in_factor's shape"):
        TuckerBank(v, v[:, :2], c, INT4)
    with pytest.raises(ValueError, match=r"cores must have shape \(l, 3, 3\)"):
        TuckerBank(v, v, c[:, :2], INT4)
    with pytest.raises(ValueError, match=r"cores must be a non-empty \(l, r, r\)"):
        TuckerBank(v, v, c[0], INT4)
    for fmt in (INT2, TERNARY):
        with pytest.raises(ValueError, match=f"bank weight_format.*not {fmt.name}"):
            TuckerBank(v.clip(-1, 1), v.clip(-1, 1), c.clip(-1, 1), fmt)


def test_layer_errors_name_the_field():
    rng = np.random.default_rng(1)
    bank = random_bank(rng, size=72)
    good = random_layer(rng, bank, D, 4 * D)
    fields = {f: getattr(good, f) for f in good.__dataclass_fields__}

    def make(**changes):
        return QuantTuckerLinear(**{**fields, **changes})

    with pytest.raises(ValueError, match=r"core_ids repeat core 5 at positions \[0, 2\]"):
        make(core_ids=np.array([5, 1, 5]))
    with pytest.raises(ValueError, match=r"core_ids\[1\] = -2 is negative"):
        make(core_ids=np.array([5, -2, 3]))
    with pytest.raises(ValueError, match=r"mix must have shape \(B, 3\)"):
        make(mix=np.zeros((4, 2), np.int8))
    with pytest.raises(ValueError, match=r"mix\[2, 1\] = 200 is not a legal int8"):
        mix = np.zeros((4, 3), np.int64)
        mix[2, 1] = 200
        make(mix=mix)
    with pytest.raises(ValueError, match=r"mix_format must be one of.*not int4"):
        make(mix_format=INT4)
    with pytest.raises(ValueError, match=r"stage_requants\[1\].out_format must be int8"):
        make(stage_requants=(Requant(1, 0), Requant(1, 0, INT4), Requant(1, 0)))
    with pytest.raises(ValueError, match=r"bias must be int32 of shape \(32,\)"):
        make(bias=np.zeros(8, np.int32))
    layer = make(core_ids=np.array([3, 80, 7]))
    message = r"enc.q.core_ids: core_ids\[1\] = 80 is outside bank 'encoder' of 72 cores"
    with pytest.raises(ValueError, match=message):
        check_tucker(layer, bank, "enc.q")
    with pytest.raises(ValueError, match=r"core_ids\[0\] = 72 is outside bank 'encoder' of 72"):
        tucker_block_cores(make(core_ids=np.array([72, 1, 2])), bank)  # the first id too far
    with pytest.raises(ValueError, match=r"enc.q: .*must map d -> d, d -> B\*d or B\*d -> d"):
        check_tucker(make(in_features=2 * D, out_features=2 * D, bias=None), bank, "enc.q")
    with pytest.raises(ValueError, match=r"enc.q.mix: shape \(4, 3\).*expected \(2, 3\)"):
        check_tucker(make(out_features=2 * D, bias=None), bank, "enc.q")
    with pytest.raises(ValueError, match=r"enc.q.mix_requant: out_format int8 is not"):
        check_tucker(make(mix_requant=Requant(1, 0, INT8)), bank, "enc.q")
    check_tucker(good, bank, "enc.q")


def test_bank_merge_saturates_to_the_weight_format():
    big = np.full((2, 1, 1), 127)
    bank = TuckerBank(np.ones((1, 1), int), np.ones((1, 1), int), big, INT8)
    layer = QuantTuckerLinear(
        "b", np.array([0, 1]), np.full((1, 2), -128), INT8, Requant(1, 0, INT8),
        (Requant(1, 0),) * 3, None, 1, 1, 1.0, 1.0,
    )  # fmt: skip
    # -128 * 127 * 2 fits int32 and saturates to -128: no overflow for legal codes.
    assert int(tucker_block_cores(layer, bank)[0, 0, 0]) == -128


# --- the artifact ----------------------------------------------------------------------------

H, FFN_BLOCKS, VOCAB = 16, 4, 20
BANK = "bert.encoder.tucker_bank"


def tucker_artifact(seed=0, fmt=INT4, layers=1, rank=4, size=12) -> Artifact:
    """A tiny BERT (hidden 16, FFN 64) whose ``6 * layers`` encoder linears are Tucker layers
    of one shared bank; random codes, requants set from random inputs (see random_layer)."""
    from ttaccel.spec.inference import LINEAR_NAMES

    rng = np.random.default_rng(seed)
    bank = random_bank(rng, fmt, d=H, r=rank, size=size)
    shapes = {"intermediate.dense": (H, FFN_BLOCKS * H), "output.dense": (FFN_BLOCKS * H, H)}
    linears = {}
    for index in range(layers):
        p = f"bert.encoder.layer.{index}."
        for name in LINEAR_NAMES:
            layer = random_layer(rng, bank, *shapes.get(name, (H, H)), k=int(rng.integers(1, 5)))
            linears[p + name] = dataclasses.replace(layer, bank=BANK)
    model, tensors = tiny_bert_frame(rng, hidden=H, ffn=FFN_BLOCKS * H, vocab=VOCAB, layers=layers)
    return Artifact(model, {}, {}, tensors, [f"t{i}" for i in range(VOCAB)],
                    tucker_banks={BANK: bank}, tucker_linears=linears)  # fmt: skip


@pytest.mark.parametrize("fmt", [INT4, INT8])
def test_the_artifact_stores_tucker_banks_once_and_reads_them_back(fmt, tmp_path):
    art = tucker_artifact(fmt=fmt, layers=2)
    path = tmp_path / "tucker.safetensors"
    save_artifact(path, art)
    tensors, meta = load_safetensors(path)
    manifest = json.loads(meta["ttaccel"])
    assert manifest["tt_linears"] == {} and "nm_linears" not in manifest
    assert manifest["tucker_banks"] == {BANK: {"weight_format": fmt.name, "d": H, "r": 4,
                                               "size": 12}}  # fmt: skip
    # the bank: packed at the weight bits, once
    per_byte = 8 // fmt.bits
    assert tensors[f"{BANK}.tucker_in_factor"].shape == (H * 4 // per_byte,)
    assert tensors[f"{BANK}.tucker_cores"].shape == (12 * 4 * 4 // per_byte,)
    assert sum(".tucker_in_factor" in n for n in tensors) == 1
    name = "bert.encoder.layer.1.output.dense"
    entry = manifest["tucker_linears"][name]
    layer = art.tucker_linears[name]
    assert (entry["bank"], entry["in_features"], entry["out_features"]) == (BANK, 4 * H, H)
    assert entry["num_core_ids"] == layer.core_ids.size and entry["mix_format"] == "int8"
    assert tensors[f"{name}.tucker_mix"].shape == (4 * layer.core_ids.size,)
    assert tensors[f"{name}.tucker_core_ids"].dtype == np.uint16
    assert not any(n.endswith(".core0") for n in tensors)
    back = load_artifact(path)
    got = back.tucker_banks[BANK]
    for part in ("in_factor", "out_factor", "cores"):
        np.testing.assert_array_equal(getattr(got, part), getattr(art.tucker_banks[BANK], part))
    assert got.weight_format == fmt
    for n, layer in art.tucker_linears.items():
        other = back.tucker_linears[n]
        for f in ("core_ids", "mix", "bias"):
            np.testing.assert_array_equal(getattr(other, f), getattr(layer, f))
        assert (other.mix_requant, other.stage_requants, other.bank) == (
            layer.mix_requant, layer.stage_requants, layer.bank)  # fmt: skip
        assert (other.input_scale, other.output_scale) == (layer.input_scale, layer.output_scale)
    payload = sum(t.nbytes for n, t in tensors.items() if n != "tokenizer.vocab")
    assert back.nbytes() == payload + len("\n".join(back.vocab).encode())


def test_nbytes_counts_the_bank_once():
    one, two = tucker_artifact(layers=1), tucker_artifact(layers=2)
    bank = one.tucker_banks[BANK]
    bank_bytes = (2 * H * 4 + 12 * 16) // 2  # int4: two codes a byte
    per_layer = {
        n: layer.mix.size + 2 * layer.core_ids.size + 4 * layer.out_features
        for n, layer in two.tucker_linears.items()
    }
    floats = sum(t.nbytes for t in two.tensors.values())
    vocab = len("\n".join(two.vocab).encode())
    assert two.nbytes() == bank_bytes + sum(per_layer.values()) + floats + vocab
    assert bank.size == 12 and one.nbytes() < two.nbytes()


def test_integer_linears_and_inference_run_the_tt_expansion():
    art = tucker_artifact(layers=2)
    expanded = art.integer_linears()
    assert set(expanded) == set(art.tucker_linears)
    for name, layer in art.tucker_linears.items():
        tt = expanded[name]
        assert len(tt.cores) == 3 and tt.plan == TUCKER_PLAN
        dense = tt_to_dense([c.astype(np.int64) for c in tt.cores])
        np.testing.assert_array_equal(dense, reference_dense(layer, art.tucker_banks[BANK]))
    ids = [[2, 7, 9, 12, 3], [2, 5, 3]]
    plain = Artifact(art.model_config, expanded, {}, art.tensors, art.vocab)
    logits = BertInference(art).logits(ids)
    np.testing.assert_array_equal(logits, BertInference(plain).logits(ids))
    assert np.isfinite(logits).all() and np.ptp(logits) > 0


LAYER = "bert.encoder.layer.0.attention.self.query"


def _bad_core_id(tensors, manifest):
    ids = tensors[f"{LAYER}.tucker_core_ids"].copy()
    ids[-1] = 80
    tensors[f"{LAYER}.tucker_core_ids"] = ids


def _repeat_core_id(tensors, manifest):
    ids = tensors[f"{LAYER}.tucker_core_ids"].copy()
    ids[:] = ids[0]
    tensors[f"{LAYER}.tucker_core_ids"] = ids


def _entry(key, value, kind="tucker_linears", name=LAYER):
    def edit(tensors, manifest):
        manifest[kind][name][key] = value

    return edit


def _short_mix(tensors, manifest):
    tensors[f"{LAYER}.tucker_mix"] = tensors[f"{LAYER}.tucker_mix"][:-1]


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (_bad_core_id, f"{LAYER}.tucker_core_ids", "= 80 is outside bank .* of 12 cores"),
        (_repeat_core_id, f"{LAYER}.tucker_core_ids", "core ids repeat"),
        (_entry("bank", "nope"), f"tucker_linears['{LAYER}'].bank", "not in tucker_banks"),
        (_entry("in_features", 24), f"tucker_linears['{LAYER}'].in_features",
         "must map d -> d"),
        (_entry("num_core_ids", 9), f"{LAYER}.tucker_core_ids", "shape mismatch"),
        (_short_mix, f"{LAYER}.tucker_mix", "shape mismatch"),
        (_entry("weight_format", "int2", "tucker_banks", BANK),
         f"tucker_banks['{BANK}'].weight_format", "not one a Tucker bank can take"),
        (_entry("r", 5, "tucker_banks", BANK), f"{BANK}.tucker_in_factor", "shape mismatch"),
        (_entry("mix_requant", [1, 0, "int8"]), f"tucker_linears['{LAYER}']",
         "mix_requant: out_format int8 is not bank"),
    ],
)  # fmt: skip
def test_a_bad_tucker_layer_is_refused_naming_the_tensor(edit, field, message, tmp_path):
    path = tmp_path / "tucker.safetensors"
    save_artifact(path, tucker_artifact())
    bad = doctored_artifact(path, tmp_path / "bad.safetensors", edit)
    with pytest.raises(ArtifactError, match=message) as info:
        load_artifact(bad)
    assert info.value.field == field


def test_a_layer_name_is_in_one_kind_only(tmp_path):
    art = tucker_artifact()
    art.tt_linears[LAYER] = art.integer_linears()[LAYER]
    with pytest.raises(ValueError, match="query' is both a TT linear and a Tucker linear"):
        save_artifact(tmp_path / "both.safetensors", art)
    art = tucker_artifact()
    art.tucker_linears[LAYER] = dataclasses.replace(art.tucker_linears[LAYER], bank="other")
    with pytest.raises(ValueError, match="names bank 'other', not in the artifact"):
        save_artifact(tmp_path / "nobank.safetensors", art)


def test_docs_artifact_section_11_lists_every_tucker_field_and_tensor(tmp_path):
    """docs/artifact.md section 11 against what save_artifact writes for a Tucker model."""
    from tests.spec.test_artifact_doc import DOC, _keys, _sections, _tables

    save_artifact(tmp_path / "tucker.safetensors", tucker_artifact())
    tensors, meta = load_safetensors(tmp_path / "tucker.safetensors")
    manifest = json.loads(meta["ttaccel"])
    tables = _tables(_sections(DOC.read_text(encoding="utf-8"))["11"])
    bank_fields, bank_tensors, layer_fields, layer_tensors = (rows for _, rows in tables[:4])
    assert _keys(bank_fields) == set(manifest["tucker_banks"][BANK])
    for entry in manifest["tucker_linears"].values():
        assert _keys(layer_fields) == set(entry)
    documented = {key.replace("<bank>.", "") for key in _keys(bank_tensors)}
    assert documented == {t.rsplit(".", 1)[1] for t in tensors if t.startswith(BANK + ".")}
    documented = {key.replace("<name>.", "") for key in _keys(layer_tensors)}
    written = {t.rsplit(".", 1)[1] for t in tensors if t.startswith(LAYER + ".")}
    assert documented == written == {"tucker_mix", "tucker_core_ids", "bias"}


# --- the engine: shared factors resident in WBUF ---------------------------------------------


def _resident_bases(bank, config):
    """V (stage 0: K = d, N = r) and U^T (stage 2: K = r, N = d) at the top of WBUF."""
    cols = config.cols
    v_words, u_words = bank.d * -(-bank.r // cols), bank.r * -(-bank.d // cols)
    top = config.weight_buffer_depth
    return {0: top - v_words - u_words, 2: top - u_words}


@pytest.mark.parametrize("fmt", [INT4, INT8])
def test_resident_factors_load_once_and_every_layer_of_the_bank_runs_exactly(fmt):
    from ttaccel.spec.accel_config import AccelConfig
    from ttaccel.spec.compiler import compile_tt_linear, resident_cores_setup
    from ttaccel.spec.cycle_model import simulate
    from ttaccel.spec.isa import Machine, execute

    config = AccelConfig(rows=4, cols=4, weight_buffer_depth=1024, act_buffer_depth=1024,
                         bias_buffer_depth=256)  # fmt: skip
    rng = np.random.default_rng([SEED, 21, fmt.bits])
    bank = random_bank(rng, fmt, d=16, r=4, size=10)
    layers = [random_layer(rng, bank, *shape) for shape in [(16, 16), (16, 64), (64, 16)]]
    resident = _resident_bases(bank, config)
    machine = Machine.empty(config)
    program, stream = resident_cores_setup(tucker_as_tt_linear(layers[0], bank), config, resident)
    execute(program, config, stream, machine)  # V and U^T, once
    for layer in layers:
        tt = tucker_as_tt_linear(layer, bank)
        plain = compile_tt_linear(tt, 8, config)
        compiled = compile_tt_linear(tt, 8, config, resident_cores=resident)
        assert compiled.setup_stream.size < plain.setup_stream.size
        assert compiled.setup_stream.size + stream.size == plain.setup_stream.size
        execute(compiled.setup, config, compiled.setup_stream, machine)  # S_b and bias only
        x = rng.integers(-128, 128, size=(8, layer.in_features))
        out = execute(compiled.run, config, compiled.input_stream(x), machine).output
        np.testing.assert_array_equal(
            compiled.decode_output(out), tucker_linear_int(x, layer, bank)
        )
        assert simulate(compiled.run, config).cycles == simulate(plain.run, config).cycles


def test_resident_cores_that_overlap_the_layer_are_refused():
    from ttaccel.spec.accel_config import AccelConfig
    from ttaccel.spec.compiler import LayerDoesNotFit, compile_tt_linear

    config = AccelConfig(rows=4, cols=4, weight_buffer_depth=1024)
    rng = np.random.default_rng(5)
    bank = random_bank(rng, INT4, d=16, r=4, size=10)
    tt = tucker_as_tt_linear(random_layer(rng, bank, 16, 64), bank)
    with pytest.raises(LayerDoesNotFit, match=r"resident core 0 at WBUF \[0, 16\) overlaps"):
        compile_tt_linear(tt, 4, config, resident_cores={0: 0, 2: 900})
    with pytest.raises(LayerDoesNotFit, match="resident core 2's B-words from base 1020"):
        compile_tt_linear(tt, 4, config, resident_cores={0: 900, 2: 1020})
    with pytest.raises(ValueError, match="stage 3 is not one of the 3 stages"):
        compile_tt_linear(tt, 4, config, resident_cores={3: 0})
