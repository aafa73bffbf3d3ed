"""Request and response bodies of the HTTP API (pydantic): strict, bounded, documented in the OpenAPI spec.

Unknown fields are refused, numbers must be finite, labels are strings or integers (never
booleans), and every list and string has a bound, so a malformed or hostile request fails
validation (422) before it reaches a model. Vectors come as JSON numbers or packed: base64
of their little-endian float32 values, which skips parsing decimals (float32 is what the
encoders produce; a float64 vector is rounded to float32 first).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictInt,
    StrictStr,
    model_validator,
)

from erasable.parameters import DEFAULTS
from erasable.steering import MAX_WEIGHT

__all__ = [
    "CreateModelRequest",
    "ForgetReceiptResponse",
    "ForgetRequest",
    "LearnRequest",
    "LearnResponse",
    "ModelInfo",
    "PredictRequest",
    "PredictResponse",
    "Sample",
    "SteerRequest",
    "SteeringResponse",
]

MAX_BATCH = 10_000
MAX_DIM = 8192
#: Widest statistics a served model may have (input dimension, random features). They hold a
#: D x D Gram matrix -- 8 D^2 bytes, 128 MB at 4096 -- that every change writes to the ledger
#: and the ridge head decomposes; wider models belong in the library, not behind the API.
MAX_STATISTICS_DIM = 4096
MAX_TEXT = 10_000

Finite = Annotated[float, Field(allow_inf_nan=False)]
Vector = Annotated[list[Finite], Field(min_length=1, max_length=MAX_DIM)]


def _base64_bytes(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not valid base64: {exc}") from None
    if not raw or len(raw) % 4:
        raise ValueError("must hold a whole, non-zero number of float32 values (4 bytes each)")
    return raw


def _base64_text(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


#: A vector as base64 of its little-endian float32 values: no decimal parsing, 4 bytes a value. Validated, it is
#: the raw bytes; serialized (e.g. for the digest of a request sent with an idempotency key) it is base64 again.
PackedVector = Annotated[
    StrictStr,
    Field(min_length=4, max_length=(MAX_DIM * 4 + 2) // 3 * 4),
    AfterValidator(_base64_bytes),
    PlainSerializer(_base64_text, return_type=str),
]


def _unicode(text: str) -> str:
    """``text`` if UTF-8 can encode it: a lone surrogate (``"\\udfff"``) would be accepted, then break every answer."""
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return text


def _storable(text: str) -> str:
    """``text`` if every store can hold it as a name: valid Unicode and no NUL (PostgreSQL text cannot)."""
    if "\x00" in _unicode(text):
        raise ValueError("must not contain NUL characters")
    return text


#: Longest label, sample id, subject or source, in characters.
MAX_NAME = 256

#: A class label: a string or an int64 (never a boolean).
Label = (
    Annotated[StrictStr, Field(max_length=MAX_NAME), AfterValidator(_storable)]
    | Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]
)
#: A label in an answer: whatever the model holds (requests, files and the library refuse anything else).
LabelOut = StrictStr | StrictInt
Text = Annotated[StrictStr, Field(min_length=1, max_length=MAX_TEXT), AfterValidator(_unicode)]
Identifier = Annotated[StrictStr, Field(min_length=1, max_length=MAX_NAME), AfterValidator(_storable)]
ModelName = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateModelRequest(Strict):
    """A new model: vectors of ``input_dim``, or raw inputs through an ``encoder``."""

    name: ModelName
    input_dim: Annotated[int, Field(ge=1, le=MAX_STATISTICS_DIM)] | None = None
    encoder: Literal["text", "text-mpnet", "image"] | None = None
    head: Literal["ridge", "kernel", "prototype", "gaussian", "memory"] = DEFAULTS["head"]
    feature_map: Literal["identity", "random_relu"] = DEFAULTS["feature_map"]
    width: Annotated[int, Field(ge=1, le=MAX_STATISTICS_DIM)] = DEFAULTS["width"]
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = DEFAULTS["seed"]
    feature_bits: Annotated[int, Field(ge=1, le=15)] = DEFAULTS["feature_bits"]
    scale_bits: Annotated[int, Field(ge=0, le=15)] = DEFAULTS["scale_bits"]
    alpha: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = DEFAULTS["alpha"]

    @model_validator(mode="after")
    def _vectors_or_encoder(self) -> CreateModelRequest:
        if (self.input_dim is None) == (self.encoder is None):
            raise ValueError("give exactly one of input_dim (a model of vectors) or encoder (raw inputs)")
        return self


class Sample(Strict):
    """One sample to learn: an id, a label, an optional subject, and a vector (as numbers or packed) or a text."""

    id: Identifier
    label: Label
    subject: Identifier | None = None
    vector: Vector | None = None
    vector_base64: PackedVector | None = None
    text: Text | None = None

    @model_validator(mode="after")
    def _one_input(self) -> Sample:
        if sum(x is not None for x in (self.vector, self.vector_base64, self.text)) != 1:
            raise ValueError("give exactly one of vector, vector_base64 or text")
        return self


class LearnRequest(Strict):
    samples: Annotated[list[Sample], Field(min_length=1, max_length=MAX_BATCH)]
    source: Identifier | None = None


class LearnResponse(BaseModel):
    seq: int
    count: int
    certificate: str


class ForgetRequest(Strict):
    """Exactly one of: sample ids, subjects (every sample of each), classes (every sample of each)."""

    ids: Annotated[list[Identifier], Field(min_length=1, max_length=MAX_BATCH)] | None = None
    subjects: Annotated[list[Identifier], Field(min_length=1, max_length=MAX_BATCH)] | None = None
    classes: Annotated[list[Label], Field(min_length=1, max_length=MAX_BATCH)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ForgetRequest:
        if sum(value is not None for value in (self.ids, self.subjects, self.classes)) != 1:
            raise ValueError("give exactly one of ids, subjects or classes")
        return self


class ForgetReceiptResponse(BaseModel):
    """Anyone can check ``certificate_after`` by refitting on the remaining samples (``/verify``)."""

    seq: int
    count: int
    certificate_before: str
    certificate_after: str
    #: False: a reader of the SQLite file holds old page images of the samples in its write-ahead log (HTTP 202).
    residues_erased: bool = True


class PredictRequest(Strict):
    vectors: Annotated[list[Vector], Field(min_length=1, max_length=MAX_BATCH)] | None = None
    vectors_base64: Annotated[list[PackedVector], Field(min_length=1, max_length=MAX_BATCH)] | None = None
    texts: Annotated[list[Text], Field(min_length=1, max_length=1024)] | None = None
    top_k: Annotated[int, Field(ge=1, le=100)] = 3
    neighbours: Annotated[int, Field(ge=0, le=100)] = 0

    @model_validator(mode="after")
    def _one_input(self) -> PredictRequest:
        if sum(x is not None for x in (self.vectors, self.vectors_base64, self.texts)) != 1:
            raise ValueError("give exactly one of vectors, vectors_base64 or texts")
        return self


class ScoredLabel(BaseModel):
    label: LabelOut
    probability: float


class NeighbourOut(BaseModel):
    id: str
    label: LabelOut
    similarity: float
    weight: float


class Prediction(BaseModel):
    label: LabelOut
    top: list[ScoredLabel]
    ood_score: float
    neighbours: list[NeighbourOut] | None = None


class PredictResponse(BaseModel):
    """Predictions made on one committed state, named by its sequence number and certificate."""

    seq: int
    certificate: str
    predictions: list[Prediction]
    clipped: int = Field(
        description="How many inputs exceeded the model's fixed-point range and were clipped: predictions on them "
        "are unreliable (scale inputs as the training data was)."
    )


Weight = Annotated[float, Field(ge=0, le=MAX_WEIGHT, allow_inf_nan=False)]


class ClassWeight(Strict):
    label: Label
    weight: Weight


class SubjectWeight(Strict):
    subject: Identifier
    weight: Weight


class IdWeight(Strict):
    id: Identifier
    weight: Weight


class SteerRequest(Strict):
    """Vote weights of the memory head to set: 0 silences, 1 restores the default; others are kept."""

    classes: Annotated[list[ClassWeight], Field(max_length=MAX_BATCH)] = []
    subjects: Annotated[list[SubjectWeight], Field(max_length=MAX_BATCH)] = []
    ids: Annotated[list[IdWeight], Field(max_length=MAX_BATCH)] = []

    @model_validator(mode="after")
    def _something_each_once(self) -> SteerRequest:
        for kind, names in (
            ("classes", [w.label for w in self.classes]),
            ("subjects", [w.subject for w in self.subjects]),
            ("ids", [w.id for w in self.ids]),
        ):
            if len(set(names)) != len(names):
                raise ValueError(f"{kind} names an entry twice")
        if not (self.classes or self.subjects or self.ids):
            raise ValueError("give at least one weight")
        return self


class SteeringResponse(BaseModel):
    """The memory's vote weights after the request (entries of weight 1 are not listed)."""

    seq: int
    certificate: str
    classes: list[ClassWeight]
    subjects: list[SubjectWeight]
    ids: list[IdWeight]


class ModelInfo(BaseModel):
    name: str
    seq: int
    count: int
    classes: list[LabelOut]
    certificate: str
    config: dict[str, Any]
