"""The register map: well formed, complete, and rendered for the docs."""

import pytest

from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.regmap import (
    ADDRESS_SPACE,
    ERROR_CODES,
    IP_IDENTIFIER,
    IP_VERSION,
    REGMAP,
    Field,
    Register,
    RegisterMap,
    config_from_registers,
    config_register_values,
    render_markdown,
)


def test_offsets_are_unique_aligned_and_inside_the_window():
    offsets = [reg.offset for reg in REGMAP]
    assert len(set(offsets)) == len(offsets)
    assert all(o % 4 == 0 and 0 <= o < ADDRESS_SPACE for o in offsets)
    assert offsets == sorted(offsets)


def test_fields_do_not_overlap_and_fit():
    for reg in REGMAP:
        used = 0
        for field in reg.fields:
            assert not used & field.mask, (reg.name, field.name)
            assert field.mask < 2**32
            used |= field.mask


@pytest.mark.parametrize(
    ("register", "fields"),
    [
        ("ID", {"ip_id"}),
        ("VERSION", {"major", "minor", "patch"}),
        ("CONTROL", {"start", "soft_reset", "irq_enable"}),
        ("STATUS", {"busy", "done", "error", "error_code", "error_pc"}),
        ("PROGRAM_LENGTH", {"instructions"}),
        ("BUSY_CYCLES_LO", {"value"}),
        ("BUSY_CYCLES_HI", {"value"}),
        ("MACS_ISSUED_LO", {"value"}),
        ("STALL_CYCLES_LO", {"value"}),
        ("STALL_CYCLES_HI", {"value"}),
    ],
)
def test_required_registers_exist(register, fields):
    assert {f.name for f in REGMAP[register].fields} == fields


def test_identifier_and_version():
    assert REGMAP["ID"].offset == 0
    assert REGMAP["ID"].reset == IP_IDENTIFIER
    assert IP_IDENTIFIER.to_bytes(4, "big") == b"ttAC"
    version = REGMAP["VERSION"]
    word = version.reset
    assert tuple(version.field(n).extract(word) for n in ("major", "minor", "patch")) == IP_VERSION


def test_access_kinds():
    assert REGMAP.field("CONTROL", "start").access == "WO"
    assert REGMAP.field("CONTROL", "irq_enable").access == "RW"
    assert REGMAP.field("STATUS", "done").access == "W1C"
    assert REGMAP["STATUS"].access == "RW"  # has W1C fields
    assert REGMAP["ID"].access == "RO"
    assert all(
        REGMAP[f"{c}_{h}"].access == "RO"
        for c in ("BUSY_CYCLES", "MACS_ISSUED")
        for h in ("LO", "HI")
    )


def test_counters_are_64_bit_pairs():
    for name in ("BUSY_CYCLES", "MACS_ISSUED", "STALL_CYCLES", "INSTRUCTIONS"):
        assert REGMAP.offset(f"{name}_HI") == REGMAP.offset(f"{name}_LO") + 4
        assert REGMAP.offset(f"{name}_LO") % 8 == 0


