"""The dashboard's pods page at N nodes x P pods in headless Chromium: first render and filter response.

The real aggregator app (create_app over a Store filled with the round benchmark's synthetic
readings) is served by waitress on loopback; the system Chromium (Debian's `chromium`) is driven by
Playwright. Figures:

- first render: from `page.goto(#/pods)` (a fresh page: HTML, scripts, styles, the API calls) until
  the table shows its first page of rows, N x P pods behind it;
- filter response: from the `input` event of the name filter until the table shows the filtered
  rows (measured inside the page with performance.now and a MutationObserver), for several filters.

Targets (issue 13): first render <= 1 s, filter response <= 200 ms at 1000 nodes x 30 pods.

    python -m bench dashboard                    # N = 1000, 30 pods, 5 renders and 8 filters
    python -m bench.dashboard_bench --nodes 100 --renders 2
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RENDER_TARGET_S = 1.0
FILTER_TARGET_S = 0.2
# Pod-name fragments of the synthetic cluster (bench/round_bench.py names pods <deployment>-node-NNNN-i).
FILTERS = ("app3-node-0042", "node-0019-2", "db-node-01", "app0-", "node-05", "app9-node-0777-27", "zzz", "")

# In the page: set the name filter, wait for the table body to change, answer the milliseconds.
_FILTER_JS = """async (value) => {
  const input = document.getElementById("filter-q");
  const count = document.getElementById("pod-count");
  const t0 = performance.now();
  let shown = null;
  const done = new Promise((resolve) => {
    // The count is written right after the rows; one animation frame later they are on screen.
    // First from the page's pod index, then (data-source="api") from the API's answer.
    const obs = new MutationObserver(() => {
      if (shown === null) requestAnimationFrame(() => { shown = performance.now() - t0; });
      if (count.dataset.source === "api") {
        obs.disconnect();
        requestAnimationFrame(() => {
          const api = performance.now() - t0;
          resolve({ shown: shown ?? api, api });
        });
      }
    });
    obs.observe(count, { childList: true, characterData: true, subtree: true, attributes: true });
  });
  count.dataset.source = "typing";
  input.value = value;
  input.dispatchEvent(new Event("input", { bubbles: true }));
  const r = await done;
  return { ms: r.shown, api: r.api, text: count.textContent };
}"""


@dataclass
class Served:
    url: str
    pods: int


@contextmanager
def serve(nodes: int, pods: int, *, rounds: int = 3) -> Iterator[Served]:
    """The aggregator's app over a store holding `rounds` rounds of N x P synthetic readings."""
    sys.path.insert(0, str(REPO))
    from aggregator.api.app import create_app
    from aggregator.federation import FederationCache
    from aggregator.stats import AggregatorStats
    from aggregator.store.store import Store
    from bench.round_bench import INTERVAL, readings, round_result
    from k8smon_common.http_server import ServerHandle
    from tests.aggregator_fakes import FakeStatus

    now = [1_700_000_000.0]
    stats = AggregatorStats()
    store = Store(retention_points=1000, stale_after=1e9, stats=stats, clock=lambda: now[0])
    federation = FederationCache(store=store, stats=stats, version="bench")
    status = FakeStatus()
    for seq in range(1, rounds + 1):
        now[0] = 1_700_000_000.0 + seq * INTERVAL
        for reading in readings(nodes, pods, seq):
            store.ingest(reading)  # type: ignore[arg-type]
        result = round_result(nodes, seq, samples=400)
        store.end_round(result)
        status.targets_, status.last = list(result.targets), result
    app = create_app(store=store, status=status, federation=federation, stats=stats,
                     started_at=now[0] - 60, version="bench")
    server = ServerHandle(app, host="127.0.0.1", port=0, threads=4).start()
    try:
        yield Served(url=server.url, pods=nodes * pods)
    finally:
        server.stop()


@contextmanager
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # The system Chromium (Debian's package); Playwright's own browser download is never used.
        b = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                              args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def first_render(b: Any, url: str, total: int) -> float:
    """Seconds from navigation to the pods table's first rows, in a fresh browser context."""
    context = b.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        t0 = time.perf_counter()
        page.goto(url + "/ui/#/pods")
        # wait_for_selector, not wait_for_function: the page's CSP forbids the eval the latter uses.
        page.wait_for_selector(f"#pod-count[data-total='{total}']", timeout=30_000)
        took = time.perf_counter() - t0
        # Let the page's background index load (every pod) finish before the next render, so each
        # render starts from an idle aggregator as a first visit does.
        page.wait_for_selector("#pod-count[data-index]", timeout=60_000)
        return took
    finally:
        context.close()


def filter_responses(b: Any, url: str, total: int) -> list[tuple[str, float, float, str]]:
    """(filter, seconds to the rows shown, seconds to the API's answer shown, count text) per filter."""
    context = b.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.goto(url + "/ui/#/pods")
        # wait_for_selector, not wait_for_function: the page's CSP forbids the eval the latter uses.
        page.wait_for_selector(f"#pod-count[data-total='{total}']", timeout=30_000)
        page.wait_for_selector("#pod-count[data-index]", timeout=60_000)
        page.click("#pause")  # no periodic refresh racing the measurement
        out = []
        for value in FILTERS:
            got = page.evaluate(_FILTER_JS, value)
            out.append((value, got["ms"] / 1000, got["api"] / 1000, got["text"]))
        return out
    finally:
        context.close()


def measure(nodes: int, pods: int, *, renders: int) -> dict[str, Any]:
    with serve(nodes, pods) as served, browser() as b:
        times = []
        for i in range(renders + 1):  # the first is a warm-up: the server's pod document cache
            took = first_render(b, served.url, served.pods)
            if i:
                times.append(took)
        filters = filter_responses(b, served.url, served.pods)
    return {"render": times, "filters": filters}


def main(argv: list[str] | None = None) -> int:
    """Print render and filter figures per N; non-zero exit when a target is missed."""
    sys.path.insert(0, str(REPO))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, action="append", help="N (repeatable; default 1000)")
    parser.add_argument("--pods", type=int, default=30)
    parser.add_argument("--renders", type=int, default=5)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    ok = True
    for nodes in args.nodes or [1000]:
        r = measure(nodes, args.pods, renders=args.renders)
        render = r["render"]
        fmed = statistics.median(f[1] for f in r["filters"])
        fmax = max(f[1] for f in r["filters"])
        amed = statistics.median(f[2] for f in r["filters"])
        print(f"N={nodes} pods={nodes * args.pods} first render: median {statistics.median(render):.3f} s "
              f"(min {min(render):.3f}, max {max(render):.3f}, {len(render)} loads; "
              f"target <= {RENDER_TARGET_S} s)",
              flush=True)
        for value, secs, api, text in r["filters"]:
            print(f"N={nodes}   filter q={value!r}: rows shown {secs * 1000:.0f} ms, "
                  f"API answer shown {api * 1000:.0f} ms ({text})", flush=True)
        print(f"N={nodes} filter response: median {fmed * 1000:.0f} ms, max {fmax * 1000:.0f} ms "
              f"({len(r['filters'])} filters; target <= {FILTER_TARGET_S * 1000:.0f} ms); "
              f"the API's fresh values follow after median {amed * 1000:.0f} ms", flush=True)
        met = statistics.median(render) <= RENDER_TARGET_S and fmax <= FILTER_TARGET_S
        print(f"N={nodes} {'targets met' if met else 'TARGETS MISSED'}", flush=True)
        ok = ok and met
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
