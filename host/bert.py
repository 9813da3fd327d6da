"""BERT inference with the TT linears on the accelerator and everything else on the host.

:class:`DeviceTTLinears` is a :data:`~ttaccel.spec.inference.TTLinearFn`: it runs one TT
linear of an artifact on an :class:`~.driver.Accelerator` and returns exactly the int8 codes
the golden model computes. :class:`DeviceBert` plugs it into
:class:`~ttaccel.spec.inference.BertInference`, so the embedding, attention, softmax,
LayerNorm, GELU, residuals, pooler and classifier are the spec's own code, not a copy, and the
logits equal ``BertInference(artifact).logits(batch)`` bit for bit.

Batches and streaming
    All sentences of a batch are concatenated into one token sequence (TT linears act on
    tokens independently), so a batch fills the array's ``rows`` lanes in token blocks and only
    the last block is padded. Each TT layer's merged cores and bias are streamed to the
    accelerator once per batch: the first layer of a batch by a *setup* program, and every
    following one, where the on-chip buffers hold both, *prefetched* by the run program of the
    layer before it (:func:`ttaccel.spec.compiler.with_prefetch`: the cores stream in during the
    load engine's idle gaps). A layer whose constants cannot sit beside its predecessor's gets
    its own setup program.

Dense layers (seed 003, XTC)
    A one-core TT layer is a dense weight (``in_modes = [M]``, ``out_modes = [N]``); it runs
    resident like a TT layer when it fits WBUF and otherwise with its weights streamed through
    WBUF in every run (:func:`ttaccel.spec.compiler.compile_layer`), with no prefetch beside
    it. The host sends weight codes in the accelerator's weight format
    (``CONFIG_WEIGHT_FORMAT``): on an int8 array (the demo board's) ternary codes {-1, 0, 1}
    and binary codes {-1, +1} (bit 0 of the artifact's 1-bit field unpacked to -1) are sent as
    the int8 numbers -1, 0, +1, which the int8 PEs multiply exactly; on a ternary or binary
    array they are packed at 2 or 1 bits for its multiplier-free PEs. A format the array
    cannot represent (ternary codes on a binary array) is refused before any transfer.

N:M sparse layers (seed 002)
    An artifact's N:M layers (``Artifact.nm_linears``) run sparse on an accelerator whose
    ``CONFIG_MAX_MODE`` advertises an N:M sparse GEMM mode (``AccelConfig.sparse_nm``, read
    back by the driver) that takes the layer's pattern (a 2:4 build takes 2:4, 1:4 and 2:8):
    the artifact's compressed values and indices go to WBUF as they are
    (:func:`ttaccel.spec.compiler.compile_nm_linear`), resident, and each tile takes ``N / M``
    of the dense array beats. Elsewhere (no sparse mode, a pattern it does not take, or
    compressed weights beyond WBUF) a layer runs as the dense one-core layer its weights expand
    to (zeros at the pruned positions), costing what a dense layer costs. Either way the codes
    are the golden model's (:func:`ttaccel.spec.golden.nm_linear_int`).

Tucker layers (seed 001)
    An artifact's Tucker layers (``Artifact.tucker_linears``) run as their 3-core TT expansions
    (``Artifact.integer_linears``: ``V``, the merged ``S_b``, ``U^T``), each streaming its whole
    expansion, the shared factors included, like a TT layer.

Every program run is recorded (:class:`ProgramRecord`) with the hardware counters, the
compiler's count of the MACs it issues, so a caller can check ``MACS_ISSUED`` against it, and
the way the layer was compiled (``mode``: ``tt``, ``dense``, ``nm-sparse`` or ``nm-dense``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..spec.artifact import Artifact
from ..spec.compiler import CompiledLayer, LayerDoesNotFit, compile_layer, with_prefetch
from ..spec.golden import QuantNMLinear, QuantTTLinear
from ..spec.inference import LINEAR_NAMES, BertInference
from .driver import Accelerator, RunCounters, program_macs

__all__ = [
    "ArtifactDoesNotFit",
    "DeviceBert",
    "DeviceTTLinears",
    "ProgramRecord",
    "StepTimer",
    "layer_mode",
    "tt_layer_order",
]


class ArtifactDoesNotFit(ValueError):
    """The artifact needs more than the accelerator has (rank, bits, buffer, instructions)."""


@dataclass(frozen=True)
class ProgramRecord:
    """One program run: which layer, ``kind`` (``setup`` or ``run``), tokens, the counters
    read from the hardware, the compiler's MAC count (``expected_macs``), stream sizes, the
    layer's useful MACs (no padding), host wall seconds of the run and ``mode``, how the layer
    was compiled (:func:`layer_mode`): ``tt`` (a TT layer of several cores), ``dense`` (a
    one-core layer, resident or with streamed weights), ``nm-sparse`` (an N:M layer as sparse
    GEMMs) or ``nm-dense`` (an N:M layer as its dense expansion)."""

    layer: str
    kind: str
    tokens: int
    counters: RunCounters
    expected_macs: int
    beats_in: int
    beats_out: int
    useful_macs: int
    wall_s: float
    mode: str = ""


def layer_mode(layer: QuantTTLinear | QuantNMLinear, compiled: CompiledLayer) -> str:
    """How ``layer`` was compiled into ``compiled``: ``nm-sparse``, ``nm-dense``, ``tt`` or
    ``dense`` (see :class:`ProgramRecord`)."""
    if isinstance(layer, QuantNMLinear):
        return "nm-sparse" if compiled.sparse else "nm-dense"
    return "tt" if len(compiled.stages) > 1 or len(layer.cores) > 1 else "dense"


class StepTimer:
    """Wall time per named step, accumulated: ``with timer("gelu"): ...``. Steps may nest
    (``tt_linear`` contains ``pack``, ``device`` and ``unpack``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    @contextlib.contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] += time.perf_counter() - start
            self.calls[step] += 1

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


