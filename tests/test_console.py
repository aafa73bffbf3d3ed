"""The console's pages and the API routes it needs, without a browser: headers, scopes, contents, OpenAPI."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

from erasable.ledger.chain import link
from erasable.ledger.keys import KeyRing
from erasable.ledger.store import LedgerStore
from erasable.service.app import create_app
from erasable.service.console import CONTENT_SECURITY_POLICY
from erasable.service.routes.lookups import LOOKUP_LIMIT

STATIC = Path(__file__).resolve().parents[1] / "src" / "erasable" / "service" / "console" / "static"


class Api:
    """A TestClient over a fresh ledger with keys of several scopes, and a model "bank" of 12 samples."""

    def __init__(self, root: Path) -> None:
        self.store = LedgerStore(root / "ledger.db")
        ring = KeyRing(self.store)
        self.tokens = {
            "admin": ring.create(scopes=["admin"])[0],
            "forget": ring.create(model="bank", scopes=["forget"])[0],
            "predict": ring.create(scopes=["predict"])[0],
            "other": ring.create(model="other", scopes=["admin"])[0],
        }
        self.client = TestClient(create_app(self.store))
        for name in ("bank", "other"):  # identity features: small statistics, fast tests
            assert self.post("/v1/models", {"name": name, "input_dim": 3, "feature_map": "identity"}).status_code == 201
        rng = np.random.default_rng(0)
        samples = [
            {"id": f"q{i}", "label": ["card", "atm"][i % 2], "subject": f"c{i % 3}", "vector": v.tolist()}
            for i, v in enumerate(rng.uniform(-1, 1, (12, 3)))
        ]
        assert self.post("/v1/models/bank/learn", {"samples": samples, "source": "crm"}).status_code == 200

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def get(self, url: str, who: str = "admin", **params: Any) -> Any:
        return self.client.get(url, params=params, headers=self.headers(who))

    def post(self, url: str, body: dict[str, Any], who: str = "admin") -> Any:
        return self.client.post(url, json=body, headers=self.headers(who))


@pytest.fixture
def api(tmp_path: Path) -> Api:
    return Api(tmp_path)


def test_console_pages_carry_a_strict_policy_and_refuse_framing(api: Api) -> None:
    for url in ["/console", "/console/static/console.js", "/console/static/console.css", "/console/static/favicon.svg"]:
        response = api.client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY and "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert api.client.get("/console/static/console.js").headers["content-type"].startswith("text/javascript")
    for missing in ["/console/static/index.html.bak", "/console/static/..%2F__init__.py", "/console/static/x.js"]:
        assert api.client.get(missing).status_code == 404, missing


def test_the_page_has_no_inline_script_or_style_and_the_script_never_writes_html() -> None:
    page = (STATIC / "index.html").read_text()
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/console/static/console.js" defer>']
    assert "<style" not in page and "style=" not in page and not re.search(r"\son[a-z]+=", page)
    script = (STATIC / "console.js").read_text()
    for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"]:
        assert sink not in script, sink
    assert "localStorage" not in script and "sessionStorage.setItem(KEY" in script


def test_a_cross_site_form_cannot_forget(api: Api) -> None:
    """A form posted from another site carries no Authorization header: refused, nothing changed."""
    before = api.get("/v1/models/bank").json()
    for body, kind in [("subjects=c0", "application/x-www-form-urlencoded"), ('{"subjects": ["c0"]}', "text/plain")]:
        headers = {"Content-Type": kind, "Origin": "https://evil.example"}
        response = api.client.post("/v1/models/bank/forget", content=body, headers=headers)
        assert response.status_code in (401, 422), response.text
    assert api.get("/v1/models/bank").json() == before
    assert "access-control-allow-origin" not in api.client.options("/v1/models/bank/forget").headers


def test_whoami_names_the_key_and_its_scopes_never_its_secret(api: Api) -> None:
    me = api.get("/v1/whoami", "forget").json()
    assert me["model"] == "bank" and me["scopes"] == ["forget"]
    assert api.tokens["forget"].split("_")[-1] not in str(me)
    assert api.client.get("/v1/whoami").status_code == 401
    assert api.client.get("/v1/whoami", headers={"Authorization": "Bearer erasable_x_y"}).status_code == 401


def test_overview_summarizes_the_models_a_key_may_predict_on(api: Api) -> None:
    everything = api.get("/v1/overview").json()
    assert [m["name"] for m in everything] == ["bank", "other"]
    bank = everything[0]
    info = api.get("/v1/models/bank").json()
    assert (bank["count"], bank["class_count"], bank["certificate"], bank["seq"]) == (12, 2, info["certificate"], 2)
    assert (bank["encoder"], bank["input_dim"], bank["head"], bank["feature_map"]) == (None, 3, "ridge", "identity")
    assert bank["last_event"]["kind"] == "learn" and bank["last_event"]["seq"] == 2
    assert [m["name"] for m in api.get("/v1/overview", "other").json()] == ["other"]
    assert api.get("/v1/overview", "forget").json() == []  # a forget-only key may predict on nothing


def test_lookup_lists_what_a_forget_would_remove_and_no_embedding(api: Api) -> None:
    found = api.get("/v1/models/bank/samples", "forget", subject="c1").json()
    assert found["count"] == 4 and found["seq"] == 2 and not found["truncated"]
    assert [s["id"] for s in found["samples"]] == ["q1", "q10", "q4", "q7"]  # learned together: by id
    assert found["classes"] == [{"label": "atm", "count": 2}, {"label": "card", "count": 2}]
    assert {s["source"] for s in found["samples"]} == {"crm"} and found["first_learned"] == found["last_learned"]
    assert set(found["samples"][0]) == {"id", "subject", "label", "source", "learned_at"}
    one = api.get("/v1/models/bank/samples", "forget", id="q5").json()
    assert one["count"] == 1 and one["samples"][0]["subject"] == "c2" and one["classes"][0]["label"] == "atm"
    receipt = api.post("/v1/models/bank/forget", {"subjects": ["c1"]}, "forget").json()
    assert receipt["count"] == found["count"]
    after = api.get("/v1/models/bank/samples", "forget", subject="c1").json()
    assert (after["count"], after["samples"], after["classes"], after["seq"]) == (0, [], [], receipt["seq"])


def test_lookup_needs_the_forget_scope_on_the_model(api: Api) -> None:
    url = "/v1/models/bank/samples"
    assert api.client.get(url, params={"subject": "c1"}).status_code == 401
    assert api.get(url, "predict", subject="c1").status_code == 403
    assert api.get(url, "other", subject="c1").status_code == 403
    assert api.get("/v1/models/nope/samples", subject="c1").status_code == 404
    for params in [{}, {"subject": "c1", "id": "q1"}, {"subject": ""}, {"subject": "x" * 257}, {"id": "a\x00b"}]:
        assert api.get(url, **params).status_code == 422, params


def test_lookup_lists_at_most_the_limit_but_counts_everything(api: Api) -> None:
    n = LOOKUP_LIMIT + 5
    samples = [{"id": f"m{i}", "label": i % 3, "subject": "many", "vector": [0.1, 0.2, 0.3]} for i in range(n)]
    assert api.post("/v1/models", {"name": "big", "input_dim": 3, "feature_map": "identity"}).status_code == 201
    assert api.post("/v1/models/big/learn", {"samples": samples}).status_code == 200
    found = api.get("/v1/models/big/samples", subject="many").json()
    assert found["count"] == n and len(found["samples"]) == LOOKUP_LIMIT and found["truncated"]
    assert found["classes"] == [{"label": k, "count": len(range(k, n, 3))} for k in range(3)]


def test_receipt_is_the_logged_forget_and_its_hash_checks(api: Api) -> None:
    answer = api.post("/v1/models/bank/forget", {"ids": ["q0", "q3"]}, "forget").json()
    receipt = api.get(f"/v1/models/bank/receipts/{answer['seq']}", "forget").json()
    event = receipt["event"]
    assert (event["seq"], event["kind"], event["count"]) == (answer["seq"], "forget", 2)
    assert (event["certificate_before"], event["certificate_after"]) == (
        answer["certificate_before"],
        answer["certificate_after"],
    )
    assert event["request"] == {"by": "ids"} and len(event["ids"]) == 2 and "q0" not in str(receipt)
    assert link(receipt["previous_hash"], event) == receipt["hash"]
    logged = api.get("/v1/models/bank/events", after=answer["seq"] - 1, limit=1).json()[0]
    assert logged["hash"] == receipt["hash"] and logged["event"] == event
    assert receipt["verify_command"] == "erasable ledger verify bank --store LEDGER"
    assert api.get(receipt["verify_route"]).json()["ok"]
    assert api.get("/v1/models/bank/receipts/2", "forget").status_code == 404  # a learn
    assert api.get("/v1/models/bank/receipts/99", "forget").status_code == 404
    assert api.get("/v1/models/bank/receipts/0", "forget").status_code == 422
    assert api.get(f"/v1/models/bank/receipts/{answer['seq']}", "predict").status_code == 403


def test_events_filter_by_kind_and_time_and_page_after_the_last_returned(api: Api) -> None:
    for i in range(5):
        api.post("/v1/models/bank/forget", {"ids": [f"q{i}"]})
    forgets = api.get("/v1/models/bank/events", kind="forget", limit=2).json()
    assert [e["seq"] for e in forgets] == [3, 4]
    following = api.get("/v1/models/bank/events", kind="forget", after=4, limit=10).json()
    assert [e["seq"] for e in following] == [5, 6, 7] and {e["event"]["kind"] for e in following} == {"forget"}
    everything = api.get("/v1/models/bank/events", limit=1000).json()
    assert [e["seq"] for e in everything] == list(range(1, 8))
    fourth = everything[3]["event"]["time"]
    since = api.get("/v1/models/bank/events", since=fourth).json()
    assert [e["seq"] for e in since] == [4, 5, 6, 7]
    until = api.get("/v1/models/bank/events", until=fourth).json()
    assert [e["seq"] for e in until] == [1, 2, 3, 4]
    naive = fourth.removesuffix("+00:00")  # no offset: UTC
    assert api.get("/v1/models/bank/events", since=naive, until=naive).json() == [everything[3]]
    assert api.get("/v1/models/bank/events", kind="learn").json() == [everything[1]]
    assert api.get("/v1/models/bank/events", kind="nope").status_code == 422
    assert api.get("/v1/models/bank/events", since="yesterday").status_code == 422
    assert api.get("/v1/models/bank/events", "forget", kind="forget").status_code == 403


def test_new_routes_are_documented_in_the_openapi_spec(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    paths = spec["paths"]
    for route, method in [
        ("/v1/whoami", "get"),
        ("/v1/overview", "get"),
        ("/v1/models/{name}/samples", "get"),
        ("/v1/models/{name}/receipts/{seq}", "get"),
        ("/v1/models/{name}/audit", "post"),
    ]:
        operation = paths[route][method]
        assert operation["description"] and operation["responses"]["200"]["content"], route
    events = {p["name"] for p in paths["/v1/models/{name}/events"]["get"]["parameters"]}
    assert {"after", "limit", "kind", "since", "until"} <= events
    assert not any(route.startswith("/console") for route in paths)


def test_audit_compares_a_copy_with_a_refit_and_changes_nothing(api: Api) -> None:
    before = api.get("/v1/models/bank").json()
    report = api.post("/v1/models/bank/audit", {"subjects": ["c1"], "held_out": 3}, "forget").json()
    assert (report["seq"], report["certificate"], report["forgotten"], report["held_out"]) == (
        before["seq"],
        before["certificate"],
        4,
        3,
    )
    assert report["certificates_equal"] and report["certificate_served"] == report["certificate_refit"]
    assert report["certificate_served"] != before["certificate"]  # the copy lost the request and the held-out
    assert report["verdict"] == "certificates EQUAL; ledger hash chain verified (2 events)"
    assert [row["metric"].split(" (")[0] for row in report["metrics"]][:3] == [
        "forget-set accuracy",
        "retained-set accuracy",
        "test accuracy",
    ]
    assert "(5 samples)" in report["metrics"][1]["metric"] and "(3 samples)" in report["metrics"][2]["metric"]
    assert [d["disagreement"] for d in report["divergence"]][1] == 0.0  # canonical head: same statistics
    assert report["markdown"].startswith("# Unlearning audit")
    if report["plots"]:  # with matplotlib (extra 'audit')
        assert sorted(p["name"] for p in report["plots"]) == ["accuracy.png", "mia.png"]
        assert all(base64.b64decode(p["png_base64"]).startswith(b"\x89PNG") for p in report["plots"])
    assert api.get("/v1/models/bank").json() == before


def test_audit_refusals(api: Api) -> None:
    url = "/v1/models/bank/audit"
    assert api.post(url, {"subjects": ["c1"]}, "predict").status_code == 403
    assert api.post(url, {"subjects": ["c1"]}, "other").status_code == 403
    assert api.post(url, {"subjects": ["nobody"]}).status_code == 404
    assert api.post(url, {"ids": ["q1"], "subjects": ["c1"]}).status_code == 422
    assert api.post(url, {"ids": ["q1"], "held_out": 0}).status_code == 422
    assert api.post(url, {"ids": [f"q{i}" for i in range(11)]}).status_code == 422  # one sample left outside
