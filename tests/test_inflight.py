"""The listing warmer gives way to the API's requests (aggregator/api/inflight.py): what counts as a
request in flight, how long the warmer pauses for them, and that nothing waits on itself."""

from __future__ import annotations

import threading
import time

import falcon
import pytest
from falcon import testing

from aggregator.api import inflight
from aggregator.api.app import create_app
from aggregator.api.inflight import GiveWay, RequestsInFlight
from aggregator.api.views import GIVE_WAY_EVERY, PodDocCache, json_dumps
from aggregator.federation import FederationCache
from aggregator.stats import AggregatorStats
from aggregator.store.store import Store
from tests.test_api import FakeStatus
from tests.test_store import Clock, node, pod, round_result


class Ticks(Clock):
    """test_store's settable clock, moved by a fake sleep."""

    def __init__(self) -> None:
        super().__init__(0.0)  # a fresh counter is idle even at 0; LINGER from here is exact in binary
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Probe:
    """A resource that notes whether its own request counts, and fails on demand."""

    def __init__(self, requests: RequestsInFlight) -> None:
        self.requests = requests
        self.seen: list[bool] = []

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.seen.append(self.requests.busy())
        with self.requests.aside():
            self.seen.append(self.requests.busy())
        self.seen.append(self.requests.busy())
        fail = req.get_param("fail")
        if fail == "http":
            raise falcon.HTTPNotFound()
        if fail == "bug":
            raise RuntimeError("boom")
        resp.media = {"ok": True}


def _app(ticks: Ticks) -> tuple[testing.TestClient, Probe, RequestsInFlight]:
    requests = RequestsInFlight(clock=ticks)
    app = falcon.App(middleware=[requests])
    probe = Probe(requests)
    app.add_route("/probe", probe)
    return testing.TestClient(app), probe, requests


@pytest.mark.parametrize("fail", ["", "http", "bug"])
def test_a_request_counts_from_start_to_answer_however_it_ends(fail: str) -> None:
    ticks = Ticks()
    client, probe, requests = _app(ticks)
    assert not requests.busy()
    got = client.simulate_get("/probe", params={"fail": fail} if fail else None)
    assert got.status_code == {"": 200, "http": 404, "bug": 500}[fail]
    # counted while answered; not while it waits for background work (aside)
    assert probe.seen == [True, False, True]
    assert requests.busy()  # just answered: waitress still sends it
    ticks.now += inflight.LINGER
    assert not requests.busy()


def test_aside_outside_a_request_changes_nothing() -> None:
    ticks = Ticks()
    requests = RequestsInFlight(clock=ticks)
    entered, leave = threading.Event(), threading.Event()

    def answering() -> None:  # another thread's request, in flight throughout
        requests.process_request(None, None)  # type: ignore[arg-type]
        entered.set()
        leave.wait(10)
        requests.process_response(None, None, None, True)  # type: ignore[arg-type]

    other = threading.Thread(target=answering)
    other.start()
    assert entered.wait(10)
    with requests.aside():  # this thread answers no request: the other one still counts
        assert requests.busy()
    leave.set()
    other.join(10)
    ticks.now += inflight.LINGER
    assert not requests.busy()


def test_give_way_sleeps_while_requests_are_in_flight_up_to_its_budget() -> None:
    ticks = Ticks()
    requests = RequestsInFlight(clock=ticks)
    give_way = GiveWay(requests, budget=0.01, clock=ticks, sleep=ticks.sleep)
    give_way()
    assert ticks.slept == []  # nobody in flight: no pause at all
    requests.process_request(None, None)  # type: ignore[arg-type]
    give_way()
    assert len(ticks.slept) == 20 and give_way.paused == pytest.approx(0.01)  # the whole budget
    give_way()
    assert len(ticks.slept) == 20  # spent: it works on, however busy the API
    GiveWay(requests, budget=0.0, clock=ticks, sleep=ticks.sleep)()
    assert len(ticks.slept) == 20  # no budget: never a pause
    fresh = GiveWay(requests, budget=1.0, clock=ticks, sleep=ticks.sleep)
    requests.process_response(None, None, None, True)  # type: ignore[arg-type]
    fresh()
    assert fresh.paused == pytest.approx(inflight.LINGER)  # the answer is still being sent
    fresh()
    assert fresh.paused == pytest.approx(inflight.LINGER)