def test_config_registers_encode_the_configuration():
    config = AccelConfig(rows=8, cols=16, act_buffer_depth=65536 // 16, max_k=1000)
    words = config_register_values(config)
    array = REGMAP["CONFIG_ARRAY"]
    assert array.field("rows").extract(words["CONFIG_ARRAY"]) == 8
    assert array.field("cols").extract(words["CONFIG_ARRAY"]) == 16
    assert array.field("acc_bits").extract(words["CONFIG_ARRAY"]) == config.acc_bits
    assert REGMAP.field("CONFIG_ABUF", "depth").extract(words["CONFIG_ABUF"]) == 4096
    assert REGMAP.field("CONFIG_MAX_K", "max_k").extract(words["CONFIG_MAX_K"]) == 1000
    assert REGMAP["CONFIG_ARRAY"].reset is None  # fixed at generation, not a reset constant


def test_field_insert_extract():
    field = REGMAP.field("STATUS", "error_code")
    word = field.insert(0xFFFF_FFFF, 5)
    assert field.extract(word) == 5
    assert word | field.mask == 0xFFFF_FFFF
    with pytest.raises(ValueError, match="does not fit"):
        field.insert(0, 256)


def test_markdown_lists_every_register_and_field():
    text = render_markdown()
    assert text.startswith("| offset | register |")
    for reg in REGMAP:
        assert f"`{reg.name}`" in text and f"`{reg.offset:#04x}`" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + sum(len(reg.fields) for reg in REGMAP)


def test_error_codes_fit_their_field():
    assert max(ERROR_CODES) < 2 ** REGMAP.field("STATUS", "error_code").width
    assert ERROR_CODES[0] == "none"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Field("x", 30, 4, "RO", 0, ""), "leave a 32-bit register"),
        (lambda: Field("x", 0, 1, "RX", 0, ""), "access must be one of"),
        (lambda: Field("x", 0, 2, "RW", 4, ""), "does not fit 2 bits"),
        (lambda: Register("R", 0x3, (), ""), "4-byte aligned"),
        (
            lambda: Register(
                "R", 0x0, (Field("a", 0, 4, "RW", 0, ""), Field("b", 3, 2, "RW", 0, "")), ""
            ),
            "overlaps",
        ),
        (
            lambda: RegisterMap((Register("A", 0, (), ""), Register("B", 0, (), ""))),
            "is taken",
        ),
    ],
)
def test_malformed_definitions_are_rejected(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_unknown_names_raise_keyerror():
    with pytest.raises(KeyError, match="no register"):
        REGMAP["NOPE"]
    with pytest.raises(KeyError, match="has no field"):
        REGMAP.field("CONTROL", "go")


@pytest.mark.parametrize(
    "config",
    [
        AccelConfig(),
        AccelConfig(rows=8, cols=4, weight_format="int4", queue_depth=256, max_rank=30,
                    max_cores=6, max_mode=96, clock_mhz=142.5, dsp_packing=False),
    ],
)  # fmt: skip
def test_config_rebuilt_from_its_registers(config):
    assert config_from_registers(config_register_values(config)) == config


@pytest.mark.parametrize(("nm", "fmt"), [((2, 4), "int8"), ((4, 8), "int4"), ((1, 2), "ternary")])
def test_the_sparse_gemm_mode_is_advertised_in_config_max_mode(nm, fmt):
    """A host must find the N:M mode in the registers (GEMM bit 14 is illegal without it):
    CONFIG_MAX_MODE.sparse_n / sparse_m are N and M, 0 / 0 without the mode."""
    config = AccelConfig(rows=4, cols=4, weight_format=fmt, sparse_nm=nm)
    word = config_register_values(config)["CONFIG_MAX_MODE"]
    reg = REGMAP["CONFIG_MAX_MODE"]
    assert (reg.field("sparse_n").extract(word), reg.field("sparse_m").extract(word)) == nm
    assert reg.field("sparse_n").access == reg.field("sparse_m").access == "RO"
    assert config_from_registers(config_register_values(config)).sparse_nm == nm
    plain = config_register_values(AccelConfig(rows=4, cols=4))["CONFIG_MAX_MODE"]
    assert reg.field("sparse_n").extract(plain) == reg.field("sparse_m").extract(plain) == 0
    assert config_from_registers(config_register_values(AccelConfig())).sparse_nm is None
    words = config_register_values(config)
    words["CONFIG_MAX_MODE"] = reg.field("sparse_n").insert(words["CONFIG_MAX_MODE"], 3)
    with pytest.raises(ValueError, match=r"CONFIG_MAX_MODE\.sparse_n / sparse_m 3 / "):
        config_from_registers(words)


def test_config_from_registers_names_what_is_wrong():
    words = config_register_values(AccelConfig())
    del words["CONFIG_TT"]
    with pytest.raises(ValueError, match="CONFIG_TT"):
        config_from_registers(words)
    words = config_register_values(AccelConfig())
    words["CONFIG_ARRAY"] = REGMAP.field("CONFIG_ARRAY", "weight_format").insert(
        words["CONFIG_ARRAY"], 9
    )
    with pytest.raises(ValueError, match="weight_format 9"):
        config_from_registers(words)
