"""The ttaccel artifact: one safetensors file per compressed model (see docs/artifact.md).

Contents: the integer TT cores packed at their bit width, their requantization constants and
scales, int32 biases, the float tensors the accelerator does not run (LayerNorm, classifier,
position and token-type embeddings), the tokenizer vocabulary and a JSON manifest with a schema
version, stored in the safetensors header's ``__metadata__["ttaccel"]``. No pickle anywhere.

Tensor names
    ``<layer>.core<k>``    uint8, packed codes of TT core ``k`` (:mod:`.packing`, C order of
                           the core's ``(r, m, n, r')`` shape)
    ``<layer>.bias``       int32 (N,), TT and N:M linears with a bias only
    ``<layer>.nm_values``  uint8, N:M linears: the kept codes packed at the weight format, in
                           (output row, input group, slot) C order (:mod:`.nm`)
    ``<layer>.nm_indices`` uint8, N:M linears: their positions in the group, ``log2(M)`` bits
                           each, same order (:func:`.nm.pack_indices`)
    ``<bank>.tucker_in_factor`` / ``.tucker_out_factor`` / ``.tucker_cores``  uint8, a shared
                           Tucker bank's V (d, r), U (d, r) and C (l, r, r) packed at its weight
                           format, C order (:mod:`.tucker`)
    ``<layer>.tucker_mix``      uint8, Tucker linears: the mix codes (B, k) packed at int8
    ``<layer>.tucker_core_ids`` uint16 (k,), Tucker linears: the bank cores the layer mixes
    ``tokenizer.vocab``    uint8, the UTF-8 bytes of ``vocab.txt`` (one token per line)
    any other name         float32, listed in the manifest's ``float_tensors``

:func:`load_artifact` validates everything and raises :class:`ArtifactError`, whose ``field``
names the offending manifest field or tensor.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .formats import FORMATS, INT8, NumberFormat, Requant
from .golden import QuantNMLinear, QuantTTEmbedding, QuantTTLinear
from .nm import check_nm, indices_nbytes, nm_expand, pack_indices, unpack_indices
from .packing import pack, packed_nbytes, unpack
from .safetensors_io import SafetensorsError, load_safetensors, save_safetensors
from .tt import TTShape
from .tucker import (
    TUCKER_WEIGHT_FORMATS,
    QuantTuckerLinear,
    TuckerBank,
    check_tucker,
    tucker_as_tt_linear,
    tucker_modes,
)

__all__ = [
    "FORMAT_NAME",
    "JOINT_ARCHITECTURE",
    "SCHEMA_VERSION",
    "SEQUENCE_ARCHITECTURE",
    "Artifact",
    "ArtifactError",
    "load_artifact",
    "save_artifact",
]

FORMAT_NAME = "ttaccel-artifact"
SCHEMA_VERSION = 1
_VOCAB = "tokenizer.vocab"
SEQUENCE_ARCHITECTURE = "bert-sequence-classification"
"""``model.architecture`` of a BERT sequence classifier (pooler + ``classifier``)."""
JOINT_ARCHITECTURE = "bert-joint-intent-slot"
"""``model.architecture`` of a joint intent + slot model: the sequence classifier's head
(intents) plus ``slot_classifier``, a dense linear on every token (``num_slot_labels``)."""
_META_KEY = "ttaccel"


class ArtifactError(ValueError):
    """A malformed artifact. ``field`` is the manifest path or tensor name that is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass
