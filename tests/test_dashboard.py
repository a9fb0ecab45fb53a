"""The dashboard at /ui/ in a real browser: headless Chromium (Debian's package) driven by Playwright,
against a real aggregator (waitress on loopback) scraping a real exporter, with pods pushed through the
authenticated POST routes (tests/support/dashboard.py).

Every page loads with no console errors and is screenshotted under the test's tmp_path; the numbers
on a page are compared with the very API answers the page received (captured from the browser's
responses after pausing the refresh, so values moving every second cannot race the comparison).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from aggregator.api.ui import CSP
from tests.support.dashboard import (
    EXPORTER_NODE,
    PODS,
    PUSHED_NODE,
    Live,
    chromium,
    exporter,
    get_json,
    live_aggregator,
)

ROOT = Path(__file__).resolve().parent.parent
NOT_FOUND_LOAD = "the server responded with a status of 404"  # Chromium's line for a fetch answered 404


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with exporter(tmp_path_factory.mktemp("dashboard")) as address:
        yield address


@pytest.fixture(scope="module")
def live(target: str) -> Iterator[Live]:
    with live_aggregator(target) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox"])  # root: no user namespace sandbox
        try:
            yield b
        finally:
            b.close()


@dataclass
class Tab:
    """A browser page with its console errors and the last JSON answer per API path it fetched."""

    page: Any
    base: str
    errors: list[str] = field(default_factory=list)
    answers: dict[str, Any] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def open(self, route: str, ready: str) -> None:
        self.page.goto(f"{self.base}/ui/{route}")
        # wait_for_selector, not wait_for_function: the page's CSP forbids the eval the latter uses.
        self.page.wait_for_selector(ready, timeout=20_000)

    def settle(self) -> None:
        """Pause the refresh (if running) and wait until no request is in flight."""
        button = self.page.locator("#pause")
        if button.get_attribute("aria-pressed") == "false":
            button.click()
        self.page.wait_for_load_state("networkidle")

    def wait(self, predicate: Any, *, timeout: float, message: str) -> None:
        """Poll `predicate` while Playwright delivers events (time.sleep would hold them back)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout}s: {message}; requests: {self.requests[-20:]}")
            self.page.wait_for_timeout(100)

    def answer(self, path: str) -> Any:
        assert path in self.answers, f"the page did not fetch {path}; it fetched {sorted(self.answers)}"
        return self.answers[path]

    def cells(self, table: str, col: str) -> list[str]:
        return [t.strip() for t in self.page.locator(f"{table} tbody td[data-col={col}]").all_inner_texts()]


def new_tab(browser: Any, base: str, **context: Any) -> Tab:
    ctx = browser.new_context(viewport=context.pop("viewport", {"width": 1280, "height": 800}), **context)
    page = ctx.new_page()
    tab = Tab(page=page, base=base)
    page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: tab.errors.append(f"page error: {e}"))

    def on_response(resp: Any) -> None:
        parts = urlsplit(resp.url)
        if parts.path.startswith("/ui") or resp.request.resource_type != "fetch":
            return
        key = parts.path + (f"?{parts.query}" if parts.query else "")
        tab.requests.append(key)
        with contextlib.suppress(Exception):  # no JSON body: a request a newer refresh aborted
            tab.answers[key] = resp.json()

    page.on("response", on_response)
    return tab


