"""The console in a real browser: Debian's chromium, headless, driven by Playwright, against a real ``erasable serve``.

One server and one browser per module; each test gets a fresh browser context (its own
session storage). ``scripts/ensure_chromium.sh`` (run by ``scripts/test.sh``) installs
chromium when it is missing; without it, or without Playwright, these tests skip with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed (extra 'browser')")

from erasable.ledger.keys import KeyRing  # noqa: E402
from erasable.ledger.store import LedgerStore  # noqa: E402
from erasable.model import Model, ModelConfig  # noqa: E402
from erasable.service.process import ServerProcess  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
XSS = "<img src=x onerror=alert(1)>"
DIM = 8


@dataclass
class Served:
    """The module's server: its URL, a token per scope and an admin HTTP client."""

    url: str
    tokens: dict[str, str]
    http: Any

    def learn(self, model: str, samples: list[dict[str, Any]]) -> dict[str, Any]:
        response = self.http.post(f"/v1/models/{model}/learn", json={"samples": samples})
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


@dataclass
class Watched:
    """What a page did that a test may want to refuse: errors, dialogs (an alert), requests."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("console")
    store = LedgerStore(root / "ledger.db")
    ring = KeyRing(store)
    tokens = {scope: ring.create(scopes=[scope])[0] for scope in ("admin", "predict", "forget")}
    store.close()
    headers = {"Authorization": f"Bearer {tokens['admin']}"}
    with (
        ServerProcess(root / "ledger.db", log=root / "server.log") as server,
        httpx.Client(base_url=server.url, headers=headers) as http,
    ):
        yield Served(server.url, tokens, http)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (scripts/ensure_chromium.sh installs Debian's chromium as root)")
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        except sync_api.Error as error:
            pytest.skip(f"chromium did not start: {error}")
        yield browser
        browser.close()


def _open(browser: Any, **options: Any) -> tuple[Any, Any, Watched]:
    context = browser.new_context(accept_downloads=True, **options)
    context.set_default_timeout(90_000)  # generous: CI shares 2 cores with heavy tests; a test takes ~1 s alone
    page = context.new_page()
    watched = Watched()
    page.on("pageerror", lambda error: watched.errors.append(str(error)))
    page.on("console", lambda m: watched.errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("dialog", lambda dialog: (watched.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("request", lambda request: watched.requests.append(request))
    return context, page, watched


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, Watched]]:
    """A page in a fresh context (1280 px wide); no script error, CSP violation or dialog may happen on it."""
    context, page, watched = _open(browser, viewport={"width": 1280, "height": 900})
    yield page, watched
    context.close()
    assert not watched.errors and not watched.dialogs, (watched.errors, watched.dialogs)


def sign_in(page: Any, served: Served, scope: str = "admin") -> None:
    """Type the key and press Enter, as a person would; wait for the Models page."""
    page.goto(served.url + "/console")
    page.fill("#key", served.tokens[scope])
    page.press("#key", "Enter")
    page.wait_for_selector("#view-models table, #view-models .empty")


def open_view(page: Any, name: str, model: str | None = None) -> None:
    page.click(f"nav a[data-view={name}]")
    page.wait_for_selector(f"#view-{name}")
    if model is not None:
        page.select_option("#model", model)


def create_model(served: Served, name: str, **options: Any) -> None:
    """A model of DIM-d vectors, with identity features (small statistics: fast) unless ``options`` say otherwise."""
    body = {"name": name, "input_dim": DIM, "feature_map": "identity", **options}
    served.http.post("/v1/models", json=body).raise_for_status()


def vectors(n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def search(page: Any, value: str, by: str = "subject") -> None:
    page.select_option("#search-by", by)
    page.fill("#search-value", value)
    page.press("#search-value", "Enter")
    page.wait_for_selector("#subject-results section")


def test_forget_a_subject_end_to_end(page: tuple[Any, Watched], served: Served, tmp_path: Path) -> None:
    page, _ = page
    sign_in(page, served)
    page.fill("#new-name", "shop")
    page.fill("#new-dim", str(DIM))
    page.select_option("#new-features", "identity")
    page.click("#create-model button[type=submit]")
    page.wait_for_selector("#view-models td >> text=shop")

    x = vectors(30, seed=1)
    labels = [["refund", "card", "atm"][i % 3] for i in range(30)]
    subjects = [f"customer-{i % 5}" for i in range(30)]
    ids = [f"q{i}" for i in range(30)]
    samples = [
        {"id": i, "label": y, "subject": s, "vector": v.tolist()}
        for i, y, s, v in zip(ids, labels, subjects, x, strict=True)
    ]
    served.learn("shop", samples)

    open_view(page, "subjects", "shop")
    search(page, "customer-2")
    results = page.locator("#subject-results")
    assert "6 samples of subject “customer-2” in model shop" in results.locator("h2").first.inner_text()
    doomed = [i for i, s in zip(ids, subjects, strict=True) if s == "customer-2"]
    listed = results.locator("table").nth(1).locator("tbody tr td:first-child").all_inner_texts()
    assert sorted(listed) == sorted(doomed)

    page.click("#forget")  # first cancel: nothing goes
    page.wait_for_selector("#confirm[open]")
    page.keyboard.press("Escape")
    page.wait_for_selector("#confirm:not([open])", state="attached")
    assert served.http.get("/v1/models/shop").json()["count"] == 30

    page.click("#forget")
    dialog = page.locator("#confirm")
    text = dialog.inner_text()
    assert "Forget subject “customer-2” from model shop?" in text and "6 samples" in text
    assert all(i in dialog.locator("ul.mono").inner_text().split() for i in doomed)
    with page.expect_response("**/v1/models/shop/forget") as forgot:
        page.click("#confirm-ok")
    answer = forgot.value.json()
    page.wait_for_selector("#certificate-after")

    # The receipt's certificate is the API's and that of a refit from scratch on the rest.
    shown = page.inner_text("#certificate-after")
    config = ModelConfig.from_dict(served.http.get("/v1/models/shop").json()["config"])
    keep = [k for k, s in enumerate(subjects) if s != "customer-2"]
    refit = Model(config)
    refit.learn(x[keep], [labels[k] for k in keep], ids=[ids[k] for k in keep], subjects=[subjects[k] for k in keep])
    assert shown == answer["certificate_after"] == refit.certificate()
    assert page.inner_text("#certificate-before") == answer["certificate_before"]
    logged = served.http.get("/v1/models/shop/events", params={"after": answer["seq"] - 1, "limit": 1}).json()[0]
    assert page.inner_text("#chain-hash") == logged["hash"] and logged["event"]["kind"] == "forget"
    assert "erasable ledger verify shop --store LEDGER" in page.inner_text("#verify-command")

    with page.expect_download() as download:
        page.click("#download-receipt")
    saved = tmp_path / "receipt.json"
    download.value.save_as(saved)
    receipt = json.loads(saved.read_text())
    assert receipt == served.http.get(f"/v1/models/shop/receipts/{answer['seq']}").json()
    assert receipt["event"]["certificate_after"] == refit.certificate() and "customer-2" not in saved.read_text()

    open_view(page, "subjects", "shop")
    search(page, "customer-2")
    assert "holds nothing about subject “customer-2”" in page.inner_text("#nothing-found")

    open_view(page, "events", "shop")
    page.select_option("#event-kind", "forget")
    page.click("#event-filter button[type=submit]")
    page.wait_for_selector("#event-list td >> text=forget")
    rows = page.locator("#event-list tbody tr")
    assert rows.count() == 1 and rows.first.locator("td").first.inner_text() == str(answer["seq"])
    page.click("#verify-chain")
    page.wait_for_selector("#chain-status .ok")
    assert f"Chain of {answer['seq']} events unbroken" in page.inner_text("#chain-status")
    rows.first.locator("a", has_text="receipt").click()
    page.wait_for_selector("#certificate-after")
    assert page.inner_text("#certificate-after") == refit.certificate()


def test_the_event_log_pages_and_filters_by_time(page: tuple[Any, Watched], served: Served) -> None:
    page, _ = page
    create_model(served, "busy")
    for i, v in enumerate(vectors(54, seed=7)):  # events 2..55 after the create
        served.learn("busy", [{"id": f"b{i}", "label": "x", "vector": v.tolist()}])
    sign_in(page, served)
    open_view(page, "events", "busy")
    page.wait_for_selector("#event-list tbody tr")
    first = page.locator("#event-list tbody tr td:first-child")
    assert first.all_inner_texts() == [str(seq) for seq in range(1, 51)]
    earlier, later = (
        page.locator("#event-list button", has_text="Earlier"),
        page.locator("#event-list button", has_text="Later"),
    )
    assert earlier.is_disabled() and later.is_enabled()
    later.click()
    page.wait_for_selector("#event-list tbody tr td:first-child >> text=55")
    assert first.all_inner_texts() == [str(seq) for seq in range(51, 56)] and later.is_disabled()
    earlier.click()
    page.wait_for_selector("#event-list tbody tr td:first-child >> text=50")
    assert first.count() == 50
    page.fill("#event-until", "2000-01-01T00:00:00")  # the log starts after this
    page.click("#event-filter button[type=submit]")
    page.wait_for_selector("#event-list .empty")
    assert page.inner_text("#event-list .empty") == "No events match."
    page.fill("#event-until", "")
    page.fill("#event-since", "2000-01-01T00:00:00")
    page.select_option("#event-kind", "create")
    page.click("#event-filter button[type=submit]")
    page.wait_for_selector("#event-list tbody tr")
    assert first.all_inner_texts() == ["1"]


def test_a_hostile_label_and_subject_render_as_text(page: tuple[Any, Watched], served: Served) -> None:
    page, watched = page
    create_model(served, "xss")
    served.learn(
        "xss",
        [
            {"id": XSS, "label": XSS, "subject": XSS, "vector": vectors(1, seed=2)[0].tolist()},
            {"id": "plain", "label": "plain", "subject": "someone", "vector": vectors(1, seed=3)[0].tolist()},
        ],
    )
    sign_in(page, served)
    open_view(page, "subjects", "xss")
    search(page, XSS)
    results = page.locator("#subject-results")
    assert f"1 sample of subject “{XSS}”" in results.locator("h2").first.inner_text()
    assert results.locator("table").first.locator("tbody td").first.inner_text() == XSS
    assert results.locator("table").nth(1).locator("tbody td").all_inner_texts()[:3] == [XSS, XSS, XSS]
    page.click("#forget")
    assert f"1 of class “{XSS}”" in page.inner_text("#confirm") and XSS in page.inner_text("#confirm ul.mono")
    page.click("#confirm-cancel")

    open_view(page, "playground", "xss")
    page.wait_for_selector("#predict-form[data-model=xss]")
    page.fill("#predict-input", json.dumps(vectors(1, seed=2)[0].tolist()))
    page.click("#predict-form button[type=submit]")
    page.wait_for_selector("#predicted-label")
    assert page.inner_text("#predicted-label") == XSS
    assert page.locator("img").count() == 0 and not watched.dialogs


def test_choosing_the_shown_model_again_keeps_what_was_typed(page: tuple[Any, Watched], served: Served) -> None:
    page, watched = page
    create_model(served, "typed")
    served.learn("typed", [{"id": "t1", "label": "a", "vector": vectors(1, seed=5)[0].tolist()}])
    sign_in(page, served)
    open_view(page, "playground", "typed")
    page.wait_for_selector("#predict-form[data-model=typed]")
    typed = json.dumps(vectors(1, seed=5)[0].tolist())
    page.fill("#predict-input", typed)
    before = len(watched.requests)
    page.select_option("#model", "typed")  # fires change; nothing is redrawn or fetched
    page.click("#predict-form button[type=submit]")
    page.wait_for_selector("#predicted-label")
    assert page.inner_text("#predicted-label") == "a" and page.input_value("#predict-input") == typed
    fetched = [r.url for r in watched.requests[before:]]
    assert fetched == [served.url + "/v1/models/typed/predict"], fetched


def test_a_predict_key_has_no_forget_control(page: tuple[Any, Watched], served: Served) -> None:
    page, watched = page
    create_model(served, "readonly")
    served.learn("readonly", [{"id": "r1", "label": "a", "subject": "u1", "vector": vectors(1, seed=4)[0].tolist()}])
    sign_in(page, served, "predict")
    assert "predict" in page.inner_text("#who-key") and "admin" not in page.inner_text("#who-key")
    models = page.locator("#view-models")
    assert models.locator("td >> text=readonly").count() == 1
    assert models.locator("button").count() == 0 and page.locator("#create-model").count() == 0

    open_view(page, "subjects", "readonly")
    assert page.locator("#forget, [data-action=forget], button:has-text('Forget')").count() == 0
    assert page.locator("#subject-search button[type=submit]").is_disabled()
    assert "lacks the forget scope on model readonly" in page.inner_text("#view-subjects .notice")

    open_view(page, "events", "readonly")
    page.wait_for_selector("#event-list .notice")
    assert "needs the admin scope" in page.inner_text("#event-list") and page.locator("#verify-chain").is_hidden()

    open_view(page, "playground", "readonly")
    page.wait_for_selector("#predict-form[data-model=readonly]")
    page.fill("#predict-input", json.dumps(vectors(1, seed=4)[0].tolist()))
    page.click("#predict-form button[type=submit]")
    page.wait_for_selector("#predicted-label")
    assert page.inner_text("#predicted-label") == "a"
    # The console asked nothing of the API that this key may not do.
    paths = [r.url.removeprefix(served.url) for r in watched.requests if "/v1/" in r.url]
    assert not [p for p in paths if "/samples" in p or "/events" in p or "/forget" in p or "/verify" in p], paths


def test_a_forget_key_answers_a_deletion_request(page: tuple[Any, Watched], served: Served) -> None:
    """The data-protection officer's key: it may look up, audit and forget, and nothing else."""
    page, _ = page
    create_model(served, "dpo")
    served.learn(
        "dpo",
        [
            {"id": f"d{i}", "label": "a", "subject": f"u{i % 2}", "vector": v.tolist()}
            for i, v in enumerate(vectors(6, seed=9))
        ],
    )
    sign_in(page, served, "forget")
    assert "No model this key may predict on." in page.inner_text("#view-models")
    assert "dpo" in page.inner_text("#view-models .notice")
    open_view(page, "subjects", "dpo")
    search(page, "u1")
    page.click("#forget")
    with page.expect_response("**/v1/models/dpo/forget") as forgot:
        page.click("#confirm-ok")
    page.wait_for_selector("#certificate-after")
    assert page.inner_text("#view-receipt dd >> nth=3") == "3"  # samples forgotten
    erased = forgot.value.json()["residues_erased"]
    assert page.locator("#residue-pending").count() == (0 if erased else 1)
    assert page.locator("button", has_text="Verify").count() == 0  # verifying is for admin keys
    assert served.http.get("/v1/models/dpo").json()["count"] == 3
    open_view(page, "events", "dpo")
    page.wait_for_selector("#event-list .notice")
    open_view(page, "playground", "dpo")
    assert "lacks the predict scope" in page.inner_text("#view-playground")