class Artifact:
    """A compressed model in memory.

    ``model_config``: JSON-able dict describing the network (hidden size, layers, heads, ...,
    free form for the model's inference code); ``tt_linears`` / ``tt_embeddings``: integer layers
    keyed by module name; ``tensors``: float32 arrays by name; ``vocab``: tokens in id order;
    ``activation_format``: format of the activations between layers (int8). ``nm_linears``:
    N:M sparse integer linears (seed 002) keyed by module name, stored compressed.
    ``tucker_banks``: shared Tucker matrix banks (seed 001) by bank name; ``tucker_linears``:
    Tucker linears by module name, each naming its bank. A module name is in only one of
    ``tt_linears``, ``nm_linears`` and ``tucker_linears`` (:meth:`integer_linears` gives them
    all).
    """

    model_config: dict[str, Any]
    tt_linears: dict[str, QuantTTLinear] = field(default_factory=dict)
    tt_embeddings: dict[str, QuantTTEmbedding] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    vocab: list[str] = field(default_factory=list)
    activation_format: NumberFormat = INT8
    nm_linears: dict[str, QuantNMLinear] = field(default_factory=dict)
    tucker_banks: dict[str, TuckerBank] = field(default_factory=dict)
    tucker_linears: dict[str, QuantTuckerLinear] = field(default_factory=dict)

    def integer_linears(self) -> dict[str, QuantTTLinear]:
        """Every integer linear as a :class:`QuantTTLinear`, by module name: the TT layers as
        they are, then each N:M layer as the dense one-core layer it expands to
        (:meth:`QuantNMLinear.as_tt_linear`), then each Tucker layer as its 3-core TT
        expansion (:func:`.tucker.tucker_as_tt_linear` with its bank), computed on each call.
        Inference and the host run these."""
        return {**self.tt_linears,
                **{n: layer.as_tt_linear() for n, layer in self.nm_linears.items()},
                **{n: tucker_as_tt_linear(layer, self.tucker_banks[layer.bank])
                   for n, layer in self.tucker_linears.items()}}  # fmt: skip

    def nbytes(self) -> int:
        """Payload bytes: packed cores, N:M values and indices, each Tucker bank once (packed
        V, U, C) plus every Tucker layer's packed mix, uint16 core ids and bias, the other
        biases, float tensors and vocabulary."""
        total = sum(
            _packed_core_bytes(layer.cores, layer.weight_format)
            for layer in self.tt_linears.values()
        )
        total += sum(
            layer.bias.nbytes for layer in self.tt_linears.values() if layer.bias is not None
        )
        total += sum(
            _packed_core_bytes(e.cores, e.weight_format) for e in self.tt_embeddings.values()
        )
        for layer in self.nm_linears.values():
            count = int(np.size(layer.values))
            total += packed_nbytes(count, layer.weight_format) + indices_nbytes(count, layer.m)
            total += 0 if layer.bias is None else np.asarray(layer.bias, np.int32).nbytes
        for bank in self.tucker_banks.values():
            for tensor in (bank.in_factor, bank.out_factor, bank.cores):
                total += packed_nbytes(tensor.size, bank.weight_format)
        for layer in self.tucker_linears.values():
            total += packed_nbytes(layer.mix.size, layer.mix_format) + 2 * layer.core_ids.size
            total += 0 if layer.bias is None else np.asarray(layer.bias, np.int32).nbytes
        total += sum(np.asarray(t, dtype=np.float32).nbytes for t in self.tensors.values())
        return total + len("\n".join(self.vocab).encode())


def _packed_core_bytes(cores: tuple[np.ndarray, ...], fmt: NumberFormat) -> int:
    return sum(packed_nbytes(np.size(c), fmt) for c in cores)


def _requant_json(requant: Requant) -> list[Any]:
    return [requant.multiplier, requant.shift, requant.out_format.name]


