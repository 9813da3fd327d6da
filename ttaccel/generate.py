"""Generate the accelerator for one configuration: Verilog and a JSON description.

``ttaccel generate --config CFG.json --out DIR`` writes, under ``DIR``:

``ttaccel_top.v``
    the Zynq top level (:class:`ttaccel.hw.top.ZynqTop`): AXI4-Lite registers, 64-bit
    AXI4-Stream in and out, ``aclk`` / ``aresetn``, ``interrupt``.
``ttaccel_top.json``
    what was generated: the :class:`~ttaccel.spec.accel_config.AccelConfig` (every field),
    derived figures (lanes, accumulator width, MACs per DSP, peak GMAC/s), the resource
    estimate against the device's limits, the IP identifier and version, the register map
    with the generated words of the read-only configuration registers, and the ports.
``regmap.md``
    the register map as a Markdown table.

``CFG.json`` is an :meth:`AccelConfig.to_json` object (missing keys take the default);
without ``--config`` the default configuration is generated. Vivado project scripts and
synthesis reports: ``python -m ttaccel.hw.board`` (``make synth``; see ``docs/hardware.md``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HELP = "write the accelerator's Verilog and a JSON description of the generated configuration"

MODULE_NAME = "ttaccel_top"
"""Name of the generated top-level Verilog module (and of the files it is written to)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=None,
        help="AccelConfig JSON (default: the default configuration)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")


def load_config(path: Path | None):
    """The AccelConfig in JSON file ``path``, or the default configuration for None."""
    from ttaccel.spec.accel_config import AccelConfig

    if path is None:
        return AccelConfig()
    if not Path(path).is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        return AccelConfig.from_json(Path(path).read_text())
    except ValueError as error:
        raise ValueError(f"config file {path}: {error}") from None


def describe(config, ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The JSON description of a generated configuration (NumPy-free, Amaranth-free)."""
    from ttaccel import __version__
    from ttaccel.spec.accel_config import DEVICES
    from ttaccel.spec.regmap import (
        ADDRESS_SPACE,
        DATA_WIDTH,
        IP_IDENTIFIER,
        IP_VERSION,
        REGMAP,
        config_register_values,
    )

    fixed = config_register_values(config)
    registers = []
    for reg in REGMAP:
        entry: dict[str, Any] = {"name": reg.name, "offset": reg.offset, "doc": reg.doc}
        if reg.name in fixed:
            entry["value"] = fixed[reg.name]
        entry["fields"] = [
            {"name": f.name, "lsb": f.lsb, "width": f.width, "access": f.access,
             "reset": "config" if f.reset is None else f.reset, "doc": f.doc}
            for f in reg.fields
        ]  # fmt: skip
        registers.append(entry)
    device = DEVICES[config.device]
    description = {
        "generator": f"ttaccel {__version__}",
        "module": MODULE_NAME,
        "summary": config.summary(),
        "config": config.to_dict(),
        "derived": {
            "lanes": config.lanes,
            "acc_bits": config.acc_bits,
            "macs_per_dsp": config.macs_per_dsp,
            "a_word_bits": config.a_word_bits,
            "b_word_bits": config.b_word_bits,
            "peak_gmacs": config.peak_gmacs,
        },
        "resource_estimate": {
            "device": {"name": device.name, "dsp48e1": device.dsp48, "ramb36": device.bram36},
            "dsp48e1": {**config.dsp_estimate, "total": config.dsp_total},
            "ramb36": {**config.bram36_estimate, "total": config.bram36_total},
            "note": "AccelConfig's analytic estimate; `make synth` reports yosys synth_xilinx "
            "counts",
        },
        "ip": {
            "identifier": f"{IP_IDENTIFIER:#010x}",
            "version": ".".join(str(v) for v in IP_VERSION),
        },
        "interfaces": {
            "s_axi": {
                "protocol": "AXI4-Lite",
                "data_width": DATA_WIDTH,
                "address_space": ADDRESS_SPACE,
            },
            "s_axis": {
                "protocol": "AXI4-Stream",
                "data_width": config.stream_bits,
                "signals": ["tdata", "tlast", "tvalid", "tready"],
                "from": "AXI DMA MM2S",
            },
            "m_axis": {
                "protocol": "AXI4-Stream",
                "data_width": config.stream_bits,
                "signals": ["tdata", "tkeep", "tlast", "tvalid", "tready"],
                "to": "AXI DMA S2MM",
            },
            "interrupt": {
                "sensitivity": "level high",
                "source": "STATUS.done and CONTROL.irq_enable",
            },
            "clock": {"name": "aclk", "target_mhz": config.clock_mhz},
            "reset": {"name": "aresetn", "polarity": "active low, synchronous"},
        },
        "registers": registers,
    }
    if ports is not None:
        description["ports"] = ports
    return description


def top_ports(top) -> list[dict[str, Any]]:
    """``[{name, direction, width}]`` of a top-level component's ports."""
    from amaranth.lib.wiring import In

    ports = []
    for path, member, value in top.signature.flatten(top):
        direction = "in" if member.flow == In else "out"
        ports.append({"name": "__".join(map(str, path)), "direction": direction,
                      "width": len(value)})  # fmt: skip
    return ports


def generate(config, out_dir: Path, *, engine=None) -> dict[str, Path]:
    """Write the Verilog, the JSON description and the register table of ``config`` under
    ``out_dir``; returns ``{kind: path}``. ``engine`` replaces the real engine (tests only)."""
    from amaranth.back import verilog

    from ttaccel.hw.top import ZynqTop
    from ttaccel.spec.regmap import render_markdown

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    top = ZynqTop(config=config, engine=engine)
    paths = {
        "verilog": out_dir / f"{MODULE_NAME}.v",
        "description": out_dir / f"{MODULE_NAME}.json",
        "regmap": out_dir / "regmap.md",
    }
    ports = top_ports(top)
    paths["verilog"].write_text(verilog.convert(top, name=MODULE_NAME, emit_src=False))
    paths["description"].write_text(json.dumps(describe(config, ports), indent=2) + "\n")
    paths["regmap"].write_text(render_markdown() + "\n")
    return paths


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    paths = generate(config, args.out)
    print(config.summary())
    for kind, path in paths.items():
        print(f"{kind:12s} {path}")
    return 0
