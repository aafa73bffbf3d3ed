"""The HTTP API in process: scopes, bad input refused with nothing changed, idempotency, forgetting, evidence."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from erasable.ledger.keys import KeyRing
from erasable.ledger.store import LedgerStore
from erasable.model import Model
from tests.conftest import unit_rows

DIM = 8


class Api:
    """A test client with keys of every scope."""

    def __init__(self, store: LedgerStore, **options: Any) -> None:
        from erasable.service.app import create_app

        self.store = store
        self.client = TestClient(create_app(store, **{"max_body": 2**20, **options}))
        ring = KeyRing(store)
        self.tokens = {scope: ring.create(scopes=[scope])[0] for scope in ("predict", "learn", "forget", "admin")}

    def call(self, method: str, path: str, scope: str = "admin", **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[scope]}", **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def state(self, name: str = "m") -> tuple[int, str]:
        info = self.call("GET", f"/v1/models/{name}").json()
        return info["seq"], info["certificate"]


def samples(rng: np.random.Generator, start: int, n: int, dim: int = DIM) -> list[dict[str, Any]]:
    vectors = unit_rows(rng, n, dim)
    return [
        {"id": f"s{i}", "label": ["cat", "dog", "eel"][i % 3], "subject": f"u{i % 4}", "vector": v.tolist()}
        for i, v in zip(range(start, start + n), vectors, strict=True)
    ]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    pytest.importorskip("fastapi")
    store = LedgerStore(tmp_path / "ledger.db")
    api = Api(store)
    model = {"name": "m", "input_dim": DIM, "head": "memory", "feature_map": "identity"}  # 8 x 8 statistics, not 4096
    assert api.call("POST", "/v1/models", json=model).status_code == 201
    assert api.call("POST", "/v1/models/m/learn", "learn", json={"samples": samples(np.random.default_rng(0), 0, 30)})
    yield api
    store.close()


def test_scopes_and_keys(api: Api) -> None:
    before = api.state()
    assert api.client.post("/v1/models/m/forget", json={"ids": ["s1"]}).status_code == 401
    bad = {"Authorization": "Bearer erasable_0123456789abcdef_wrong"}
    assert api.client.post("/v1/models/m/forget", json={"ids": ["s1"]}, headers=bad).status_code == 401
    for scope, path, body in [
        ("predict", "/v1/models/m/forget", {"ids": ["s1"]}),
        ("learn", "/v1/models/m/forget", {"ids": ["s1"]}),
        ("forget", "/v1/models/m/learn", {"samples": samples(np.random.default_rng(1), 100, 1)}),
        ("predict", "/v1/models", {"name": "x", "input_dim": 2}),
        ("learn", "/v1/models/m/predict", {"vectors": [[0.1] * DIM]}),
    ]:
        response = api.call("POST", path, scope, json=body)
        assert response.status_code == 403, (scope, path)
        assert "scope" in response.json()["detail"]
    assert api.call("GET", "/v1/models/m/verify", "forget").status_code == 403
    assert api.call("DELETE", "/v1/models/m", "learn").status_code == 403
    assert api.state() == before

    only_other, _ = KeyRing(api.store).create(model="other", scopes=["admin"])
    other = {"Authorization": f"Bearer {only_other}"}
    assert api.client.post("/v1/models/m/forget", json={"ids": ["s1"]}, headers=other).status_code == 403
    assert api.client.get("/v1/models", headers=other).json() == []
    assert api.state() == before


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/models/m/learn", {"samples": [{"id": "n1", "label": "cat", "vector": [0.1] * (DIM - 1)}]}, 422),
        ("/v1/models/m/learn", {"samples": [{"id": "n1", "label": "cat", "vector": [9.0] * DIM}]}, 422),
        ("/v1/models/m/learn", {"samples": [{"id": "s1", "label": "cat", "vector": [0.1] * DIM}]}, 422),
        ("/v1/models/m/learn", {"samples": [{"id": "n1", "label": "cat", "vector": [0.1] * DIM}] * 2}, 422),
        ("/v1/models/m/learn", {"samples": [{"id": "n1", "label": True, "vector": [0.1] * DIM}]}, 422),
        ("/v1/models/m/learn", {"samples": [{"id": "n1", "label": "a", "vector": [0.1] * DIM, "extra": 1}]}, 422),
        ("/v1/models/m/learn", {"samples": [{"id": "n1", "label": "a", "text": "hello"}]}, 422),
        ("/v1/models/m/learn", {"samples": [{"id": "n1", "label": 3, "vector": [0.1] * DIM}]}, 422),
        ("/v1/models/m/learn", {"samples": []}, 422),
        ("/v1/models/m/forget", {"ids": ["nope"]}, 404),
        ("/v1/models/m/forget", {"ids": ["s1", "s1"]}, 422),
        ("/v1/models/m/forget", {"subjects": ["nobody"]}, 404),
        ("/v1/models/m/forget", {"ids": ["s1"], "classes": ["cat"]}, 422),
        ("/v1/models/m/forget", {}, 422),
        ("/v1/models/m/predict", {"vectors": [[0.1] * (DIM + 1)]}, 422),
        ("/v1/models/m/predict", {"texts": ["this model takes vectors"]}, 422),
        ("/v1/models/nope/predict", {"vectors": [[0.1] * DIM]}, 404),
        ("/v1/models", {"name": "../etc", "input_dim": 2}, 422),
        ("/v1/models", {"name": "m", "input_dim": 2}, 409),
        ("/v1/models", {"name": "ok", "input_dim": 2, "encoder": "text"}, 422),
        ("/v1/models", {"name": "ok", "input_dim": 8, "feature_map": "random_relu", "width": 16384}, 422),
        ("/v1/models", {"name": "ok", "input_dim": 5000}, 422),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(api: Api, path: str, body: dict[str, Any], status: int) -> None:
    before = api.state()
    response = api.call("POST", path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert api.state() == before
    assert api.store.verify("m").ok


def test_malformed_non_finite_and_oversized_bodies(api: Api) -> None:
    before = api.state()
    for raw in [b"{not json", b'{"vectors": [[NaN' + b", 0.1" * (DIM - 1) + b"]]}", b'{"vectors": [[Infinity]]}']:
        response = api.call("POST", "/v1/models/m/predict", content=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == 422
    nan_sample = b'{"samples": [{"id": "n", "label": "a", "vector": [NaN' + b", 0.1" * (DIM - 1) + b"]}]}"
    response = api.call("POST", "/v1/models/m/learn", content=nan_sample, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    huge = {"samples": samples(np.random.default_rng(2), 1000, 8000)}  # about 1.9 MiB > the 1 MiB limit
    assert api.call("POST", "/v1/models/m/learn", json=huge).status_code == 413
    assert api.call("GET", "/v1/models/m/events", params={"limit": 0}).status_code == 422
    assert api.call("GET", "/v1/models/..%2F..%2Fetc/events").status_code in (404, 422)
    assert api.state() == before


def test_idempotent_learn(api: Api) -> None:
    body = {"samples": samples(np.random.default_rng(3), 100, 5)}
    key = {"Idempotency-Key": "batch-100"}
    first = api.call("POST", "/v1/models/m/learn", "learn", json=body, headers=key).json()
    again = api.call("POST", "/v1/models/m/learn", "learn", json=body, headers=key).json()
    assert first == again and api.state()[0] == first["seq"]
    other = {"samples": samples(np.random.default_rng(4), 200, 5)}
    assert api.call("POST", "/v1/models/m/learn", "learn", json=other, headers=key).status_code == 409
    assert api.state()[0] == first["seq"]


def test_forget_returns_the_refit_certificate(api: Api) -> None:
    rng = np.random.default_rng(0)
    kept = [s for s in samples(rng, 0, 30) if s["subject"] != "u1" and s["label"] != "dog" and s["id"] != "s0"]
    for body in ({"ids": ["s0"]}, {"subjects": ["u1"]}, {"classes": ["dog"]}):
        receipt = api.call("POST", "/v1/models/m/forget", "forget", json=body).json()
        assert receipt["certificate_before"] != receipt["certificate_after"]
    reference = Model(api.store.config("m"))
    reference.learn(np.array([s["vector"] for s in kept]), [s["label"] for s in kept], ids=[s["id"] for s in kept])
    assert receipt["certificate_after"] == reference.certificate() == api.state()[1]
    verdict = api.call("GET", "/v1/models/m/verify").json()
    assert verdict["ok"] and verdict["live_ids_match_log"] and verdict["events"] == 5
    events = api.call("GET", "/v1/models/m/events", params={"after": 2, "limit": 2}).json()
    assert [e["event"]["kind"] for e in events] == ["forget", "forget"]
    assert all("s0" not in str(e) and "u1" not in str(e) for e in events)


def test_predict_reports_state_and_evidence(api: Api) -> None:
    query = samples(np.random.default_rng(0), 0, 3)
    answer = api.call("POST", "/v1/models/m/predict", "predict", json={"vectors": [q["vector"] for q in query]})
    body = answer.json()
    assert answer.status_code == 200 and (body["seq"], body["certificate"]) == api.state()
    first = body["predictions"][0]
    assert first["label"] == "cat" and first["neighbours"][0]["id"] == "s0"  # a learned sample is its own neighbour
    assert abs(first["neighbours"][0]["similarity"] - 1) < 1e-3
    assert sum(t["probability"] for t in first["top"]) <= 1 + 1e-9 and np.isfinite(first["ood_score"])


def test_delete_model_and_metrics(api: Api) -> None:
    assert api.call("DELETE", "/v1/models/m").status_code == 204
    assert api.call("GET", "/v1/models/m").status_code == 404
    assert api.call("DELETE", "/v1/models/m").status_code == 404
    metrics = api.call("GET", "/metrics").text
    assert 'erasable_requests_total{method="DELETE",route="/v1/models/{name}",status="204"} 1.0' in metrics
    assert api.client.get("/openapi.json").json()["info"]["title"] == "erasable"


def test_streamed_body_over_the_limit_is_cut_off(api: Api) -> None:
    before = api.state()

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        yield b'{"samples": ['
        for i in range(40_000):
            yield b'{"id": "x%d", "label": "cat", "vector": [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]},' % i
        yield b"]}"

    response = api.call("POST", "/v1/models/m/learn", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert api.state() == before


def test_steering_over_the_api(api: Api) -> None:
    seq, certificate = api.state()
    bad_requests = [
        ({"subjects": [{"subject": "nobody", "weight": 0}]}, 404),
        ({"ids": [{"id": "s1", "weight": 0.5}, {"id": "s1", "weight": 0.2}]}, 422),
        ({"classes": [{"label": "cat", "weight": -1}]}, 422),
        ({"classes": [{"label": "zebra", "weight": 2}]}, 422),
        ({"classes": [{"label": "cat", "weight": 2}], "extra": 1}, 422),
        ({}, 422),
    ]
    for body, status in bad_requests:
        assert api.call("POST", "/v1/models/m/steer", "learn", json=body).status_code == status, body
    assert (
        api.call("POST", "/v1/models/m/steer", "predict", json={"ids": [{"id": "s1", "weight": 0}]}).status_code == 403
    )
    assert api.state() == (seq, certificate)

    response = api.call("POST", "/v1/models/m/steer", "learn", json={"subjects": [{"subject": "u1", "weight": 0}]})
    assert response.status_code == 200, response.text
    assert response.json()["subjects"] == [{"subject": "u1", "weight": 0.0}]
    assert api.state() == (seq + 1, certificate)  # logged, but what was learned is unchanged
    query = {"vectors": unit_rows(np.random.default_rng(5), 4, DIM).tolist(), "neighbours": 12}
    predictions = api.call("POST", "/v1/models/m/predict", "predict", json=query).json()["predictions"]
    for prediction in predictions:
        for n in prediction["neighbours"]:
            assert (n["weight"] == 0.0) == (int(n["id"][1:]) % 4 == 1)  # ids s1, s5, ... are subject u1's
    assert api.store.verify("m").ok

    restarted = Api(api.store)
    assert restarted.call("GET", "/v1/models/m/steering", "learn").json()["subjects"] == [
        {"subject": "u1", "weight": 0.0}
    ]
    assert restarted.call("POST", "/v1/models/m/forget", "forget", json={"subjects": ["u1"]}).status_code == 200
    assert restarted.call("GET", "/v1/models/m/steering", "learn").json()["subjects"] == []


def packed(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def test_packed_vectors_learn_and_predict_exactly_like_json_numbers(api: Api) -> None:
    rng = np.random.default_rng(3)
    vectors = unit_rows(rng, 6, DIM).astype(np.float32)  # what an encoder produces
    as_numbers = [{"id": f"n{i}", "label": "cat", "vector": v.tolist()} for i, v in enumerate(vectors[:3])]
    as_packed = [{"id": f"n{i}", "label": "dog", "vector_base64": packed(v)} for i, v in enumerate(vectors[3:], 3)]
    assert (
        api.call("POST", "/v1/models", json={"name": "twin", "input_dim": DIM, "feature_map": "identity"}).status_code
        == 201
    )
    for name, first, second in (("m", as_numbers, as_packed), ("twin", as_packed, as_numbers)):
        for batch in (first, second):
            assert api.call("POST", f"/v1/models/{name}/learn", "learn", json={"samples": batch}).status_code == 200
    library = Model(api.store.load_model("m").config)
    library.learn(unit_rows(np.random.default_rng(0), 30, DIM), [["cat", "dog", "eel"][i % 3] for i in range(30)])
    library.learn(vectors, ["cat"] * 3 + ["dog"] * 3, ids=[f"n{i}" for i in range(6)])
    assert api.state("m")[1] == library.certificate()  # the same e_q, whichever encoding carried them
    by_numbers = api.call("POST", "/v1/models/m/predict", "predict", json={"vectors": vectors.tolist()}).json()
    by_packed = api.call(
        "POST", "/v1/models/m/predict", "predict", json={"vectors_base64": [packed(v) for v in vectors]}
    )
    assert by_packed.json()["predictions"] == by_numbers["predictions"]


@pytest.mark.parametrize(
    "vector",
    [
        "not base64!",
        base64.b64encode(b"\x00" * 6).decode(),  # not whole float32 values
        packed(np.ones(DIM - 1)),  # the wrong dimension
        packed(np.full(DIM, np.nan)),
    ],
)
def test_bad_packed_vectors_are_refused(api: Api, vector: str) -> None:
    before = api.state()
    predict = api.call("POST", "/v1/models/m/predict", "predict", json={"vectors_base64": [vector]})
    assert predict.status_code == 422, predict.text
    learn = api.call(
        "POST",
        "/v1/models/m/learn",
        "learn",
        json={"samples": [{"id": "new", "label": "cat", "vector_base64": vector}]},
    )
    assert learn.status_code == 422, learn.text
    both = {"vectors_base64": [packed(np.ones(DIM))], "vectors": [[0.1] * DIM]}
    assert api.call("POST", "/v1/models/m/predict", "predict", json=both).status_code == 422
    assert api.state() == before


def test_a_restarted_server_predicts_with_the_ridge_head_its_first_prediction_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first prediction keeps the canonical ridge head in the store; the next server loads it, solving nothing."""
    from erasable.heads import ridge as ridge_module

    store = LedgerStore(tmp_path / "ledger.db")
    first = Api(store)
    model = {"name": "r", "input_dim": DIM, "head": "ridge", "feature_map": "identity"}
    assert first.call("POST", "/v1/models", json=model).status_code == 201
    assert first.call("POST", "/v1/models/r/learn", "learn", json={"samples": samples(np.random.default_rng(1), 0, 30)})
    query = {"vectors": unit_rows(np.random.default_rng(2), 3, DIM).tolist()}
    answer = first.call("POST", "/v1/models/r/predict", "predict", json=query).json()

    def no_solve(*args: object, **kwargs: object) -> None:
        raise AssertionError("the ridge system was factored although the store keeps the head")

    monkeypatch.setattr(ridge_module.PenalizedGram, "cholesky", no_solve)
    restarted = Api(store)
    again = restarted.call("POST", "/v1/models/r/predict", "predict", json=query)
    assert again.status_code == 200 and again.json()["predictions"] == answer["predictions"]
    store.close()


