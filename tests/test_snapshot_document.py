"""The JSON snapshot document (k8smon_common/snapshotdoc.py): the same readings as the text, asked for by
the aggregator only, text for everyone else and from any exporter that does not serve it."""

from __future__ import annotations

import asyncio
import gzip
import json
import math
from collections.abc import Iterator

import falcon.testing
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString

from aggregator.parser import FastParser
from aggregator.readings import Conversion, ReadingError, from_document, to_reading
from aggregator.scraper import Scraper, load_document
from aggregator.stats import AggregatorStats
from exporter.server import create_app
from k8smon_common import snapshotdoc
from tests.aggregator_fakes import FakeExporters, FakeNode, render_document, render_exposition
from tests.test_exporter_collector import golden_snapshot
from tests.test_exporter_server import Holder

PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
                     "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")  # what Prometheus 2.42 sends
TS = 1_764_100_000.0


def from_text(text: str, **limits: int) -> Conversion:
    return to_reading(FastParser().parse(text), **limits)  # type: ignore[arg-type]


def test_the_exporter_serves_the_same_reading_both_ways() -> None:
    client = falcon.testing.TestClient(create_app(latest=Holder(golden_snapshot()), node="n"))
    text = client.simulate_get("/metrics")
    doc = client.simulate_get("/metrics", headers={"Accept": snapshotdoc.ACCEPT, "Accept-Encoding": "gzip"})
    assert text.headers["content-type"] == CONTENT_TYPE_LATEST
    assert doc.headers["content-type"] == snapshotdoc.CONTENT_TYPE
    assert doc.headers["content-encoding"] == "gzip"
    assert "Accept" in doc.headers["vary"]
    mine = from_document(json.loads(gzip.decompress(doc.content)))
    theirs = from_text(text.text)
    assert mine.reading == theirs.reading
    assert mine.reading.pods and any(p.containers for p in mine.reading.pods)  # the golden has both
    assert (mine.dropped, mine.rejected) == (theirs.dropped, theirs.rejected)


@pytest.mark.parametrize("accept", [None, "*/*", "text/plain", PROMETHEUS_ACCEPT,
                                    f"{snapshotdoc.MEDIA_TYPE};version=2",
                                    f"{snapshotdoc.MEDIA_TYPE};q=0,text/plain"])
def test_everyone_else_gets_text(accept: str | None) -> None:
    client = falcon.testing.TestClient(create_app(latest=Holder(golden_snapshot()), node="n"))
    resp = client.simulate_get("/metrics", headers={"Accept": accept} if accept else {})
    assert resp.headers["content-type"] == CONTENT_TYPE_LATEST
    assert resp.text.startswith("# HELP")


@pytest.mark.parametrize(("header", "wanted"), [
    (snapshotdoc.ACCEPT, True),
    (f"text/plain;q=0.5, {snapshotdoc.MEDIA_TYPE.upper()}", True),
    (f"{snapshotdoc.MEDIA_TYPE}; version=1; q=0.2", True),
    (f"{snapshotdoc.MEDIA_TYPE};q=0", False),
    (f"{snapshotdoc.MEDIA_TYPE};q=x", False),
    (f"{snapshotdoc.MEDIA_TYPE};version=2", False),
    (f"{snapshotdoc.MEDIA_TYPE}x", False),
    ("", False),
    (None, False),
])
def test_accept_header(header: str | None, wanted: bool) -> None:
    assert snapshotdoc.accepts(header) is wanted


@pytest.mark.parametrize("limits", [{}, {"max_label_length": 13}, {"max_labels": 6}, {"max_labels": 5}])
def test_fakes_read_the_same_both_ways_under_every_limit(limits: dict[str, int]) -> None:
    text = render_exposition("node-7", pods=12, seq=5, timestamp=TS, containers=2).decode()
    doc = json.loads(render_document("node-7", pods=12, seq=5, timestamp=TS, containers=2))
    assert from_document(doc, **limits) == from_text(text, **limits)  # reading, samples, drops, rejections
    if limits:
        assert from_document(doc, **limits) != from_document(doc)  # each limit does leave something out


def _text(samples: list[tuple[str, dict[str, str], float]]) -> str:
    lines = []
    for name, labels, value in samples:
        body = ",".join(f'{k}="{v}"' for k, v in labels.items())
        lines.append(f"{name}{{{body}}} {floatToGoString(value)}")
    return "\n".join(lines) + "\n"


POD = {"node": "n", "namespace": "ns", "pod": "p", "uid": "u", "owner_kind": "", "owner_name": "",
       "deployment": ""}
CONTAINER = {"node": "n", "namespace": "ns", "pod": "p", "uid": "u", "container": "c"}


