"""Text classification over a device: tokenize, batch, run, report (NumPy only).

:class:`Classifier` ties the host's tokenizer (:mod:`.tokenizer`, the artifact's vocabulary),
:class:`~.bert.DeviceBert` and the reporting together. It is what ``ttaccel infer``,
``ttaccel evaluate --backend`` and ``make demo`` run.

Every batch can be checked against the spec: ``check=True`` runs
:class:`~ttaccel.spec.inference.BertInference` (the golden integer model) on the same batch and
counts the sentences whose logits are *exactly* equal (``numpy.array_equal`` per row).

Figures of a run (:class:`RunReport`): engine cycles from the hardware's ``BUSY_CYCLES``
counter summed over the programs (on the ``reference`` backend these are the cycle model's
prediction: the report says ``modelled``), utilization = the TT layers' useful MACs / (cycles *
lanes), the latency projected at the configuration's clock (engine cycles / clock + the host's
own time per sentence as measured here: on the board's ARM the host share is larger), and the
host's wall time per step.
"""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..spec.artifact import Artifact
from ..spec.inference import BertInference
from .bert import DeviceBert, ProgramRecord
from .driver import Accelerator
from .tokenizer import Encoding, tokenizer_from_artifact

__all__ = ["Classifier", "Prediction", "RunReport", "progress", "read_dev_set"]

_HOST_STEPS = ("embedding", "quantize", "pack", "unpack", "dequantize", "attention", "softmax",
               "layernorm", "gelu", "residual", "dense")  # fmt: skip
"""Host steps of :class:`StepTimer` that are the host's own work (``device`` is the run)."""


@dataclass(frozen=True)
class Prediction:
    """One sentence: ``label`` index, its name, class probabilities (softmax of ``logits``),
    the float32 logits, its token count and whether the text was truncated to fit."""

    text: str
    label: int
    label_name: str
    probabilities: tuple[float, ...]
    logits: tuple[float, ...]
    tokens: int
    truncated: bool
    exact: bool | None = None


@dataclass
class RunReport:
    """Totals of a classification run (see the module docstring)."""

    backend: str
    sentences: int = 0
    tokens: int = 0
    wall_s: float = 0.0
    device_wall_s: float = 0.0
    programs: int = 0
    busy_cycles: int = 0
    macs_issued: int = 0
    expected_macs: int = 0
    useful_macs: int = 0
    exact: int = 0
    checked: int = 0
    host_seconds: dict[str, float] = field(default_factory=dict)
    layer_cycles: dict[str, int] = field(default_factory=dict)

    def add(self, records: Sequence[ProgramRecord]) -> None:
        for r in records:
            self.programs += 1
            self.busy_cycles += r.counters.busy_cycles
            self.macs_issued += r.counters.macs_issued
            self.expected_macs += r.expected_macs
            self.useful_macs += r.useful_macs
            self.device_wall_s += r.wall_s
            short = r.layer.removeprefix("bert.encoder.")
            self.layer_cycles[short] = self.layer_cycles.get(short, 0) + r.counters.busy_cycles

    def summary(self, lanes: int, clock_mhz: float) -> dict:
        """The report as a JSON-able dict (figures per sentence, latency at ``clock_mhz``)."""
        n = max(self.sentences, 1)
        host_s = sum(self.host_seconds.get(s, 0.0) for s in _HOST_STEPS)
        engine_ms = self.busy_cycles / n / (clock_mhz * 1e3)
        source = {"reference": "cycle model (modelled)", "sim": "BUSY_CYCLES counter (RTL)"}
        utilization = self.useful_macs / (self.busy_cycles * lanes) if self.busy_cycles else None
        return {
            "backend": self.backend,
            "cycles_source": source.get(self.backend, "BUSY_CYCLES counter (board)"),
            "sentences": self.sentences,
            "tokens": self.tokens,
            "sentences_per_second": self.sentences / self.wall_s if self.wall_s else None,
            "programs": self.programs,
            "macs_issued_equal_compiler_count": self.macs_issued == self.expected_macs,
            "cycles_per_sentence": self.busy_cycles / n,
            "engine_utilization": utilization,
            "clock_mhz": clock_mhz,
            "projected_ms_per_sentence": {
                "engine": engine_ms,
                "host_measured_here": 1e3 * host_s / n,
                "total": engine_ms + 1e3 * host_s / n,
            },
            "logits_exactly_equal_spec": f"{self.exact}/{self.checked}" if self.checked else None,
            "host_seconds_per_step": dict(sorted(self.host_seconds.items())),
            "cycles_per_layer_per_sentence": {k: v / n for k, v in self.layer_cycles.items()},
        }