@pytest.fixture
def tab(browser: Any, live: Live) -> Iterator[Tab]:
    t = new_tab(browser, live.url)
    try:
        yield t
    finally:
        t.page.context.close()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def fetch(url: str, path: str, headers: dict[str, str] | None = None) -> Answer:
    """One GET without following redirects."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


# ------------------------------------------------------------------ served files and redirects


def test_browsers_are_redirected_and_api_clients_keep_the_status_document(live: Live) -> None:
    browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    resp = fetch(live.url, "/", {"Accept": browser_accept})
    assert (resp.status, resp.headers["location"]) == (302, "ui/")
    # API clients, curl's default and no header at all keep the JSON status document.
    for headers in ({"Accept": "application/json"}, {"Accept": "*/*"}, {}):
        resp = fetch(live.url, "/", headers)
        assert resp.status == 200, headers
        assert resp.headers["content-type"].startswith("application/json"), headers
        assert json.loads(resp.body)["service"] == "k8s-monitor-aggregator"
    resp = fetch(live.url, "/ui")
    assert (resp.status, resp.headers["location"]) == (301, "ui/")  # relative URLs need the slash


def test_ui_files_carry_the_csp_and_no_inline_script(live: Live) -> None:
    resp = fetch(live.url, "/ui/")
    html = resp.body.decode()
    assert resp.status == 200
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    assert resp.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP and "connect-src 'self'" in CSP
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all("src=" in s for s in scripts), scripts  # no inline script anywhere
    assert "http://" not in html and "https://" not in html  # no CDN: works air-gapped
    resp = fetch(live.url, "/ui/app.js")
    etag = resp.headers["etag"]
    assert resp.status == 200 and resp.headers["content-type"] == "text/javascript; charset=utf-8"
    assert resp.headers["content-security-policy"] == CSP and etag
    resp = fetch(live.url, "/ui/app.js", {"If-None-Match": etag})
    assert (resp.status, resp.body) == (304, b"")
    resp = fetch(live.url, "/ui/vendor/uPlot.iife.min.js")
    assert resp.status == 200 and resp.body.startswith(b"/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    for path in ("/ui/missing.js", "/ui/../aggregator/openapi.json", "/ui/%2e%2e/api.py"):
        resp = fetch(live.url, path)
        assert resp.status in (400, 404), (path, resp.body)
        assert json.loads(resp.body)["error"] in ("not_found", "bad_request"), resp.body


def test_the_wheel_carries_the_dashboard_files(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy: building in the checkout would write build/ and *.egg-info there
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("aggregator", "exporter", "k8smon_common"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("k8s_monitor-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    ui = ROOT / "aggregator" / "ui"
    packaged = {p.relative_to(ROOT).as_posix() for p in ui.rglob("*") if p.is_file()}
    assert packaged <= names, sorted(packaged - names)
    assert {"aggregator/ui/index.html", "aggregator/ui/vendor/uPlot.iife.min.js",
            "aggregator/ui/vendor/uPlot.LICENSE.txt"} <= names


# ------------------------------------------------------------------ every page


PAGES = [
    ("overview", "#/", "#card-cpu"),
    ("nodes", "#/nodes", "tbody td[data-col=name] a"),
    ("node", f"#/nodes/{EXPORTER_NODE}", ".chart canvas"),
    ("pods", "#/pods", "#pod-count[data-source=api]"),
    ("pod", "#/pods/shop/web-5d4f8-abcde", ".chart canvas"),
    ("namespaces", "#/namespaces", "tbody td[data-col=name] a"),
    ("namespace", "#/namespaces/shop", ".chart canvas"),
    ("deployments", "#/deployments", "tbody td[data-col=name] a"),
    ("deployment", "#/namespaces/search/deployments/api", ".chart canvas"),
]


def test_every_page_loads_without_console_errors(browser: Any, live: Live, tmp_path: Path) -> None:
    desktop, phone = {"width": 1280, "height": 800}, {"width": 390, "height": 844}
    for scheme, viewport in (("light", desktop), ("dark", phone)):
        tab = new_tab(browser, live.url, color_scheme=scheme, viewport=viewport)
        try:
            for name, route, ready in PAGES:
                tab.open(route, ready)
                tab.page.wait_for_load_state("networkidle")
                shot = tmp_path / f"{name}-{scheme}-{viewport['width']}.png"
                tab.page.screenshot(path=shot, full_page=True)
                assert tab.page.locator("#banner").is_hidden(), (name, tab.page.inner_text("#banner"))
                # Readable on a phone: the page itself never scrolls sideways (wide tables scroll
                # inside their own frame).
                overflow = tab.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 1, (name, scheme, overflow)
            if scheme == "dark":  # the dark palette is in force
                bg = tab.page.evaluate("getComputedStyle(document.body).backgroundColor")
                assert bg == "rgb(17, 20, 24)", bg
        finally:
            tab.page.context.close()
        assert tab.errors == [], (scheme, tab.errors)
    assert len(list(tmp_path.glob("*.png"))) == 2 * len(PAGES)


# ------------------------------------------------------------------ numbers equal the API's


def test_overview_numbers_equal_the_api(tab: Tab, tmp_path: Path) -> None:
    tab.open("#/", "#top-cpu tbody td[data-col=name] a")
    tab.settle()
    page = tab.page
    nodes = tab.answer("/api/nodes")["nodes"]
    up = [n for n in nodes if n["status"] == "up"]
    assert {n["node_name"] for n in up} == {EXPORTER_NODE, PUSHED_NODE}
    assert page.inner_text("#card-nodes .value") == f"{len(up)} up · {len(nodes) - len(up)} down"
    cpu = float(page.get_attribute("#card-cpu", "data-value"))
    assert cpu == pytest.approx(sum(n["cpu_millicores"] for n in up), abs=1e-6)
    capacity = sum(n["cpu_capacity_millicores"] for n in up)
    assert float(page.get_attribute("#card-cpu", "data-capacity")) == capacity
    assert float(page.get_attribute("#card-memory", "data-value")) == sum(n["memory_bytes"] for n in up)
    namespaces = tab.answer("/api/namespaces")["namespaces"]
    pods = sum(n["pod_count"] for n in nodes)
    assert page.inner_text("#card-pods .value") == str(pods) == str(len(PODS))
    status = tab.answer("/")
    assert page.get_attribute("#updated", "data-last-scrape") == status["last_scrape"]
    # One status per refresh, shared by the shell and the view: the footer and the card cannot show
    # two rounds (they did when each fetched "/" and a round ended between the two answers).
    assert tab.requests.count("/") == tab.requests.count("/api/nodes")
    targets = status["targets"]
    assert page.inner_text("#card-targets .value") == f"{targets['up']} / {targets['total']} up"
    top_cpu = tab.answer("/api/pods?sort=-cpu&limit=10")["pods"]
    assert tab.cells("#top-cpu", "name") == [p["pod_name"] for p in top_cpu]
    assert tab.cells("#top-cpu", "cpu") == [p["human"]["cpu"] for p in top_cpu]
    top_mem = tab.answer("/api/pods?sort=-memory&limit=10")["pods"]
    assert tab.cells("#top-memory", "memory") == [p["human"]["memory"] for p in top_mem]
    by_cpu = sorted(namespaces, key=lambda g: -g["cpu_millicores"])
    assert tab.cells("#namespaces-usage", "name") == [g["namespace"] for g in by_cpu]
    assert tab.cells("#namespaces-usage", "cpu") == [g["human"]["cpu"] for g in by_cpu]
    assert page.inner_text("#target-errors") == "No target errors."
    page.screenshot(path=tmp_path / "overview.png", full_page=True)
    assert tab.errors == []


def test_nodes_table_and_node_page(tab: Tab, tmp_path: Path) -> None:
    tab.open("#/nodes", "tbody .spark polyline")
    tab.settle()
    docs = {n["node_name"]: n for n in tab.answer("/api/nodes")["nodes"]}
    assert tab.cells("table", "name") == sorted(docs)
    rows = zip(tab.cells("table", "name"), tab.cells("table", "cpu"), tab.cells("table", "pods"), strict=True)
    for name, cpu, pods in rows:
        h = docs[name]["human"]
        assert cpu == f"{h['cpu']} / {h['cpu_capacity']} ({h['cpu_percent']})"
        assert pods == str(docs[name]["pod_count"])
    tab.page.click(f"a[href='#/nodes/{EXPORTER_NODE}']")
    tab.page.wait_for_selector(".chart canvas")
    tab.wait(lambda: tab.page.locator(".chart canvas").count() >= 4, timeout=20, message="four charts")
    tab.settle()
    assert tab.page.url.endswith(f"#/nodes/{EXPORTER_NODE}")
    node = tab.answer(f"/api/nodes/{EXPORTER_NODE}")
    assert tab.page.inner_text("#node-status") == node["status"] == "up"
    pods = tab.answer(f"/api/nodes/{EXPORTER_NODE}/pods")["pods"]
    assert sorted(tab.cells("table", "name")) == sorted(p["pod_name"] for p in pods)
    assert len(pods) == sum(1 for p in PODS if p[2] == EXPORTER_NODE)
    series = [k for k in tab.answers if k.startswith(f"/api/nodes/{EXPORTER_NODE}/timeseries?window=")]
    assert series, tab.requests
    tab.page.screenshot(path=tmp_path / "node.png", full_page=True)
    assert tab.errors == []


def test_pod_page_and_containers_when_the_api_has_them(tab: Tab, tmp_path: Path) -> None:
    tab.open("#/pods/search/api-6f7d9-uvwxy", ".chart canvas")
    tab.settle()
    pod = tab.answer("/api/pods/api-6f7d9-uvwxy?namespace=search")
    assert tab.page.inner_text("#pod-cpu") == pod["human"]["cpu"]
    assert tab.page.inner_text("#pod-memory") == pod["human"]["memory"]
    assert f"request {pod['human']['cpu_request']}" in tab.page.inner_text("dl.facts")
    # Pushed pods report no containers (an empty list): no containers table.
    assert pod["containers"] == [] and tab.page.locator("h2", has_text="Containers").count() == 0
    # A pod whose exporter reports containers (issue 11's `containers`): the page lists them.
    containers = [{"name": "app", "cpu_millicores": 150.0, "memory_bytes": 2**27,
                   "cpu_request_millicores": 250.0, "cpu_percent_of_request": 60.0,
                   "human": {"cpu": "0.15 cores", "memory": "128 MiB", "cpu_request": "0.25 cores"}},
                  {"name": "sidecar", "cpu_millicores": 5.0, "memory_bytes": 2**24,
                   "human": {"cpu": "0.005 cores", "memory": "16 MiB"}}]

    def with_containers(route: Any) -> None:
        resp = route.fetch()
        route.fulfill(response=resp, json={**resp.json(), "containers": containers})

    tab.page.route("**/api/pods/api-6f7d9-uvwxy?namespace=search", with_containers)
    tab.page.click("#pause")  # resume: the next refresh shows them
    tab.page.wait_for_selector("h2:has-text('Containers')")
    assert tab.cells("div:has(> h2:has-text('Containers'))", "name") == ["app", "sidecar"]
    assert tab.cells("div:has(> h2:has-text('Containers'))", "cpu") == ["0.15 cores", "0.005 cores"]
    unknown = "\u2013"  # the page's dash for a value the API does not know (no limit here)
    assert tab.cells("div:has(> h2:has-text('Containers'))", "cpu_request")[0] == (
        f"0.25 cores / {unknown} (60.0% / {unknown})")
    tab.page.screenshot(path=tmp_path / "pod.png", full_page=True)
    assert tab.errors == []


# ------------------------------------------------------------------ filters, sorts, window, links


def _wait_api_rows(tab: Tab) -> None:
    tab.page.wait_for_selector("#pod-count[data-source=api]")
    tab.page.wait_for_load_state("networkidle")


def test_pods_filters_sorts_and_links_reproduce_the_view(tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    tab.open("#/pods", "#pod-count[data-source=api]")
    tab.settle()
    first = tab.answer("/api/pods?sort=name&limit=50")["pods"]  # kubectl top's order by default
    assert tab.cells("table", "name") == [p["pod_name"] for p in first]
    page.wait_for_selector("#filter-ns option[value=search]", state="attached")
    page.select_option("#filter-ns", "search")
    _wait_api_rows(tab)
    answer = tab.answer("/api/pods?namespace=search&sort=name&limit=50")
    assert tab.cells("table", "name") == [p["pod_name"] for p in answer["pods"]]
    assert set(tab.cells("table", "namespace")) == {"search"} and answer["total"] == 3
    assert page.inner_text("#pod-count") == "3 of 3 pods"
    page.fill("#filter-q", "API")  # the API's q is case-insensitive, so is the page
    _wait_api_rows(tab)
    assert sorted(tab.cells("table", "name")) == ["api-6f7d9-pqrst", "api-6f7d9-uvwxy"]
    page.click("th[data-key=memory] button")  # numbers sort largest first, then flip
    _wait_api_rows(tab)
    assert "sort=memory" in page.url and "dir=desc" in page.url
    answer = tab.answer("/api/pods?namespace=search&q=API&sort=-memory&limit=50")
    assert tab.cells("table", "name") == [p["pod_name"] for p in answer["pods"]]
    assert tab.cells("table", "memory") == [p["human"]["memory"] for p in answer["pods"]]
    page.click("th[data-key=memory] button")
    _wait_api_rows(tab)
    assert "dir=asc" in page.url
    assert tab.cells("table", "name") == [p["pod_name"] for p in reversed(answer["pods"])]
    url = page.url
    page.goto("about:blank")
    page.goto(url)  # a link reproduces the view
    _wait_api_rows(tab)
    assert page.input_value("#filter-ns") == "search" and page.input_value("#filter-q") == "API"
    assert page.get_attribute("th[data-key=memory]", "aria-sort") == "ascending"
    assert tab.cells("table", "name") == [p["pod_name"] for p in reversed(answer["pods"])]
    # A column the API does not sort by (percent of the CPU request) is sorted in the page.
    page.select_option("#filter-ns", "")
    page.fill("#filter-q", "")
    page.click("th[data-key=cpu_req] button")
    _wait_api_rows(tab)
    docs = tab.answer("/api/pods")["pods"]
    want = [p["pod_name"] for p in sorted(
        docs, key=lambda p: -(p["cpu_percent_of_request"] or -1))if p["cpu_percent_of_request"] is not None]
    assert tab.cells("table", "name")[: len(want)] == want
    assert tab.cells("table", "name")[len(want):] == ["debug-shell"]  # no request: last
    page.screenshot(path=tmp_path / "pods-sorted.png", full_page=True)
    page.click("a[href='#/pods/search/debug-shell']")
    page.wait_for_selector("h1:has-text('debug-shell')")
    page.go_back()
    _wait_api_rows(tab)
    assert page.get_attribute("th[data-key=cpu_req]", "aria-sort") == "descending"
    assert tab.errors == []


def test_window_selector_and_pause(tab: Tab, live: Live) -> None:
    page = tab.page
    tab.open(f"#/nodes/{PUSHED_NODE}", ".chart canvas")
    page.wait_for_load_state("networkidle")
    prefix = f"/api/nodes/{PUSHED_NODE}/timeseries?window="
    assert f"{prefix}300" in tab.requests  # the default: 5 minutes
    page.select_option("#window", "900")
    tab.wait(lambda: "w=900" in page.url, timeout=5, message="the window in the URL")
    tab.wait(lambda: f"{prefix}900" in tab.answers, timeout=10, message="a 15-minute series request")
    assert tab.answers[f"{prefix}900"]["window_seconds"] == 900
    span = get_json(live.url + "/openapi.json")["components"]["parameters"]["window"]["schema"]["maximum"]
    page.select_option("#window", "all")
    tab.wait(lambda: f"{prefix}{span:g}" in tab.answers, timeout=10,
             message=f"an all-retained request (window={span:g})")
    assert tab.answers[f"{prefix}{span:g}"]["window_seconds"] == span
    # Refresh on the scrape interval (1 s here), none while paused, again on resume.
    polls = tab.requests.count(f"/api/nodes/{PUSHED_NODE}")
    tab.wait(lambda: tab.requests.count(f"/api/nodes/{PUSHED_NODE}") >= polls + 2, timeout=10,
             message="periodic refreshes")
    page.click("#pause")
    assert page.get_attribute("#pause", "aria-pressed") == "true"
    assert page.inner_text("#pause") == "Resume"
    page.wait_for_load_state("networkidle")
    before = len(tab.requests)
    page.wait_for_timeout(2500)  # events are delivered meanwhile: two and a half intervals
    assert len(tab.requests) == before
    page.click("#pause")
    tab.wait(lambda: len(tab.requests) > before, timeout=5, message="refresh resumed")
    assert tab.errors == []


def test_namespace_and_deployment_drill_down(tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    tab.open("#/namespaces", "tbody td[data-col=name] a")
    tab.settle()
    docs = {g["namespace"]: g for g in tab.answer("/api/namespaces")["namespaces"]}
    assert dict(zip(tab.cells("table", "name"), tab.cells("table", "cpu"), strict=True)) == {
        ns: g["human"]["cpu"] for ns, g in docs.items()}
    page.click("a[href='#/namespaces/shop']")
    tab.wait(lambda: page.locator(".chart canvas").count() >= 4, timeout=20, message="four charts")
    page.wait_for_selector("tbody td[data-col=name] a[href='#/namespaces/shop/deployments/web']")
    page.click("a[href='#/namespaces/shop/deployments/web']")
    page.wait_for_selector("h1:has-text('web')")
    tab.wait(lambda: page.locator(".chart canvas").count() >= 4, timeout=20, message="four charts")
    page.click("text=all pods →")
    _wait_api_rows(tab)
    assert "ns=shop" in page.url and "dep=web" in page.url
    web = sorted(p[1] for p in PODS if p[0] == "shop" and p[3] == "web")
    assert sorted(tab.cells("table", "name")) == web
    tab.open("#/deployments", "tbody td[data-col=name] a")
    assert sorted(tab.cells("table", "name")) == sorted({p[3] for p in PODS if p[3]})
    page.screenshot(path=tmp_path / "deployments.png", full_page=True)
    assert tab.errors == []


def test_unknown_node_or_pod_says_not_found_with_a_way_back(tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    tab.open("#/nodes/no-such-node", "[data-notfound]")
    assert "Node “no-such-node” not found" in page.inner_text("main")
    page.screenshot(path=tmp_path / "node-not-found.png")
    page.click("text=All nodes")
    page.wait_for_selector("tbody td[data-col=name] a")
    tab.open("#/pods/shop/no-such-pod", "[data-notfound]")
    assert "Pod “shop/no-such-pod” not found" in page.inner_text("main")
    tab.open("#/namespaces/shop/deployments/nope", "[data-notfound]")
    tab.open("#/no/such/page", "[data-notfound]")
    assert page.locator("#banner").is_hidden()
    assert [e for e in tab.errors if NOT_FOUND_LOAD not in e] == []


def test_keyboard_navigation_and_sorting(tab: Tab) -> None:
    page = tab.page
    tab.open("#/", "#card-cpu")
    page.focus("nav a[data-section=pods]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#pod-count[data-source=api]")
    button = "th[data-key=memory] button"
    page.focus(button)
    page.keyboard.press("Enter")
    page.wait_for_selector("th[data-key=memory][aria-sort=descending]")
    assert page.evaluate("document.activeElement.closest('th')?.dataset.key") == "memory"  # focus kept
    page.keyboard.press("Enter")
    page.wait_for_selector("th[data-key=memory][aria-sort=ascending]")
    assert tab.errors == []


# ------------------------------------------------------------------ errors


def test_banner_when_a_route_fails_then_clears(tab: Tab) -> None:
    page = tab.page
    tab.open("#/namespaces", "tbody td[data-col=name] a")
    rows = tab.cells("table", "name")
    page.route("**/api/namespaces", lambda route: route.fulfill(
        status=500, content_type="application/json",
        body=json.dumps({"error": "internal_error", "description": "the server failed to answer"})))
    page.wait_for_selector("#banner:visible")
    assert "GET /api/namespaces answered 500: the server failed to answer" in page.inner_text("#banner")
    assert tab.cells("table", "name") == rows  # the last data stays
    page.unroute("**/api/namespaces")
    page.wait_for_selector("#banner", state="hidden")
    assert [e for e in tab.errors if "status of 500" not in e] == []


def test_banner_when_the_aggregator_stops_keeps_the_last_data(
    browser: Any, target: str, tmp_path: Path
) -> None:
    with live_aggregator(target) as own:
        tab = new_tab(browser, own.url)
        try:
            tab.open("#/", "#top-cpu tbody td[data-col=name] a")
            tab.page.wait_for_load_state("networkidle")
            cards = tab.page.inner_text("#card-nodes")
            own.aggregator.stop()
            tab.page.wait_for_selector("#banner:visible", timeout=15_000)
            text = tab.page.inner_text("#banner")
            assert "aggregator unreachable" in text and "showing the last data received" in text
            assert tab.page.inner_text("#card-nodes") == cards
            assert len(tab.cells("#top-cpu", "name")) == len(PODS)
            tab.page.screenshot(path=tmp_path / "aggregator-stopped.png", full_page=True)
        finally:
            tab.page.context.close()
    assert all("ERR_CONNECTION_REFUSED" in e for e in tab.errors), tab.errors