def test_a_forget_answered_202_says_the_bytes_are_not_yet_erased(page: tuple[Any, Watched], served: Served) -> None:
    """The server answers 202 (``residues_erased`` false) when a reader kept the WAL: the receipt must say so."""
    page, _ = page
    create_model(served, "residue")
    served.learn(
        "residue",
        [
            {"id": f"r{i}", "label": "a", "subject": f"w{i % 2}", "vector": v.tolist()}
            for i, v in enumerate(vectors(4, seed=10))
        ],
    )

    def as_if_a_reader_held_the_log(route: Any) -> None:
        answer = route.fetch()  # the real forget; only its answer is changed, as the server would on a busy WAL
        route.fulfill(response=answer, status=202, json={**answer.json(), "residues_erased": False})

    sign_in(page, served)
    open_view(page, "subjects", "residue")
    search(page, "w0")
    page.route("**/v1/models/residue/forget", as_if_a_reader_held_the_log)
    page.click("#forget")
    page.click("#confirm-ok")
    page.wait_for_selector("#certificate-after")
    assert "old bytes of them were still in the store's files" in page.inner_text("#residue-pending")
    assert served.http.get("/v1/models/residue").json()["count"] == 2  # the forget itself happened


def test_the_key_stays_in_session_storage_and_the_header(page: tuple[Any, Watched], served: Served) -> None:
    page, watched = page
    create_model(served, "session")  # the models view shows a table only when there is a model: make one here
    page.goto(served.url + "/console")
    page.fill("#key", "erasable_0000000000000000_wrong")
    page.press("#key", "Enter")
    page.wait_for_selector("#sign-in .error")
    assert "That key is not valid." in page.inner_text("#sign-in") and page.is_visible("#key")
    assert page.evaluate("sessionStorage.length") == 0
    tried = [r for r in watched.requests if "/v1/" in r.url]
    assert [r.headers.get("authorization") for r in tried] == ["Bearer erasable_0000000000000000_wrong"]

    token = served.tokens["admin"]
    watched.requests.clear()
    sign_in(page, served)
    for view in ["subjects", "events", "playground", "models"]:
        open_view(page, view)
    page.reload()  # the session survives a reload of the tab
    page.wait_for_selector("#view-models table")
    assert page.evaluate("sessionStorage.getItem('erasable.key')") == token
    assert page.evaluate("localStorage.length") == 0 and page.evaluate("document.cookie") == ""
    api_requests = [r for r in watched.requests if "/v1/" in r.url]
    assert len(api_requests) >= 6
    assert all(r.headers.get("authorization") == f"Bearer {token}" for r in api_requests)
    assert not [r.url for r in watched.requests if token in r.url or token.split("_")[-1] in r.url]
    assert token not in page.url

    page.click("#sign-out")
    page.wait_for_selector("#sign-in")
    assert page.evaluate("sessionStorage.getItem('erasable.key')") is None and page.is_hidden("#nav")


