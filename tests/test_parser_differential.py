"""FastParser agrees with prometheus_client.parser: the same samples where it succeeds, else an error.

The fast path only handles the canonical form; everything else goes to the reference parser. These
tests check both halves: generated canonical documents must take the fast path (or the
differential would prove nothing), and on generated and hostile documents the two parsers give the
same samples or both reject.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from aggregator.parser import FastParser, ParseError, Sample, parse_reference

# Under mutation testing (scripts/mutation.py) a tenth of the examples: tests/test_parser_values.py
# asserts the exact samples, these only need to catch a disagreement the fixed cases miss.
SCALE = 10 if os.environ.get("K8SMON_MUTATION") else 1
GOLDEN = Path(__file__).resolve().parent / "fixtures" / "exporter_golden.prom"


def _eq(x: float | None, y: float | None) -> bool:
    return x == y or (x is not None and y is not None and math.isnan(x) and math.isnan(y))


def _same(a: list[Sample], b: list[Sample]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if (x.name, x.labels) != (y.name, y.labels) or not _eq(x.timestamp, y.timestamp):
            return False
        if not _eq(x.value, y.value):
            return False
    return True


def check(text: str) -> FastParser:
    """Assert the differential property on `text`; return the parser (to inspect `fallbacks`)."""
    parser = FastParser()
    try:
        expected = parse_reference(text)
    except ParseError:
        with pytest.raises(ParseError):
            parser.parse(text)
        return parser
    got = parser.parse(text)
    assert _same(got, expected), f"fast parser disagrees on {text!r}:\n{got}\n!=\n{expected}"
    # Parsing again hits the head cache: still the same answer.
    assert _same(parser.parse(text), expected)
    return parser


# --- generated documents -------------------------------------------------------------------------

NAMES = st.sampled_from(["foo", "foo_total", "bar_bytes", "k8smon_pod_cpu_usage_cores", "a:b", "_x", "h"])
SUFFIXES = st.sampled_from(["", "", "", "_total", "_count", "_sum", "_bucket", "_created"])
TYPES = st.sampled_from(["counter", "gauge", "summary", "histogram", "untyped", "info"])
LABEL_NAMES = st.sampled_from(["node", "pod", "le", "quantile", "_", "a1", "namespace"])
RAW_VALUES = st.text(st.characters(codec="utf-8", exclude_characters="\n", exclude_categories=["Cs"]),
                     max_size=12) | st.sampled_from(['\\', '"', "a\\b", 'x"y', "} 1", "a,b=c", " # ", "\t"])


def _number_text(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


CANONICAL_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(_number_text),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["1e3", "-0", "0.5", "1.764100005e+09", "+1", ".5", "5."]),
)
ODD_NUMBERS = st.sampled_from(
    ["1_0", "0x10", "nan", "inf", "Infinity", "NAN", "", "1.2.3", "\u0661", "1e", "+-1"])


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@st.composite
def canonical_line(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return f"# HELP {draw(NAMES)} {draw(st.text(max_size=10)).replace(chr(10), ' ')}".rstrip()
    if kind == 1:
        return f"# TYPE {draw(NAMES)} {draw(TYPES)}"
    name = draw(NAMES) + draw(SUFFIXES)
    labels = draw(st.dictionaries(LABEL_NAMES, RAW_VALUES, max_size=3))
    head = name
    if labels or draw(st.booleans()):
        body = ",".join(f'{k}="{escape(v)}"' for k, v in labels.items())
        head += "{" + body + ("," if labels and draw(st.booleans()) else "") + "}"
    line = f"{head} {draw(CANONICAL_NUMBERS)}"
    if draw(st.integers(0, 4)) == 0:
        line += f" {draw(st.integers(-(10**15), 10**15))}"
    return line


@st.composite
def hostile_line(draw: st.DrawFn) -> str:  # noqa: PLR0911 - one return per kind of damage
    line = draw(canonical_line())
    mutation = draw(st.integers(0, 11))
    if mutation == 0:
        return line.replace(" ", "  ", 1)
    if mutation == 1:
        return line.replace(" ", "\t", 1)
    if mutation == 2:
        return line + draw(st.sampled_from(["   ", "\t", "\r", " # {a=\"b\"} 1", " 1 2"]))
    if mutation == 3:
        return line.rsplit(" ", 1)[0] + " " + draw(ODD_NUMBERS)
    if mutation == 4:
        return draw(st.sampled_from(["#", "# comment HELP", "#HELP foo x", "# TYPE foo", "#  TYPE foo gauge",
                                     '# HELP "foo" x', "# TYPE foo\tcounter", "garbage", "{} 1",
                                     "# TYPE foo counter extra",
                                     '{__name__="foo"} 1', 'foo{__name__="bar"} 1', 'foo{a="b"}1',
                                     'foo{a="b",,c="d"} 1', 'foo{a="b" c="d"} 1', "foo{a=b} 1",
                                     'foo{a="b"} 1 2 3', 'foo{a="\\q"} 1', "foo-bar 1", 'foo-bar{a="b"} 1',
                                     'foo{a="b",a="c"} 1', 'foo{__a="b"} 1', 'foo{ a = "b" } 1',
                                     'foo{"a"="b"} 1', 'foo{a="b} 1', "\x00", "foo 1\x0b", "\ufefffoo 1"]))
    if mutation == 5 and len(line) > 2:
        i = draw(st.integers(0, len(line) - 1))
        return line[:i] + line[i + 1:]
    if mutation == 6 and len(line) > 2:
        i = draw(st.integers(0, len(line) - 1))
        junk = draw(st.sampled_from(['"', "\\", "{", "}", ",", "=", " ", "#", "\r", "\u2028"]))
        return line[:i] + junk + line[i:]
    return line


def document(lines: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(lines, st.just(""), st.just("# a comment")), max_size=12).map(
        lambda ls: "\n".join(ls) + "\n")


@settings(max_examples=400 // SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document(canonical_line()))
def test_canonical_documents_take_the_fast_path_and_agree(text: str) -> None:
    parser = FastParser()
    try:
        parse_reference(text)
    except ParseError:
        return  # e.g. a duplicate label drawn twice is not canonical after all; covered below
    check(text)
    # Everything canonical_line draws is inside the fast grammar except for the label dictionaries'
    # reserved names, which LABEL_NAMES never draws: so no fallback may have happened.
    assert parser.parse(text) is not None and parser.fallbacks == 0, text


@settings(max_examples=800 // SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document(hostile_line()))
@example("# TYPE foo counter\nfoo 1\nbar 2\nfoo 3 1000\n")
@example("foo_total 1\n# TYPE foo_total counter\nfoo_total 2\n# HELP foo_total x\nfoo_total 3\n")
@example("# HELP x y\n# HELP x z\n# TYPE x summary\nx_count 1\nx_sum 2\nx 3\nx_bucket 4\n")
@example("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh 1\n")
def test_hostile_documents_agree_or_both_fail(text: str) -> None:
    check(text)


@settings(max_examples=300 // SCALE, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_agrees_or_both_fail(text: str) -> None:
    check(text)


HOSTILE = [
    'a{path="C:\\\\dir\\\\",quote="say \\"hi\\"",nl="line1\\nline2"} 1\n',
    'a{x="\\\\n"} 1\n',  # an escaped backslash followed by n, not a newline
    'a{x="\\t"} 1\n',  # unknown escape: kept as two characters by the reference
    "a NaN\nb +Inf\nc -Inf\nd 1e308\ne -0.0\n",
    "a 1 1700000000000\nb{x=\"y\"} 2 -5\n",
    "no_help_or_type 1\nanother{x=\"1\"} 2\n",
    "a 1\na 1\na{x=\"1\"} 2\na{x=\"1\"} 3\n",  # duplicate series: both parsers keep every sample
    "# HELP unknown_family Whatever.\n# TYPE unknown_family stateset\nunknown_family{x=\"1\"} 1\n",
    "# just a comment\n\n\n   \n# another\na 1\n",
    "a 1   \n   b 2\n\t\tc 3\t\n",
    "a 1\r\nb 2\r\n",
    "this is not a metric line\n",
    "a{x=\"unterminated} 1\n",
    "a{x=\"1\"\n",
    "a\n",
    "a 1 2 3\n",
    "# TYPE a\n",
    "a{x=\"1\",x=\"2\"} 1\n",
    "a 0x1f\n",
    "a 1_000\n",
    "a 1 " + "9" * 400 + "\n",  # a timestamp beyond float range: both raise ParseError, not OverflowError
    "",
    "\n\n",
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_corpus(text: str) -> None:
    check(text)


def test_garbage_is_a_parse_error_with_a_message() -> None:
    with pytest.raises(ParseError, match="invalid exposition"):
        FastParser().parse("<html>502 Bad Gateway</html>\n")


def test_golden_exposition_takes_the_fast_path() -> None:
    text = GOLDEN.read_text(encoding="utf-8")
    parser = check(text)
    assert parser.fallbacks == 0


@settings(max_examples=60 // SCALE, deadline=None)
@given(st.lists(st.tuples(RAW_VALUES, st.floats(allow_nan=False, width=32)), min_size=1, max_size=8))
def test_prometheus_client_output_takes_the_fast_path(rows: list[tuple[str, float]]) -> None:
    registry = CollectorRegistry()
    gauge = Gauge("g_bytes", "help with \\ and \n", ["node", "pod"], registry=registry)
    counter = Counter("c", "a counter", ["pod"], registry=registry)
    for i, (label, value) in enumerate(rows):
        gauge.labels(node=f"n{i}", pod=label).set(value)
        counter.labels(pod=label).inc(abs(value))
    text = generate_latest(registry).decode()
    parser = check(text)
    assert parser.fallbacks == 0, text


def test_head_cache_is_bounded() -> None:
    parser = FastParser(cache_limit=10)
    for i in range(100):
        parser.parse(f'a{{i="{i}"}} 1\n')
    assert len(parser._heads) <= 10


@settings(max_examples=300 // SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(document(hostile_line()), min_size=2, max_size=4))
def test_one_parser_over_a_sequence_of_documents(texts: list[str]) -> None:
    """The per-target caches (heads, last document's lines) never change an answer."""
    parser = FastParser()
    for text in texts:
        try:
            expected = parse_reference(text)
        except ParseError:
            with pytest.raises(ParseError):
                parser.parse(text)
            continue
        assert _same(parser.parse(text), expected), text
