"""Mutation checks of the engine: does ``pytest sim/`` notice a deliberately broken design?

Usage (from the repository root, with the development venv)::

    .venv/bin/python tools/mutate.py --list
    nice -n 5 .venv/bin/python tools/mutate.py [--only NAME ...] [--seeds 12345,7]
        [--suites directed,engine] [--rev HEAD] [--markdown build/mutants/table.md]

For each mutant in :data:`MUTANTS` the script builds a *shadow copy* of the package under
``build/mutants/<name>/ttaccel/`` (``ttaccel/``, ``spec/``, ``hw/``, ``sim/``, ``host/`` from the
working tree, or from git revision ``--rev``), applies the mutant's source patch to the copy of
its ``hw/`` file -- ``hw/`` itself is never touched, so others can keep testing -- checks that
the patch changed the generated Verilog of the engine, and runs the chosen pytest suites from
the copy (``PYTHONPATH`` points at the shadow, so the simulator process imports it too; the
simulator builds land in the shadow's own ``build/``). The unmutated copy (``baseline``) must
pass first. A mutant is *killed* when at least one test fails; the report names every failing
cocotb test (from the cocotb result files) and pytest test, per seed (``TTACCEL_SEED``).

Patches are regular expressions on the Amaranth source, written against semantic anchors
(the fence condition, the token counter's decrement, the rounding add, ...). Each mutant lists
alternatives for the source as it was and as it is being refactored; exactly one alternative
must match exactly once, otherwise the script stops with ``mutation anchor not found`` (or
``ambiguous``) instead of silently testing the unmutated design: update :data:`MUTANTS` then.

Writes ``build/mutants/report.json`` (every run's failing tests and timings; ``--update``
replaces only the mutants just run) and prints a Markdown table (``--markdown`` also writes
it to a file, ``--table`` reprints it). Exit status: 0 when every selected
mutant is killed on every seed, 1 otherwise, 2 for a setup error (anchor, baseline failing,
equivalent mutant).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOT = REPO / "build" / "mutants"
PACKAGES = {"ttaccel": "ttaccel", "spec": "ttaccel/spec", "hw": "ttaccel/hw",
            "sim": "ttaccel/sim", "host": "ttaccel/host"}  # fmt: skip
"""Repository folder -> its place in the shadow package (``pyproject.toml``'s package-dir)."""

SUITES = {
    "directed": ["sim/test_engine_directed.py"],
    "engine": ["sim/test_engine.py::test_engine_cocotb[verilator-4x4-int8]"],
    "requant": ["sim/test_requant.py"],
    "top": ["sim/test_top_engine.py::test_top_with_engine_cocotb[verilator]"],
    "sparse": ["sim/test_sparse.py"],
    "systolic": ["sim/test_systolic.py"],
}
"""Suite name -> pytest node ids (relative to the shadow package root)."""


class MutationError(RuntimeError):
    """The mutation run cannot give a meaningful answer (anchor, baseline, equivalence)."""


@dataclasses.dataclass(frozen=True)
class Mutant:
    """``name``; ``path`` (repository-relative ``hw/`` file); ``alternatives``: ``(regex,
    replacement)`` pairs, exactly one of which must match exactly once; ``what`` it breaks;
    ``suites`` to run (besides the defaults)."""

    name: str
    path: str
    alternatives: tuple[tuple[str, str], ...]
    what: str
    suites: tuple[str, ...] = ()

    def apply(self, text: str) -> str:
        """``text`` with the mutation applied; MutationError when no anchor (or more than
        one place) matches."""
        hits = []
        for pattern, replacement in self.alternatives:
            count = len(re.findall(pattern, text))
            if count > 1:
                raise MutationError(
                    f"mutation anchor ambiguous: {self.name}: {pattern!r} matches {count} places "
                    f"in {self.path}; make it unique in tools/mutate.py"
                )
            if count == 1:
                hits.append((pattern, replacement))
        if len(hits) != 1:
            tried = "; ".join(p for p, _ in self.alternatives)
            problem = "not found" if not hits else "found by several alternatives"
            raise MutationError(
                f"mutation anchor {problem}: {self.name} in {self.path} (tried: {tried}); the "
                f"source changed -- update MUTANTS in tools/mutate.py"
            )
        pattern, replacement = hits[0]
        return re.sub(pattern, replacement, text)


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "fence-ignored", "hw/execute.py",
        ((r"\(gemms_out == 1\) & ~head\.fence", "(gemms_out == 1)"),),
        "a GEMM with fence starts while the previous GEMM still drains",
    ),
    Mutant(
        "two-gemms-in-flight", "hw/execute.py",
        ((r"\(gemms_out == 1\) & ~head\.fence", "(gemms_out <= 2) & ~head.fence"),),
        "a GEMM starts while the two previous GEMMs still drain (only one may)",
    ),
    Mutant(
        "store-starts-early", "hw/execute.py",
        ((r"Mux\(head\.store, gemms_out == 0,", "Mux(head.store, gemms_out <= 1,"),),
        "a STORE starts while the previous GEMM still drains",
    ),
    Mutant(
        "exec-wait-dropped", "hw/execute.py",
        ((r"token_ok = ~head\.wait \| self\.token_ready", "token_ok = 1"),),
        "a GEMM/STORE with wait starts without the load engine's token",
    ),
    Mutant(
        "load-wait-dropped", "hw/load_engine.py",
        ((r"\(~head\.wait \| self\.token_ready\)", "1"),),
        "a LOAD with wait starts without the execute engine's token",
    ),
    Mutant(
        "token-never-decrements", "hw/engine.py",
        ((r"count\.eq\(count - 1\)", "count.eq(count)"),
         (r"count\.eq\(count \+ pushed - popped\)", "count.eq(count + pushed)")),
        "consuming a token does not decrement the counter (a token satisfies every later wait)",
    ),
    Mutant(
        "token-ready-ignores-pop", "hw/engine.py",
        ((r"ready\.eq\(Mux\(pop_only, count != 1, \(count != 0\) \| pushed\)\)",
          "ready.eq((count != 0) | pushed)"),),
        "the cycle after a pop, the counter's last token still reads as available",
    ),
    Mutant(
        "token-overflow-unchecked", "hw/engine.py",
        ((r"m\.If\(push & ~pop & \(count == TOKEN_LIMIT\)\)", "m.If(0)"),
         (r"m\.If\(push & ~pop & full\)", "m.If(0)"),
         (r"overflowed\.eq\(\(busy \| begin\) & push & ~pop & full & ~reset\)",
          "overflowed.eq(0)"),
         (r"overflowing = \(busy \| begin\) & push & ~pop & full & ~reset",
          "overflowing = 0")),
        "a 256th outstanding token is not an error (the counter wraps or drops it)",
    ),
    Mutant(
        "instructions-miss-end", "hw/engine.py",
        ((r"Mux\(late_one, value \+ \(increment \+ 1\), total\)", "total"),),
        "the INSTRUCTIONS counter misses END's retirement (timing step 13's select)",
    ),
    Mutant(
        "packer-take-ignores-beat-fifo", "hw/gearbox.py",
        ((r"Mux\(can_emit, beats\.w_rdy & take_if_emit, 1\)", "Mux(can_emit, take_if_emit, 1)"),),
        "the packer takes a word as if the pending beat had left while the beat FIFO is full",
    ),
    Mutant(
        "drain-valid-column-off-by-one", "hw/execute.py",
        ((r"valid_col\.eq\(j_last \| \(j \+ 1 < tile\.valid\)\)",
          "valid_col.eq(j_last | (j + 1 <= tile.valid))"),),
        "the drain treats the column after a tile's last valid one as valid (a result too many)",
    ),
    Mutant(
        "load-retires-a-word-early", "hw/load_engine.py",
        ((r"words_one\.eq\(words_left == 2\)", "words_one.eq(words_left == 3)"),),
        "the load engine's registered last-word test fires one word early (step 10)",
    ),
    Mutant(
        "stopping-head-unchecked", "hw/engine.py",
        ((r"\(~stopping \| \(before_limit & head_stable\)\)", "(~stopping | before_limit)"),),
        "while stopping, a queue head that just arrived starts on the bound registered for the "
        "cycle before (step 10's head_stable dropped)",
    ),
    Mutant(
        "drain-valid-ignores-drain", "hw/systolic.py",
        ((r"o_valid\.eq\(Mux\(drained, moved_on, kept\)\)", "o_valid.eq(kept)"),),
        "the array's output valid keeps the drained row's test instead of moving to the next "
        "row's (step 14's select)",
    ),
    Mutant(
        "array-ignores-slot-credit", "hw/systolic.py",
        ((r"self\.i\.ready\.eq\(~self\.i\.payload\.last \| slot_free\)", "self.i.ready.eq(1)"),),
        "the array accepts a tile's last beat with every hold slot taken, so a finishing PE "
        "overwrites a row the drain has not sent (step 19's credits)",
        ("systolic",),
    ),
    Mutant(
        "array-slot-frees-at-first-row", "hw/systolic.py",
        ((r"tile_out\.eq\(drained & \(drain_row == rows - 1\)\)",
          "tile_out.eq(drained & (drain_row == 0))"),),
        "a tile's hold slot frees when its first row is sent instead of its last (step 19)",
        ("systolic",),
    ),
    Mutant(
        "drain-group-select-early", "hw/systolic.py",
        ((r"with m\.Switch\(group_q\):", "with m.Switch(group_at):"),),
        "the second level of the array's registered drain select picks a group by the "
        "current entry instead of the one its registers loaded, so a row comes from the "
        "wrong group whenever the drain crosses a group boundary (step 40)",
        ("systolic",),
    ),
    Mutant(
        "drain-ignores-credit", "hw/execute.py",
        ((r"array\.o\.ready\.eq\(~valid_col \| requant\.credit\)", "array.o.ready.eq(1)"),),
        "a column leaves the array without a requantizer credit, so under back-pressure its "
        "results are dropped (step 36: the drain stages are the requantizer's lead stages; "
        "step 15's `bias-read-ignores-stall` has no stall left to ignore)",
    ),
    Mutant(
        "tile-credit-never-taken", "hw/execute.py",
        ((r"taken=first_beat,", "taken=0,"),),
        "a tile's first beat takes no tile-queue credit, so the address generator may run "
        "more tiles ahead than the queue holds (step 39's registered push)",
    ),
    Mutant(
        "column-last-reload-late", "hw/execute.py",
        ((r"t=cols_left <= 2 \* cols,", "t=cols_left <= cols,"),),
        "the registered last-column-tile test of the next column tile keeps this tile's test "
        "(step 16's loop-test registers)",
    ),
    Mutant(
        "column-tile-first-beat-unflagged", "hw/execute.py",
        ((r"walk\(kk_first, 1, kk=0, t=1,", "walk(kk_first, 1, kk=0, t=kk_first,"),),
        "the next column tile's first beat is not flagged, so it pushes no tile descriptor "
        "(step 18's registered kk == 0)",
    ),
    Mutant(
        "trailer-armed-twice", "hw/engine.py",
        ((r"armed\.eq\(quiet & ~sent_last & ~trailer & ~reset\)",
          "armed.eq(quiet & ~sent_last & ~reset)"),),
        "the error trailer stays armed in the cycle it is sent, so a second TLAST beat may "
        "follow it (step 47's registered trailer)",
    ),
    Mutant(
        "two-heads-pointer-stuck", "hw/interfaces.py",
        ((r"older\.eq\(older \^ pop\)", "older.eq(older)"),),
        "a queue's head pointer does not move on a pop, so the two head registers are not "
        "read in turn (step 48's two_heads: the load, execute and result queues)",
    ),
    Mutant(
        "packer-skid-word-lost", "hw/gearbox.py",
        ((r"m\.d\.sync \+= \[skid\.eq\(incoming\), skid_valid\.eq\(1\)\]",
          "m.d.sync += [skid.eq(incoming), skid_valid.eq(0)]"),),
        "the packer's input skid never holds the word it caught while the gearbox waited, so "
        "that word is lost (step 50)",
    ),
    Mutant(
        "output-skid-beat-lost", "hw/engine.py",
        ((r"out_q\.eq\(Mux\(moves_up, skid, incoming\)\)", "out_q.eq(incoming)"),),
        "the output stage's skid register does not move up: the beat it caught under "
        "back-pressure is replaced by whatever the execute engine offers (step 44)",
    ),
    Mutant(
        "queue-gate-ignores-token-overflow", "hw/engine.py",
        ((r"no_new_error\.eq\(~pending_next & ~overflows_now\)",
          "no_new_error.eq(~pending_next)"),),
        "a queue head may start in the cycle a token counter's overflow is registered, "
        "before the error is pending (step 42's merged gate register)",
    ),
    Mutant(
        "barrier-ignores-output", "hw/engine.py",
        ((r"& load\.idle & execute\.idle & ~out_valid", "& load.idle & execute.idle"),),
        "SYNC / END retire while the engine's output register still holds a beat (step 17's "
        "registered drained test without the output term)",
    ),
    Mutant(
        "a-k-step-off-by-one", "hw/execute.py",
        ((r"kk=a_ptr \+ a_step,", "kk=a_ptr + a_step + 1,"),),
        "the A address steps a_k + 1 per reduction step",
    ),
    Mutant(
        "a-inner-step-off-by-one", "hw/execute.py",
        ((r"t=a_pq, q=a_pq \+ g\.a_inner,", "t=a_pq, q=a_pq + g.a_inner + 1,"),),
        "the first A address of an inner row tile is one too high",
    ),
    Mutant(
        "b-tile-step-off-by-one", "hw/execute.py",
        ((r"g\.b_k, t=b_t \+ g\.b_tile,", "g.b_k, t=b_t + g.b_tile - 1,"),),
        "the first B address of the next column tile is one too low",
    ),
    Mutant(
        "out-col-step-off-by-one", "hw/execute.py",
        ((r"o_run\.eq\(addr_j \+ tile\.out_col\)", "o_run.eq(addr_j + tile.out_col + 1)"),),
        "result columns after the first are written one word too far",
    ),
    Mutant(
        "bias-outer-step-off-by-one", "hw/execute.py",
        ((r"walk\(bias_p, head\.bias_base, p=bias_p \+ g\.bias_outer\)",
          "walk(bias_p, head.bias_base, p=bias_p + g.bias_outer + 1)"),),
        "the bias row of outer row tiles after the first is one entry too far",
    ),
    Mutant(
        "load-address-step-two", "hw/load_engine.py",
        ((r"addr\.eq\(addr \+ 1\)", "addr.eq(addr + 1 + (words_left == 2))"),),
        "a LOAD skips a word before its last one",
    ),
    Mutant(
        "requant-round-half-down", "hw/requant.py",
        ((r"\(s2\.product\[n\] \+ round_bit\) >> s2\.shift",
          "(s2.product[n] + round_bit - (s2.shift != 0)) >> s2.shift"),
         # t = (2p) >> shift, y = (t + 1) >> 1: 2p - 1 moves exact ties below the boundary
         (r"\(s2\.product\[n\] << 1\)\.as_signed\(\) >> s2\.shift",
          "((s2.product[n] << 1) - (s2.shift != 0)).as_signed() >> s2.shift"),
         # step 31: the same on the first of the two shift stages
         (r"\(s2\.product\[n\] << 1\)\.as_signed\(\) >> coarse",
          "((s2.product[n] << 1) - (s2.shift != 0)).as_signed() >> coarse")),
        "ties round down instead of half up (differs only exactly half-way)",
        ("requant",),
    ),
    Mutant(
        "requant-truncates", "hw/requant.py",
        ((r"\(s2\.product\[n\] \+ round_bit\) >> s2\.shift", "s2.product[n] >> s2.shift"),
         (r"low\.eq\(\(t\[:9\] \+ 1\)\[1:9\]\)", "low.eq(t[1:9])")),
        "no rounding bit: the shift truncates toward minus infinity",
        ("requant",),
    ),
    Mutant(
        "load-last-beat-flag-stuck", "hw/load_engine.py",
        ((r"beats_one\.eq\(\(head_bits != 0\) & \(head_bits <= STREAM_BITS\)\)",
          "beats_one.eq(0)"),),
        "a one-beat LOAD never sees its last beat (TLAST is an error, further beats are taken)",
    ),
    Mutant(
        "abuf-port-conflict", "hw/load_engine.py",
        ((r"\(\(target != 0\) \| self\.abuf_grant\)", "1"),),
        "a LOAD writes ABUF in a cycle the execute engine's result owns the port (word lost)",
    ),
    Mutant(
        "load-bound-off-by-one", "hw/dispatch.py",
        ((r"load_end > depth_of", "load_end >= depth_of"),
         (r"load\.base \+ load\.count > depth_of", "load.base + load.count >= depth_of")),
        "a LOAD that ends at the buffer's last word is rejected (error 2)",
    ),
    Mutant(
        "gemm-bound-off-by-one", "hw/dispatch.py",
        ((r"\(acc_a >= cfg\.act_buffer_depth\)", "(acc_a >= cfg.act_buffer_depth - 1)"),
         (r"\(acc_a < cfg\.act_buffer_depth\)", "(acc_a < cfg.act_buffer_depth - 1)")),
        "a GEMM reading the last ABUF word is rejected (error 2)",
    ),
    Mutant(
        "packer-position-kept-at-end", "hw/gearbox.py",
        ((r"position\.eq\(Mux\(word_end, 0, position \+ word_bits\)\)",
          "position.eq(position + word_bits)"),),
        "the packer's placing position runs on across an instruction's end (step 32)",
    ),
    Mutant(
        "bias-bound-off-by-one", "hw/dispatch.py",
        ((r"\(acc_c <= bias_room\)", "(acc_c < bias_room)"),),
        "a GEMM whose bias rows end at the bias buffer's last word is rejected (step 33)",
    ),
    Mutant(
        "input-beat-unowed", "hw/engine.py",
        ((r"~Mux\(took, owed_is_1, owed_is_0\)", "~owed_is_0"),),
        "the input stage takes a beat no queued LOAD owes, the cycle after the last owed one",
    ),
    Mutant(
        "sparse-index-swapped", "hw/sparse.py",
        ((r"chosen\[lane\]\.eq\(w\[lane\]\[a\.index\]\)",
          "chosen[lane].eq(w[lane][a.index ^ 1])"),),
        "a sparse PE selects its group's neighbouring activation (index bit 0 flipped)",
        ("sparse",),
    ),
    Mutant(
        "sparse-group-order", "hw/sparse.py",
        ((r"m\.d\.sync \+= bank\[r\]\[2 \* s \+ h\]\.eq\(pair\[h\]\[r\]\)",
          "m.d.sync += bank[r][2 * s + h].eq(pair[1 - h][r])"),),
        "the group assembler swaps the two A-words of each beat in the group",
        ("sparse",),
    ),
)  # fmt: skip
DEFAULT_SUITES = ("directed", "engine")


