"""Bytes streamed per inference by a Tucker MiniLM-L6 (seed 001) with and without the shared
factors resident in WBUF, counted from the compiled programs' input-stream beats.

    .venv/bin/python bench/bench_tucker_residency.py [--rank 64] [--layers 6] [--config 4x4]

Each of the ``6 * layers`` encoder linears (Q, K, V, O: 384 -> 384, FFN in 384 -> 1536, FFN
out 1536 -> 384) is a Tucker layer of one shared INT8 bank (random codes: the byte counts
depend on the shapes only). Without residency every layer's setup program streams its whole
3-core TT expansion (``V``, its ``S_b``, ``U^T``) and its bias, once per batch; with residency
``V`` and ``U^T`` stream once per batch (:func:`ttaccel.spec.compiler.resident_cores_setup`)
and each layer's setup only its ``S_b`` and bias
(``compile_tt_linear(..., resident_cores=...)``). The run programs (activations in, results
out) are the same either way and are not counted. 8 bytes per 64-bit beat.
"""

from __future__ import annotations

import argparse

import numpy as np

from ttaccel.spec.accel_config import AccelConfig
from ttaccel.spec.compiler import compile_tt_linear, resident_cores_setup
from ttaccel.spec.formats import INT8, Requant
from ttaccel.spec.tucker import QuantTuckerLinear, TuckerBank, tucker_as_tt_linear

D, FFN = 384, 1536
SHAPES = [(D, D)] * 4 + [(D, FFN), (FFN, D)]
CONFIGS = {"default": AccelConfig(), "4x4": AccelConfig(rows=4, cols=4)}


def stream_bytes(rank: int, layers: int, config: AccelConfig, tokens: int = 16) -> dict:
    rng = np.random.default_rng(0)
    fmt = config.weight_format
    codes = lambda *s: rng.integers(-8, 8, size=s)  # noqa: E731
    bank = TuckerBank(codes(D, rank), codes(D, rank), codes(72, rank, rank), fmt)
    cols = config.cols
    v_words, u_words = D * -(-rank // cols), rank * -(-D // cols)
    top = config.weight_buffer_depth
    resident = {0: top - v_words - u_words, 2: top - u_words}
    plain = shared = once = 0
    for index in range(layers * len(SHAPES)):
        in_f, out_f = SHAPES[index % len(SHAPES)]
        blocks = max(in_f, out_f) // D
        layer = QuantTuckerLinear(
            "bank", np.arange(4), codes(blocks, 4), INT8, Requant(1, 8, fmt),
            (Requant(1, 8),) * 3, np.zeros(out_f, np.int32), in_f, out_f, 1.0, 1.0,
        )  # fmt: skip
        tt = tucker_as_tt_linear(layer, bank)
        plain += compile_tt_linear(tt, tokens, config).setup_stream.size
        shared += compile_tt_linear(tt, tokens, config, resident_cores=resident).setup_stream.size
        if index == 0:
            once = resident_cores_setup(tt, config, resident)[1].size
    return {"streamed": 8 * plain, "resident": 8 * (once + shared), "factors_once": 8 * once}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="default")
    args = parser.parse_args(argv)
    config = CONFIGS[args.config]
    result = stream_bytes(args.rank, args.layers, config)
    saved = result["streamed"] - result["resident"]
    print(f"{config.summary()}")
    print(f"Tucker MiniLM-L6, {6 * args.layers} linears, rank {args.rank}, INT8 bank")
    print(f"  constants streamed per inference, no residency:  {result['streamed']:,} bytes")
    print(f"  with V and U^T resident (loaded once, {result['factors_once']:,} bytes): "
          f"{result['resident']:,} bytes")  # fmt: skip
    print(f"  saved: {saved:,} bytes ({saved / result['streamed']:.1%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