def save_artifact(path: str | Path, artifact: Artifact) -> None:
    """Write ``artifact`` to ``path`` (a single safetensors file)."""
    tensors: dict[str, np.ndarray] = {}
    linears, embeddings = {}, {}
    for name, layer in artifact.tt_linears.items():
        shape = TTShape(*_modes(layer.cores))
        for k, core in enumerate(layer.cores):
            tensors[f"{name}.core{k}"] = pack(core, layer.weight_format)
        if layer.bias is not None:
            tensors[f"{name}.bias"] = np.asarray(layer.bias, dtype=np.int32)
        linears[name] = {
            "weight_format": layer.weight_format.name,
            "in_modes": list(shape.in_modes), "out_modes": list(shape.out_modes),
            "ranks": list(shape.ranks),
            "plan": [list(seg) for seg in layer.plan],
            "merge_requants": [[_requant_json(r) for r in seg] for seg in layer.merge_requants],
            "stage_requants": [_requant_json(r) for r in layer.stage_requants],
            "input_scale": float(layer.input_scale), "output_scale": float(layer.output_scale),
            "has_bias": layer.bias is not None,
        }  # fmt: skip
    for name, layer in artifact.tt_embeddings.items():
        shape = TTShape(*_modes(layer.cores))
        for k, core in enumerate(layer.cores):
            tensors[f"{name}.core{k}"] = pack(core, layer.weight_format)
        embeddings[name] = {
            "weight_format": layer.weight_format.name,
            "row_modes": list(shape.in_modes), "col_modes": list(shape.out_modes),
            "ranks": list(shape.ranks), "num_embeddings": layer.num_embeddings,
            "stage_requants": [_requant_json(r) for r in layer.stage_requants],
            "output_scale": float(layer.output_scale),
        }  # fmt: skip
    nm_linears = {}
    for name, layer in artifact.nm_linears.items():
        if name in artifact.tt_linears:
            raise ValueError(f"layer {name!r} is both a TT linear and an N:M linear")
        tensors[f"{name}.nm_values"] = pack(layer.values, layer.weight_format)
        tensors[f"{name}.nm_indices"] = pack_indices(layer.indices, layer.m)
        if layer.bias is not None:
            tensors[f"{name}.bias"] = np.asarray(layer.bias, dtype=np.int32)
        nm_linears[name] = {
            "weight_format": layer.weight_format.name, "n": layer.n, "m": layer.m,
            "in_features": layer.in_features, "out_features": layer.out_features,
            "requant": _requant_json(layer.requant),
            "input_scale": float(layer.input_scale), "output_scale": float(layer.output_scale),
            "has_bias": layer.bias is not None,
        }  # fmt: skip
    tucker_banks, tucker_linears = _save_tucker(artifact, tensors)
    for name, tensor in artifact.tensors.items():
        if name in tensors or name == _VOCAB:
            raise ValueError(f"float tensor name {name!r} collides with an integer tensor")
        tensors[name] = np.asarray(tensor, dtype=np.float32)
    tensors[_VOCAB] = np.frombuffer(_encode_vocab(artifact.vocab), dtype=np.uint8)
    manifest = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "activation_format": artifact.activation_format.name,
        "model": artifact.model_config,
        "tt_linears": linears,
        "tt_embeddings": embeddings,
        "float_tensors": sorted(artifact.tensors),
        "vocab_size": len(artifact.vocab),
    }
    if nm_linears:  # absent otherwise: artifacts without N:M layers are as before
        manifest["nm_linears"] = nm_linears
    if tucker_banks or tucker_linears:  # likewise for Tucker
        manifest["tucker_banks"] = tucker_banks
        manifest["tucker_linears"] = tucker_linears
    save_safetensors(path, tensors, {_META_KEY: json.dumps(manifest, allow_nan=True)})


_TUCKER_BANK_TENSORS = ("in_factor", "out_factor", "cores")
_MAX_TUCKER_BANK = 2**16  # core ids are stored as uint16