def progress(items: Iterable, total: int, what: str) -> Iterator:
    """``items`` with a progress bar on stderr: tqdm where installed, else a line per 10%."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None:
        yield from tqdm(items, total=total, desc=what, unit="batch", file=sys.stderr)
        return
    step = max(1, total // 10)
    for i, item in enumerate(items):
        if i % step == 0:
            print(f"{what}: {i}/{total} batches", file=sys.stderr, flush=True)
        yield item
    print(f"{what}: {total}/{total} batches", file=sys.stderr, flush=True)


def read_dev_set(data_dir: str | Path, limit: int | None = None) -> tuple[list[str], list[int]]:
    """Sentences and labels of a single-sentence GLUE task's ``dev.tsv`` (header with
    ``sentence`` and ``label`` columns, as SST-2). Raises ValueError naming the file when the
    columns are missing, FileNotFoundError when it is absent."""
    path = Path(data_dir) / "dev.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (--data must be a GLUE task folder)")
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or not {"sentence", "label"} <= set(rows[0]):
        found = sorted(rows[0]) if rows else []
        raise ValueError(
            f"{path}: need the columns 'sentence' and 'label' (a single-sentence task such as "
            f"SST-2), found {found}"
        )
    rows = rows[:limit] if limit is not None else rows
    return [r["sentence"] for r in rows], [int(r["label"]) for r in rows]


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits.astype(np.float64) - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


class Classifier:
    """Classify texts with ``artifact`` on ``accelerator``.

    ``batch_size``: sentences per batch (their tokens are concatenated into token blocks; each
    layer's cores are streamed once per batch). ``check``: compare every batch's logits with
    the golden model's (see the module docstring). ``labels``: class names (default: SST-2's
    ``negative``/``positive`` for two classes, else ``class N``).
    """

    def __init__(
        self,
        artifact: Artifact,
        accelerator: Accelerator,
        *,
        batch_size: int = 16,
        check: bool = True,
        prefetch: bool = True,
        labels: Sequence[str] | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
        self.artifact = artifact
        self.accelerator = accelerator
        self.tokenizer = tokenizer_from_artifact(artifact)
        self.model = DeviceBert(artifact, accelerator, prefetch=prefetch)
        self.golden = BertInference(artifact) if check else None
        self.batch_size = batch_size
        classes = int(artifact.model_config.get("num_labels", 2))
        default = (
            ("negative", "positive") if classes == 2 else [f"class {i}" for i in range(classes)]
        )
        self.labels = tuple(labels or default)
        self.report = RunReport(accelerator.device.backend)

    def encode(self, texts: Sequence[str]) -> list[Encoding]:
        """Token ids of every text; ValueError naming the text's index when one is empty."""
        encodings = []
        for i, text in enumerate(texts):
            try:
                encodings.append(self.tokenizer.encode(text))
            except ValueError as error:
                raise ValueError(f"text {i} ({text!r}): {error}") from None
        return encodings

    def classify(self, texts: Sequence[str], *, show_progress: bool = False) -> list[Prediction]:
        """Predictions for ``texts`` in order; updates :attr:`report`."""
        encodings = self.encode(texts)
        batches = [
            range(i, min(i + self.batch_size, len(texts)))
            for i in range(0, len(texts), self.batch_size)
        ]
        iterator = (
            progress(batches, len(batches), self.report.backend) if show_progress else batches
        )
        out: list[Prediction] = []
        for batch in iterator:
            out += self._batch([texts[i] for i in batch], [encodings[i] for i in batch])
        return out

    def _batch(self, texts: Sequence[str], encodings: Sequence[Encoding]) -> list[Prediction]:
        ids = [list(e.ids) for e in encodings]
        model, report = self.model, self.report
        model.timer.reset()
        first = len(model.linears.records)
        start = time.perf_counter()
        logits = model.logits(ids)
        report.wall_s += time.perf_counter() - start
        report.add(model.linears.records[first:])
        for step, seconds in model.timer.seconds.items():
            report.host_seconds[step] = report.host_seconds.get(step, 0.0) + seconds
        exact = [None] * len(ids)
        if self.golden is not None:
            reference = self.golden.logits(ids)
            exact = [bool(np.array_equal(a, b)) for a, b in zip(logits, reference, strict=True)]
            report.exact += sum(exact)
            report.checked += len(ids)
        report.sentences += len(ids)
        report.tokens += sum(len(i) for i in ids)
        probabilities = _softmax(logits)
        return [
            Prediction(
                text=text,
                label=int(p.argmax()),
                label_name=self.labels[int(p.argmax())],
                probabilities=tuple(float(v) for v in p),
                logits=tuple(float(v) for v in row),
                tokens=len(e.ids),
                truncated=e.truncated,
                exact=x,
            )
            for text, e, p, row, x in zip(
                texts, encodings, probabilities, logits, exact, strict=True
            )
        ]
