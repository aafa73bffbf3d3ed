"""A Python client for the erasable service (``erasable serve``), on httpx.

One method per route, answers as the service's own response models
(:mod:`erasable.service.schemas`), refusals as :class:`ServiceError` carrying the server's
status and message. Vectors travel packed (base64 of little-endian float32, no decimal
parsing) unless ``packed=False``. ``learn`` always sends an ``Idempotency-Key`` (a fresh
one unless given), so it can be retried after a lost answer without learning twice; reads
and predictions are retried too. Other changes are retried only when the connection could
not be made, which means the server never saw them.

>>> with Client("http://127.0.0.1:8000", token) as service:  # doctest: +SKIP
...     service.create_model("bank", encoder="text")
...     service.learn("bank", ids=["q1"], labels=["card_declined"], texts=["my card was declined"],
...                   subjects=["customer-1234"])
...     service.predict("bank", texts=["card refused"]).predictions[0].label
...     service.forget("bank", subjects=["customer-1234"]).certificate_after
...     service.verify("bank")["ok"]
'card_declined'
True
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx
import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel

from erasable.service.schemas import (
    ForgetReceiptResponse,
    LearnResponse,
    ModelInfo,
    PredictResponse,
    SteeringResponse,
)

__all__ = [
    "Client",
    "ConflictError",
    "ForbiddenError",
    "InvalidRequestError",
    "NotFoundError",
    "ServiceError",
    "UnauthorizedError",
    "pack",
]

Label = str | int
Response = TypeVar("Response", bound=BaseModel)

#: Statuses worth retrying: the server (or a proxy before it) could not answer now.
RETRY_STATUSES = frozenset({502, 503, 504})


class ServiceError(Exception):
    """The service refused a request: ``status`` is the HTTP status, ``detail`` the server's message (or list)."""

    def __init__(self, status: int, detail: Any, method: str, path: str) -> None:
        self.status, self.detail, self.method, self.path = status, detail, method, path
        super().__init__(f"{method} {path} -> {status}: {_message(detail)}")


class UnauthorizedError(ServiceError):
    """401: no valid API key."""


class ForbiddenError(ServiceError):
    """403: the key lacks the route's scope on this model."""


class NotFoundError(ServiceError):
    """404: no such model, sample or event."""


class ConflictError(ServiceError):
    """409: the model exists, changed meanwhile, has no samples yet, or an idempotency key was reused."""


class InvalidRequestError(ServiceError):
    """413 or 422: the request is malformed, out of bounds or contradicts the model; nothing changed."""


_ERRORS: dict[int, type[ServiceError]] = {
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: InvalidRequestError,
    422: InvalidRequestError,
}


def _message(detail: Any) -> str:
    """The server's message: a string, or FastAPI's list of validation errors as ``where: what; ...``."""
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', e)}" if isinstance(e, dict) else str(e)
            for e in detail
        )
    return str(detail)


def pack(vector: ArrayLike) -> str:
    """A vector as the service's ``vector_base64``: base64 of its little-endian float32 values.

    >>> pack([1.0, -0.5])
    'AACAPwAAAL8='
    """
    return base64.b64encode(np.asarray(vector, dtype="<f4").ravel().tobytes()).decode("ascii")