@pytest.mark.parametrize("odd", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_dropped_and_counted_as_with_the_text(odd: float) -> None:
    samples = [
        ("k8smon_exporter_sample_timestamp_seconds", {"node": "n"}, TS),
        ("k8smon_node_cpu_usage_cores", {"node": "n"}, odd),
        ("k8smon_node_memory_used_bytes", {"node": "n"}, 5.0),
        ("k8smon_pod_cpu_usage_cores", POD, 0.25),
        ("k8smon_pod_memory_working_set_bytes", POD, odd),
        ("k8smon_container_cpu_usage_cores", CONTAINER, odd),
        ("k8smon_container_memory_working_set_bytes", CONTAINER, 7.0),
        ("k8smon_pod_cpu_usage_cores", {**POD, "pod": "only-odd", "uid": "u2"}, odd),  # no finite pod value
        ("k8smon_container_cpu_usage_cores", {**CONTAINER, "pod": "only-odd", "uid": "u2"}, 1.0),
    ]
    doc = json.loads(snapshotdoc.encode(snapshotdoc.document(samples)))
    mine, theirs = from_document(doc), from_text(_text(samples))
    assert mine == theirs
    assert mine.dropped == 5  # four non-finite values and the container value of the pod left out
    assert [p.pod for p in mine.reading.pods] == ["p"]
    assert mine.reading.pods[0].containers[0].values == {"memory_working_set_bytes": 7.0}


def _doc(**changes: object) -> dict[str, object]:
    doc = json.loads(render_document("n", pods=1, seq=2, timestamp=TS, containers=1))
    doc.update(changes)
    return doc


def test_whole_numbers_are_numbers() -> None:
    doc = _doc(timestamp=int(TS), node_values={"cpu_capacity_cores": 8})
    reading = from_document(doc).reading
    assert reading.timestamp == TS and type(reading.timestamp) is float
    assert reading.values["cpu_capacity_cores"] == 8.0 and type(reading.values["cpu_capacity_cores"]) is float


def _pod(**changes: object) -> dict[str, object]:
    return {**{f: f[:2] for f in snapshotdoc.POD_FIELDS}, "values": {"cpu_usage_cores": 0.5}, **changes}


NO_SNAPSHOT = "no k8smon_exporter_sample_timestamp_seconds sample (the exporter has no snapshot yet)"


# The whole message: the scraper's log line and the target's last_error quote it as it is.
@pytest.mark.parametrize(("doc", "message"), [
    ([], "not a version 1 snapshot document"),
    (_doc(version=2), "not a version 1 snapshot document"),
    (_doc(timestamp=None), NO_SNAPSHOT),
    (_doc(timestamp=-1.0), NO_SNAPSHOT),
    (_doc(timestamp=0), NO_SNAPSHOT),
    (_doc(timestamp=True), NO_SNAPSHOT),
    (_doc(node=""), "no node label in the exposition and no node name from discovery"),
    (_doc(node=5), "document: node must be a string"),
    (_doc(node_values={"cpu_usage_cores": "1"}), "node: value of 'cpu_usage_cores' is not a number"),
    (_doc(node_values={"cpu_usage_cores": True}), "node: value of 'cpu_usage_cores' is not a number"),
    (_doc(node_values=[1.0]), "node: values must be an object"),
    (_doc(filesystems=[]), "filesystems must be an object"),
    (_doc(filesystems={"/data": {"filesystem_size_bytes": None}}),
     "filesystem /data: value of 'filesystem_size_bytes' is not a number"),
    (_doc(pods={}), "pods must be a list"),
    (_doc(pods=[1]), "a pod must be an object"),
    (_doc(pods=[{"namespace": 1}]), "pod: namespace must be a string"),
    (_doc(pods=[{"pod": 1}]), "pod: pod must be a string"),  # a missing field is "", not the culprit
    (_doc(pods=[_pod(deployment=None)]), "pod: deployment must be a string"),
    (_doc(pods=[_pod(values=[0.5])]), "pod na/po: values must be an object"),
    (_doc(pods=[_pod(values={"cpu_usage_cores": "0.5"})]),
     "pod na/po: value of 'cpu_usage_cores' is not a number"),
    (_doc(pods=[{"values": {"x": 1.0}, "containers": []}]), "pod /: containers must be an object"),
    (_doc(pods=[_pod(containers={"app": {"cpu_usage_cores": [1]}})]),
     "container app of na/po: value of 'cpu_usage_cores' is not a number"),
])
def test_malformed_documents_are_parse_errors(doc: object, message: str) -> None:
    with pytest.raises(ReadingError) as raised:
        from_document(doc)
    assert str(raised.value) == message


def test_what_a_document_leaves_out_is_empty() -> None:
    conversion = from_document({"version": 1, "timestamp": 1.0, "node": "n",
                                "pods": [{"pod": "p", "values": {"cpu_usage_cores": 0.5}}, {"pod": "q"}]})
    reading = conversion.reading
    assert (reading.node, reading.timestamp, reading.values) == ("n", 1.0, {})  # a tiny time is still a time
    # the pod's missing labels are "", as a text sample without them; "q" has no value: no pod
    assert [(p.namespace, p.pod, p.uid, p.owner_kind, p.owner_name, p.deployment, p.containers)
            for p in reading.pods] == [("", "p", "", "", "", "", ())]
    assert (conversion.samples, conversion.dropped, conversion.rejected) == (2, 0, 0)
    bare = from_document({"version": 1, "timestamp": 1.0}, node_hint="from-discovery").reading
    assert (bare.node, bare.values, bare.pods) == ("from-discovery", {}, ())


def test_the_root_filesystem_is_the_one_at_slash() -> None:
    filesystems = {"/data": {"filesystem_size_bytes": 1.0}, "/": {"filesystem_size_bytes": 2.0}}
    assert from_document(_doc(filesystems=filesystems)).reading.values["filesystem_size_bytes"] == 2.0
    only = {"/data": {"filesystem_size_bytes": 1.0}}  # one other --rootfs stands for it
    assert from_document(_doc(filesystems=only)).reading.values["filesystem_size_bytes"] == 1.0
    two = {"/data": {"filesystem_size_bytes": 1.0}, "/var": {"filesystem_size_bytes": 3.0}}
    assert "filesystem_size_bytes" not in from_document(_doc(filesystems=two)).reading.values


def test_a_documents_values_are_kept_not_copied() -> None:
    doc = _doc()
    pod = doc["pods"][0]  # type: ignore[index]
    reading = from_document(doc).reading
    assert reading.values is not doc["node_values"]  # the root filesystem's values join the node's
    assert reading.pods[0].values is pod["values"]  # 30k pods a round at 1000 x 30: no copy each
    assert reading.pods[0].containers[0].values is next(iter(pod["containers"].values()))


def test_containers_come_by_name_and_unnamed_or_long_ones_are_dropped_and_counted() -> None:
    containers = {"zz": {"cpu_usage_cores": 1.0}, "": {"cpu_usage_cores": 2.0, "cpu_seconds_total": 3.0},
                  "a-long-name": {"cpu_usage_cores": 4.0}, "b": {"cpu_usage_cores": 5.0}}
    pod = _pod(values={"cpu_usage_cores": 0.5, "memory_working_set_bytes": math.nan}, containers=containers)
    conversion = from_document(_doc(node="node", pods=[pod]), max_label_length=6, max_labels=7)
    assert [c.name for c in conversion.reading.pods[0].containers] == ["b", "zz"]
    assert conversion.dropped == 1 + 2 + 1  # the NaN, the unnamed container's two, the long one's one


def test_label_limits_keep_what_is_exactly_at_them() -> None:
    pod = _pod(namespace="nsnsns", containers={"cccccc": {"cpu_usage_cores": 1.0}})
    kept = from_document(_doc(node="nnnnnn", pods=[pod]), max_label_length=6, max_labels=7)
    assert kept.reading.node == "nnnnnn" and kept.rejected == 0
    assert [c.name for c in kept.reading.pods[0].containers] == ["cccccc"]
    assert from_document(_doc(node="nnnnnn", pods=[pod]), max_labels=6).rejected == 1  # 7 labels a pod
    assert from_document(_doc(node="nnnnn", pods=[pod]), max_label_length=5).reading.pods == ()  # "nsnsns"
    with pytest.raises(ReadingError, match="node label longer than 5"):
        from_document(_doc(node="nnnnnn"), max_label_length=5)


def test_a_node_name_over_the_limit_is_refused_both_ways() -> None:
    with pytest.raises(ReadingError, match="node label longer than 3"):
        from_document(_doc(node="n-long"), max_label_length=3)
    with pytest.raises(ReadingError, match="node label longer than 3"):
        from_text(render_exposition("n-long", pods=1, seq=2, timestamp=TS).decode(), max_label_length=3)


def test_the_node_hint_names_a_document_without_a_node() -> None:
    assert from_document(_doc(node=""), node_hint="from-discovery").reading.node == "from-discovery"


@pytest.fixture
def fakes() -> Iterator[FakeExporters]:
    nodes = [FakeNode("127.0.0.1", f"node-{i}", pods=30) for i in range(2)]
    with FakeExporters(nodes, interval=60.0) as running:
        yield running


def _scrape(fakes: FakeExporters, scrape_format: str, max_series: int | None = None) -> list[object]:
    scraper = Scraper(timeout=5.0, max_response_bytes=1 << 22, stats=AggregatorStats(),
                      scrape_format=scrape_format, max_series=max_series)

    async def both() -> list[object]:
        try:
            return list(await asyncio.gather(*(scraper.scrape(n.target, None) for n in fakes.nodes)))
        finally:
            await scraper.close()

    return asyncio.run(both())


def test_the_scraper_asks_for_the_document_and_reads_text_from_exporters_without_it(
    fakes: FakeExporters,
) -> None:
    as_text = _scrape(fakes, "text")
    assert not fakes.documents_asked
    as_document = _scrape(fakes, "auto")
    assert fakes.documents_asked
    fakes.document = False  # an exporter that knows only the text format
    fallback = _scrape(fakes, "auto")
    for outcomes in (as_text, as_document, fallback):
        for outcome in outcomes:
            assert outcome.status.up, outcome.status.last_error  # type: ignore[attr-defined]
            assert outcome.status.samples == 403  # type: ignore[attr-defined]
    assert [o.reading for o in as_document] == [o.reading for o in as_text]  # type: ignore[attr-defined]
    assert [o.reading for o in fallback] == [o.reading for o in as_text]  # type: ignore[attr-defined]


def test_a_document_over_the_series_limit_marks_the_target_down(fakes: FakeExporters) -> None:
    outcome = _scrape(fakes, "auto", max_series=402)[0]
    assert not outcome.status.up  # type: ignore[attr-defined]
    assert outcome.status.last_error == "too many series (403 > 402)"  # type: ignore[attr-defined]


def test_a_broken_document_is_a_parse_error() -> None:
    stats = AggregatorStats()
    scraper = Scraper(timeout=1.0, max_response_bytes=1 << 20, stats=stats)
    with pytest.raises(Exception, match="parse error: bad snapshot document"):
        scraper._parse("t", b'{"version": 1,', None, snapshotdoc.CONTENT_TYPE)
    reading, samples = scraper._parse("t", render_document("n", pods=2, seq=2, timestamp=TS), None,
                                      snapshotdoc.CONTENT_TYPE)
    assert (reading.node, len(reading.pods), samples) == ("n", 2, 1 + 12 + 26)


@pytest.mark.parametrize("text", [
    snapshotdoc.encode(snapshotdoc.document([("k8smon_node_memory_used_bytes", {"node": "n"}, 0.5)])).decode(
        "utf-8"),
    render_document("n", pods=3, seq=2, timestamp=TS, containers=2).decode(),
    '{"a": NaN, "b": Infinity, "c": -Infinity}',  # what snapshotdoc.encode writes for non-finite values
    '{"u64": 18446744073709551615, "neg": -9223372036854775808, "nested": [[1, [2.5]], {"k": null}]}',
    '{"lone": "\\ud800", "pair": "\\ud83d\\ude00", "esc": "a\\u0000b"}',
    '{"x": 1e400, "y": 0.1, "z": 5e-324, "w": 2.5e-3, "whole": 2716020736, "f": 2716020736.0}',
    '{"dup": 1, "dup": 2}',
])
def test_documents_parse_to_the_values_the_standard_library_gives(text: str) -> None:
    mine, reference = load_document(text), json.loads(text)
    assert repr(mine) == repr(reference)  # repr: NaN equals itself, 1 and 1.0 differ
    assert json.dumps(mine, sort_keys=True) == json.dumps(reference, sort_keys=True)


@pytest.mark.parametrize("text", ['{"version": 1,', "", "{'a': 1}", '{"a": 01}', "[1,]", '{"a": tru}'])
def test_malformed_text_is_refused_by_both_parsers(text: str) -> None:
    with pytest.raises(ValueError):
        load_document(text)
    with pytest.raises(ValueError):
        json.loads(text)


def test_integers_past_64_bits_read_as_the_float_the_reading_makes_of_them() -> None:
    """orjson parses such an integer as the nearest float (json.loads as an int); from_document turns
    every number into a float, so the reading is the same either way."""
    big = 123456789012345678901234567890
    assert load_document(f'{{"big": {big}}}') == {"big": float(big)}
    doc = _doc()
    pod_values = doc["pods"][0]["values"]  # type: ignore[index]
    pod_values["network_receive_bytes_total"] = big
    text = json.dumps(doc)
    assert from_document(load_document(text)) == from_document(json.loads(text))
