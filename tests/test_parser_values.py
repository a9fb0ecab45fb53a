"""FastParser's exact samples, caches and errors, case by case (fast: the mutation run of parser.py uses it).

tests/test_parser_differential.py proves that the fast path agrees with prometheus_client's parser on
generated input; this file pins the values themselves, so a change that made both paths wrong in
the same way, or a cache that served a stale sample, is caught by a fixed case in milliseconds.
"""

from __future__ import annotations

import math

import pytest

from aggregator.parser import CACHE_SLACK, FastParser, ParseError, Sample, parse_reference


def fast(text: str, *, fallbacks: int = 0) -> list[Sample]:
    """Parse `text` with a fresh FastParser, check the fallback count and the reference's answer."""
    parser = FastParser()
    got = parser.parse(text)
    assert parser.fallbacks == fallbacks
    assert _key(got) == _key(parse_reference(text))
    return got


def _key(samples: list[Sample]) -> list[tuple[object, ...]]:
    # NaN != NaN: compare its text instead.
    return [(s.name, s.labels, repr(s.value), s.timestamp) for s in samples]


def test_escaped_label_values_and_labels_with_commas_quotes_and_braces() -> None:
    text = 'a{path="C:\\\\dir\\\\",q="say \\"hi\\"",nl="l1\\nl2",c="a,b=c",b="} {",t="\\t",e=""} 1\n'
    assert fast(text) == [Sample("a", {"path": "C:\\dir\\", "q": 'say "hi"', "nl": "l1\nl2", "c": "a,b=c",
                                       "b": "} {", "t": "\\t", "e": ""}, 1.0, None)]
    # An escaped backslash followed by n is a backslash and an n, not a newline.
    assert fast('a{x="\\\\n"} 2\n') == [Sample("a", {"x": "\\n"}, 2.0, None)]
    assert fast('a{x="1",} 3\nb{} 4\n') == [Sample("a", {"x": "1"}, 3.0, None), Sample("b", {}, 4.0, None)]


def test_values_special_floats_exponents_and_huge_integers() -> None:
    got = fast("a NaN\nb +Inf\nc -Inf\nd 1e3\ne -1.5E-2\nf 123456789012345678901234567890\ng -0.0\nh .5\n"
               "i 1e400\nj 1" + "0" * 400 + "\n")
    assert [s.name for s in got] == list("abcdefghij")
    assert math.isnan(got[0].value)
    assert [s.value for s in got[1:]] == [math.inf, -math.inf, 1000.0, -0.015, 1.2345678901234568e29, -0.0,
                                          0.5, math.inf, math.inf]
    assert math.copysign(1, got[6].value) == -1
    assert all(s.timestamp is None for s in got)


def test_reference_turns_integers_beyond_float_range_into_infinities() -> None:
    # prometheus_client returns such values as Python ints; float() of them overflows.
    assert parse_reference("a 1" + "0" * 400 + "\nb -1" + "0" * 400 + "\nc 7\n") == [
        Sample("a", {}, math.inf, None), Sample("b", {}, -math.inf, None), Sample("c", {}, 7.0, None)]


def test_timestamps_are_milliseconds_turned_into_seconds() -> None:
    assert fast('a 1 1700000000123\nb{x="y"} 2 -5\nc 3 1.5\nd 4 0\n') == [
        Sample("a", {}, 1.0, 1700000000.123), Sample("b", {"x": "y"}, 2.0, -0.005),
        Sample("c", {}, 3.0, 0.0015), Sample("d", {}, 4.0, 0.0)]
    ts = fast("a 1 12345678901234567\n")[0].timestamp
    assert ts == 12345678901234567 / 1000 and ts == 12345678901234.567


@pytest.mark.parametrize(("text", "message"), [
    # Bug fixed here: a timestamp beyond float range raised a bare OverflowError out of parse() (and out of
    # Scraper.scrape, which promises never to raise) instead of a ParseError that marks the target down.
    ("a 1 " + "9" * 400 + "\n",
     "invalid exposition: OverflowError: integer division result too large for a float"),
    ("a 1_0\n", "invalid exposition: ValueError: Invalid value: '1_0'"),
    ("a 1 1_0\n", "invalid exposition: ValueError: Invalid value: '1_0'"),
    ("a 1 x\n", "invalid exposition: ValueError: could not convert string to float: 'x'"),
    ("a 0x1f\n", "invalid exposition: ValueError: could not convert string to float: '0x1f'"),
    ("a\n", "invalid exposition: ValueError: invalid metric name:a"),
    ('a{x="1",x="2"} 1\n', 'invalid exposition: ValueError: Invalid labels: x="1",x="2"'),
    ('a{__name__="b"} 1\n', "invalid exposition: ValueError: metric name specified more than once"),
    ("# TYPE a foo\na 1\n", "invalid exposition: ValueError: Invalid metric type: foo"),
    ("# TYPE _total counter\n_total 1\n", "invalid exposition: ValueError: metric name cannot be empty"),
])
def test_invalid_lines_fall_back_and_raise_the_references_message(text: str, message: str) -> None:
    parser = FastParser()
    with pytest.raises(ParseError) as info:
        parser.parse(text)
    assert str(info.value) == message
    assert parser.fallbacks == 1