def test_the_console_refuses_to_be_framed(page: tuple[Any, Watched], served: Served) -> None:
    page, watched = page
    page.set_content(f'<iframe id="frame" src="{served.url}/console"></iframe>')
    page.wait_for_function("document.getElementById('frame').contentWindow !== null")
    page.wait_for_timeout(300)
    frames = [f for f in page.frames if f != page.main_frame]
    assert len(frames) == 1 and frames[0].locator("#main").count() == 0
    refusals = [e for e in watched.errors if "frame-ancestors 'none'" in e]
    assert len(refusals) == 1 and "has been blocked" in refusals[0]
    watched.errors.remove(refusals[0])  # the one violation this test expects


def test_the_playground_shows_the_memory_heads_neighbours(page: tuple[Any, Watched], served: Served) -> None:
    pytest.importorskip("faiss", reason="the memory head needs faiss-cpu (extra 'memory')")
    page, _ = page
    create_model(served, "recall", head="memory")
    x = vectors(12, seed=5)
    served.learn("recall", [{"id": f"m{i}", "label": f"c{i % 3}", "vector": v.tolist()} for i, v in enumerate(x)])
    sign_in(page, served)
    open_view(page, "playground", "recall")
    page.wait_for_selector("#predict-form[data-model=recall]")
    page.fill("#predict-input", json.dumps(x[4].tolist()))
    page.click("#predict-form button[type=submit]")
    page.wait_for_selector("#prediction table >> nth=1")
    neighbours = page.locator("#prediction table").nth(1).locator("tbody tr")
    assert neighbours.count() == 5
    assert neighbours.first.locator("td").all_inner_texts()[:2] == ["m4", "c1"]  # itself, as the nearest
    expected = served.http.post("/v1/models/recall/predict", json={"vectors": [x[4].tolist()]}).json()["predictions"][0]
    assert page.inner_text("#predicted-label") == expected["label"]
    assert [row.locator("td").first.inner_text() for row in neighbours.all()] == [
        n["id"] for n in expected["neighbours"]
    ]
    assert float(page.inner_text("#ood-score")) == pytest.approx(expected["ood_score"], abs=1e-3)
    top = max(t["probability"] for t in expected["top"])
    assert expected["ood_score"] == pytest.approx(1.0 - top) and "1 − the top class probability" in page.inner_text(
        "#prediction"
    )


