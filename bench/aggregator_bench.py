"""Aggregator benchmark: issue 15's targets, each measured on a simulated cluster and printed met/missed.

The fake exporters run in their own processes (bench/cluster.py), the aggregator in another
(bench/aggregator_process.py), API clients in others (bench/api_load.py); this one measures. Every
figure is printed with the 1-minute load average beside it (the machine is shared).

1. CPU per ingested sample, aggregator vs Debian's `prometheus` scraping the same fake exporters at
   the same interval and timeout, at 200 and 1000 nodes x 30 pods: both processes' CPU (psutil) over
   the same window of whole aggregator rounds after warm-up, divided by the samples each one counts
   as ingested (the aggregator's `samples_ingested`, Prometheus's
   `prometheus_tsdb_head_samples_appended_total`); goal: ratio <= 1. At 200 nodes both run at the
   same time against the same fakes; at 1000 one after the other (same fakes, same window length):
   both at once with the fakes overran the aggregator's rounds on the 2 shared cores.
2. 1000 nodes x 30 pods at 5 s: >= 30 rounds, every round (scrape, end_round and the federation
   hand-over: start until published) <= 2.5 s, no tick skipped, <= 0.5 core; RSS <= 2 GB with full
   history; then, still scraping, 4 API clients polling every route (each client one turn of all
   routes per 5 s, bench/api_load.py): p99 <= 20 ms for one node or pod document and its 300-s
   timeseries, <= 150 ms for the full pod listing.
3. 5000 nodes x 30 pods at --scrape-interval 15, the exporters split over 8 processes: every round
   completes (all targets up, no tick skipped), <= 1 core, RSS with full history.
4. History: <= 2 bytes per stored value, timestamps included, measured with tracemalloc.

In target 2 the aggregator runs on a CPU of its own and everything else on the others
(bench/placement.py; `--no-pin` to share them), as in a cluster where the exporters and the dashboards
run on other machines. Pinned, the aggregator cannot use more than that one core: a round that needs
more shows as an overrun, which the round figures count. Target 3 shares the CPUs: its 5000 fake
exporters alone need about one core (rendering each snapshot's bodies), so on two CPUs pinned they
could not answer in time and every round overran (2026-12-03).

Full history is padded synthetically (plausible values behind the real points) since 1000 real
rounds would take 83 minutes at 5 s. Target 4 measures the history's bytes per value with tracemalloc
(bench/history_bench.py) on a slice of the same shape.

    python -m bench aggregator                                  # all targets (~16 minutes)
    python -m bench.aggregator_bench --only 2 --nodes2 200 --rounds2 10     # a short run of one
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.aggregator_process import AggregatorProcess  # noqa: E402
from bench.api_load import DOC_ROUTES, LISTING_ROUTE, poll  # noqa: E402
from bench.cluster import FakeCluster, node_name  # noqa: E402
from bench.placement import describe, driver_on, plan  # noqa: E402
from bench.prometheus_side import Prometheus  # noqa: E402
from bench.report import FIGURES, NOT_MEASURED, figure, missed, table  # noqa: E402

GB = 10**9
MIB = 1 << 20
DOC_P99_S, LISTING_P99_S = 0.020, 0.150


@dataclass(frozen=True)
class Options:
    pods: int = 30
    ingest_nodes: tuple[int, ...] = (200, 1000)
    ingest_rounds: int = 6
    ingest_interval: float = 5.0
    same_time_max_nodes: int = 200  # above: one after the other (2 cores: both + the fakes overran rounds)
    nodes2: int = 1000
    rounds2: int = 30
    interval2: float = 5.0
    api_seconds: float = 150.0  # 30 rounds, as without clients; ~450 answers a one-entity route
    api_period: float = 5.0  # each client polls every route once per period (0: back to back)
    api_min_turns: int = 0  # whole turns each client makes even past api_seconds (the suite's short form)
    nodes3: int = 5000
    rounds3: int = 4
    interval3: float = 15.0
    warmup_rounds: int = 3
    history_nodes: int = 2  # a slice of the 1000 x 30 shape: the cost is per series (bench/history_bench.py)
    history_points: int = 5000
    aggregator_args: tuple[str, ...] = ()  # more aggregator flags, e.g. ("--scrape-format", "text")
    pin: bool = True  # target 2: the aggregator on a CPU of its own (bench/placement.py)


def timeout_for(interval: float) -> float:
    """The aggregator's derived --scrape-timeout (aggregator/config.py), given to Prometheus too."""
    return min(4.0, round(0.8 * interval, 6))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def cpu_of(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def warm_up(agg: AggregatorProcess, nodes: int, *, rounds: int, interval: float) -> None:
    """Wait for `rounds` rounds after the first in which every target was up (first renders, series
    made), or after the last round of a bounded wait for one: an aggregator that never gets every
    target up is measured anyway, and its fewest-up figure says so."""
    deadline = time.monotonic() + 60 + 10 * interval
    while not any(r["up"] == nodes for r in agg.rounds) and time.monotonic() < deadline:
        agg.wait_rounds(1, after=agg.last_id(), deadline_s=60 + 10 * interval)
    full = [r["id"] for r in agg.rounds if r["up"] == nodes]
    after = full[0] if full else agg.last_id()
    agg.wait_rounds(rounds, after=after, deadline_s=60 + 4 * interval * rounds)


@dataclass
class Window:
    """What changed over a window of whole aggregator rounds (it starts and ends at a round's publication)."""

    seconds: float
    rounds: list[dict[str, Any]]
    agg_cpu: float
    counters: dict[str, float]
    fakes_cpu: float
    extra_cpu: float = 0.0  # another process measured over the same window (Prometheus)


def measure_window(
    agg: AggregatorProcess, cluster: FakeCluster, *, rounds: int, interval: float,
    extra: Callable[[], float] | None = None, during: Callable[[], None] | None = None,
) -> Window:
    """`rounds` whole rounds (or, with `during`, the rounds that finish while it runs, then one more)."""
    agg.command("stats")  # rounds published while nobody asked: the window starts at a fresh one
    reply = agg.wait_rounds(1, after=agg.last_id(), deadline_s=60 + 4 * interval)
    start_id, t0 = agg.last_id(), time.monotonic()
    cpu0, fakes0, extra0 = agg.cpu_seconds(), cluster.cpu_seconds(), extra() if extra else 0.0
    before = reply["stats"]["counters"]
    if during is not None:
        during()
        reply = agg.wait_rounds(1, after=agg.last_id(), deadline_s=60 + 4 * interval)
    else:
        reply = agg.wait_rounds(rounds, after=start_id, deadline_s=60 + 4 * interval * rounds)
    seconds = time.monotonic() - t0
    after = reply["stats"]["counters"]
    return Window(
        seconds=seconds,
        rounds=[r for r in agg.rounds if r["id"] > start_id],
        agg_cpu=agg.cpu_seconds() - cpu0,
        counters={k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)},
        fakes_cpu=cluster.cpu_seconds() - fakes0,
        extra_cpu=(extra() - extra0) if extra else 0.0,
    )


