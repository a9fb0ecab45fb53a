"""Prometheus text-format (0.0.4) parsing into flat samples: a fast path and the reference parser.

`prometheus_client.parser` parses about 60k samples/s; a 1000-node cluster sends ~400k samples
per 5-s round, so the scraper uses `FastParser`. It reproduces the reference parser's semantics
(including its family state machine, which renames the samples of a `counter` family whose TYPE
name lacks `_total`) on the canonical form that `prometheus_client.generate_latest` writes: one
space between name+labels, value and optional integer timestamp; label names that are plain
identifiers; no exemplars. Any line outside that grammar makes the whole document go through the
reference parser instead, so the fast path can only ever be faster, never different:
tests/test_parser_differential.py checks exactly that on generated and hostile inputs.
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

from prometheus_client.parser import text_string_to_metric_families

_ESCAPE_RE = re.compile(r'\\[\\n"]')
_ESCAPES = {"\\\\": "\\", "\\n": "\n", '\\"': '"'}
_METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
# Label names beginning with `__` are reserved; the reference parser rejects them, so they fall back.
_LABEL = r'(?!__)[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"'
_HEAD_RE = re.compile(rf"({_METRIC_NAME})(?:\{{((?:{_LABEL}(?:,{_LABEL})*,?)?)\}})?")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_META_RE = re.compile(rf"# (HELP|TYPE) ({_METRIC_NAME})(?: (.*))?")
_WHITESPACE = " \t\n\r\x0b\x0c"  # string.whitespace: what the reference skips between comment tokens
_ALLOWED_SUFFIXES = {
    "counter": ("",),
    "gauge": ("",),
    "summary": ("_count", "_sum", ""),
    "histogram": ("_count", "_sum", "_bucket"),
}
_KNOWN_TYPES = frozenset(
    ("counter", "gauge", "summary", "histogram", "gaugehistogram", "unknown", "untyped", "info", "stateset"))
# A head cache bigger than this is dropped: a target inventing new label sets every scrape must not grow
# the aggregator's memory without bound.
DEFAULT_CACHE_LIMIT = 100_000
# Heads of series that left (deleted pods) stay cached until the cache is rebuilt: past twice the
# latest document's samples plus this slack it starts over, so pod churn cannot fill it to the limit.
CACHE_SLACK = 256


class ParseError(ValueError):
    """The exposition is not valid Prometheus text format; the message says where."""


class Sample(NamedTuple):
    """One parsed sample; `labels` may be shared between parses and must be treated as read-only."""

    name: str
    labels: dict[str, str]
    value: float
    timestamp: float | None


def _unescape(text: str) -> str:
    return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], text) if "\\" in text else text


def _as_float(value: float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer beyond float range, as float() of its text would give
        return math.inf if value > 0 else -math.inf


def _timestamp(token: str) -> float:
    if "_" in token:
        raise ValueError(token)
    try:
        return int(token) / 1000
    except ValueError:
        return float(token) / 1000


def parse_reference(text: str) -> list[Sample]:
    """Flatten `prometheus_client.parser`'s families into samples, in document order."""
    try:
        return [
            Sample(s.name, s.labels, _as_float(s.value), s.timestamp)
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]
    except (ValueError, IndexError, KeyError, TypeError, OverflowError) as exc:
        # The reference raises bare ValueErrors (sometimes with no message), on a few malformed lines
        # IndexError, and OverflowError on a timestamp beyond float range; either way the document is
        # invalid.
        raise ParseError(f"invalid exposition: {type(exc).__name__}: {exc}"[:300]) from exc


class _Fallback(Exception):
    """A line outside the fast grammar: hand the document to the reference parser."""


