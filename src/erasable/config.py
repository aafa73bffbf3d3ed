"""The model's configuration: what, with the live samples, determines its state and predictions.

A :class:`ModelConfig` is validated when it is made -- sizes first, before anything is
allocated, since a config may come from an untrusted file or request -- and serializes to
canonical JSON, which the certificate covers. The defaults a user meets are declared once,
in :mod:`erasable.parameters`, and :meth:`ModelConfig.from_parameters` turns those parameters
into a configuration: the estimator, ``erasable learn`` and ``POST /v1/models`` all build
theirs with it, so a model made from nothing is the same model whichever door it came through.

>>> ModelConfig(input_dim=2).feature_map
{'kind': 'identity', 'input_dim': 2}
>>> config = ModelConfig.from_parameters(input_dim=384)
>>> config.feature_map["kind"], config.feature_map["width"], config.head
('random_relu', 4096, 'ridge')
>>> ModelConfig.from_parameters(input_dim=384, width=1024).parameters()["width"]
1024
>>> ModelConfig(input_dim=0)
Traceback (most recent call last):
...
ValueError: input_dim must be an integer in 1..32768, got 0.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from erasable.encoders import CUSTOM, Encoder, encoder_name, encoder_spec, load_encoder
from erasable.features import INT16_BITS, RandomReLU, feature_map_from_config, shift_for_unit_norm
from erasable.parameters import DEFAULTS, PARAMETERS

HeadKind = Literal["ridge", "kernel", "prototype", "gaussian", "memory"]
HEAD_KINDS: tuple[HeadKind, ...] = ("ridge", "kernel", "prototype", "gaussian", "memory")
#: Largest input dimension and feature width: the statistics hold a D x D int64 Gram (8 GiB at this bound), and a
#: config read from a file or a request must not be able to ask for more before anything checks it.
MAX_DIM = 2**15
#: Largest random projection, input_dim * width entries (float32: 1 GiB at this bound).
MAX_PROJECTION = 2**28

__all__ = ["HEAD_KINDS", "MAX_DIM", "MAX_PROJECTION", "HeadKind", "ModelConfig"]


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


#: The user-facing parameters that take integers: those whose default is one.
INTEGER_PARAMETERS = tuple(p.name for p in PARAMETERS if _is_int(p.default))


@dataclass(frozen=True)
class ModelConfig:
    """Everything that, with the live samples, determines a model's state and predictions.

    ``feature_map`` is a :func:`~erasable.features.feature_map_from_config` dict; ``alpha``
    (ridge, ``None`` = automatic by GCV), ``temperature`` (ridge probabilities), ``metric``
    (prototype) and ``shrinkage`` (Gaussian) parametrize the heads. ``encoder`` (``None``
    for a model of vectors) names the encoder of raw inputs and records its identity, so
    that a model refuses inputs embedded by any other. Two models merge only if their configs are equal.
    """

    input_dim: int
    scale_bits: int = 13
    feature_map: dict[str, Any] = field(default_factory=dict)
    head: HeadKind = "ridge"
    alpha: float | None = None
    metric: Literal["cosine", "euclidean"] = "cosine"
    shrinkage: float = 0.05
    temperature: float = 0.07
    encoder: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # Sizes first, before anything is allocated: a config may come from an untrusted file or request.
        if not _is_int(self.input_dim) or not 1 <= self.input_dim <= MAX_DIM:
            raise ValueError(f"input_dim must be an integer in 1..{MAX_DIM}, got {self.input_dim!r}.")
        if not _is_int(self.scale_bits):
            raise ValueError(f"scale_bits must be an integer, got {self.scale_bits!r}.")
        if not 0 <= self.scale_bits <= 15:
            raise ValueError(f"scale_bits must be in 0..15, got {self.scale_bits}.")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}.")
        if self.head not in HEAD_KINDS:
            raise ValueError(f"head must be one of {HEAD_KINDS}, got {self.head!r}.")
        if not self.feature_map:
            object.__setattr__(self, "feature_map", {"kind": "identity", "input_dim": self.input_dim})
        if not isinstance(self.feature_map, dict) or self.feature_map.get("input_dim") != self.input_dim:
            raise ValueError("feature_map.input_dim must equal input_dim.")
        if "width" in self.feature_map:
            width = self.feature_map["width"]
            if not _is_int(width) or not 1 <= width <= MAX_DIM or self.input_dim * width > MAX_PROJECTION:
                raise ValueError(
                    f"feature_map.width must be an integer in 1..{MAX_DIM} with input_dim * width <= "
                    f"{MAX_PROJECTION}, got {width!r} (input_dim {self.input_dim})."
                )
        # Validates (the projection is drawn when first used). One spelling per map: the bytes a config states
        # are the bytes its certificate covers, so e.g. an explicit "bits": 15 (the map without "bits") is refused.
        if feature_map_from_config(self.feature_map).config() != self.feature_map:
            raise ValueError(
                f"feature_map is not in its canonical form: {self.feature_map!r} "
                '(a random ReLU map of 15 bits leaves "bits" out).'
            )
        if self.head == "kernel" and self.feature_map["kind"] != "random_relu":
            raise ValueError("The kernel head is the limit of the random ReLU features: use feature_map random_relu.")
        if self.encoder is not None:
            missing = {"kind", "options", "identity", "dim"} - set(self.encoder)
            if missing:
                raise ValueError(f"encoder config lacks {sorted(missing)}.")
            if self.encoder["dim"] != self.input_dim:
                raise ValueError(f"The encoder makes {self.encoder['dim']}-d embeddings, not {self.input_dim}-d.")

    @classmethod
    def encoder_config(cls, encoder: Encoder, kind: str, **options: Any) -> dict[str, Any]:
        """The ``encoder`` entry for an encoder built by ``load_encoder(kind, **options)``."""
        return {"kind": kind, "options": options, "identity": encoder.identity, "dim": encoder.dim}

    @classmethod
    def from_parameters(cls, input_dim: int | None = None, **parameters: Any) -> ModelConfig:
        """The configuration that user-facing parameters describe, for inputs of ``input_dim``.

        ``parameters`` are those of :data:`~erasable.parameters.PARAMETERS` (their defaults
        when missing) and ``encoder``: ``None``, an encoder name (``"text"``, ``"text-mpnet"``,
        ``"image"``, ``"text:PATH"``, loaded to learn its identity and dimension) or an
        :class:`~erasable.encoders.Encoder` object. With an encoder, the dimension is its
        own and ``input_dim`` may be omitted. Raises ``TypeError`` for an unknown parameter
        and ``ValueError`` for a bad value.
        """
        encoder = parameters.pop("encoder", None)
        unknown = set(parameters) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"Unknown model parameters: {sorted(unknown)}.")
        values = {**DEFAULTS, **parameters}
        for name in INTEGER_PARAMETERS:  # refused, not truncated: 6.9 bits is a mistake, not 6
            if not _is_int(values[name]):
                raise ValueError(f"{name} must be an integer, got {values[name]!r}.")
        encoder_entry = None
        if encoder is not None:
            if isinstance(encoder, str):
                kind, options = encoder_spec(encoder)
                loaded = load_encoder(kind, **options)
            elif isinstance(encoder, Encoder):
                kind, options, loaded = CUSTOM, {}, encoder
            else:
                raise TypeError(
                    "encoder must be None, 'text', 'text-mpnet', 'image', 'text:PATH' or an Encoder, "
                    f"not {type(encoder).__name__}."
                )
            encoder_entry = cls.encoder_config(loaded, kind, **options)
            input_dim = loaded.dim
        if input_dim is None:
            raise ValueError("input_dim is needed for a model without an encoder.")
        if values["feature_map"] == "identity":
            feature_map: dict[str, Any] = {"kind": "identity", "input_dim": input_dim}
        elif values["feature_map"] == "random_relu":
            bits = int(values["feature_bits"])
            if not 1 <= bits <= INT16_BITS:
                raise ValueError(f"feature_bits must be in 1..{INT16_BITS}, got {bits}.")
            scale_free = bits < INT16_BITS  # 15 bits: the shifted int16 map of earlier models
            feature_map = RandomReLU(
                input_dim=input_dim,
                width=int(values["width"]),
                seed=int(values["seed"]),
                shift=0 if scale_free else shift_for_unit_norm(input_dim, int(values["scale_bits"])),
                bits=bits,
                scale_free=scale_free,
            ).config()
        else:
            raise ValueError(f"feature_map must be 'random_relu' or 'identity', got {values['feature_map']!r}.")
        return cls(
            input_dim=input_dim,
            scale_bits=int(values["scale_bits"]),
            feature_map=feature_map,
            head=values["head"],
            alpha=None if values["alpha"] is None else float(values["alpha"]),
            metric=values["metric"],
            shrinkage=float(values["shrinkage"]),
            temperature=float(values["temperature"]),
            encoder=encoder_entry,
        )

    def parameters(self) -> dict[str, Any]:
        """The user-facing parameters that describe this configuration (what :meth:`from_parameters` takes).

        ``encoder`` is the encoder's name, or ``"custom"`` for an encoder object (which the
        configuration records by identity only). Raises ``ValueError`` if no parameters can
        describe the configuration (a feature shift other than the one for unit-norm inputs).
        """
        fmap = self.feature_map
        encoder = None
        if self.encoder is not None:
            kind, options = self.encoder["kind"], self.encoder["options"]
            encoder = CUSTOM if kind == CUSTOM else encoder_name(kind, options)
        relu = fmap["kind"] == "random_relu"
        values = {
            "head": self.head,
            "feature_map": fmap["kind"],
            "width": int(fmap.get("width", DEFAULTS["width"])),
            "seed": int(fmap.get("seed", DEFAULTS["seed"])),
            "feature_bits": int(fmap.get("bits", INT16_BITS)) if relu else DEFAULTS["feature_bits"],
            "scale_bits": self.scale_bits,
            "alpha": self.alpha,
            "temperature": self.temperature,
            "metric": self.metric,
            "shrinkage": self.shrinkage,
            "encoder": encoder,
        }
        legacy = values["feature_bits"] == INT16_BITS
        expected = (False, shift_for_unit_norm(self.input_dim, self.scale_bits)) if legacy else (True, 0)
        if relu and (fmap.get("scale_free", False), fmap["shift"]) != expected:
            raise ValueError("This configuration's feature shift is not the one any parameters describe.")
        return values

    @property
    def feature_dim(self) -> int | None:
        """Width of the feature statistics; ``None`` under the identity map, which keeps none."""
        return None if self.feature_map["kind"] == "identity" else int(self.feature_map["width"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"Unknown model config fields: {sorted(unknown)}.")
        return cls(**data)

    def canonical_json(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