def test_a_kernel_model_is_served_as_the_library_would_refit_it(api: Api) -> None:
    """head=kernel through the API: learn, forget one sample, predict what a refit of the rest predicts."""
    identity = {"name": "k", "input_dim": DIM, "head": "kernel", "feature_map": "identity"}
    refused = api.call("POST", "/v1/models", json=identity)
    assert refused.status_code == 422 and "limit of the random ReLU features" in refused.text, refused.text
    created = api.call("POST", "/v1/models", json={"name": "k", "input_dim": DIM, "head": "kernel", "width": 256})
    assert created.status_code == 201, created.text
    batch = samples(np.random.default_rng(6), 0, 50)
    assert api.call("POST", "/v1/models/k/learn", "learn", json={"samples": batch}).status_code == 200
    assert api.call("POST", "/v1/models/k/forget", "forget", json={"ids": ["s0"]}).status_code == 200
    queries = np.array([s["vector"] for s in batch[:6]])
    body = api.call("POST", "/v1/models/k/predict", "predict", json={"vectors": queries.tolist()}).json()
    refit = Model(api.store.load_model("k").config)
    rest = batch[1:]
    refit.learn(np.array([s["vector"] for s in rest]), [s["label"] for s in rest], ids=[s["id"] for s in rest])
    assert api.state("k")[1] == refit.certificate()
    expected = np.array(refit.classes)[refit.decision_function(queries).argmax(axis=1)]
    assert [p["label"] for p in body["predictions"]] == expected.tolist()
    served = [p["top"][0]["probability"] for p in body["predictions"]]
    np.testing.assert_allclose(served, refit.predict_proba(queries).max(axis=1), rtol=1e-6)
    ood = [p["ood_score"] for p in body["predictions"]]  # a kernel head's: 1 - the top probability
    np.testing.assert_allclose(ood, refit.ood_score(queries), rtol=1e-6, atol=1e-12)


def test_a_ridge_models_ood_scores_are_the_librarys(api: Api) -> None:
    """The service reports the library's OOD score (the ridge head's, softened by its leverage) for a query near
    the samples and for one far from them."""
    assert api.call("POST", "/v1/models", json={"name": "r", "input_dim": DIM, "width": 64}).status_code == 201
    batch = samples(np.random.default_rng(5), 0, 60)
    assert api.call("POST", "/v1/models/r/learn", "learn", json={"samples": batch}).status_code == 200
    library = Model(api.store.load_model("r").config)
    library.learn(np.array([s["vector"] for s in batch]), [s["label"] for s in batch], ids=[s["id"] for s in batch])
    assert api.state("r")[1] == library.certificate()
    queries = np.vstack([batch[0]["vector"], -np.array(batch[0]["vector"])])
    body = api.call("POST", "/v1/models/r/predict", "predict", json={"vectors": queries.tolist()}).json()
    served = [p["ood_score"] for p in body["predictions"]]
    np.testing.assert_allclose(served, library.ood_score(queries), rtol=1e-6, atol=1e-9)
