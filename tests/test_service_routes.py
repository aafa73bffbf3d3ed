"""The API's routes stand alone: one router, mounted on a bare app that holds a service state, answers as in the
full API; and splitting the routes out of ``create_app`` (issue 13) left the API's operations as they were."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from erasable.ledger.keys import KeyRing
from erasable.ledger.store import LedgerStore
from erasable.service.app import create_app
from erasable.service.dependencies import ServiceState
from erasable.service.metrics import ServiceMetrics
from erasable.service.routes import models
from erasable.service.served import ServedModels

#: Every operation of the API as it was before its routes left ``create_app``: method, path, operation id.
OPERATIONS = [
    ("GET", "/health", "health_health_get"),
    ("GET", "/metrics", "prometheus_metrics_get"),
    ("GET", "/v1/models", "list_models_v1_models_get"),
    ("POST", "/v1/models", "create_model_v1_models_post"),
    ("GET", "/v1/models/{name}", "model_info_v1_models__name__get"),
    ("DELETE", "/v1/models/{name}", "delete_model_v1_models__name__delete"),
    ("POST", "/v1/models/{name}/learn", "learn_v1_models__name__learn_post"),
    ("POST", "/v1/models/{name}/forget", "forget_v1_models__name__forget_post"),
    ("GET", "/v1/models/{name}/steering", "steering_v1_models__name__steering_get"),
    ("POST", "/v1/models/{name}/steer", "steer_v1_models__name__steer_post"),
    ("POST", "/v1/models/{name}/predict", "predict_v1_models__name__predict_post"),
    ("GET", "/v1/models/{name}/verify", "verify_v1_models__name__verify_get"),
    ("GET", "/v1/models/{name}/events", "list_events_v1_models__name__events_get"),
    ("GET", "/v1/whoami", "whoami_v1_whoami_get"),
    ("GET", "/v1/overview", "overview_v1_overview_get"),
    ("GET", "/v1/models/{name}/samples", "lookup_v1_models__name__samples_get"),
    ("GET", "/v1/models/{name}/receipts/{seq}", "receipt_v1_models__name__receipts__seq__get"),
    ("POST", "/v1/models/{name}/audit", "audit_v1_models__name__audit_post"),
]


def test_the_api_keeps_its_operations_in_their_order(tmp_path: Path) -> None:
    spec = create_app(LedgerStore(tmp_path / "ledger.db")).openapi()
    found = [
        (method.upper(), path, op["operationId"]) for path, ops in spec["paths"].items() for method, op in ops.items()
    ]
    assert found == OPERATIONS


def test_one_router_serves_alone_over_a_service_state(tmp_path: Path) -> None:
    store = LedgerStore(tmp_path / "ledger.db")
    app = FastAPI()
    keys = KeyRing(store)
    app.state.service = ServiceState(
        store=store,
        served=ServedModels(store),
        keys=keys,
        metrics=ServiceMetrics(),
        max_classes=10,
        public_metrics=False,
    )
    app.include_router(models.router)
    client = TestClient(app)
    admin = {"Authorization": f"Bearer {keys.create(scopes=['admin'])[0]}"}
    predictor = {"Authorization": f"Bearer {keys.create(scopes=['predict'])[0]}"}

    created = client.post("/v1/models", json={"name": "bank", "input_dim": 2}, headers=admin)
    assert created.status_code == 201 and created.json()["count"] == 0
    assert client.get("/v1/models", headers=predictor).json() == ["bank"]
    assert client.get("/v1/models").status_code == 401
    assert client.delete("/v1/models/bank", headers=predictor).status_code == 403
    assert client.post("/v1/models/bank/learn", json={"samples": []}, headers=admin).status_code == 404  # not mounted
    store.close()