def test_reference_error_messages_are_cut_to_300_characters() -> None:
    with pytest.raises(ParseError) as info:
        parse_reference("x" * 1000 + "\n")
    assert len(str(info.value)) == 300 and str(info.value).startswith("invalid exposition: ValueError: ")


@pytest.mark.parametrize(("text", "expected"), [
    ("a  1\n", [Sample("a", {}, 1.0, None)]),  # two spaces
    ("#HELP foo x\nfoo 1\n", [Sample("foo", {}, 1.0, None)]),
    ("# TYPE foo\tcounter\nfoo 1\n", [Sample("foo_total", {}, 1.0, None)]),
    ("# TYPE a foo\n# TYPE a gauge\na 1\n", [Sample("a", {}, 1.0, None)]),  # a later TYPE replaces it
    ('a{x="1"} 1 2 3\n', [Sample("a", {"x": "1"}, 1.0, 0.003)]),  # the reference's reading
    ("# HELP\n", []),
    ('a{ x="1"} 1\n', [Sample("a", {"x": "1"}, 1.0, None)]),
])
def test_lines_outside_the_fast_grammar_go_to_the_reference(text: str, expected: list[Sample]) -> None:
    parser = FastParser()
    assert parser.parse(text) == expected
    assert parser.fallbacks == 1
    assert parser.parse(text) == expected  # counted per document, every time
    assert parser.fallbacks == 2


def test_comments_blank_lines_and_whitespace_are_ignored() -> None:
    assert fast("# just a comment\n\n   \n# another\na 1   \n   b 2\n\t\tc 3\t\r\n") == [
        Sample("a", {}, 1.0, None), Sample("b", {}, 2.0, None), Sample("c", {}, 3.0, None)]
    assert fast("") == [] and fast("\n\n") == []


def test_counter_family_without_total_is_renamed_and_others_are_not() -> None:
    assert fast("# TYPE foo counter\nfoo 1\nbar 2\nfoo 3\n") == [
        Sample("foo_total", {}, 1.0, None), Sample("bar", {}, 2.0, None), Sample("foo", {}, 3.0, None)]
    assert fast("# TYPE foo counter\n# HELP foo h\nfoo{a=\"b\"} 1 5\nfoo 2\n") == [
        Sample("foo_total", {"a": "b"}, 1.0, 0.005), Sample("foo_total", {}, 2.0, None)]
    assert fast("# TYPE foo  counter\nfoo 1\n") == [Sample("foo_total", {}, 1.0, None)]
    assert fast("# TYPE foo_total counter\nfoo_total 1\n") == [Sample("foo_total", {}, 1.0, None)]
    assert fast("a 1\n# TYPE a counter\na 2\n") == [
        Sample("a", {}, 1.0, None), Sample("a_total", {}, 2.0, None)]
    assert fast('# HELP foo x\n# TYPE foo counter\nfoo 1\n# HELP bar y\n# TYPE bar counter\nbar 2\n') == [
        Sample("foo_total", {}, 1.0, None), Sample("bar_total", {}, 2.0, None)]
    # A sample of another family ends the counter family: neither sample is renamed.
    assert fast("# TYPE a counter\n# TYPE b counter\na 1\nb 2\n") == [
        Sample("a", {}, 1.0, None), Sample("b", {}, 2.0, None)]
    # HELP of another name ends the counter family; the new one is untyped.
    assert fast("# TYPE a counter\na 1\n# HELP b x\nb 2\n# HELP b y\nb 3\n") == [
        Sample("a_total", {}, 1.0, None), Sample("b", {}, 2.0, None), Sample("b", {}, 3.0, None)]


def test_type_then_help_of_the_same_family_keeps_it() -> None:
    assert fast("# TYPE c counter\n# HELP c h\nc 1\n# TYPE c counter\nc 2\n") == [
        Sample("c_total", {}, 1.0, None), Sample("c_total", {}, 2.0, None)]