# --- target 1 ------------------------------------------------------------------------------------


def ingest_cost(opts: Options) -> None:
    section = "1. CPU per ingested sample, aggregator vs Prometheus (same fakes, same interval)"
    print(section, flush=True)
    interval, timeout = opts.ingest_interval, timeout_for(opts.ingest_interval)
    for nodes in opts.ingest_nodes:
        label = f"{nodes} x {opts.pods}"
        with FakeCluster(nodes, opts.pods, interval=interval) as cluster:
            if nodes > opts.same_time_max_nodes:
                mode = "one after the other, same fakes, same window length"
                with AggregatorProcess(cluster.kubeconfig, interval=interval, timeout=timeout,
                                       args=opts.aggregator_args) as agg:
                    warm_up(agg, nodes, rounds=opts.warmup_rounds, interval=interval)
                    win = measure_window(agg, cluster, rounds=opts.ingest_rounds, interval=interval)
                with Prometheus(cluster.targets, interval=interval, timeout=timeout) as prom:
                    prom_cpu, prom_samples, prom_scrapes, prom_seconds = _prometheus_alone(
                        prom, nodes, seconds=win.seconds, interval=interval, warmup=opts.warmup_rounds)
            else:
                mode = "at the same time, same fakes, same window"
                with AggregatorProcess(cluster.kubeconfig, interval=interval, timeout=timeout,
                                       args=opts.aggregator_args) as agg, \
                        Prometheus(cluster.targets, interval=interval, timeout=timeout) as prom:
                    warm_up(agg, nodes, rounds=opts.warmup_rounds, interval=interval)
                    _prometheus_warm(prom, nodes, interval=interval)
                    counted: list[tuple[float, float]] = []

                    def cpu_and_counters(p: Prometheus = prom, out: list = counted) -> float:
                        out.append(p.counters())
                        return cpu_of(p.pid)

                    win = measure_window(agg, cluster, rounds=opts.ingest_rounds, interval=interval,
                                         extra=cpu_and_counters)
                    prom_samples = counted[1][0] - counted[0][0]
                    prom_scrapes = counted[1][1] - counted[0][1]
                    prom_cpu, prom_seconds = win.extra_cpu, win.seconds
        agg_samples = win.counters.get("samples_ingested", 0)
        agg_scrapes = sum(r["up"] for r in win.rounds)
        agg_us = win.agg_cpu / max(1, agg_samples) * 1e6
        prom_us = prom_cpu / max(1, prom_samples) * 1e6
        figure(section, f"{label}: how measured", f"{mode}; {prom.version.split(' (')[0]}")
        figure(section, f"{label}: aggregator CPU per sample",
               f"{agg_us:.2f} us ({win.agg_cpu / win.seconds:.3f} cores, "
               f"{agg_samples / max(1, agg_scrapes):.0f} samples/scrape)")
        figure(section, f"{label}: Prometheus CPU per sample",
               f"{prom_us:.2f} us ({prom_cpu / prom_seconds:.3f} cores, "
               f"{prom_samples / max(1, prom_scrapes):.0f} samples/scrape)")
        ratio = f"{agg_us / prom_us:.2f}" if prom_us else "n/a"
        figure(section, f"{label}: ratio aggregator / Prometheus", ratio, goal="<= 1.0",
               ok=bool(prom_us) and agg_us <= prom_us)
        figure(section, f"{label}: window", f"{win.seconds:.0f} s, {len(win.rounds)} aggregator rounds "
               f"({win.counters.get('rounds_skipped', 0):.0f} ticks skipped), fakes "
               f"{win.fakes_cpu / win.seconds:.2f} cores in {cluster.processes} processes")