class Client:
    """The service at ``base_url`` with the API key ``token`` (made by ``erasable keys create``).

    ``retries`` is how many times a retryable request is tried again (waiting ``backoff``
    seconds, doubling); ``transport`` replaces httpx's network transport (tests, proxies).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}.")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout, transport=transport)
        self.retries, self.backoff = retries, backoff

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # -- transport --------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        retry: bool,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send a request; retry (if ``retry``) on transport errors and 502/503/504, else only on failed connects."""
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                answer = self.http.request(method, path, json=json, params=params, headers=headers)
            except httpx.ConnectError:  # never reached the server: any request may be sent again
                if last:
                    raise
            except httpx.TransportError:
                if not retry or last:
                    raise
            else:
                if not (retry and answer.status_code in RETRY_STATUSES and not last):
                    return self._checked(answer, method, path)
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    @staticmethod
    def _checked(answer: httpx.Response, method: str, path: str) -> httpx.Response:
        if answer.is_success:
            return answer
        try:
            detail = answer.json().get("detail", answer.text)
        except ValueError:
            detail = answer.text
        raise _ERRORS.get(answer.status_code, ServiceError)(answer.status_code, detail, method, path)

    def _typed(self, model: type[Response], answer: httpx.Response) -> Response:
        return model.model_validate(answer.json())

    # -- service ----------------------------------------------------------------------------

    def health(self) -> dict[str, str]:
        """``GET /health``: ``{"status": "ok", "version": ...}`` (no key needed)."""
        return dict(self._request("GET", "/health", retry=True).json())

    def metrics(self) -> str:
        """``GET /metrics``: Prometheus text exposition."""
        return self._request("GET", "/metrics", retry=True).text

    # -- models -----------------------------------------------------------------------------

    def list_models(self) -> list[str]:
        """``GET /v1/models``: the names of the models this key may use."""
        return list(self._request("GET", "/v1/models", retry=True).json())

    def create_model(
        self,
        name: str,
        *,
        input_dim: int | None = None,
        encoder: Literal["text", "text-mpnet", "image"] | None = None,
        **config: Any,
    ) -> ModelInfo:
        """``POST /v1/models`` (``admin``): a model of vectors (``input_dim``) or raw inputs (``encoder``).

        ``config`` holds the other settings (``head``, ``feature_map``, ``width``, ``seed``,
        ``scale_bits``, ``alpha``); omitted ones take the service's defaults.
        """
        body = {"name": name, "input_dim": input_dim, "encoder": encoder, **config}
        body = {k: v for k, v in body.items() if v is not None}
        return self._typed(ModelInfo, self._request("POST", "/v1/models", retry=False, json=body))

    def model_info(self, name: str) -> ModelInfo:
        """``GET /v1/models/{name}``: count, classes, certificate, configuration."""
        return self._typed(ModelInfo, self._request("GET", f"/v1/models/{name}", retry=True))

    def delete_model(self, name: str) -> None:
        """``DELETE /v1/models/{name}`` (``admin``): the model, its samples, log and keys."""
        self._request("DELETE", f"/v1/models/{name}", retry=False)

    # -- learn and forget -------------------------------------------------------------------

    def learn(
        self,
        name: str,
        *,
        ids: Sequence[str],
        labels: Sequence[Label],
        vectors: ArrayLike | None = None,
        texts: Sequence[str] | None = None,
        subjects: Sequence[str | None] | None = None,
        source: str | None = None,
        idempotency_key: str | None = None,
        packed: bool = True,
    ) -> LearnResponse:
        """``POST /v1/models/{name}/learn`` (``learn``): one batch, all or nothing; ids must be new.

        Give ``vectors`` (an ``(n, d)`` array) or ``texts``. The request carries
        ``idempotency_key`` (a fresh UUID if omitted), so retries after a lost answer get the
        first answer instead of learning twice.
        """
        inputs = self._inputs(vectors, texts, packed, "vector_base64", "vector", "text")
        if not len(ids) == len(labels) == len(inputs) or (subjects is not None and len(subjects) != len(ids)):
            raise ValueError("ids, labels, the inputs and subjects (when given) must have the same length.")
        samples = []
        for i, (sample_id, label) in enumerate(zip(ids, labels, strict=True)):
            sample: dict[str, Any] = {"id": sample_id, "label": label, **inputs[i]}
            if subjects is not None and subjects[i] is not None:
                sample["subject"] = subjects[i]
            samples.append(sample)
        body: dict[str, Any] = {"samples": samples, **({"source": source} if source is not None else {})}
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        answer = self._request("POST", f"/v1/models/{name}/learn", retry=True, json=body, headers=headers)
        return self._typed(LearnResponse, answer)

    def forget(
        self,
        name: str,
        *,
        ids: Sequence[str] | None = None,
        subjects: Sequence[str] | None = None,
        classes: Sequence[Label] | None = None,
    ) -> ForgetReceiptResponse:
        """``POST /v1/models/{name}/forget`` (``forget``): exactly one of ``ids``, ``subjects``, ``classes``.

        ``certificate_after`` of the receipt equals that of a refit on the remaining samples.
        """
        given = {"ids": ids, "subjects": subjects, "classes": classes}
        body = {k: list(v) for k, v in given.items() if v is not None}
        answer = self._request("POST", f"/v1/models/{name}/forget", retry=False, json=body)
        return self._typed(ForgetReceiptResponse, answer)

    # -- steering ---------------------------------------------------------------------------

    def steering(self, name: str) -> SteeringResponse:
        """``GET /v1/models/{name}/steering`` (``learn``): the memory head's vote weights."""
        return self._typed(SteeringResponse, self._request("GET", f"/v1/models/{name}/steering", retry=True))

    def steer(
        self,
        name: str,
        *,
        classes: Mapping[Label, float] | None = None,
        subjects: Mapping[str, float] | None = None,
        ids: Mapping[str, float] | None = None,
    ) -> SteeringResponse:
        """``POST /v1/models/{name}/steer`` (``learn``): set vote weights (0 silences, 1 restores)."""
        body = {
            "classes": [{"label": k, "weight": w} for k, w in (classes or {}).items()],
            "subjects": [{"subject": k, "weight": w} for k, w in (subjects or {}).items()],
            "ids": [{"id": k, "weight": w} for k, w in (ids or {}).items()],
        }
        answer = self._request("POST", f"/v1/models/{name}/steer", retry=False, json=body)
        return self._typed(SteeringResponse, answer)

    # -- predict ----------------------------------------------------------------------------

    def predict(
        self,
        name: str,
        *,
        vectors: ArrayLike | None = None,
        texts: Sequence[str] | None = None,
        top_k: int | None = None,
        neighbours: int | None = None,
        packed: bool = True,
    ) -> PredictResponse:
        """``POST /v1/models/{name}/predict`` (``predict``): labels, top-k, OOD scores, ``clipped``.

        Give ``vectors`` or ``texts``; ``top_k`` and ``neighbours`` default to the service's.
        """
        inputs = self._inputs(vectors, texts, packed, "vectors_base64", "vectors", "texts")
        field = next(iter(inputs[0])) if inputs else "vectors"
        body: dict[str, Any] = {field: [item[field] for item in inputs]}
        body |= {k: v for k, v in (("top_k", top_k), ("neighbours", neighbours)) if v is not None}
        answer = self._request("POST", f"/v1/models/{name}/predict", retry=True, json=body)
        return self._typed(PredictResponse, answer)

    @staticmethod
    def _inputs(
        vectors: ArrayLike | None, texts: Sequence[str] | None, packed: bool, packed_key: str, key: str, text_key: str
    ) -> list[dict[str, Any]]:
        """One ``{field: value}`` per input: packed vectors, vectors as numbers, or texts."""
        if (vectors is None) == (texts is None):
            raise ValueError("Give either vectors or texts.")
        if texts is not None:
            return [{text_key: text} for text in texts]
        matrix = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        encode: Callable[[Any], Any] = pack if packed else (lambda row: row.tolist())
        return [{packed_key if packed else key: encode(row)} for row in matrix]

    # -- audit ------------------------------------------------------------------------------

    def verify(self, name: str) -> dict[str, Any]:
        """``GET /v1/models/{name}/verify`` (``admin``): the chain, the statistics and a refit checked; ``ok``."""
        return dict(self._request("GET", f"/v1/models/{name}/verify", retry=True).json())

    def events(
        self,
        name: str,
        *,
        after: int = 0,
        limit: int = 100,
        kind: Literal["create", "learn", "forget", "steer"] | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> list[dict[str, Any]]:
        """``GET /v1/models/{name}/events`` (``admin``): a page of the hash-chained log (``seq > after``)."""
        query = {"after": after, "limit": limit, "kind": kind, "since": since, "until": until}
        params = {k: v for k, v in query.items() if v is not None}
        return list(self._request("GET", f"/v1/models/{name}/events", retry=True, params=params).json())

    # -- lookups (see erasable.service.routes.lookups) --------------------------------------

    def whoami(self) -> dict[str, Any]:
        """``GET /v1/whoami``: this key's id, model and scopes."""
        return dict(self._request("GET", "/v1/whoami", retry=True).json())

    def overview(self) -> list[dict[str, Any]]:
        """``GET /v1/overview``: one summary per model this key may predict on."""
        return list(self._request("GET", "/v1/overview", retry=True).json())

    def samples(self, name: str, *, subject: str | None = None, id: str | None = None) -> dict[str, Any]:
        """``GET /v1/models/{name}/samples`` (``forget``): what is held about a subject or an id; no embeddings."""
        params = {k: v for k, v in (("subject", subject), ("id", id)) if v is not None}
        return dict(self._request("GET", f"/v1/models/{name}/samples", retry=True, params=params).json())

    def receipt(self, name: str, seq: int) -> dict[str, Any]:
        """``GET /v1/models/{name}/receipts/{seq}`` (``forget``): the receipt of a forget event."""
        return dict(self._request("GET", f"/v1/models/{name}/receipts/{seq}", retry=True).json())

    def audit(
        self,
        name: str,
        *,
        ids: Sequence[str] | None = None,
        subjects: Sequence[str] | None = None,
        held_out: int = 1000,
        seed: int = 0,
    ) -> dict[str, Any]:
        """``POST /v1/models/{name}/audit`` (``forget``): a forget request audited on a copy against a refit.

        It changes nothing, so it is retried like a read.
        """
        body: dict[str, Any] = {"held_out": held_out, "seed": seed}
        body.update({k: list(v) for k, v in (("ids", ids), ("subjects", subjects)) if v is not None})
        return dict(self._request("POST", f"/v1/models/{name}/audit", retry=True, json=body).json())
