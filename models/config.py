"""The compression configuration: which layers become TT-matrices, their modes, ranks and bits.

A :class:`CompressionConfig` is a frozen dataclass that round-trips to JSON
(:meth:`CompressionConfig.to_json` / :meth:`CompressionConfig.from_json`). Example::

    {
      "layers": [
        {"name": "attention", "rank": 16},
        {"name": "ffn", "rank": 16},
        {"name": "word_embeddings", "rank": 32}
      ],
      "weight_bits": 4,
      "power_of_two": false,
      "weight_scale_init": "max",
      "activation_scale_init": "max"
    }

Layer names are the groups of :data:`LAYER_GROUPS` (``query``, ``key``, ``value``,
``attention_output``, ``ffn_in``, ``ffn_out``, ``attention`` = the four attention linears,
``ffn`` = both FFN linears, ``encoder`` = all six, ``word_embeddings``), applied to every
encoder layer in ``encoder_layers`` (default all), or full module names of the Hugging Face
model (``bert.encoder.layer.0.attention.self.query``). A later entry overrides an earlier one
for the same module. ``in_modes``/``out_modes`` are the input and output factors of seed 000's
layout (``[24, 32]`` and ``[32, 24]`` for 768 x 768); for ``word_embeddings`` they are the row
(vocabulary, padded up to their product) and column modes. ``rank`` is one int (a cap on every
inner rank, clipped to what the modes allow) or the explicit list of ranks.
``weight_bits`` is 8, 4, 2, ``"ternary"`` (codes {-1, 0, 1} in 2 bits), ``"binary"`` (codes
{-1, +1} in 1 bit; scheme ``xtc`` only), or null for a float (unquantized) student; activations
between TT stages are always int8 (the hardware's format). ``weight_scale_init`` (cores and merged
cores) and ``activation_scale_init`` (TT inputs and every stage's int8 output) choose how the
quantizer scales start before QAT (:data:`ttaccel.models.quant.SCALE_INITS`: ``max`` =
``max|x| / qmax``, the old behaviour and the default, ``lsq``, ``mse``, ``percentile``); a
config without them means ``max``; ``twn`` (TWN / BWN scales) is for ternary and binary weights.

``scheme`` chooses how a named layer is stored: ``tt`` (the default: a TT-matrix of the rule's
modes and rank) or ``xtc`` (seed 003, XTC: the layer's dense weight as it is, a one-core
TT-matrix with ``in_modes = [in]``, ``out_modes = [out]`` and ranks ``[1, 1]``, quantized to
ternary or binary; its rules name layers only, ``rank`` and modes must be left out).
``keep_layers`` (any scheme) is layer reduction: the student keeps these teacher encoder layers,
in this order, renumbered ``0 .. k-1`` (``[0, 2, 4]``: teacher layer 2 becomes student layer 1);
``encoder_layers`` then counts student layers. Example (XTC, ternary, three of six layers)::

    {"scheme": "xtc", "layers": [{"name": "encoder"}, {"name": "word_embeddings"}],
     "weight_bits": "ternary", "keep_layers": [0, 2, 4], "weight_scale_init": "twn"}

Scheme ``nm`` (seed 002, NxMiFormer) keeps the named linears dense, each pruned to N:M
sparsity along its input dimension and quantized: every rule gives its pattern ``nm`` (``"2:4"``,
``"1:4"``, ``"2:8"``: at most N nonzero weights in each group of M consecutive inputs; M one of
2, 4, 8, 16) and may override ``weight_bits`` for its layers (8, 4, 2 or ``"ternary"``; binary
has no zero for the pruned weights, so the scheme refuses it). Rules name linears only (no
``word_embeddings``), without rank or modes. A per-layer config as ``ttaccel nm-search``
writes it::

    {"scheme": "nm", "weight_bits": 8, "layers": [
       {"name": "encoder", "nm": "2:4"},
       {"name": "bert.encoder.layer.5.output.dense", "nm": "1:4", "weight_bits": 4}]}

Scheme ``tucker`` (seed 001) stores every named linear as ``d x d`` blocks ``V S_b U^T`` of a
shared Tucker matrix bank (:mod:`ttaccel.models.tucker`): its linear rules give the bank's
``rank`` (one int, at most 64 and the hidden size; the same for every linear rule), without
modes; ``bank_size`` is the number of cores ``l`` in each bank (at most the blocks of the bank's
scope) and ``bank_scope`` ``"model"`` (one bank for the whole encoder, the default) or
``"layer"`` (one per encoder layer). ``weight_bits`` 8 or 4 (the bank's codes; the mix is int8)
or null. A ``word_embeddings`` rule stays a TT embedding (rank and modes as scheme ``tt``)::

    {"scheme": "tucker", "bank_size": 24, "bank_scope": "model", "weight_bits": 4,
     "layers": [{"name": "encoder", "rank": 64}, {"name": "word_embeddings", "rank": 64}]}

``bank_size`` and ``bank_scope`` are written for scheme ``tucker`` only.

A config of scheme ``tt`` without ``keep_layers`` writes neither key in :meth:`to_dict`, so
older configs (and artifacts) read and write unchanged; nor do rules without ``nm`` or
``weight_bits`` write those keys.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ttaccel.spec.nm import parse_nm

__all__ = [
    "BANK_SCOPES",
    "LAYER_GROUPS",
    "MAX_TUCKER_RANK",
    "SCHEMES",
    "SCHEME_WEIGHT_BITS",
    "CompressionConfig",
    "LayerRule",
    "ResolvedLayer",
]

_ENCODER_LINEARS = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attention_output": "attention.output.dense",
    "ffn_in": "intermediate.dense",
    "ffn_out": "output.dense",
}
LAYER_GROUPS: dict[str, tuple[str, ...]] = {
    **{k: (k,) for k in _ENCODER_LINEARS},
    "attention": ("query", "key", "value", "attention_output"),
    "ffn": ("ffn_in", "ffn_out"),
    "encoder": tuple(_ENCODER_LINEARS),
    "word_embeddings": ("word_embeddings",),
}
_WORD = "bert.embeddings.word_embeddings"
_SCALE_INITS = ("max", "lsq", "mse", "percentile", "twn")  # models.quant.SCALE_INITS (no torch)
SCHEMES = ("tt", "xtc", "nm", "tucker")
BANK_SCOPES = ("model", "layer")  # models.tucker.BANK_SCOPES (no torch)
MAX_TUCKER_RANK = 64  # models.tucker.MAX_TUCKER_RANK
SCHEME_WEIGHT_BITS: dict[str, tuple] = {
    # TT merges its cores and requantizes every product back to the weight format: a binary
    # merge keeps only the sign of each product, which no TT scale can undo.
    "tt": (8, 4, 2, "ternary", None),
    "xtc": (8, 4, 2, "ternary", "binary", None),
    # N:M stores the pruned weights as zeros: binary codes {-1, +1} have none.
    "nm": (8, 4, 2, "ternary", None),
    # The bank's factors and cores, and the S_b the engine merges from them: INT8 or INT4
    # (spec.tucker.TUCKER_WEIGHT_FORMATS).
    "tucker": (8, 4, None),
}
"""The weight formats (``weight_bits`` values) each scheme takes; null is a float student."""


@dataclass(frozen=True)
class LayerRule:
    """One entry of the config: a group or module name, its rank and (optional) modes.

    ``rank`` None: no TT rank, for schemes ``xtc`` and ``nm`` (whose layers stay dense); scheme
    ``tt`` needs one (:class:`CompressionConfig` checks). ``nm``: the N:M pattern ``(n, m)``
    (given as ``"2:4"`` or ``[2, 4]``) and ``weight_bits`` (None: the config's) of this rule's
    layers, scheme ``nm`` only."""

    name: str
    rank: int | tuple[int, ...] | None = None
    in_modes: tuple[int, ...] | None = None
    out_modes: tuple[int, ...] | None = None
    cores_per_side: int = 2
    nm: tuple[int, int] | None = None
    weight_bits: int | str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"layer name must be a non-empty string, not {self.name!r}")
        if self.name not in LAYER_GROUPS and not self.name.startswith("bert."):
            raise ValueError(
                f"unknown layer name {self.name!r}: expected one of {sorted(LAYER_GROUPS)} or a "
                f"full module name such as 'bert.encoder.layer.0.attention.self.query'"
            )
        rank = self.rank
        if rank is None:
            pass
        elif isinstance(rank, list | tuple):
            rank = tuple(rank)
            if not rank or not all(isinstance(r, int) and r >= 1 for r in rank):
                raise ValueError(
                    f"layer {self.name!r}: ranks must be positive integers, not {rank}"
                )
        elif isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ValueError(f"layer {self.name!r}: rank must be a positive integer, not {rank!r}")
        object.__setattr__(self, "rank", rank)
        for key in ("in_modes", "out_modes"):
            modes = getattr(self, key)
            if modes is None:
                continue
            modes = tuple(modes)
            if not modes or not all(isinstance(m, int) and m >= 1 for m in modes):
                raise ValueError(
                    f"layer {self.name!r}: {key} must be positive integers, not {list(modes)}"
                )
            object.__setattr__(self, key, modes)
        if (self.in_modes is None) != (self.out_modes is None):
            raise ValueError(f"layer {self.name!r}: give both in_modes and out_modes, or neither")
        if self.nm is not None:
            object.__setattr__(self, "nm", parse_nm(self.nm, name=f"layer {self.name!r}: nm"))
        if not isinstance(self.cores_per_side, int) or self.cores_per_side < 1:
            raise ValueError(
                f"layer {self.name!r}: cores_per_side must be a positive integer, "
                f"not {self.cores_per_side!r}"
            )


@dataclass(frozen=True)
class ResolvedLayer:
    """A rule applied to one module: full module name, kind (``linear``/``embedding``), rule."""

    module: str
    kind: str
    rule: LayerRule


@dataclass(frozen=True)
class CompressionConfig:
    """Which layers to compress and how (see the module docstring)."""

    layers: tuple[LayerRule, ...]
    weight_bits: int | str | None = 4
    power_of_two: bool = False
    encoder_layers: tuple[int, ...] | None = None
    weight_scale_init: str = "max"
    activation_scale_init: str = "max"
    scheme: str = "tt"
    keep_layers: tuple[int, ...] | None = None
    bank_size: int | None = None
    bank_scope: str | None = None

    def __post_init__(self) -> None:
        layers = tuple(
            rule if isinstance(rule, LayerRule) else LayerRule(**rule) for rule in self.layers
        )
        if not layers:
            raise ValueError("a compression config needs at least one layer rule")
        object.__setattr__(self, "layers", layers)
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {list(SCHEMES)}, not {self.scheme!r}")
        allowed = SCHEME_WEIGHT_BITS[self.scheme]
        bits = self.weight_bits
        if isinstance(bits, bool) or bits not in allowed:
            known = not isinstance(bits, bool) and bits in SCHEME_WEIGHT_BITS["xtc"]
            raise ValueError(
                f"weight_bits must be one of {[b for b in allowed if b is not None]} or null "
                f"(float) for scheme {self.scheme!r}, not {bits!r}"
                + (f": scheme {self.scheme!r} cannot take {bits!r}" if known else "")
                + (" (N:M needs a zero code for the pruned weights)" if known and
                   self.scheme == "nm" else "")
            )  # fmt: skip
        for i, rule in enumerate(layers):
            where = f"layers[{i}] ({rule.name!r})"
            if self.scheme != "nm" and (rule.nm is not None or rule.weight_bits is not None):
                raise ValueError(
                    f"{where}: only scheme 'nm' takes a per-layer nm pattern or weight_bits"
                )
            if self.scheme == "nm":
                if rule.rank is not None or rule.in_modes is not None:
                    raise ValueError(
                        f"{where}: scheme 'nm' keeps every layer dense (pruned N:M): leave rank, "
                        "in_modes and out_modes out"
                    )
                if rule.nm is None:
                    raise ValueError(f"{where}: scheme 'nm' needs an N:M pattern, e.g. 'nm': '2:4'")
                if rule.name == "word_embeddings" or rule.name == _WORD:
                    raise ValueError(f"{where}: scheme 'nm' prunes linears, not the embedding")
                rb = rule.weight_bits
                if rb is not None and (isinstance(rb, bool) or rb not in allowed[:-1]):
                    raise ValueError(
                        f"{where}: weight_bits must be one of {list(allowed[:-1])} for scheme "
                        f"'nm', not {rb!r}"
                        + (": N:M needs a zero code for the pruned weights" if rb == "binary"
                           else "")
                    )  # fmt: skip
                if rb is not None and bits is None:
                    raise ValueError(
                        f"{where}: a float config (weight_bits null) takes no per-layer weight_bits"
                    )
            if self.scheme == "tucker":
                self._check_tucker_rule(where, rule)
            if self.scheme == "tt" and rule.rank is None:
                raise ValueError(f"layers[{i}] ({rule.name!r}): scheme 'tt' needs a rank")
            if self.scheme == "xtc" and (rule.rank is not None or rule.in_modes is not None):
                raise ValueError(
                    f"layers[{i}] ({rule.name!r}): scheme 'xtc' keeps every layer dense (one "
                    "core): leave rank, in_modes and out_modes out"
                )
        self._check_bank()
        if self.keep_layers is not None:
            keep = self.keep_layers
            if (
                not isinstance(keep, list | tuple)
                or not keep
                or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in keep)
            ):
                raise ValueError(
                    f"keep_layers must be a non-empty list of teacher layer indices, not {keep!r}"
                )
            if len(set(keep)) != len(keep):
                raise ValueError(f"keep_layers {list(keep)} names a teacher layer twice")
            object.__setattr__(self, "keep_layers", tuple(keep))
        if self.encoder_layers is not None:
            object.__setattr__(self, "encoder_layers", tuple(int(i) for i in self.encoder_layers))
        for key in ("weight_scale_init", "activation_scale_init"):
            if getattr(self, key) not in _SCALE_INITS:
                raise ValueError(
                    f"{key} must be one of {list(_SCALE_INITS)}, not {getattr(self, key)!r}"
                )

    def _check_tucker_rule(self, where: str, rule: LayerRule) -> None:
        if rule.rank is None:
            raise ValueError(f"{where}: scheme 'tucker' needs a rank")
        if rule.name in ("word_embeddings", _WORD):
            return  # a TT embedding
        if rule.in_modes is not None:
            raise ValueError(
                f"{where}: scheme 'tucker' cuts every linear into hidden x hidden blocks: leave "
                "in_modes and out_modes out"
            )
        if not isinstance(rule.rank, int):
            raise ValueError(f"{where}: scheme 'tucker' takes one rank (an int), not {rule.rank}")
        if rule.rank > MAX_TUCKER_RANK:
            raise ValueError(
                f"{where}: a Tucker rank is at most {MAX_TUCKER_RANK}, not {rule.rank}"
            )

    def _check_bank(self) -> None:
        if self.scheme != "tucker":
            if self.bank_size is not None or self.bank_scope is not None:
                raise ValueError(
                    f"bank_size and bank_scope are for scheme 'tucker', not {self.scheme!r}"
                )
            return
        size = self.bank_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(
                f"bank_size must be a positive integer (the cores per bank) for scheme "
                f"'tucker', not {size!r}"
            )
        if self.bank_scope is None:
            object.__setattr__(self, "bank_scope", "model")
        if self.bank_scope not in BANK_SCOPES:
            raise ValueError(
                f"bank_scope must be one of {list(BANK_SCOPES)}, not {self.bank_scope!r}"
            )
        ranks = {rule.rank for rule in self.layers if rule.name not in ("word_embeddings", _WORD)}
        if not ranks:
            raise ValueError("scheme 'tucker' needs at least one linear rule (e.g. 'encoder')")
        if len(ranks) > 1:
            raise ValueError(
                f"scheme 'tucker': every linear rule needs the same rank (one bank rank), "
                f"found {sorted(ranks)}"
            )

    @property
    def tucker_rank(self) -> int:
        """The bank rank of a scheme ``tucker`` config (its linear rules' rank)."""
        if self.scheme != "tucker":
            raise ValueError(f"tucker_rank is for scheme 'tucker', not {self.scheme!r}")
        return next(r.rank for r in self.layers if r.name not in ("word_embeddings", _WORD))

    # -- JSON --

    def to_dict(self) -> dict:
        data = asdict(self)
        data["layers"] = [
            {k: (list(v) if isinstance(v, tuple) else v) for k, v in rule.items()}
            for rule in data["layers"]
        ]
        if data["encoder_layers"] is not None:
            data["encoder_layers"] = list(data["encoder_layers"])
        # Defaults are left out, so a TT config's JSON is what it was before these keys.
        if data["scheme"] == "tt":
            del data["scheme"]
        if data["keep_layers"] is None:
            del data["keep_layers"]
        else:
            data["keep_layers"] = list(data["keep_layers"])
        for rule in data["layers"]:
            for key in ("nm", "weight_bits"):
                if rule[key] is None:
                    del rule[key]
            if "nm" in rule:
                rule["nm"] = f"{rule['nm'][0]}:{rule['nm'][1]}"
        if self.scheme != "tucker":
            del data["bank_size"], data["bank_scope"]
        else:
            for rule in data["layers"]:
                if rule["name"] not in ("word_embeddings", _WORD):
                    for key in ("in_modes", "out_modes", "cores_per_side"):
                        rule.pop(key, None)
        if self.scheme in ("xtc", "nm"):
            for rule in data["layers"]:
                for key in ("rank", "in_modes", "out_modes", "cores_per_side"):
                    rule.pop(key, None)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> CompressionConfig:
        if not isinstance(data, dict):
            raise ValueError(
                f"a compression config must be a JSON object, not {type(data).__name__}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown compression config keys {unknown}; expected {sorted(known)}")
        if "layers" not in data or not isinstance(data["layers"], list):
            raise ValueError("a compression config needs 'layers': a list of layer rules")
        rule_keys = {f.name for f in fields(LayerRule)}
        rules = []
        for i, rule in enumerate(data["layers"]):
            if not isinstance(rule, dict):
                raise ValueError(f"layers[{i}] must be an object, not {rule!r}")
            bad = sorted(set(rule) - rule_keys)
            if bad:
                raise ValueError(f"layers[{i}]: unknown keys {bad}; expected {sorted(rule_keys)}")
            rules.append(LayerRule(**rule))
        return cls(**{**data, "layers": tuple(rules)})

    @classmethod
    def from_json(cls, text: str) -> CompressionConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"compression config is not valid JSON: {error}") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> CompressionConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"compression config {path} does not exist")
        return cls.from_json(path.read_text())

    @classmethod
    def uniform(
        cls, rank: int, weight_bits: int | None, *, embedding_rank: int | None = None,
        power_of_two: bool = False, weight_scale_init: str = "max",
        activation_scale_init: str = "max",
    ) -> CompressionConfig:  # fmt: skip
        """All six encoder linears at ``rank`` (auto modes), plus the word embedding when
        ``embedding_rank`` is given; scale rules as the fields of the same names."""
        rules = [LayerRule("encoder", rank)]
        if embedding_rank is not None:
            rules.append(LayerRule("word_embeddings", embedding_rank))
        return cls(tuple(rules), weight_bits, power_of_two, weight_scale_init=weight_scale_init,
                   activation_scale_init=activation_scale_init)  # fmt: skip

    @classmethod
    def xtc(
        cls, weight_bits: int | str | None, keep_layers: Sequence[int] | None = None, *,
        word_embeddings: bool = False, power_of_two: bool = False,
        weight_scale_init: str | None = None, activation_scale_init: str = "max",
    ) -> CompressionConfig:  # fmt: skip
        """Scheme ``xtc``: all six encoder linears dense at ``weight_bits`` (``"ternary"`` or
        ``"binary"`` for XTC proper), the word embedding too with ``word_embeddings``, keeping
        teacher layers ``keep_layers`` (None: all). ``weight_scale_init`` None: ``twn`` for
        ternary / binary weights, ``max`` otherwise."""
        rules = [LayerRule("encoder")]
        if word_embeddings:
            rules.append(LayerRule("word_embeddings"))
        if weight_scale_init is None:
            weight_scale_init = "twn" if weight_bits in ("ternary", "binary") else "max"
        return cls(tuple(rules), weight_bits, power_of_two, weight_scale_init=weight_scale_init,
                   activation_scale_init=activation_scale_init, scheme="xtc",
                   keep_layers=None if keep_layers is None else tuple(keep_layers))  # fmt: skip

    @classmethod
    def nm(
        cls, pattern: str | Sequence[int], weight_bits: int | str | None, *,
        keep_layers: Sequence[int] | None = None, power_of_two: bool = False,
        weight_scale_init: str = "max", activation_scale_init: str = "max",
    ) -> CompressionConfig:  # fmt: skip
        """Scheme ``nm``: all six encoder linears pruned to ``pattern`` (``"2:4"``) at
        ``weight_bits``; per-layer patterns need explicit rules (or ``ttaccel nm-search``)."""
        return cls((LayerRule("encoder", nm=pattern),), weight_bits, power_of_two,
                   weight_scale_init=weight_scale_init,
                   activation_scale_init=activation_scale_init, scheme="nm",
                   keep_layers=None if keep_layers is None else tuple(keep_layers))  # fmt: skip

    @classmethod
    def tucker(
        cls, rank: int, bank_size: int, weight_bits: int | None, *, bank_scope: str = "model",
        embedding_rank: int | None = None, keep_layers: Sequence[int] | None = None,
        power_of_two: bool = False, weight_scale_init: str = "max",
        activation_scale_init: str = "max",
    ) -> CompressionConfig:  # fmt: skip
        """Scheme ``tucker``: all six encoder linears from banks of ``rank`` and ``bank_size``
        cores per ``bank_scope``, at ``weight_bits`` (8, 4 or None); the word embedding as a TT
        embedding at ``embedding_rank`` when given."""
        rules = [LayerRule("encoder", rank)]
        if embedding_rank is not None:
            rules.append(LayerRule("word_embeddings", embedding_rank))
        return cls(tuple(rules), weight_bits, power_of_two, weight_scale_init=weight_scale_init,
                   activation_scale_init=activation_scale_init, scheme="tucker",
                   keep_layers=None if keep_layers is None else tuple(keep_layers),
                   bank_size=bank_size, bank_scope=bank_scope)  # fmt: skip

    def check_keep_layers(self, teacher_layers: int) -> None:
        """Raise ValueError when ``keep_layers`` names a layer the teacher (``teacher_layers``
        encoder layers) lacks."""
        for i in self.keep_layers or ():
            if i >= teacher_layers:
                raise ValueError(
                    f"keep_layers has {i}; the teacher has encoder layers 0..{teacher_layers - 1}"
                )

    # -- resolution against a model --

    def resolve(self, module_names: set[str], num_layers: int) -> list[ResolvedLayer]:
        """Map the rules onto a BERT's modules (``module_names``: all names of the
        ``BertForSequenceClassification``). Raises ValueError for a module name the model
        lacks, or an encoder layer index out of range."""
        indices = self.encoder_layers if self.encoder_layers is not None else range(num_layers)
        for i in indices:
            if not 0 <= i < num_layers:
                raise ValueError(
                    f"encoder_layers has {i}; the model has layers 0..{num_layers - 1}"
                )
        chosen: dict[str, ResolvedLayer] = {}
        for rule in self.layers:
            if rule.name in LAYER_GROUPS:
                for kind in LAYER_GROUPS[rule.name]:
                    if kind == "word_embeddings":
                        chosen[_WORD] = ResolvedLayer(_WORD, "embedding", rule)
                        continue
                    for i in indices:
                        name = f"bert.encoder.layer.{i}.{_ENCODER_LINEARS[kind]}"
                        chosen[name] = ResolvedLayer(name, "linear", rule)
            else:
                if rule.name not in module_names:
                    raise ValueError(
                        f"unknown layer name {rule.name!r}: the model has no such module "
                        f"(groups: {sorted(LAYER_GROUPS)})"
                    )
                kind = "embedding" if rule.name == _WORD else "linear"
                chosen[rule.name] = ResolvedLayer(rule.name, kind, rule)
        return list(chosen.values())


def check_modes(rule: LayerRule, module: str, rows: int, cols: int, embedding: bool) -> None:
    """Raise ValueError when the rule's modes do not multiply to the module's dimensions."""
    if rule.in_modes is None:
        return
    p_in, p_out = math.prod(rule.in_modes), math.prod(rule.out_modes)
    if embedding:
        if p_in < rows or p_out != cols:
            raise ValueError(
                f"layer {module}: row modes {list(rule.in_modes)} x column modes "
                f"{list(rule.out_modes)} multiply to {p_in} x {p_out}; the embedding is "
                f"{rows} x {cols} (rows may be padded up, columns must match)"
            )
    elif p_in != rows or p_out != cols:
        raise ValueError(
            f"layer {module}: modes {list(rule.in_modes)} x {list(rule.out_modes)} multiply to "
            f"{p_in} x {p_out}, but the layer is {rows} (in) x {cols} (out)"
        )