def _prometheus_warm(prom: Prometheus, nodes: int, *, interval: float) -> None:
    """Every target up, then two more intervals (its first scrapes create the series)."""
    deadline = time.monotonic() + 60 + 10 * interval
    while prom.query("count(up == 1)") < nodes:
        if time.monotonic() > deadline:
            raise RuntimeError(f"prometheus: only {prom.query('count(up == 1)'):.0f}/{nodes} targets up")
        time.sleep(min(1.0, interval / 2))
    time.sleep(2 * interval)


def _prometheus_alone(
    prom: Prometheus, nodes: int, *, seconds: float, interval: float, warmup: int
) -> tuple[float, float, float, float]:
    _prometheus_warm(prom, nodes, interval=interval)
    time.sleep(max(0, warmup - 2) * interval)
    cpu0, (samples0, scrapes0), t0 = cpu_of(prom.pid), prom.counters(), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    samples1, scrapes1 = prom.counters()
    return cpu_of(prom.pid) - cpu0, samples1 - samples0, scrapes1 - scrapes0, elapsed


# --- targets 2 and 3 ---------------------------------------------------------------------------


def _rounds(section: str, label: str, win: Window, nodes: int, *, limit: float, limit_text: str) -> bool:
    totals = [r["total_s"] for r in win.rounds]
    scrapes = [r["scrape_s"] for r in win.rounds]
    skipped = win.counters.get("rounds_skipped", 0)
    fewest = min(r["up"] for r in win.rounds)
    ok_time = max(totals) <= limit
    figure(section, f"{label}: rounds, start to published", f"max {max(totals):.2f} s  p50 "
           f"{statistics.median(totals):.2f} s  ({len(totals)} rounds)", goal=limit_text, ok=ok_time)
    figure(section, f"{label}: rounds, scrape part",
           f"max {max(scrapes):.2f} s  p50 {statistics.median(scrapes):.2f} s")
    for part, key in (("end_round", "end_round_s"), ("federation hand-over", "federation_s")):
        parts = [r[key] for r in win.rounds if r.get(key) is not None]
        if parts:  # the aggregator's own gauge of the step, as the round log saw it
            figure(section, f"{label}: rounds, {part}",
                   f"max {max(parts):.2f} s  p50 {statistics.median(parts):.2f} s")
    figure(section, f"{label}: ticks skipped (overrunning rounds)", f"{skipped:.0f}", goal="0",
           ok=skipped == 0)
    figure(section, f"{label}: fewest targets up in a round", f"{fewest}/{nodes}", goal=f"{nodes}",
           ok=fewest == nodes)
    return ok_time and skipped == 0 and fewest == nodes