# -- shadow trees ------------------------------------------------------------------------------


def _copy_tree(dest: Path, rev: str | None) -> None:
    """The repository's package folders (``*.py`` files) into ``dest`` as ``ttaccel/...``."""
    if rev is None:
        for folder, target in PACKAGES.items():
            for source in (REPO / folder).glob("*.py"):
                out = dest / target / source.name
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, out)
        return
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, *PACKAGES], cwd=REPO, capture_output=True,
        check=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        for member in tar.getmembers():
            folder, _, name = member.name.partition("/")
            if member.isfile() and "/" not in name and name.endswith(".py"):
                out = dest / PACKAGES[folder] / name
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(tar.extractfile(member).read())


_IMPORT_LOG = """
import os as _os  # noqa: E402  (added by tools/mutate.py to the shadow copy only)

if _os.environ.get("TTACCEL_MUTATION_LOG"):
    with open(_os.environ["TTACCEL_MUTATION_LOG"], "a") as _log:
        _log.write(f"{_os.getpid()} {__file__}\\n")
"""


def _git_show(rev: str, path: str) -> str:
    return subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout


def make_shadow(name: str, mutant: Mutant | None, rev: str | None) -> Path:
    """``build/mutants/<name>/`` holding ``ttaccel/`` (mutated when ``mutant``); the
    simulator builds under ``ttaccel/build/`` are kept between invocations (ccache)."""
    root = ROOT / name
    package = root / "ttaccel"
    for folder in PACKAGES.values():  # fresh sources, kept builds
        path = root / folder
        if path.exists():
            for stale in path.glob("*.py"):
                stale.unlink()
    _copy_tree(root, rev)
    for name in ("pyproject.toml", "conftest.py"):  # pytest's settings, rooted in the shadow
        text = (REPO / name).read_text() if rev is None else _git_show(rev, name)
        (root / name).write_text(text)
    init = package / "sim" / "__init__.py"  # every process that imports the shadow's sim/ logs
    init.write_text(init.read_text() + _IMPORT_LOG)
    if mutant is not None:
        target = package / "hw" / Path(mutant.path).name
        target.write_text(mutant.apply(target.read_text()))
    return root


