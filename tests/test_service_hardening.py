"""Attacks on the service that once broke it (issue 12): each is replayed and must now be refused with 4xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from erasable.ledger.store import LedgerStore
from tests.conftest import unit_rows
from tests.test_service import DIM, Api, packed, samples

JSON = {"Content-Type": "application/json"}
HUGE = 1180591620717411303424  # 2**70: no int64


def served(location: str, **options: Any) -> Iterator[Api]:
    """An :class:`Api` over a new store at ``location`` with model ``m`` of ``tests.test_service``'s fixture."""
    pytest.importorskip("fastapi")
    store = LedgerStore(location)
    api = Api(store, **options)
    assert api.call("POST", "/v1/models", json={"name": "m", "input_dim": DIM, "head": "memory"}).status_code == 201
    assert api.call("POST", "/v1/models/m/learn", json={"samples": samples(np.random.default_rng(0), 0, 30)})
    yield api
    store.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from served(str(tmp_path / "ledger.db"))


@pytest.fixture(params=["sqlite", "postgresql"])
def any_api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    """The same on SQLite and on a real PostgreSQL server."""
    sqlite = request.param == "sqlite"
    yield from served(str(tmp_path / "ledger.db") if sqlite else request.getfixturevalue("postgres_database_url"))


def raw(api: Api, path: str, text: str, scope: str = "admin") -> Any:
    """POST ``text`` as it is: JSON escapes such as ``\\udfff`` reach the server unencoded."""
    return api.call("POST", path, scope, content=text.encode(), headers=JSON)


def sample_json(**fields: str) -> str:
    base = {"id": '"n1"', "label": '"cat"', "vector": json.dumps([0.1] * DIM)}
    base.update(fields)
    return '{"samples": [{' + ", ".join(f'"{k}": {v}' for k, v in base.items()) + "}]}"


def test_integers_beyond_int64_are_refused_not_a_server_error(api: Api) -> None:
    before = api.state()
    for label in (HUGE, 2**63, -(2**63) - 1):
        learn = {"samples": [{"id": "big", "label": label, "vector": [0.1] * DIM}]}
        response = api.call("POST", "/v1/models/m/learn", "learn", json=learn)
        assert response.status_code == 422, response.text
    response = api.call("POST", "/v1/models/m/forget", "forget", json={"classes": [HUGE]})
    assert response.status_code == 422, response.text
    assert api.state() == before
    edge = {"samples": [{"id": "edge", "label": 2**63 - 1, "vector": [0.1] * DIM}]}
    assert api.call("POST", "/v1/models", json={"name": "ints", "input_dim": DIM}).status_code == 201
    assert api.call("POST", "/v1/models/ints/learn", "learn", json=edge).status_code == 200
    assert api.call("GET", "/v1/models/ints").json()["classes"] == [2**63 - 1]


def test_nul_in_ids_subjects_and_sources_is_refused_on_every_store(any_api: Api) -> None:
    before = any_api.state()
    for body in (
        sample_json(id='"a\\u0000b"'),
        sample_json(subject='"a\\u0000b"'),
        sample_json(label='"a\\u0000b"'),
        '{"source": "a\\u0000b", ' + sample_json()[1:],
    ):
        response = raw(any_api, "/v1/models/m/learn", body, "learn")
        assert response.status_code == 422, (body, response.text)
    for kind in ("ids", "subjects"):
        response = raw(any_api, "/v1/models/m/forget", f'{{"{kind}": ["s1\\u0000"]}}', "forget")
        assert response.status_code == 422, response.text
    assert any_api.state() == before
    assert any_api.store.verify("m").ok


def test_a_lone_surrogate_label_is_refused_and_cannot_break_reads(api: Api) -> None:
    before = api.state()
    for body in (sample_json(label='"\\udfff"'), sample_json(label='"ok\\ud800"')):
        response = raw(api, "/v1/models/m/learn", body, "learn")
        assert response.status_code == 422, response.text
    assert raw(api, "/v1/models/m/forget", '{"classes": ["\\udfff"]}', "forget").status_code == 422
    steer = '{"classes": [{"label": "\\udfff", "weight": 0}]}'
    assert raw(api, "/v1/models/m/steer", steer, "learn").status_code == 422
    assert api.state() == before
    assert api.call("GET", "/v1/models/m").status_code == 200
    predict = api.call("POST", "/v1/models/m/predict", "predict", json={"vectors": [[0.1] * DIM]})
    assert predict.status_code == 200
    assert raw(api, "/v1/models/m/learn", sample_json(label='"caf\\u00e9"'), "learn").status_code == 200


def test_labels_have_a_length_bound(api: Api) -> None:
    before = api.state()
    body = {"samples": [{"id": "long", "label": "x" * 257, "vector": [0.1] * DIM}]}
    assert api.call("POST", "/v1/models/m/learn", "learn", json=body).status_code == 422
    assert api.state() == before


def test_packed_vectors_with_an_idempotency_key(api: Api) -> None:
    rng = np.random.default_rng(7)
    vectors = unit_rows(rng, 2, DIM).astype("<f4")
    batch = [{"id": f"p{i}", "label": "cat", "vector_base64": packed(v)} for i, v in enumerate(vectors)]
    key = {"Idempotency-Key": "packed-1"}
    first = api.call("POST", "/v1/models/m/learn", "learn", json={"samples": batch}, headers=key)
    assert first.status_code == 200, first.text
    again = api.call("POST", "/v1/models/m/learn", "learn", json={"samples": batch}, headers=key)
    assert again.status_code == 200 and again.json() == first.json()
    other = [{**batch[0], "vector_base64": packed(vectors[1])}, batch[1]]  # the same ids, other bytes
    assert api.call("POST", "/v1/models/m/learn", "learn", json={"samples": other}, headers=key).status_code == 409
    assert api.state()[0] == first.json()["seq"] and api.store.load_model("m").count == 32