def _memory(section: str, label: str, agg: AggregatorProcess, *, goal_bytes: int | None) -> None:
    running = agg.command("stats")["rss"]
    figure(section, f"{label}: RSS running", f"{running / MIB:.0f} MiB")
    full = agg.command("prefill")
    goal = f"<= {goal_bytes / GB:.1f} GB" if goal_bytes else ""
    if "skipped" in full:
        figure(section, f"{label}: RSS with full history", full["skipped"], goal=goal, verdict=NOT_MEASURED)
        return
    per_point = full["buffer_bytes"] / max(1, full["points"])
    figure(section, f"{label}: RSS with full history",
           f"{full['rss'] / MIB:.0f} MiB ({full['rss'] / GB:.2f} GB; {full['points'] / 1e6:.1f}M points, "
           f"{per_point:.1f} B/point of buffers; padded in {full['seconds']:.0f} s)", goal=goal,
           ok=None if goal_bytes is None else full["rss"] <= goal_bytes)


def _latency(values: list[float]) -> str:
    return f"p99 {pct(values, 99) * 1000:.1f} ms  p50 {pct(values, 50) * 1000:.1f} ms  (n={len(values)})"


def thousand_nodes(opts: Options) -> None:
    nodes, interval = opts.nodes2, opts.interval2
    section = f"2. {nodes} nodes x {opts.pods} pods at {interval:g} s"
    label = f"{nodes} x {opts.pods}"
    print(section, flush=True)
    placement = plan(opts.pin)
    with driver_on(placement), FakeCluster(nodes, opts.pods, interval=interval) as cluster, \
            AggregatorProcess(cluster.kubeconfig, interval=interval, timeout=timeout_for(interval),
                              args=opts.aggregator_args, placement=placement) as agg:
        figure(section, f"{label}: where it runs", describe(agg.cpus, cluster.cpus()))
        warm_up(agg, nodes, rounds=opts.warmup_rounds, interval=interval)
        win = measure_window(agg, cluster, rounds=opts.rounds2, interval=interval)
        _rounds(section, label, win, nodes, limit=interval / 2, limit_text=f"<= {interval / 2:g} s")
        cores = win.agg_cpu / win.seconds
        figure(section, f"{label}: aggregator CPU", f"{cores:.2f} cores over {win.seconds:.0f} s "
               f"(fakes {win.fakes_cpu / win.seconds:.2f} in {cluster.processes} processes)",
               goal="<= 0.5 cores", ok=cores <= 0.5)
        _memory(section, label, agg, goal_bytes=2 * GB)
        latencies: dict[str, list[float]] = {}
        cold: dict[str, list[float]] = {}
        errors: list[str] = []

        def clients() -> None:
            times, first, failures = poll(agg.url, nodes=nodes, pods=opts.pods, seconds=opts.api_seconds,
                                          period=opts.api_period, min_turns=opts.api_min_turns)
            latencies.update(times)
            cold.update(first)
            errors.extend(failures)

        api = measure_window(agg, cluster, rounds=0, interval=interval, during=clients)
        label_api = f"{label} + 4 API clients"
        sent = sum(len(v) for v in latencies.values())
        figure(section, f"{label_api}: polling", f"every route once per {opts.api_period:g} s per client: "
               f"{sent / opts.api_seconds:.0f} answers/s over {opts.api_seconds:g} s")
        for route in DOC_ROUTES:
            values = latencies[route]
            figure(section, f"{label_api}: {route.split('?')[0].replace('{', '').replace('}', '')}",
                   _latency(values), goal=f"p99 <= {DOC_P99_S * 1000:.0f} ms",
                   ok=bool(values) and pct(values, 99) <= DOC_P99_S)
        values = latencies[LISTING_ROUTE]
        figure(section, f"{label_api}: full pod listing /api/pods", _latency(values),
               goal=f"p99 <= {LISTING_P99_S * 1000:.0f} ms",
               ok=bool(values) and pct(values, 99) <= LISTING_P99_S)
        figure(section, f"{label_api}: full pod listing, each client's first (cold)",
               _latency(cold[LISTING_ROUTE]) + "; not in the figures above")
        rest = [v for r, vs in latencies.items() if r not in (*DOC_ROUTES, LISTING_ROUTE) for v in vs]
        others = len(latencies) - len(DOC_ROUTES) - 1
        figure(section, f"{label_api}: the other {others} routes", _latency(rest))
        if errors:
            figure(section, f"{label_api}: errors (per client)", "; ".join(errors)[:240])
        _rounds(section, label_api, api, nodes, limit=interval / 2, limit_text=f"<= {interval / 2:g} s")
        figure(section, f"{label_api}: aggregator CPU", f"{api.agg_cpu / api.seconds:.2f} cores")