_PROBE = """
import hashlib, sys
from amaranth.back import verilog
import ttaccel.hw.engine as engine
from ttaccel.sim.test_engine_directed import DIRECTED
from ttaccel.sim.test_sparse import SPARSE
assert engine.__file__.startswith(sys.argv[1]), engine.__file__
text = "".join(verilog.convert(engine.Engine(config=c), name="top", emit_src=False)
               for c in (DIRECTED, SPARSE))
print(hashlib.sha256(text.encode()).hexdigest())
"""


def _env(root: Path, seed: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root)
    env.pop("TTACCEL_SEED", None)
    if seed is not None:
        env["TTACCEL_SEED"] = str(seed)
    return env


def netlist_hash(root: Path) -> str:
    """SHA-256 of the engine's Verilog (the directed and the sparse configurations) built
    from ``root``; also asserts that the shadow, not the installed package, was imported."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(root)], cwd=root, env=_env(root, None),
        capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode:
        raise MutationError(f"could not elaborate the engine from {root}:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


# -- running the suites ------------------------------------------------------------------------


def _failures(root: Path, junit: Path) -> list[str]:
    """Failing tests: cocotb testcases (``<build name>:<test>``) and pytest tests."""
    failed: list[str] = []
    for result in sorted((root / "ttaccel" / "build" / "sim").glob("*/*/*.result.xml")):
        for case in ET.parse(result).iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed.append(f"{result.parent.name}:{case.get('name')}")
    cocotb_failed = bool(failed)
    if junit.exists():
        for case in ET.parse(junit).iter("testcase"):
            bad = case.find("failure")
            bad = case.find("error") if bad is None else bad
            if bad is not None:
                node = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
                message = bad.get("message", "")
                if cocotb_failed and "cocotb tests of" in message:
                    continue  # already listed by cocotb test name
                failed.append(node)
    return failed


def run_suites(root: Path, suites: list[str], seed: int) -> dict:
    """Run the suites' pytest node ids from the shadow ``root`` with ``TTACCEL_SEED=seed``."""
    for stale in (root / "ttaccel" / "build" / "sim").glob("*/*/*.result.xml"):
        stale.unlink()
    junit = root / "junit.xml"
    junit.unlink(missing_ok=True)
    nodes = [str(root / "ttaccel" / node) for suite in suites for node in SUITES[suite]]
    # Run from the shadow, rooted there: the simulator processes inherit the pytest process's
    # sys.path (cocotb's runner), which must not reach the working tree's sim/.
    command = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
               f"--junitxml={junit}", "-c", str(root / "pyproject.toml"),
               f"--rootdir={root}", *nodes]  # fmt: skip
    imports = root / "imports.log"
    imports.unlink(missing_ok=True)
    env = {**_env(root, seed), "TTACCEL_MUTATION_LOG": str(imports)}
    start = time.monotonic()
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    (root / f"pytest-{seed}.log").write_text(result.stdout + result.stderr)
    lines = imports.read_text().splitlines() if imports.exists() else []
    outside = [line for line in lines if not line.split(" ", 1)[1].startswith(str(root))]
    if outside or len({line.split(" ", 1)[0] for line in lines}) < 2:
        raise MutationError(
            f"the tests did not import the shadow copy in every process ({imports}: "
            f"{lines[:4]}); the simulator would have run the working tree's testbenches"
        )
    failed = _failures(root, junit)
    if result.returncode and not failed:
        raise MutationError(
            f"pytest failed without a failing test in {root} (exit {result.returncode}); "
            f"see {root / f'pytest-{seed}.log'}:\n{(result.stdout + result.stderr)[-2000:]}"
        )
    return {"seed": seed, "failed": failed, "seconds": round(seconds, 1), "exit": result.returncode}


