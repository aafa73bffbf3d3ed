"""The console on a BANKING77-sized model: how fast each page answers, and a screenshot of each.

A local ``erasable serve`` (SQLite ledger) holds BANKING77's 10,003 training embeddings twice
(384-d, identity features; a ridge head and a memory head), each sample with one of 2,000 customers as its
subject. Headless Debian chromium, driven by Playwright, opens every page of the console
several times; a page's time runs from the click (or Enter) to its data on screen, so it
includes the requests, the server's work and the drawing. An audit of a forget (a copy, a
refit from scratch, the scores and the plots) is timed the same way. The API routes behind the pages
are timed on their own as well. Falls back to random unit vectors of the same shape when
the shared data is absent.

Run: ``python benchmarks/bench_console.py`` (``--quick`` for 2,000 samples). Results go to
``benchmarks/results/console/``: ``timings.md`` and one PNG per page.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from playwright.sync_api import Page, sync_playwright

from common import BANKING77, ROOT, table, timed
from erasable.ledger.keys import KeyRing
from erasable.ledger.store import LedgerStore
from erasable.service.process import ServerProcess

RESULTS = ROOT / "benchmarks" / "results" / "console"
CHROMIUM = "/usr/bin/chromium"
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
CUSTOMERS = 2000
BATCH = 2000
REPEATS = 7
ROUTE_CALLS = 3


def load_data(quick: bool) -> tuple[np.ndarray, list[str], str]:
    """BANKING77's training embeddings and labels (or random ones of the same shape), and where they came from."""
    n = 2000 if quick else 10_003
    if BANKING77.exists():
        with np.load(BANKING77) as data:
            return data["X_train"][:n].astype(np.float32), [str(v) for v in data["y_train"][:n]], "BANKING77"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, [f"intent_{i % 77}" for i in range(n)], "random unit vectors (BANKING77 absent)"