def test_summary_histogram_and_gauge_suffixes() -> None:
    assert fast("# HELP x y\n# TYPE x summary\nx_count 1\nx_sum 2\nx 3\nx_bucket 4\nx 5\n") == [
        Sample("x_count", {}, 1.0, None), Sample("x_sum", {}, 2.0, None), Sample("x", {}, 3.0, None),
        Sample("x_bucket", {}, 4.0, None), Sample("x", {}, 5.0, None)]
    assert fast('# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_count 1\nh_sum 2\nh 1\n') == [
        Sample("h_bucket", {"le": "+Inf"}, 1.0, None), Sample("h_count", {}, 1.0, None),
        Sample("h_sum", {}, 2.0, None), Sample("h", {}, 1.0, None)]
    assert fast("# TYPE g gauge\ng 1\ng_total 2\ng 3\n# TYPE i info\ni 4\n") == [
        Sample("g", {}, 1.0, None), Sample("g_total", {}, 2.0, None), Sample("g", {}, 3.0, None),
        Sample("i", {}, 4.0, None)]


def test_counter_after_a_stray_sample_renames_only_its_own_samples() -> None:
    # The family of `c` starts after the stray sample `z`; the rename must start at `c`'s first sample.
    assert fast("z 0\n# TYPE c counter\nc 1\nc 2\n") == [
        Sample("z", {}, 0.0, None), Sample("c_total", {}, 1.0, None), Sample("c_total", {}, 2.0, None)]
    assert fast("# TYPE a counter\nb 0\n# TYPE c counter\nc 1\n") == [
        Sample("b", {}, 0.0, None), Sample("c_total", {}, 1.0, None)]
    assert fast("# TYPE a counter\nb 0\nc 1\n# TYPE c counter\nc 2\n") == [
        Sample("b", {}, 0.0, None), Sample("c", {}, 1.0, None), Sample("c_total", {}, 2.0, None)]


def test_repeated_lines_reuse_the_cached_sample_and_keep_family_rules() -> None:
    parser = FastParser()
    text = '# TYPE foo counter\nfoo{p="1"} 1\nbar 2\nfoo{p="1"} 1\nb{p="1"} 7\n'
    first = parser.parse(text)
    expected = [Sample("foo_total", {"p": "1"}, 1.0, None), Sample("bar", {}, 2.0, None),
                Sample("foo", {"p": "1"}, 1.0, None), Sample("b", {"p": "1"}, 7.0, None)]
    assert first == expected
    second = parser.parse(text)
    assert second == expected and parser.fallbacks == 0
    assert second[1] is first[1]  # the same line as last time: the very same sample
    assert second[2] is first[2]
    assert second[0].labels is second[3].labels  # one labels dict per label body
    # A changed value is parsed anew; a cached head with a new value keeps its labels.
    third = parser.parse('# TYPE foo counter\nfoo{p="1"} 2\nbar 2.5\nbar 2.5\n')
    assert third == [Sample("foo_total", {"p": "1"}, 2.0, None), Sample("bar", {}, 2.5, None),
                     Sample("bar", {}, 2.5, None)]
    assert third[0].labels is first[0].labels


def test_cached_head_outside_the_family_ends_it() -> None:
    parser = FastParser()
    assert parser.parse("x 1\ny 2\n") == [Sample("x", {}, 1.0, None), Sample("y", {}, 2.0, None)]
    # `y 2` is now cached with its value: served from cache, it still ends the counter family of x.
    assert parser.parse("# TYPE x counter\nx 1\ny 2\nx 1\n") == [
        Sample("x_total", {}, 1.0, None), Sample("y", {}, 2.0, None), Sample("x", {}, 1.0, None)]
    assert parser.parse("# TYPE x counter\ny 2\nx 1\n") == [
        Sample("y", {}, 2.0, None), Sample("x", {}, 1.0, None)]


def test_samples_with_timestamps_are_not_cached_as_repeats() -> None:
    parser = FastParser()
    assert parser.parse("a 1 1000\n") == [Sample("a", {}, 1.0, 1.0)]
    assert parser.parse("a 1 2000\n") == [Sample("a", {}, 1.0, 2.0)]
    assert parser.parse("a 1\n") == [Sample("a", {}, 1.0, None)]
    assert parser.parse("a 1 3000\n") == [Sample("a", {}, 1.0, 3.0)]
    assert parser.parse("a 1\n") == [Sample("a", {}, 1.0, None)]
    assert parser._heads["a"][2:] == ["1", Sample("a", {}, 1.0, None)]


