"""The service as a user meets it (issue 14): bodies sent the way curl sends them, and /docs with no network."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from erasable.ledger.keys import KeyRing
from erasable.ledger.store import LedgerStore
from erasable.service.app import create_app


@pytest.fixture
def client(tmp_path: Path) -> tuple[TestClient, dict[str, str]]:
    store = LedgerStore(tmp_path / "ledger.db")
    token, _ = KeyRing(store).create(scopes=["admin"])
    return TestClient(create_app(store)), {"Authorization": f"Bearer {token}"}


CURL_FORM = "application/x-www-form-urlencoded"  # what `curl -d` labels its body with
MODEL = b'{"name": "m", "input_dim": 2, "feature_map": "identity"}'  # identity features: small statistics


@pytest.mark.parametrize("content_type", [None, CURL_FORM, "application/json", "application/json; charset=utf-8"])
def test_json_bodies_are_read_whatever_curl_labels_them(
    client: tuple[TestClient, dict[str, str]], content_type: str | None
) -> None:
    http, auth = client
    headers = auth if content_type is None else {**auth, "Content-Type": content_type}
    created = http.post("/v1/models", content=MODEL, headers=headers)
    assert created.status_code == 201, created.text
    body = b'{"samples": [{"id": "1", "label": "a", "vector": [1, 0]}, {"id": "2", "label": "b", "vector": [0, 1]}]}'
    assert http.post("/v1/models/m/learn", content=body, headers=headers).json()["count"] == 2
    answer = http.post("/v1/models/m/predict", content=b'{"vectors": [[0.9, 0.1]]}', headers=headers)
    assert answer.json()["predictions"][0]["label"] == "a"


def test_other_body_types_are_still_refused(client: tuple[TestClient, dict[str, str]]) -> None:
    http, auth = client
    answer = http.post("/v1/models", content=MODEL, headers={**auth, "Content-Type": "text/plain"})
    assert answer.status_code == 422
    malformed = http.post("/v1/models", content=b"name=m&input_dim=2", headers={**auth, "Content-Type": CURL_FORM})
    assert malformed.status_code == 422  # a real form is not JSON: refused, nothing created
    assert http.get("/v1/models", headers=auth).json() == []


def _assets(page: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_every_asset_from_the_server_itself(
    client: tuple[TestClient, dict[str, str]], page: str
) -> None:
    http, _ = client
    html = http.get(page)
    assert html.status_code == 200
    assets = _assets(html.text)
    assert assets, html.text
    assert not re.search(r"https?://", html.text), "the page must not reach out to a CDN"
    for asset in assets:
        answer = http.get(asset)
        assert answer.status_code == 200 and len(answer.content) > 1000, asset


def test_swagger_ui_renders_the_openapi_version_the_server_writes(client: tuple[TestClient, dict[str, str]]) -> None:
    http, _ = client
    spec: dict[str, Any] = http.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    bundle = next(a for a in _assets(http.get("/docs").text) if a.endswith("swagger-ui-bundle.js"))
    assert "isOAS31" in http.get(bundle).text  # Swagger UI 5: renders OpenAPI 3.1 (4.x shows an error)


def test_predict_counts_clipped_inputs(client: tuple[TestClient, dict[str, str]]) -> None:
    http, auth = client
    http.post("/v1/models", content=MODEL, headers=auth).raise_for_status()
    samples = [{"id": "1", "label": "a", "vector": [1, 0]}, {"id": "2", "label": "b", "vector": [0, 1]}]
    http.post("/v1/models/m/learn", json={"samples": samples}, headers=auth).raise_for_status()
    vectors = [[0.9, 0.1], [90.0, 10.0], [0.1, -5.0]]  # the last two exceed |x| <= 4
    answer = http.post("/v1/models/m/predict", json={"vectors": vectors}, headers=auth).json()
    assert answer["clipped"] == 2 and len(answer["predictions"]) == 3
    assert http.post("/v1/models/m/predict", json={"vectors": vectors[:1]}, headers=auth).json()["clipped"] == 0