def five_thousand_nodes(opts: Options) -> None:
    nodes, interval = opts.nodes3, opts.interval3
    section = f"3. {nodes} nodes x {opts.pods} pods at --scrape-interval {interval:g}"
    label = f"{nodes} x {opts.pods}"
    print(section, flush=True)
    # Not pinned: the fakes need the second CPU too (see the module's docstring).
    with FakeCluster(nodes, opts.pods, interval=interval) as cluster, \
            AggregatorProcess(cluster.kubeconfig, interval=interval, timeout=timeout_for(interval),
                              args=opts.aggregator_args) as agg:
        figure(section, f"{label}: where it runs", describe(agg.cpus, cluster.cpus()))
        warm_up(agg, nodes, rounds=1, interval=interval)
        win = measure_window(agg, cluster, rounds=opts.rounds3, interval=interval)
        _rounds(section, label, win, nodes, limit=interval, limit_text=f"<= {interval:g} s")
        cores = win.agg_cpu / win.seconds
        figure(section, f"{label}: aggregator CPU", f"{cores:.2f} cores over {win.seconds:.0f} s",
               goal="<= 1 core", ok=cores <= 1.0)
        _memory(section, label, agg, goal_bytes=None)
        answered, text = _answers(agg.url)
        # With a kept-alive connection per exporter, accepted requests get descriptors past 1023 (waitress
        # once waited with select(), which refuses those: its loop died on the first such request).
        figure(section, f"{label}: the API with {nodes} scrape connections open", text,
               goal="every route answers", ok=answered)
        figure(section, f"{label}: what the machine allowed",
               f"fakes {win.fakes_cpu / win.seconds:.2f} cores in {cluster.processes} processes + aggregator "
               f"{cores:.2f} on {os.cpu_count()} CPUs")


def _answers(url: str, held: int = 64) -> tuple[bool, str]:
    """`held` connections open at once, each asking /healthz, then one GET of a few routes: whether
    each answered 200, and the statuses with their times. Several at once because a new connection
    takes the lowest free descriptor, which a gap left by a closed scrape connection can keep under
    1024; under 100, waitress's `connection_limit`, past which it accepts no more."""
    import http.client
    import urllib.error
    import urllib.parse
    import urllib.request

    u = urllib.parse.urlsplit(url)
    conns = [http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=10) for _ in range(held)]
    ok_held, failure = 0, ""
    try:
        for c in conns:
            c.connect()
        for c in conns:  # the first failure ends it: a dead server would cost the timeout per connection
            c.request("GET", "/healthz")
            resp = c.getresponse()
            resp.read()
            if resp.status != 200:
                failure = f" (then {resp.status})"
                break
            ok_held += 1
    except (OSError, http.client.HTTPException) as exc:
        failure = f" (then {type(exc).__name__})"
    finally:
        for c in conns:
            c.close()
    parts = [f"/healthz on {held} connections at once: {ok_held} x 200{failure}"]
    every = ok_held == held
    if not every:
        return False, parts[0]
    for route in ("/healthz", "/api/nodes", f"/api/nodes/{node_name(0)}", "/metrics"):
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(url + route, timeout=30) as resp:
                resp.read()
                status: object = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            status = type(exc).__name__
        every = every and status == 200
        parts.append(f"{route} {status} in {(time.perf_counter() - t0) * 1e3:.0f} ms")
    return every, "; ".join(parts)


