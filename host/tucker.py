"""Tucker BERTs (seed 001) on the accelerator with each bank's shared factors resident in WBUF.

:class:`ResidentTuckerLinears` is a :class:`~.bert.DeviceTTLinears` for artifacts whose integer
linears are all Tucker layers: each bank's ``V`` (stage 0 of the 3-core expansion) and ``U^T``
(stage 2) are loaded once per batch, by a ``tucker-factors`` setup program
(:func:`ttaccel.spec.compiler.resident_cores_setup`), into a fixed region at the top of WBUF;
every layer is compiled with those cores resident (``compile_tt_linear(...,
resident_cores=...)``), so its setup program, or the prefetch inside the previous layer's run,
streams only its ``S_b`` and its bias, placed below that region. The codes are the golden
model's either way; :class:`ResidentTuckerBert` is :class:`~.bert.DeviceBert` with these
linears.
"""

from __future__ import annotations

import numpy as np

from ..spec.artifact import Artifact
from ..spec.compiler import CompiledLayer, LayerDoesNotFit, compile_tt_linear, resident_cores_setup
from ..spec.inference import BertInference
from .bert import ArtifactDoesNotFit, DeviceBert, DeviceTTLinears, ProgramRecord
from .driver import Accelerator, program_macs

__all__ = ["ResidentTuckerBert", "ResidentTuckerLinears", "factor_regions"]


def factor_regions(artifact: Artifact, cols: int, depth: int) -> dict[str, dict[int, int]]:
    """``{bank: {0: base of V, 2: base of U^T}}``: the banks' factors stacked down from the top
    of a WBUF of ``depth`` words, ``cols`` lanes a B-word (``V``: ``d * ceil(r / cols)`` words,
    ``U^T``: ``r * ceil(d / cols)``). Raises :class:`~.bert.ArtifactDoesNotFit` when they do
    not fit."""
    top, regions = depth, {}
    for name, bank in artifact.tucker_banks.items():
        v_words, u_words = bank.d * -(-bank.r // cols), bank.r * -(-bank.d // cols)
        top -= v_words + u_words
        regions[name] = {0: top, 2: top + v_words}
    if top < 0:
        raise ArtifactDoesNotFit(
            f"the Tucker banks' factors need {depth - top} WBUF words, more than the "
            f"configuration's weight_buffer_depth {depth}"
        )
    return regions


class ResidentTuckerLinears(DeviceTTLinears):
    """:class:`~.bert.DeviceTTLinears` with each Tucker bank's ``V`` and ``U^T`` resident (see
    the module docstring). Raises :class:`~.bert.ArtifactDoesNotFit` for an artifact with
    integer linears that are not Tucker layers, or when factors and layers do not fit."""

    def __init__(self, artifact: Artifact, accelerator: Accelerator, **options) -> None:
        tucker = artifact.tucker_linears
        if not tucker or set(artifact.integer_linears()) != set(tucker):
            raise ArtifactDoesNotFit(
                "resident Tucker factors need an artifact of Tucker layers only"
            )
        config = accelerator.config
        self._regions = factor_regions(artifact, config.cols, config.weight_buffer_depth)
        self._wbuf_top = min(base for cores in self._regions.values() for base in cores.values())
        self._bank_cores = {n: self._regions[layer.bank] for n, layer in tucker.items()}
        self._banks_loaded: set[str] = set()
        super().__init__(artifact, accelerator, **options)
        self._bank_setup = {}
        for bank in artifact.tucker_banks:
            first = next((n for n, layer in tucker.items() if layer.bank == bank), None)
            if first is not None:
                self._bank_setup[bank] = resident_cores_setup(
                    self._linears[first], config, self._regions[bank]
                )
        for name in self.order:  # the sizes of what each layer's setup now streams
            compiled = self._compiled(name, config.rows, (0, 0))
            words = sum(c.count for c in compiled.constants if c.buffer.name == "WBUF")
            bias = sum(c.count for c in compiled.constants if c.buffer.name == "BIAS")
            self._sizes[name] = (words, bias)

    def _compiled(self, name: str, tokens: int, bases: tuple[int, int]) -> CompiledLayer:
        key = ("resident-factors", name, tokens, bases)
        if key not in self._cache:
            try:
                compiled = compile_tt_linear(
                    self._linears[name], tokens, self.config, weight_base=bases[0],
                    bias_base=bases[1], resident_cores=self._bank_cores[name],
                )  # fmt: skip
            except LayerDoesNotFit as error:
                raise ArtifactDoesNotFit(
                    f"Tucker layer {name} with {tokens} tokens: {error}"
                ) from None
            top = max((c.base + c.count for c in compiled.constants if c.buffer.name == "WBUF"),
                      default=0)  # fmt: skip
            if top > self._wbuf_top:
                raise ArtifactDoesNotFit(
                    f"Tucker layer {name}: its S_b reach WBUF word {top}, into the factors' "
                    f"region from {self._wbuf_top}"
                )
            self._cache[key] = compiled
        return self._cache[key]

    def _placement_beside(self, name, running, current):
        """As the base class, within WBUF below the factors' region."""
        (words, bias), cfg = self._sizes[name], self.config
        cur_words, cur_bias = self._sizes[running]
        choice = []
        for size, cur_size, base, top in (
            (words, cur_words, current[0], self._wbuf_top),
            (bias, cur_bias, current[1], cfg.bias_buffer_depth),
        ):
            busy = range(base, base + cur_size)
            for candidate in (0, top - size):
                spot = range(candidate, candidate + size)
                if candidate >= 0 and (spot.stop <= busy.start or busy.stop <= spot.start):
                    choice.append(candidate)
                    break
            else:
                return None
        return choice[0], choice[1]

    def begin_batch(self) -> None:
        """Forget what is resident, the banks' factors included."""
        super().begin_batch()
        self._banks_loaded.clear()

    def _call_padded(self, name: str, codes: np.ndarray) -> np.ndarray:
        bank = self.artifact.tucker_linears[name].bank
        if bank not in self._banks_loaded:
            program, stream = self._bank_setup[bank]
            with self.timer("device"):
                result = self.accelerator.run(program, stream, 0)
            self.records.append(ProgramRecord(
                layer=bank, kind="tucker-factors", tokens=int(codes.shape[0]),
                counters=result.counters, expected_macs=program_macs(program, self.config),
                beats_in=int(np.size(stream)), beats_out=0, useful_macs=0, wall_s=result.wall_s,
            ))  # fmt: skip
            self._banks_loaded.add(bank)
        return super()._call_padded(name, codes)


class ResidentTuckerBert(DeviceBert):
    """:class:`~.bert.DeviceBert` whose Tucker linears keep their banks' factors resident."""

    def __init__(self, artifact: Artifact, accelerator: Accelerator, *, prefetch: bool = True):
        super().__init__(artifact, accelerator, prefetch=prefetch)
        self.linears = ResidentTuckerLinears(artifact, accelerator, prefetch=prefetch,
                                             timer=self.timer)  # fmt: skip
        self.model = BertInference(artifact, tt_linear=self.linears, timer=self.timer)