def test_audit_a_forget_before_serving_it(page: tuple[Any, Watched], served: Served) -> None:
    page, _ = page
    create_model(served, "audited")
    x = vectors(40, seed=6)
    served.learn(
        "audited",
        [{"id": f"a{i}", "label": f"k{i % 2}", "subject": f"p{i % 4}", "vector": v.tolist()} for i, v in enumerate(x)],
    )
    before = served.http.get("/v1/models/audited").json()
    sign_in(page, served)
    open_view(page, "subjects", "audited")
    search(page, "p3")
    page.click("#audit-first")
    page.wait_for_selector("#audit-verdict", timeout=60_000)
    assert page.inner_text("#audit-verdict") == "Verdict: certificates EQUAL; ledger hash chain verified (2 events)"
    assert page.inner_text("#audit-served") == page.inner_text("#audit-refit")
    assert "p3" not in page.url and page.input_value("#audit-value") == "p3"
    assert "forget-set accuracy (10 samples)" in page.inner_text("#audit-report")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "No plots" in page.inner_text("#audit-report")
    else:  # the plots arrive as PNG and show through blob: URLs, which the CSP allows for images only
        page.wait_for_function("[...document.querySelectorAll('img.plot')].every((i) => i.naturalWidth > 0)")
        assert page.locator("img.plot").count() == 2
    assert served.http.get("/v1/models/audited").json() == before  # the audit changed nothing