def _listing(pods: int) -> tuple[Store, Clock]:
    clock = Clock(1_700_000_000.0)
    store = Store(clock=clock)
    store.ingest(node("n1", clock.now, *[pod(f"p{i:03d}", cpu_usage_cores=i / 100) for i in range(pods)]))
    store.end_round(round_result(1, clock.now))
    return store, clock


def test_the_preparation_looks_every_few_pods_and_answers_the_same() -> None:
    store, clock = _listing(2 * GIVE_WAY_EVERY + 1)
    looks: list[int] = []
    docs = PodDocCache(json_dumps)
    given = docs.whole(store.pod_listing(), now=clock.now, give_way=lambda: looks.append(1))
    assert len(looks) == 3  # pods 0, 16 and 32
    plain = PodDocCache(json_dumps).whole(store.pod_listing().keeping(lambda v: True, now=clock.now),
                                          now=clock.now)
    assert b"".join(given) == b"".join(plain)


@pytest.mark.parametrize("entry", ["whole", "prepare"])
def test_a_request_waiting_for_the_warmers_build_is_not_given_way_to(entry: str) -> None:
    """The warmer builds while a request waits for that build (a whole listing, or a part sharing the
    round's preparation): the request is aside, so the build does not pause for it (it would pause
    for the whole budget, and the request with it)."""
    store, clock = _listing(3 * GIVE_WAY_EVERY)
    docs = PodDocCache(json_dumps)
    listing = store.pod_listing()
    ticks = Ticks()
    requests = docs.requests
    waiting, paused = threading.Event(), []
    building = threading.Event()

    def give_way() -> None:
        if not building.is_set():
            building.set()
            assert waiting.wait(10)  # the request below waits for this build from now on
            deadline = time.monotonic() + 5  # then the check below fails rather than the test hanging
            while not (listing.building("pod_json") and _blocked(requests)) and time.monotonic() < deadline:
                time.sleep(0.001)
        gw = GiveWay(requests, budget=1.0, clock=ticks, sleep=ticks.sleep)
        gw()
        paused.append(gw.paused)

    answers: list[bytes] = []

    def request() -> None:  # a whole-listing request, in flight, that finds the build under way
        requests.process_request(None, None)  # type: ignore[arg-type]
        assert building.wait(10)
        waiting.set()
        if entry == "whole":
            answers.append(b"".join(docs.whole(listing, now=clock.now)))
        else:
            answers.append(b"".join(docs.encoded(listing.views, now=clock.now, full=True,
                                                 prepared=docs.prepare(listing, asked=False))))
        requests.process_response(None, None, None, True)  # type: ignore[arg-type]

    asker = threading.Thread(target=request)
    asker.start()
    warmed = b"".join(docs.whole(listing, now=clock.now, give_way=give_way))
    asker.join(10)
    assert not asker.is_alive()
    assert answers == [warmed]
    assert paused and max(paused) == 0.0


def _blocked(requests: RequestsInFlight) -> bool:
    """The request thread has set itself aside (it waits in the listing's memo)."""
    return not requests.busy()


def test_the_aggregator_app_counts_its_requests_for_the_warmer() -> None:
    store, _clock = _listing(2)
    docs = PodDocCache(json_dumps)
    seen: list[bool] = []

    class Spy:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            seen.append(docs.requests.busy())

    stats = AggregatorStats()
    federation = FederationCache(store=store, stats=stats, version="9.9.9")
    app = create_app(store=store, status=FakeStatus(), federation=federation, stats=stats, started_at=0.0,
                     version="9.9.9", pod_docs=docs)
    app.add_route("/spy", Spy())
    client = testing.TestClient(app)
    assert client.simulate_get("/spy").status_code == 200
    assert seen == [True]
    # however a request ends (a browser redirect, 404, a CORS preflight, a rejected query), it stops counting
    for method, path, query, headers, status in [
        ("GET", "/", None, {"Accept": "text/html"}, 302),
        ("GET", "/api/nodes/nope", None, {}, 404),
        ("OPTIONS", "/api/pods", None, {"Origin": "http://x", "Access-Control-Request-Method": "GET"}, 200),
        ("GET", "/api/pods", "bogus=1", {}, 400),
    ]:
        got = client.simulate_request(method, path, query_string=query, headers=headers)
        assert got.status_code == status, path
        time.sleep(inflight.LINGER)
        assert not docs.requests.busy(), path
