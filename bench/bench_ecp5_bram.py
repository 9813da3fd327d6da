"""The ECP5 proxy's block-RAM reads: ``hw/memory.py``'s RegisteredReadMemory, both builds.

yosys ``synth_ecp5`` maps every inferred memory onto DP16KD blocks with ``REGMODE NOREG``, so a
block-RAM read into a register costs the DP16KD's 5.83 ns clock-to-out plus a route;
``RegisteredReadMemory`` elaborated for the ECP5 proxy instantiates the DP16KD itself with its
output register (``REGMODE_B = OUTREG``). This places and routes each memory alone on an
LFE5U-85F (``hw/synth.py``'s proxy flow) behind virtual pins (``hw/virtual_pins.py``: every
port on a flip-flop), so each read runs from an address register through the memory's two
read stages into a fabric register; once portable (as
yosys infers it) and once as the ECP5 proxy build. The shapes are the 8 x 8 configuration's
ABUF / WBUF (64 x 1024) and instruction memory (320 x 256), and the default's WBUF
(256 x 8192). Writes docs/results.md, section ``ecp5-bram``. About two minutes.

    python bench/bench_ecp5_bram.py [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_doc import write_section

from ttaccel.hw.dsp import ECP5_PROXY
from ttaccel.hw.memory import RegisteredReadMemory, dp16kd_tiling
from ttaccel.hw.synth import ecp5_proxy_fmax
from ttaccel.hw.virtual_pins import VirtualPins

SHAPES = [(64, 1024, "8 x 8 ABUF / WBUF"), (320, 256, "instruction memory"),
          (256, 8192, "default (12 x 32) WBUF")]  # fmt: skip


def to_markdown(rows: list[tuple[str, float, float]], command: str) -> str:
    lines = [
        "## Block-RAM reads on the ECP5 proxy (issue 9, step 34)",
        "",
        "Each memory alone on an LFE5U-85F (yosys `synth_ecp5` + nextpnr-ecp5, `hw/synth.py`'s "
        "proxy flow), behind virtual pins: `hw/memory.py`'s `RegisteredReadMemory` between "
        "fabric registers, the "
        "routed Fmax of its clock. Portable: as yosys infers it (DP16KD `REGMODE NOREG`, the "
        "output register in the fabric); ECP5 proxy build: DP16KD instances with "
        "`REGMODE_B = OUTREG`. ECP5 proxy figures, not Zynq ones. Command: "
        f"`{command}`.",
        "",
        "| memory | DP16KD tiles | portable | ECP5 proxy build (OUTREG) |",
        "|---|---|---:|---:|",
    ]
    lines += [f"| {what} | {tiles} | {portable:.2f} MHz | {proxy:.2f} MHz |"
              for what, tiles, portable, proxy in rows]  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for width, depth, what in SHAPES:
            fmax = []
            for platform in (None, ECP5_PROXY):
                out = Path(tmp) / f"{width}x{depth}-{platform is not None}"
                memory = RegisteredReadMemory(width=width, depth=depth)
                fmax.append(ecp5_proxy_fmax(VirtualPins(memory, clock=None), "bench_top", out,
                                            platform=platform, target_mhz=150))  # fmt: skip
            address_bits, tile_width, tiles = dp16kd_tiling(width, depth)
            shape = f"{tiles} x ({1 << address_bits} x {tile_width})"
            print(f"{width} x {depth}: {fmax[0]:.2f} / {fmax[1]:.2f} MHz", flush=True)
            rows.append((f"{width} x {depth} ({what})", shape, *fmax))
    table = to_markdown(rows, "python bench/bench_ecp5_bram.py")
    print(table)
    if not args.no_write:
        write_section("ecp5-bram", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