def _save_tucker(artifact: Artifact, tensors: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Add the Tucker banks' and layers' tensors to ``tensors``; return their manifest entries.
    Raises ValueError for a layer name used twice, a missing bank, a layer that does not fit
    its bank (:func:`.tucker.check_tucker`) or a tensor name that collides."""
    banks, linears = {}, {}

    def put(name: str, tensor: np.ndarray) -> None:
        if name in tensors:
            raise ValueError(f"Tucker tensor name {name!r} collides with another tensor")
        tensors[name] = tensor

    for name, bank in artifact.tucker_banks.items():
        if bank.size > _MAX_TUCKER_BANK:
            raise ValueError(
                f"Tucker bank {name!r} has {bank.size} cores; core ids are uint16 (at most "
                f"{_MAX_TUCKER_BANK})"
            )
        for part in _TUCKER_BANK_TENSORS:
            put(f"{name}.tucker_{part}", pack(getattr(bank, part), bank.weight_format))
        banks[name] = {"weight_format": bank.weight_format.name, "d": bank.d, "r": bank.r,
                       "size": bank.size}  # fmt: skip
    for name, layer in artifact.tucker_linears.items():
        for kind, other in (("TT", artifact.tt_linears), ("N:M", artifact.nm_linears)):
            if name in other:
                raise ValueError(f"layer {name!r} is both a {kind} linear and a Tucker linear")
        if layer.bank not in artifact.tucker_banks:
            raise ValueError(
                f"Tucker linear {name!r} names bank {layer.bank!r}, not in the artifact's "
                f"tucker_banks {sorted(artifact.tucker_banks)}"
            )
        check_tucker(layer, artifact.tucker_banks[layer.bank], name)
        put(f"{name}.tucker_mix", pack(layer.mix, layer.mix_format))
        put(f"{name}.tucker_core_ids", layer.core_ids.astype(np.uint16))
        if layer.bias is not None:
            put(f"{name}.bias", np.asarray(layer.bias, dtype=np.int32))
        linears[name] = {
            "bank": layer.bank, "in_features": layer.in_features,
            "out_features": layer.out_features, "num_core_ids": int(layer.core_ids.size),
            "mix_format": layer.mix_format.name, "mix_requant": _requant_json(layer.mix_requant),
            "stage_requants": [_requant_json(r) for r in layer.stage_requants],
            "input_scale": float(layer.input_scale), "output_scale": float(layer.output_scale),
            "has_bias": layer.bias is not None,
        }  # fmt: skip
    return banks, linears


def _encode_vocab(vocab: list[str]) -> bytes:
    """UTF-8 bytes of the tokens joined by newlines; a token must be UTF-8 text without one."""
    for index, token in enumerate(vocab):
        if "\n" in token:
            raise ValueError(f"vocab token {index} {token!r} contains a newline")
        try:
            token.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(f"vocab token {index} {token!r} is not UTF-8 text: {error}") from None
    return "\n".join(vocab).encode("utf-8")


def _modes(
    cores: tuple[np.ndarray, ...],
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    return (
        tuple(c.shape[1] for c in cores),
        tuple(c.shape[2] for c in cores),
        (cores[0].shape[0], *(c.shape[3] for c in cores)),
    )


def load_artifact(path: str | Path) -> Artifact:
    """Read and validate an artifact; raises :class:`ArtifactError` naming the bad field.

    Checked: the file is a complete safetensors container; format name and schema version;
    every listed tensor present with the expected dtype and size; modes and ranks consistent;
    number formats known; requantization constants in range; codes legal for their format;
    scales positive and finite; float tensors finite.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"artifact {path} does not exist")
    try:
        tensors, metadata = load_safetensors(path)
    except SafetensorsError as error:
        raise ArtifactError("file", str(error)) from None
    if _META_KEY not in metadata:
        raise ArtifactError("manifest", f"{path} has no ttaccel manifest: not a ttaccel artifact")
    try:
        manifest = json.loads(metadata[_META_KEY])
    except json.JSONDecodeError as error:
        raise ArtifactError("manifest", f"not valid JSON: {error}") from None
    reader = _Reader(manifest, tensors)
    return reader.artifact()