def test_head_cache_limit_starts_over() -> None:
    parser = FastParser(cache_limit=3)
    assert [s.name for s in parser.parse('a{i="1"} 1\nb 1\nc 1\nd{i="2"} 1\n')] == ["a", "b", "c", "d"]
    assert list(parser._heads) == ['d{i="2"}']  # full at 3: cleared before the 4th head
    assert parser._bodies == {}
    parser = FastParser(cache_limit=4)
    parser.parse("a 1\nb 1\nc 1\nd 1\n")
    assert list(parser._heads) == ["a", "b", "c", "d"]


def test_cache_of_departed_heads_is_rebuilt_past_twice_the_document_plus_slack() -> None:
    big = "".join(f'm{{pod="{i}"}} 1\n' for i in range(CACHE_SLACK + 1))
    parser = FastParser()
    parser.parse(big)
    assert len(parser._heads) == CACHE_SLACK + 1
    parser.parse("x 1\n")  # CACHE_SLACK + 2 heads = 2 * 1 + CACHE_SLACK: kept
    assert len(parser._heads) == CACHE_SLACK + 2
    parser.parse("y 1\n")  # one more: past the bound, started over
    assert parser._heads == {} and parser._bodies == {}
    assert parser.parse("y 1\n") == [Sample("y", {}, 1.0, None)]
    assert list(parser._heads) == ["y"]


@pytest.mark.parametrize("kind", ["info", "untyped", "unknown", "stateset", "gaugehistogram", "gauge",
                                  "summary"])
def test_a_family_retyped_as_counter_renames_its_earlier_samples(kind: str) -> None:
    # Its first sample belongs to the family (every kind allows the bare name but histogram), so the
    # later TYPE line makes the whole family a counter, as in the reference.
    assert fast(f"# TYPE i {kind}\ni 1\n# TYPE i counter\ni 2\n") == [
        Sample("i_total", {}, 1.0, None), Sample("i_total", {}, 2.0, None)]


def test_help_of_another_name_ends_a_typed_counter_family() -> None:
    assert fast("# TYPE a counter\n# HELP b x\na 1\n") == [Sample("a", {}, 1.0, None)]


@pytest.mark.parametrize(("lines", "expected"), [
    ("# TYPE h histogram\nh_bucket 1\nh_count 2\n# TYPE h counter\nh 3\n",
     ["h_bucket_total", "h_count_total", "h_total"]),
    ("# TYPE s summary\ns_count 1\ns_sum 2\n# TYPE s counter\ns 3\n",
     ["s_count_total", "s_sum_total", "s_total"]),
])
def test_histogram_and_summary_suffixes_belong_to_the_family(lines: str, expected: list[str]) -> None:
    assert [(s.name, s.value) for s in fast(lines)] == list(zip(expected, [1.0, 2.0, 3.0], strict=True))


@pytest.mark.parametrize("name", ["a", "XXXX", "untyped", "counter"])
@pytest.mark.parametrize("before", ["", "z 0\n"])
def test_help_starts_a_family_whatever_its_name(name: str, before: str) -> None:
    # HELP, a sample, then TYPE counter: the sample belongs to the family and is renamed with it,
    # also after a stray sample (which ends any family) and for names that look like the parser's state.
    got = fast(f"{before}# HELP {name} h\n{name} 1\n# TYPE {name} counter\n{name} 2\n")
    assert [(s.name, s.value) for s in got] == [("z", 0.0)] * bool(before) + [
        (f"{name}_total", 1.0), (f"{name}_total", 2.0)]


@pytest.mark.parametrize("space", ["\xa0", "\x1c", "\u3000"])
def test_only_ascii_whitespace_may_precede_the_type(space: str) -> None:
    # The reference skips string.whitespace only; any other space makes the type unknown.
    parser = FastParser()
    with pytest.raises(ParseError, match="Invalid metric type"):
        parser.parse(f"# TYPE foo {space}counter\nfoo 1\n")
    assert parser.fallbacks == 1


def test_a_timestamped_line_does_not_replace_the_cached_head() -> None:
    parser = FastParser()
    first = parser.parse('a{x="1"} 1\n')
    assert parser.parse('a{x="1"} 1 1000\n') == [Sample("a", {"x": "1"}, 1.0, 1.0)]
    again = parser.parse('a{x="1"} 1\n')
    assert again == first and again[0] is first[0]  # still the sample cached before the timestamped line