def test_the_python_client_has_the_consoles_routes(served: Served) -> None:
    """erasable.client against this module's server (no browser): the routes the console added, audit included."""
    from erasable.client import Client, NotFoundError

    create_model(served, "viaclient")
    x = vectors(20, seed=8)
    served.learn(
        "viaclient",
        [{"id": f"v{i}", "label": i % 2, "subject": f"s{i % 4}", "vector": v.tolist()} for i, v in enumerate(x)],
    )
    with Client(served.url, served.tokens["admin"]) as service:
        assert service.whoami()["scopes"] == ["admin"]
        assert "viaclient" in [m["name"] for m in service.overview()]
        assert service.samples("viaclient", subject="s1")["count"] == 5
        audit = service.audit("viaclient", subjects=["s1"], held_out=4)
        assert audit["certificates_equal"] and audit["forgotten"] == 5 and audit["held_out"] == 4
        with pytest.raises(NotFoundError):
            service.audit("viaclient", subjects=["nobody"])
        forgot = service.forget("viaclient", subjects=["s1"])
        assert service.receipt("viaclient", forgot.seq)["event"]["certificate_after"] == forgot.certificate_after
        assert [e["seq"] for e in service.events("viaclient", kind="forget")] == [forgot.seq]


def test_readable_on_a_phone(browser: Any, served: Served) -> None:
    """At 390 px nothing but the tables' own scrollers is wider than the screen."""
    context, page, watched = _open(browser, viewport={"width": 390, "height": 844})
    try:
        sign_in(page, served)
        for view in ["models", "subjects", "events", "playground", "audit"]:
            open_view(page, view)
            page.wait_for_timeout(100)
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, view
    finally:
        context.close()
    assert not watched.errors