class _Reader:
    """Validating reader: each ``_get`` names the manifest path it reads."""

    def __init__(self, manifest: Any, tensors: dict[str, np.ndarray]) -> None:
        if not isinstance(manifest, dict):
            raise ArtifactError("manifest", "must be a JSON object")
        self.manifest, self.tensors = manifest, tensors

    def _get(self, obj: dict, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
        if not isinstance(obj, dict) or key not in obj:
            raise ArtifactError(f"{where}.{key}" if where else key, "missing")
        value = obj[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise ArtifactError(
                f"{where}.{key}" if where else key, f"expected {kind}, found {value!r}"
            )
        return value

    def _tensor(self, name: str, dtype: np.dtype, owner: str) -> np.ndarray:
        if name not in self.tensors:
            raise ArtifactError(name, f"tensor missing (needed by {owner})")
        tensor = self.tensors[name]
        if tensor.dtype != dtype:
            raise ArtifactError(name, f"expected dtype {np.dtype(dtype)}, found {tensor.dtype}")
        return tensor

    def _bias(self, obj: dict, name: str, where: str, out_features: int) -> np.ndarray | None:
        """``name.bias`` (int32, ``(out_features,)``) when ``obj['has_bias']``, else None."""
        if not self._get(obj, "has_bias", where, bool):
            return None
        bias = self._tensor(f"{name}.bias", np.dtype(np.int32), where)
        if bias.shape != (out_features,):
            raise ArtifactError(
                f"{name}.bias", f"shape mismatch: expected ({out_features},), found {bias.shape}"
            )
        return bias

    def _format(self, obj: dict, where: str) -> NumberFormat:
        name = self._get(obj, "weight_format", where, str)
        if name not in FORMATS:
            raise ArtifactError(
                f"{where}.weight_format", f"bit width/format {name!r} not one of {sorted(FORMATS)}"
            )
        return FORMATS[name]

    def _scale(self, obj: dict, key: str, where: str) -> float:
        value = self._get(obj, key, where, (int, float))
        if not math.isfinite(value) or value <= 0:
            raise ArtifactError(
                f"{where}.{key}", f"scale must be positive and finite, found {value!r}"
            )
        return float(value)

    def _requant(self, value: Any, where: str) -> Requant:
        if not (isinstance(value, list) and len(value) == 3):
            raise ArtifactError(where, f"expected [multiplier, shift, format], found {value!r}")
        multiplier, shift, fmt = value
        if fmt not in FORMATS:
            raise ArtifactError(where, f"output format {fmt!r} not one of {sorted(FORMATS)}")
        try:
            return Requant(multiplier, shift, FORMATS[fmt])
        except ValueError as error:
            raise ArtifactError(where, str(error)) from None

    def _cores(
        self, name: str, where: str, fmt: NumberFormat, shape: TTShape
    ) -> tuple[np.ndarray, ...]:
        cores = []
        for k, core_shape in enumerate(shape.core_shapes):
            tensor_name = f"{name}.core{k}"
            data = self._tensor(tensor_name, np.dtype(np.uint8), where)
            count = math.prod(core_shape)
            if data.shape != (packed_nbytes(count, fmt),):
                raise ArtifactError(
                    tensor_name,
                    f"shape mismatch: core shape {core_shape} at {fmt.name} needs "
                    f"{packed_nbytes(count, fmt)} bytes, found shape {data.shape}",
                )
            try:
                cores.append(unpack(data, fmt, count).reshape(core_shape))
            except ValueError as error:
                raise ArtifactError(
                    tensor_name, f"value out of range for {fmt.name}: {error}"
                ) from None
        return tuple(cores)

    def _shape(self, obj: dict, where: str, in_key: str, out_key: str) -> TTShape:
        try:
            return TTShape(
                tuple(self._get(obj, in_key, where, list)),
                tuple(self._get(obj, out_key, where, list)),
                tuple(self._get(obj, "ranks", where, list)),
            )
        except ValueError as error:
            if isinstance(error, ArtifactError):
                raise
            raise ArtifactError(f"{where}.ranks", f"rank/mode mismatch: {error}") from None

    def _linear(self, name: str, obj: dict) -> QuantTTLinear:
        where = f"tt_linears[{name!r}]"
        fmt = self._format(obj, where)
        shape = self._shape(obj, where, "in_modes", "out_modes")
        cores = self._cores(name, where, fmt, shape)
        plan = tuple(tuple(seg) for seg in self._get(obj, "plan", where, list))
        merges = tuple(
            tuple(self._requant(r, f"{where}.merge_requants[{s}][{i}]") for i, r in enumerate(seg))
            for s, seg in enumerate(self._get(obj, "merge_requants", where, list))
        )
        stages = tuple(
            self._requant(r, f"{where}.stage_requants[{s}]")
            for s, r in enumerate(self._get(obj, "stage_requants", where, list))
        )
        bias = self._bias(obj, name, where, shape.out_features)
        try:
            return QuantTTLinear(
                cores, fmt, plan, merges, stages, bias,
                self._scale(obj, "input_scale", where), self._scale(obj, "output_scale", where),
            )  # fmt: skip
        except (ValueError, TypeError) as error:
            if isinstance(error, ArtifactError):
                raise
            raise ArtifactError(where, str(error)) from None

    def _embedding(self, name: str, obj: dict) -> QuantTTEmbedding:
        where = f"tt_embeddings[{name!r}]"
        fmt = self._format(obj, where)
        shape = self._shape(obj, where, "row_modes", "col_modes")
        cores = self._cores(name, where, fmt, shape)
        stages = tuple(
            self._requant(r, f"{where}.stage_requants[{s}]")
            for s, r in enumerate(self._get(obj, "stage_requants", where, list))
        )
        try:
            return QuantTTEmbedding(
                cores, fmt, stages, self._get(obj, "num_embeddings", where, int),
                self._scale(obj, "output_scale", where),
            )  # fmt: skip
        except ValueError as error:
            if isinstance(error, ArtifactError):
                raise
            raise ArtifactError(where, str(error)) from None

    def _nm_linear(self, name: str, obj: dict) -> QuantNMLinear:
        where = f"nm_linears[{name!r}]"
        fmt = self._format(obj, where)
        if fmt.name == "binary":
            raise ArtifactError(
                f"{where}.weight_format", "bit width/format 'binary' is not one an N:M layer can "
                "take (binary codes have no zero for the pruned weights): int8, int4, int2 or "
                "ternary"
            )  # fmt: skip
        n, m = self._get(obj, "n", where, int), self._get(obj, "m", where, int)
        try:
            check_nm(n, m)
        except ValueError as error:
            raise ArtifactError(f"{where}.m", str(error)) from None
        in_features = self._get(obj, "in_features", where, int)
        out_features = self._get(obj, "out_features", where, int)
        if in_features < m or in_features % m or out_features < 1:
            raise ArtifactError(
                f"{where}.in_features", f"{in_features} x {out_features} is not a layer of "
                f"positive size with in_features a multiple of m = {m}"
            )  # fmt: skip
        shape = (out_features, in_features // m, n)
        count = math.prod(shape)
        data = self._tensor(f"{name}.nm_values", np.dtype(np.uint8), where)
        if data.shape != (packed_nbytes(count, fmt),):
            raise ArtifactError(
                f"{name}.nm_values", f"shape mismatch: {shape} kept codes at {fmt.name} need "
                f"{packed_nbytes(count, fmt)} bytes, found shape {data.shape}"
            )  # fmt: skip
        try:
            values = unpack(data, fmt, count).reshape(shape)
        except ValueError as error:
            raise ArtifactError(
                f"{name}.nm_values", f"value out of range for {fmt.name}: {error}"
            ) from None
        data = self._tensor(f"{name}.nm_indices", np.dtype(np.uint8), where)
        if data.shape != (indices_nbytes(count, m),):
            raise ArtifactError(
                f"{name}.nm_indices", f"shape mismatch: {count} indices of {m}-groups need "
                f"{indices_nbytes(count, m)} bytes, found shape {data.shape}"
            )  # fmt: skip
        indices = unpack_indices(data, m, count).reshape(shape)
        try:
            nm_expand(values, indices, n, m, in_features, name=f"{name}.nm_indices")
        except ValueError as error:
            raise ArtifactError(f"{name}.nm_indices", str(error)) from None
        bias = self._bias(obj, name, where, out_features)
        requant = self._requant(self._get(obj, "requant", where, list), f"{where}.requant")
        try:
            return QuantNMLinear(
                values, indices, n, m, in_features, fmt, requant, bias,
                self._scale(obj, "input_scale", where), self._scale(obj, "output_scale", where),
            )  # fmt: skip
        except ValueError as error:
            if isinstance(error, ArtifactError):
                raise
            raise ArtifactError(where, str(error)) from None

    def artifact(self) -> Artifact:
        m = self.manifest
        if m.get("format") != FORMAT_NAME:
            raise ArtifactError("format", f"expected {FORMAT_NAME!r}, found {m.get('format')!r}")
        version = m.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ArtifactError(
                "schema_version", f"expected {SCHEMA_VERSION}, found {version!r}: "
                "this ttaccel cannot read it (upgrade, or re-export the model)"
            )  # fmt: skip
        act_name = self._get(m, "activation_format", "", str)
        if act_name not in FORMATS:
            raise ArtifactError("activation_format", f"{act_name!r} not one of {sorted(FORMATS)}")
        linears = {n: self._linear(n, o) for n, o in self._get(m, "tt_linears", "", dict).items()}
        embeddings = {
            n: self._embedding(n, o) for n, o in self._get(m, "tt_embeddings", "", dict).items()
        }
        nm_linears = {}
        if "nm_linears" in m:  # optional: written only when the model has N:M layers
            for n, o in self._get(m, "nm_linears", "", dict).items():
                if n in linears:
                    raise ArtifactError(f"nm_linears[{n!r}]", "also listed in tt_linears")
                nm_linears[n] = self._nm_linear(n, o)
        banks, tucker_linears = {}, {}
        if "tucker_banks" in m or "tucker_linears" in m:  # optional, as nm_linears
            bank_entries = self._get(m, "tucker_banks", "", dict)
            banks = {n: self._tucker_bank(n, o) for n, o in bank_entries.items()}
            for n, o in self._get(m, "tucker_linears", "", dict).items():
                where = f"tucker_linears[{n!r}]"
                if n in linears or n in nm_linears:
                    kind = "tt_linears" if n in linears else "nm_linears"
                    raise ArtifactError(where, f"also listed in {kind}")
                tucker_linears[n] = self._tucker_linear(n, o, banks)
        floats = {}
        for name in self._get(m, "float_tensors", "", list):
            tensor = self._tensor(name, np.dtype(np.float32), "float_tensors")
            if not np.all(np.isfinite(tensor)):
                raise ArtifactError(name, "float tensor holds NaN or infinite values")
            floats[name] = tensor
        model = self._get(m, "model", "", dict)
        self._heads(model, floats, {**linears, **nm_linears, **tucker_linears})
        vocab_bytes = self._tensor(_VOCAB, np.dtype(np.uint8), "the tokenizer")
        vocab = vocab_bytes.tobytes().decode("utf-8").split("\n") if vocab_bytes.size else []
        if len(vocab) != self._get(m, "vocab_size", "", int):
            raise ArtifactError(
                _VOCAB, f"holds {len(vocab)} tokens, manifest vocab_size says {m['vocab_size']}"
            )
        return Artifact(
            model_config=model,
            tt_linears=linears,
            tt_embeddings=embeddings,
            tensors=floats,
            vocab=vocab,
            activation_format=FORMATS[act_name],
            nm_linears=nm_linears,
            tucker_banks=banks,
            tucker_linears=tucker_linears,
        )

    def _packed(self, name: str, owner: str, fmt: NumberFormat, shape: tuple[int, ...]):
        """A packed uint8 tensor of ``shape`` codes of ``fmt``, size and codes checked."""
        data = self._tensor(name, np.dtype(np.uint8), owner)
        count = math.prod(shape)
        if data.shape != (packed_nbytes(count, fmt),):
            raise ArtifactError(
                name, f"shape mismatch: {shape} codes at {fmt.name} need "
                f"{packed_nbytes(count, fmt)} bytes, found shape {data.shape}"
            )  # fmt: skip
        try:
            return unpack(data, fmt, count).reshape(shape)
        except ValueError as error:
            raise ArtifactError(name, f"value out of range for {fmt.name}: {error}") from None

    def _positive(self, obj: dict, key: str, where: str) -> int:
        value = self._get(obj, key, where, int)
        if value < 1:
            raise ArtifactError(f"{where}.{key}", f"must be a positive integer, found {value}")
        return value

    def _tucker_bank(self, name: str, obj: dict) -> TuckerBank:
        where = f"tucker_banks[{name!r}]"
        fmt = self._format(obj, where)
        if fmt not in TUCKER_WEIGHT_FORMATS:
            raise ArtifactError(
                f"{where}.weight_format", f"bit width/format {fmt.name!r} is not one a Tucker "
                f"bank can take: {[f.name for f in TUCKER_WEIGHT_FORMATS]}"
            )  # fmt: skip
        d, r = self._positive(obj, "d", where), self._positive(obj, "r", where)
        size = self._positive(obj, "size", where)
        shapes = {"in_factor": (d, r), "out_factor": (d, r), "cores": (size, r, r)}
        parts = {
            part: self._packed(f"{name}.tucker_{part}", where, fmt, shape)
            for part, shape in shapes.items()
        }
        try:
            return TuckerBank(weight_format=fmt, **parts)
        except ValueError as error:
            raise ArtifactError(where, str(error)) from None

    def _tucker_linear(self, name: str, obj: dict, banks: dict) -> QuantTuckerLinear:
        where = f"tucker_linears[{name!r}]"
        bank_name = self._get(obj, "bank", where, str)
        if bank_name not in banks:
            raise ArtifactError(
                f"{where}.bank", f"bank {bank_name!r} is not in tucker_banks {sorted(banks)}"
            )
        bank = banks[bank_name]
        in_features = self._positive(obj, "in_features", where)
        out_features = self._positive(obj, "out_features", where)
        k = self._positive(obj, "num_core_ids", where)
        try:
            _, _, blocks = tucker_modes(in_features, out_features, bank.d)
        except ValueError as error:
            raise ArtifactError(f"{where}.in_features", f"{error} (bank {bank_name!r})") from None
        ids_name = f"{name}.tucker_core_ids"
        ids = self._tensor(ids_name, np.dtype(np.uint16), where)
        if ids.shape != (k,):
            raise ArtifactError(ids_name, f"shape mismatch: expected ({k},), found {ids.shape}")
        if (ids >= bank.size).any():
            at = int(np.argmax(ids >= bank.size))
            raise ArtifactError(
                ids_name, f"core_ids[{at}] = {int(ids[at])} is outside bank {bank_name!r} of "
                f"{bank.size} cores"
            )  # fmt: skip
        if len(np.unique(ids)) != k:
            raise ArtifactError(ids_name, f"core ids repeat: {ids.tolist()}")
        mix_name = self._get(obj, "mix_format", where, str)
        if mix_name not in FORMATS:
            raise ArtifactError(f"{where}.mix_format", f"{mix_name!r} not one of {sorted(FORMATS)}")
        mix = self._packed(f"{name}.tucker_mix", where, FORMATS[mix_name], (blocks, k))
        bias = self._bias(obj, name, where, out_features)
        mix_requant = self._requant(
            self._get(obj, "mix_requant", where, list), f"{where}.mix_requant"
        )
        stages = tuple(
            self._requant(r, f"{where}.stage_requants[{s}]")
            for s, r in enumerate(self._get(obj, "stage_requants", where, list))
        )
        try:
            layer = QuantTuckerLinear(
                bank_name, ids.astype(np.int64), mix, FORMATS[mix_name], mix_requant, stages,
                bias, in_features, out_features, self._scale(obj, "input_scale", where),
                self._scale(obj, "output_scale", where),
            )  # fmt: skip
            check_tucker(layer, bank, where)
        except ValueError as error:
            if isinstance(error, ArtifactError):
                raise
            raise ArtifactError(where, str(error).removeprefix(f"{where}: ")) from None
        return layer

    def _heads(self, model: dict, floats: dict, linears: dict) -> None:
        """The float classifier heads agree with the model description's label counts.

        ``classifier`` is checked against ``model.num_labels`` where both exist; a
        ``bert-joint-intent-slot`` model must also have ``num_slot_labels`` and the float
        ``slot_classifier.weight`` ``(num_slot_labels, hidden_size)`` (and its bias, if any,
        ``(num_slot_labels,)``)."""
        heads = [("classifier", "num_labels", False)]
        if model.get("architecture") == JOINT_ARCHITECTURE:
            heads.append(("slot_classifier", "num_slot_labels", True))
        hidden = model.get("hidden_size")
        for head, key, required in heads:
            weight_name = f"{head}.weight"
            if not required and (key not in model or weight_name not in floats):
                continue
            count = self._get(model, key, "model", int)
            if count < 1:
                raise ArtifactError(f"model.{key}", f"must be a positive integer, found {count}")
            if head in linears:
                raise ArtifactError(head, "a classifier head must be a float linear, not TT")
            if weight_name not in floats:
                raise ArtifactError(weight_name, f"tensor missing (needed by model.{key})")
            expected = (count, hidden) if isinstance(hidden, int) else (count,)
            found = floats[weight_name].shape
            if found[: len(expected)] != expected or len(found) != 2:
                raise ArtifactError(
                    weight_name,
                    f"shape mismatch: model.{key} = {count} and hidden_size {hidden} need "
                    f"({count}, {hidden}), found {found}",
                )
            bias = floats.get(f"{head}.bias")
            if bias is not None and bias.shape != (count,):
                raise ArtifactError(
                    f"{head}.bias",
                    f"shape mismatch: model.{key} = {count} needs ({count},), found {bias.shape}",
                )