def tt_layer_order(artifact: Artifact) -> list[str]:
    """The artifact's integer linears (TT, N:M and Tucker) in the order :class:`BertInference`
    calls them."""
    layers = int(artifact.model_config.get("num_hidden_layers", 0))
    names = [f"bert.encoder.layer.{i}.{n}" for i in range(layers) for n in LINEAR_NAMES]
    linears = {**artifact.tt_linears, **artifact.nm_linears, **artifact.tucker_linears}
    ordered = [n for n in names if n in linears]
    return ordered + [n for n in linears if n not in ordered]


def _range(base: int, size: int) -> range:
    return range(base, base + size)


def _disjoint(a: range, b: range) -> bool:
    return a.stop <= b.start or b.stop <= a.start


class DeviceTTLinears:
    """Runs the TT linears of ``artifact`` on ``accelerator`` (see the module docstring).

    Construction checks every TT layer against the accelerator's configuration before any
    transfer and raises :class:`ArtifactDoesNotFit` naming the layer and the limit (rank,
    cores, modes, weight bits, buffer depths, reduction length). ``prefetch``: stream the next
    layer's constants during the current layer's run where both fit (default True).
    """

    def __init__(
        self,
        artifact: Artifact,
        accelerator: Accelerator,
        *,
        prefetch: bool = True,
        timer: StepTimer | None = None,
    ) -> None:
        self.artifact = artifact
        self.accelerator = accelerator
        self.config = accelerator.config
        self.prefetch = prefetch
        self.timer = timer or StepTimer()
        self.order = tt_layer_order(artifact)
        self.records: list[ProgramRecord] = []
        self._cache: dict[tuple, CompiledLayer] = {}
        self._sizes: dict[str, tuple[int, int]] = {}
        self._max_tokens: dict[str, int] = {}
        # N:M layers in their compressed form: compile_layer runs them sparse where the
        # configuration's sparse mode takes them, as their dense expansion otherwise
        self._linears = {**artifact.integer_linears(), **artifact.nm_linears}
        for name in self.order:
            layer = self._linears[name]
            try:
                compiled = compile_layer(layer, self.config.rows, self.config)
            except LayerDoesNotFit as error:
                raise ArtifactDoesNotFit(
                    f"TT layer {name} does not fit the accelerator "
                    f"({self.config.summary()}): {error}"
                ) from None
            words = sum(c.count for c in compiled.constants if c.buffer.name == "WBUF")
            if compiled.streams_weights:  # its run program uses all of WBUF: never beside another
                words = self.config.weight_buffer_depth
            bias = sum(c.count for c in compiled.constants if c.buffer.name == "BIAS")
            self._sizes[name] = (words, bias)
            if compiled.streams_weights:  # the whole run's activations sit in ABUF
                blocks = self.config.act_buffer_depth // compiled.in_features
                self._max_tokens[name] = blocks * self.config.rows
        self._resident: dict[str, tuple[int, int]] = {}

    def begin_batch(self) -> None:
        """Forget what is resident: the next batch streams every layer's constants again."""
        self._resident.clear()

    def _compiled(self, name: str, tokens: int, bases: tuple[int, int]) -> CompiledLayer:
        key = (name, tokens, bases)
        if key not in self._cache:
            try:
                self._cache[key] = compile_layer(
                    self._linears[name], tokens, self.config,
                    weight_base=bases[0], bias_base=bases[1],
                )  # fmt: skip
            except LayerDoesNotFit as error:
                raise ArtifactDoesNotFit(f"TT layer {name} with {tokens} tokens: {error}") from None
        return self._cache[key]

    def _prefetching(
        self,
        name: str,
        tokens: int,
        bases: tuple[int, int],
        following: str,
        placement: tuple[int, int],
    ) -> CompiledLayer:
        """Layer ``name`` at ``bases`` with ``following``'s constants prefetched at
        ``placement``, cached like :meth:`_compiled` (``with_prefetch`` re-checks the whole
        program, so not once per call)."""
        key = (name, tokens, bases, following, placement)
        if key not in self._cache:
            self._cache[key] = with_prefetch(
                self._compiled(name, tokens, bases), self._compiled(following, tokens, placement)
            )
        return self._cache[key]

    def _placement_beside(
        self, name: str, running: str, current: tuple[int, int]
    ) -> tuple[int, int] | None:
        """WBUF and BIAS bases for ``name``'s constants disjoint from those of layer
        ``running`` at ``current``, or None when they cannot sit side by side."""
        (words, bias), cfg = self._sizes[name], self.config
        cur_words, cur_bias = self._sizes[running]
        choice = []
        for size, cur_size, base, depth in (
            (words, cur_words, current[0], cfg.weight_buffer_depth),
            (bias, cur_bias, current[1], cfg.bias_buffer_depth),
        ):
            busy = _range(base, cur_size)
            for candidate in (0, depth - size):
                if candidate >= 0 and _disjoint(_range(candidate, size), busy):
                    choice.append(candidate)
                    break
            else:
                return None
        return choice[0], choice[1]

    def _run(self, name: str, kind: str, compiled: CompiledLayer, program, data, out_beats):
        with self.timer("device"):
            result = self.accelerator.run(program, data, out_beats)
        record = ProgramRecord(
            layer=name,
            kind=kind,
            tokens=compiled.tokens,
            counters=result.counters,
            expected_macs=program_macs(program, self.config),
            beats_in=int(np.size(data)),
            beats_out=out_beats,
            useful_macs=compiled.useful_macs if kind == "run" else 0,
            wall_s=result.wall_s,
            mode=layer_mode(self._linears[name], compiled),
        )
        self.records.append(record)
        return result

    def __call__(self, name: str, codes: np.ndarray) -> np.ndarray:
        """int8 input codes (R, in_features) of TT layer ``name`` -> int8 codes
        (R, out_features), computed on the accelerator. A streamed dense layer runs the rows in
        pieces whose activations fit ABUF, one run program (and weight stream) each."""
        limit = self._max_tokens.get(name)
        if limit is not None and codes.shape[0] > limit:
            return np.concatenate(
                [self(name, codes[i : i + limit]) for i in range(0, codes.shape[0], limit)]
            )
        tokens = int(codes.shape[0])
        rows = self.config.rows
        padded = -(-tokens // rows) * rows  # compile per token-block count: more cache hits
        if padded != tokens:
            codes = np.concatenate(
                [codes, np.zeros((padded - tokens, codes.shape[1]), codes.dtype)]
            )
        out = self._call_padded(name, codes)
        if padded != tokens:
            self.records[-1] = dataclasses.replace(
                self.records[-1],
                tokens=tokens,
                useful_macs=self.records[-1].useful_macs * tokens // padded,
            )
        return out[:tokens]

    def _call_padded(self, name: str, codes: np.ndarray) -> np.ndarray:
        tokens = int(codes.shape[0])
        if name not in self._resident:
            setup = self._compiled(name, tokens, (0, 0))
            self._run(name, "setup", setup, setup.setup, setup.setup_stream, 0)
            self._resident = {name: (0, 0)}
        bases = self._resident[name]
        compiled = self._compiled(name, tokens, bases)
        program = compiled
        position = self.order.index(name)
        following = self.order[position + 1] if position + 1 < len(self.order) else None
        resident = {}
        if self.prefetch and following is not None:
            placement = self._placement_beside(following, name, bases)
            if placement is not None:
                program = self._prefetching(name, tokens, bases, following, placement)
                resident[following] = placement
        with self.timer("pack"):
            data = program.input_stream(codes)
        result = self._run(name, "run", compiled, program.run, data, program.output_beats)
        with self.timer("unpack"):
            out = program.decode_output(result.output)
        if compiled.streams_weights:  # its bias stays in BIAS; its weights stream every run
            resident = {name: bases}
        self._resident = resident
        return out


class DeviceBert:
    """A BERT classifier whose TT linears run on ``accelerator`` (see the module docstring).

    :meth:`logits` takes a batch of token-id lists and returns float32 logits equal to
    :meth:`ttaccel.spec.inference.BertInference.logits` on the same batch. ``timer`` collects
    the host's time per step; ``linears.records`` every program run.
    """

    def __init__(self, artifact: Artifact, accelerator: Accelerator, *, prefetch: bool = True):
        self.artifact = artifact
        self.accelerator = accelerator
        self.timer = StepTimer()
        self.linears = DeviceTTLinears(artifact, accelerator, prefetch=prefetch, timer=self.timer)
        self.model = BertInference(artifact, tt_linear=self.linears, timer=self.timer)

    def logits(self, input_ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Token ids per sentence (unpadded) -> float32 logits (sentences, num_labels)."""
        self.linears.begin_batch()
        return self.model.logits(input_ids)