class FastParser:
    """Parses expositions of one target; remembers name+label heads between scrapes (targets repeat them)."""

    def __init__(self, *, cache_limit: int = DEFAULT_CACHE_LIMIT) -> None:
        # head -> [name, labels, last value token, last Sample]: an exporter's next snapshot repeats
        # every head and about half the values verbatim (capacities, requests, limits), so most lines
        # cost one dict lookup; the pod families of one pod share one labels dict.
        self._heads: dict[str, list[Any]] = {}
        self._bodies: dict[str, dict[str, str]] = {}
        self._cache_limit = cache_limit
        self.fallbacks = 0  # documents that needed the reference parser

    def parse(self, text: str) -> list[Sample]:
        """All samples of `text` in document order; ParseError when it is not valid text format."""
        try:
            samples = self._parse_fast(text)
        except _Fallback:
            self.fallbacks += 1
            samples = parse_reference(text)
        if len(self._heads) > 2 * len(samples) + CACHE_SLACK:
            self._clear()
        return samples

    def _clear(self) -> None:
        self._heads.clear()
        self._bodies.clear()

    def _head(self, head: str) -> list[Any]:
        cached = self._heads.get(head)
        if cached is not None:
            return cached
        match = _HEAD_RE.fullmatch(head)
        if match is None:
            raise _Fallback
        body = match.group(2) or ""
        labels = self._bodies.get(body)
        if labels is None:
            pairs = _LABEL_RE.findall(body)
            labels = {k: _unescape(v) for k, v in pairs}
            if len(labels) != len(pairs):
                raise _Fallback  # duplicate label name: the reference rejects it with its own message
            self._bodies[body] = labels
        if len(self._heads) >= self._cache_limit:
            self._clear()
        entry = [match.group(1), labels, None, None]
        self._heads[head] = entry
        return entry

    def _uncached(self, head: str, token: str) -> tuple[list[Any], str, float | None]:
        """(cache entry, value token, timestamp) of a line whose head is not cached yet."""
        try:
            return self._head(head), token, None
        except _Fallback:
            # Perhaps `head value timestamp`.
            head, sep, value_token = head.rpartition(" ")
            if not sep:
                raise
            entry = self._head(head)
            try:
                return entry, value_token, _timestamp(token)
            except (ValueError, OverflowError):  # an integer beyond float range: the reference raises
                raise _Fallback from None

    def _parse_fast(self, text: str) -> list[Sample]:
        # The hot loop of the aggregator (~400k samples per round at 1000 nodes): cached heads, no
        # per-sample exceptions or method calls on the usual path.
        state = _Families()
        out = state.out
        heads = self._heads
        for raw in text.split("\n"):
            line = raw.strip()
            if not line:
                continue
            if line[0] == "#":
                if "HELP" in line or "TYPE" in line:  # else a plain comment: the reference ignores it too
                    state.meta(line)
                continue
            head, sep, token = line.rpartition(" ")
            timestamp = None
            entry = heads.get(head)
            if entry is None:
                if not sep:
                    raise _Fallback
                entry, token, timestamp = self._uncached(head, token)
            elif entry[2] == token:
                sample = entry[3]  # the same line as last time: the same sample
                if sample.name not in state.allowed:
                    state.singleton()
                out.append(sample)
                continue
            if "_" in token:
                raise _Fallback
            try:
                value = float(token)
            except ValueError:
                raise _Fallback from None
            name = entry[0]
            if name not in state.allowed:
                state.singleton()
            sample = Sample(name, entry[1], value, timestamp)
            if timestamp is None:
                entry[2], entry[3] = token, sample  # as parsed, before close() may rename it
            out.append(sample)
        state.close()
        return out


class _Families:
    """The reference parser's family state machine (HELP/TYPE lines decide which samples belong where)."""

    __slots__ = ("allowed", "family", "kind", "out", "start")

    def __init__(self) -> None:
        self.out: list[Sample] = []
        self.family = ""  # the current family's name ("" = none)
        self.kind = "untyped"
        self.allowed: tuple[str, ...] = ()
        self.start = 0  # index in `out` of the current family's first sample

    def close(self) -> None:
        # The reference renames a counter family's samples when its TYPE name lacks `_total`.
        if self.family and self.kind == "counter" and not self.family.endswith("_total"):
            out = self.out
            for i in range(self.start, len(out)):
                s = out[i]
                out[i] = Sample(s.name + "_total", s.labels, s.value, s.timestamp)

    def meta(self, line: str) -> None:
        match = _META_RE.fullmatch(line)
        if match is None:
            raise _Fallback
        word, name, rest = match.groups()
        if word == "HELP":
            if name != self.family:
                self.close()
                self.family, self.kind, self.allowed, self.start = name, "untyped", (name,), len(self.out)
            return
        kind = rest.lstrip(_WHITESPACE) if rest is not None else ""
        if kind not in _KNOWN_TYPES or (kind == "counter" and name == "_total"):
            # The reference raises when it builds such a family (unknown type; a counter whose name
            # is empty once `_total` is cut) unless a later TYPE line replaces it: let it decide.
            raise _Fallback
        if name != self.family:
            self.close()
            self.family, self.start = name, len(self.out)
        self.kind = kind
        self.allowed = tuple(name + suffix for suffix in _ALLOWED_SUFFIXES.get(kind, ("",)))

    def singleton(self) -> None:
        """The next sample is outside the current family: the reference ends it; the sample stands alone."""
        self.close()
        self.family, self.kind, self.allowed, self.start = "", "untyped", (), len(self.out) + 1