# -- report ------------------------------------------------------------------------------------


def _short(names: set[str]) -> str:
    """Failing tests grouped by build: ``build: a, b, c (+2 more)``."""
    groups: dict[str, list[str]] = {}
    for name in sorted(names):
        build, _, test = name.rpartition(":")
        groups.setdefault(build.removeprefix("engine-") or "pytest", []).append(test)
    parts = []
    for build, tests in groups.items():
        shown = ", ".join(f"`{t}`" for t in tests[:3])
        more = f" (+{len(tests) - 3} more)" if len(tests) > 3 else ""
        parts.append(f"{build}: {shown}{more}")
    return "; ".join(parts) if parts else "-"


def markdown(report: dict) -> str:
    """The report as a Markdown table: tests failing on every seed, and on some only."""
    seeds = ", ".join(str(s) for s in report["seeds"])
    lines = [
        f"| mutant | what it breaks | killed on every seed ({seeds}) by | on some seeds only |",
        "|---|---|---|---|",
    ]
    for entry in report["mutants"]:
        sets = [set(run["failed"]) for run in entry["runs"]]
        always = set.intersection(*sets) if sets else set()
        some = set.union(*sets) - always if sets else set()
        verdict = _short(always) if always else "**not killed on every seed**"
        lines.append(f"| `{entry['name']}` | {entry['what']} | {verdict} | {_short(some)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutants")
    parser.add_argument("--seeds", default="12345", help="comma-separated TTACCEL_SEED values")
    parser.add_argument("--suites", default=",".join(DEFAULT_SUITES),
                        help=f"comma-separated suites from {sorted(SUITES)} (plus each "
                        "mutant's own)")  # fmt: skip
    parser.add_argument("--rev", help="take the sources from this git revision, not the tree")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the unmutated copy (it must pass)"
    )
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument(
        "--update", action="store_true",
        help="replace the run mutants' entries in the existing report (same seeds) instead of "
        "starting a new one",
    )  # fmt: skip
    parser.add_argument(
        "--table", action="store_true", help="print the existing report's table and exit"
    )
    args = parser.parse_args(argv)

    report_path = ROOT / "report.json"
    if args.table:
        print(markdown(json.loads(report_path.read_text())), end="")
        return 0
    if args.list:
        for mutant in MUTANTS:
            print(f"{mutant.name:28} {mutant.path:20} {mutant.what}")
        return 0
    by_name = {m.name: m for m in MUTANTS}
    unknown = sorted(set(args.only or ()) - set(by_name))
    if unknown:
        parser.error(f"unknown mutants {unknown}; --list shows {sorted(by_name)}")
    selected = [by_name[n] for n in args.only] if args.only else list(MUTANTS)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    suites = [s for s in args.suites.split(",") if s]
    bad = sorted(set(suites) - set(SUITES))
    if bad:
        parser.error(f"unknown suites {bad}; choose from {sorted(SUITES)}")

    if args.rev is not None:  # one commit for the whole run, even if HEAD moves meanwhile
        args.rev = subprocess.run(
            ["git", "rev-parse", "--verify", f"{args.rev}^{{commit}}"], cwd=REPO,
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    old = json.loads(report_path.read_text()) if args.update and report_path.exists() else None
    if old is not None and old["seeds"] != seeds:
        parser.error(f"--update needs the report's seeds {old['seeds']}")

    def save(report: dict) -> dict:
        """Write the report so far (merged into the old one with --update); returns it."""
        if old is not None:
            fresh = {e["name"]: e for e in report["mutants"]}
            kept = [fresh.pop(e["name"], e) for e in old["mutants"]]
            report = {**old, "mutants": kept + list(fresh.values())}
        ROOT.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(report, indent=2) + "\n")
        return report

    try:
        base_root = make_shadow("baseline", None, args.rev)
        base_hash = netlist_hash(base_root)
        for mutant in selected:  # every anchor first: fail before an hour of simulation
            mutant.apply((base_root / "ttaccel" / "hw" / Path(mutant.path).name).read_text())
        report: dict = {"rev": args.rev or "working tree", "seeds": seeds, "suites": suites,
                        "mutants": []}  # fmt: skip
        if not args.no_baseline:
            every = sorted({*suites, *(s for m in selected for s in m.suites)})
            print(f"baseline: {', '.join(every)}", flush=True)
            for seed in seeds:
                run = run_suites(base_root, every, seed)
                if run["failed"]:
                    raise MutationError(f"the unmutated design fails {run['failed']} (seed {seed})")
                print(f"  seed {seed}: passes ({run['seconds']} s)", flush=True)
            report["baseline_seconds"] = run["seconds"]
        for mutant in selected:
            root = make_shadow(mutant.name, mutant, args.rev)
            if netlist_hash(root) == base_hash:
                raise MutationError(f"{mutant.name}: the generated Verilog did not change")
            entry = {"name": mutant.name, "path": mutant.path, "what": mutant.what, "runs": []}
            for seed in seeds:
                run = run_suites(root, sorted({*suites, *mutant.suites}), seed)
                entry["runs"].append(run)
                verdict = ", ".join(run["failed"]) if run["failed"] else "SURVIVED"
                print(f"{mutant.name} (seed {seed}, {run['seconds']} s): {verdict}", flush=True)
            report["mutants"].append(entry)
            save(report)
    except MutationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report = save(report)
    table = markdown(report)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    survived = [e["name"] for e in report["mutants"] if any(not r["failed"] for r in e["runs"])]
    if survived:
        print(f"survived on some seed: {survived}", file=sys.stderr)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