def history(opts: Options) -> None:
    from bench.history_bench import measure

    points = opts.history_points
    section = f"4. history: {points} points per series, realistic values"
    print(section, flush=True)
    for data in ("realistic", "regular"):
        m = measure(opts.history_nodes, opts.pods, points, data=data)
        label = f"{data} ({m['series']} series x {points} points)"
        figure(section, f"{label}: bytes per stored value",
               f"{m['bytes_per_value']:.2f} B (tracemalloc, timestamps included; {m['bytes_per_point']:.1f} "
               f"B/point; RSS {m['rss_bytes_per_value']:.2f} B/value)", goal="<= 2 B",
               ok=m["bytes_per_value"] <= 2.0)
        if data == "realistic":
            figure(section, f"{label}: 1000 x 30 x {points} projected",
                   f"{m['projected_1000x30x5000_gib'] * points / 5000:.2f} GiB", goal="<= 2 GB",
                   ok=m["fits_2gb"] or points != 5000)
            figure(section, f"{label}: appends per 30k-pod round", f"{m['append_ms_per_round']:.0f} ms CPU "
                   f"(chunk encoding included; {m['append_us_per_point']:.2f} us/point)")
            figure(section, f"{label}: 300-s window read", f"p99 {m['window_p99_ms']:.2f} ms  "
                   f"p50 {m['window_p50_ms']:.2f} ms")


# Each target of issue 15 is one section.
TARGET_SECTIONS: list[tuple[str, Callable[[Options], None]]] = [
    ("1", ingest_cost),
    ("2", thousand_nodes),
    ("3", five_thousand_nodes),
    ("4", history),
]


def run(opts: Options, only: set[str] | None = None) -> int:
    """Every wanted section; 1 when a target was missed or could not be measured."""
    first = len(FIGURES)
    for key, section in TARGET_SECTIONS:
        if only and key not in only:
            continue
        t0 = time.monotonic()
        try:
            section(opts)
        except Exception as exc:  # one failed section must not hide the others' figures
            import traceback

            traceback.print_exc()
            figure(f"target {key}", f"target {key} ({section.__name__})", f"failed: {exc}"[:200],
                   verdict=NOT_MEASURED)
        print(f"  (section took {time.monotonic() - t0:.0f} s)", flush=True)
    return 1 if missed(FIGURES[first:]) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    d = Options()
    parser.add_argument("--only", help="comma-separated target numbers (default: all)")
    parser.add_argument("--pods", type=int, default=d.pods)
    parser.add_argument("--ingest-nodes", type=int, action="append",
                        help="target 1 sizes (default 200, 1000)")
    parser.add_argument("--ingest-rounds", type=int, default=d.ingest_rounds)
    parser.add_argument("--ingest-interval", type=float, default=d.ingest_interval)
    parser.add_argument("--same-time-max-nodes", type=int, default=d.same_time_max_nodes,
                        help="target 1: sizes up to this run the aggregator and Prometheus at the same time, "
                        "larger ones one after the other")
    parser.add_argument("--nodes2", type=int, default=d.nodes2)
    parser.add_argument("--rounds2", type=int, default=d.rounds2)
    parser.add_argument("--interval2", type=float, default=d.interval2)
    parser.add_argument("--api-seconds", type=float, default=d.api_seconds)
    parser.add_argument("--api-period", type=float, default=d.api_period,
                        help="seconds per client turn of every route (0: back to back)")
    parser.add_argument("--nodes3", type=int, default=d.nodes3)
    parser.add_argument("--rounds3", type=int, default=d.rounds3)
    parser.add_argument("--interval3", type=float, default=d.interval3)
    parser.add_argument("--warmup-rounds", type=int, default=d.warmup_rounds)
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="target 2: let the aggregator share every CPU with the fakes and clients "
                        "(default: a CPU of its own, as in a cluster)")
    parser.add_argument("--aggregator-arg", action="append", default=[],
                        help="another aggregator flag (repeatable), e.g. "
                        "--aggregator-arg=--scrape-format=text")
    a = parser.parse_args(argv)
    opts = Options(pods=a.pods, ingest_nodes=tuple(a.ingest_nodes or d.ingest_nodes),
                   ingest_rounds=a.ingest_rounds, ingest_interval=a.ingest_interval,
                   same_time_max_nodes=a.same_time_max_nodes,
                   nodes2=a.nodes2, rounds2=a.rounds2, interval2=a.interval2, api_seconds=a.api_seconds,
                   api_period=a.api_period,
                   nodes3=a.nodes3, rounds3=a.rounds3, interval3=a.interval3, warmup_rounds=a.warmup_rounds,
                   aggregator_args=tuple(a.aggregator_arg), pin=a.pin)
    first = len(FIGURES)
    status = run(opts, set(a.only.split(",")) if a.only else None)
    if __name__ == "__main__":  # `python -m bench` prints the table of every benchmark at its end
        print("\nsummary\n" + table(FIGURES[first:]), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