def packed(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def fill_model(http: httpx.Client, name: str, head: str, x: np.ndarray, y: list[str]) -> None:
    body = {"name": name, "input_dim": x.shape[1], "head": head, "feature_map": "identity"}
    http.post("/v1/models", json=body).raise_for_status()
    for start in range(0, len(y), BATCH):
        rows = range(start, min(start + BATCH, len(y)))
        samples = [
            {"id": f"q{i}", "label": y[i], "subject": f"customer-{i % CUSTOMERS}", "vector_base64": packed(x[i])}
            for i in rows
        ]
        http.post(f"/v1/models/{name}/learn", json={"samples": samples, "source": "support-tickets"}).raise_for_status()


#: Timed inside the page: from a click, a form's submission or a change of the address's hash until the
#: ``ready`` element is in the document and the next frame is drawn (no test-driver round trips counted).
PAGE_TIMER = """([ready, kind, target]) => new Promise((resolve) => {
  const start = performance.now();
  const observer = new MutationObserver(() => {
    if (!document.querySelector(ready)) return;
    observer.disconnect();
    requestAnimationFrame(() => resolve(performance.now() - start));
  });
  observer.observe(document.body, { subtree: true, childList: true, attributes: true });
  if (kind === "click") document.querySelector(target).click();
  else if (kind === "submit") document.querySelector(target).requestSubmit();
  else location.hash = target;
})"""


def page_time(page: Page, ready: str, kind: str, target: str) -> float:
    """Seconds from an action on the page (``click``/``submit`` a selector, or go to the ``hash``) to ``ready``."""
    milliseconds: float = page.evaluate(PAGE_TIMER, [ready, kind, target])
    return milliseconds / 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 samples instead of 10,003")
    args = parser.parse_args(argv)
    x, y, source = load_data(args.quick)
    load = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    shot = lambda page, name: page.screenshot(path=RESULTS / f"{name}.png", full_page=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as directory:
        ledger = Path(directory) / "ledger.db"
        store = LedgerStore(ledger)
        token, _ = KeyRing(store).create(scopes=["admin"], description="console benchmark")
        store.close()
        with (
            ServerProcess(ledger) as server,
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=600) as http,
            sync_playwright() as playwright,
        ):
            fill_model(http, "banking77", "ridge", x, y)
            fill_model(http, "banking77-memory", "memory", x, y)
            for customer in ("customer-17", "customer-256"):
                http.post("/v1/models/banking77/forget", json={"subjects": [customer]}).raise_for_status()
            for model in ("banking77", "banking77-memory"):
                http.get(f"/v1/models/{model}/verify").raise_for_status()

            # The routes behind the pages, timed on their own in the loop below.
            receipt_seq = http.get("/v1/models/banking77/events", params={"kind": "forget"}).json()[-1]["seq"]
            vector = [round(float(v), 4) for v in x[42]]
            routes: list[tuple[str, Callable[[], object]]] = [
                ("GET /v1/overview", lambda: http.get("/v1/overview")),
                ("GET /v1/models/{name}/samples?subject=", lambda: http.get(
                    "/v1/models/banking77/samples", params={"subject": "customer-1234"})),
                ("GET /v1/models/{name}/receipts/{seq}", lambda: http.get(
                    f"/v1/models/banking77/receipts/{receipt_seq}")),
                ("GET /v1/models/{name}/events?limit=50", lambda: http.get(
                    "/v1/models/banking77/events", params={"limit": 50})),
                ("GET /v1/models/{name}/events?kind=forget", lambda: http.get(
                    "/v1/models/banking77/events", params={"kind": "forget", "limit": 50})),
                ("POST /v1/models/{name}/predict (ridge)", lambda: http.post(
                    "/v1/models/banking77/predict", json={"vectors": [vector], "top_k": 5})),
                ("POST /v1/models/{name}/predict (memory, 5 neighbours)", lambda: http.post(
                    "/v1/models/banking77-memory/predict", json={"vectors": [vector], "top_k": 5})),
            ]  # fmt: skip
            for _, call in routes:  # warm up: the first prediction after a change derives the head
                call()
            route_times: list[list[float]] = [[] for _ in routes]

            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
            page = context.new_page()
            page.goto(server.url + "/console")
            page.wait_for_selector("#key")
            shot(page, "sign-in")
            page.fill("#key", token)
            page.press("#key", "Enter")
            page.wait_for_selector("#view-models table")
            page.click("#view-models tr:has-text('banking77-memory') button:has-text('Verify')")
            page.wait_for_selector("#view-models tr:has-text('banking77-memory') .ok")

            times: dict[str, list[float]] = {}

            def measure(name: str, ready: str, kind: str, target: str) -> None:
                times.setdefault(name, []).append(page_time(page, ready, kind, target))

            def choose(model: str) -> None:
                page.select_option("#model", model)

            for _ in range(REPEATS):
                measure("Models (table of 2 models)", "#view-models table", "click", "nav a[data-view=models]")
                page.click("nav a[data-view=subjects]")
                choose("banking77")
                page.fill("#search-value", "customer-1234")
                measure("Subject search (5 samples)", "#forget", "submit", "#subject-search")
                measure("Receipt", "#certificate-after", "hash", f"#/receipt/banking77/{receipt_seq}")
                measure("Event log (first 50 events)", "#event-list table", "click", "nav a[data-view=events]")
                page.click("nav a[data-view=playground]")
                choose("banking77-memory")
                page.wait_for_selector("#predict-form[data-model=banking77-memory]")
                page.fill("#predict-input", json.dumps(vector))
                measure("Playground predict (memory, neighbours)", "#prediction table", "submit", "#predict-form")
                for _ in range(ROUTE_CALLS):  # the routes on their own, between the pages: under the same load
                    for (_, call), record in zip(routes, route_times, strict=True):
                        record.append(timed(call))
            route_rows = [
                [name, f"{statistics.median(t) * 1000:.1f}"] for (name, _), t in zip(routes, route_times, strict=True)
            ]
            for customer in ("customer-999", "customer-998", "customer-997"):  # the one long operation: an audit
                page.click("nav a[data-view=subjects]")
                choose("banking77")
                page.fill("#search-value", customer)
                page.press("#search-value", "Enter")
                page.wait_for_selector("#audit-first")
                measure(
                    "Audit of a forget (5 samples, 1,000 held out; refit)", "#audit-verdict", "click", "#audit-first"
                )
            page.wait_for_function("[...document.querySelectorAll('img.plot')].every((i) => i.naturalWidth > 0)")
            shot(page, "audit")
            page_rows = [
                [name, f"{statistics.median(t) * 1000:.0f}", f"{max(t) * 1000:.0f}"] for name, t in times.items()
            ]

            # One screenshot of each page, in the order a deletion request goes through them.
            page.click("nav a[data-view=models]")
            page.wait_for_selector("#view-models table")
            shot(page, "models")
            page.click("nav a[data-view=subjects]")
            choose("banking77")
            page.fill("#search-value", "customer-1234")
            page.press("#search-value", "Enter")
            page.wait_for_selector("#forget")
            shot(page, "subject-search")
            page.click("#forget")
            page.wait_for_selector("#confirm[open]")
            shot(page, "forget-confirmation")
            page.click("#confirm-ok")
            page.wait_for_selector("#certificate-after")
            page.click("#view-receipt details summary")
            shot(page, "receipt")
            page.emulate_media(media="print")
            shot(page, "receipt-print")
            page.emulate_media(media="screen")
            page.click("nav a[data-view=subjects]")
            page.fill("#search-value", "customer-1234")
            page.press("#search-value", "Enter")
            page.wait_for_selector("#nothing-found")
            shot(page, "subject-search-after-forget")
            page.click("nav a[data-view=events]")
            choose("banking77")
            page.select_option("#event-kind", "forget")
            page.click("#event-filter button[type=submit]")
            page.wait_for_selector("#event-list td >> text=forget")
            page.click("#verify-chain")
            page.wait_for_selector("#chain-status .ok")
            shot(page, "event-log")
            page.click("nav a[data-view=playground]")
            choose("banking77-memory")
            page.wait_for_selector("#predict-form[data-model=banking77-memory]")
            page.fill("#predict-input", json.dumps(vector))
            page.click("#predict-form button[type=submit]")
            page.wait_for_selector("#prediction table")
            shot(page, "playground")
            small = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
            small.add_init_script(f"sessionStorage.setItem('erasable.key', {json.dumps(token)})")  # signed in
            phone = small.new_page()
            phone.goto(server.url + f"/console#/receipt/banking77/{receipt_seq}")
            phone.wait_for_selector("#certificate-after")
            shot(phone, "receipt-390px")
            browser.close()

    count = f"{len(y):,}"
    report = [
        f"Data: {source}, {count} samples of {x.shape[1]} dimensions, {len(set(y))} classes, {CUSTOMERS:,} subjects; "
        "two models (identity features; ridge and memory heads) in one SQLite ledger; headless chromium on this "
        f"machine's 2 cores, shared (load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after).\n",
        table(
            f"Console pages ({count} samples; median and worst of {REPEATS}, of 3 for the audit)",
            ["page", "median ms", "worst ms"],
            page_rows,
        ),
        table(
            f"The API routes behind them, called from Python between the pages (median of {REPEATS * ROUTE_CALLS})",
            ["route", "ms"],
            route_rows,
        ),
        "Screenshots: " + ", ".join(f"[{p.stem}]({p.name})" for p in sorted(RESULTS.glob("*.png"))) + ".\n",
    ]
    (RESULTS / "timings.md").write_text("\n".join(report))
    print("\n".join(report))


if __name__ == "__main__":
    main()
