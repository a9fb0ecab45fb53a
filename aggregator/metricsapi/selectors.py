"""`labelSelector` and `fieldSelector` as kubectl and the HPA send them, parsed once per request.

Label selectors: `k`, `!k`, `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, comma-joined (all must
hold), as apimachinery's `labels.Parse` accepts them. Field selectors: `metadata.name` and
`metadata.namespace` with `=`, `==`, `!=` (what metrics-server supports). A malformed selector is a
`SelectorError`, answered as a 400 BadRequest Status.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

FIELDS = ("metadata.name", "metadata.namespace")
_KEY = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_SET = re.compile(r"\s*(\S+?)\s+(in|notin)\s*\((.*)\)\s*")
_EQ = re.compile(r"\s*([^!=\s]+)\s*(==|!=|=)\s*(\S*)\s*")


class SelectorError(ValueError):
    """A selector that cannot be parsed; the message says which part and why."""


Test = Callable[[Mapping[str, str]], bool]


@dataclass(frozen=True)
class LabelSelector:
    text: str
    tests: tuple[Test, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(test(labels) for test in self.tests)


@dataclass(frozen=True)
class FieldSelector:
    text: str
    tests: tuple[tuple[str, bool, str], ...]  # (field, equal?, value)

    def matches(self, *, name: str, namespace: str) -> bool:
        fields = {"metadata.name": name, "metadata.namespace": namespace}
        return all((fields[f] == v) == equal for f, equal, v in self.tests)


def _split(text: str) -> list[str]:
    """Requirements split at commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _key(key: str, text: str) -> str:
    if not _KEY.fullmatch(key) or len(key.rpartition("/")[2]) > 63:
        raise SelectorError(f"invalid label key {key!r} in selector {text!r}")
    return key


def _value(value: str, text: str) -> str:
    if not _VALUE.fullmatch(value) or len(value) > 63:
        raise SelectorError(f"invalid label value {value!r} in selector {text!r}")
    return value


def _requirement(part: str, text: str) -> Test:
    stripped = part.strip()
    if not stripped:
        raise SelectorError(f"empty requirement in selector {text!r}")
    if match := _SET.fullmatch(part):
        key = _key(match.group(1), text)
        values = frozenset(_value(v.strip(), text) for v in match.group(3).split(","))
        if match.group(2) == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _EQ.fullmatch(part):
        key, op, value = _key(match.group(1), text), match.group(2), _value(match.group(3), text)
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if stripped.startswith("!"):
        key = _key(stripped[1:].strip(), text)
        return lambda labels: key not in labels
    key = _key(stripped, text)
    return lambda labels: key in labels


def parse_labels(text: str | None) -> LabelSelector | None:
    """The label selector, or None when absent or empty (everything matches)."""
    if text is None or not text.strip():
        return None
    return LabelSelector(text, tuple(_requirement(part, text) for part in _split(text)))


def parse_fields(text: str | None) -> FieldSelector | None:
    """The field selector, or None when absent or empty; only metadata.name and metadata.namespace."""
    if text is None or not text.strip():
        return None
    tests = []
    for part in text.split(","):
        match = _EQ.fullmatch(part)
        if match is None:
            raise SelectorError(f"invalid field selector {text!r}: {part.strip()!r} is not field=value")
        field, op, value = match.groups()
        if field not in FIELDS:
            raise SelectorError(f'"{field}" is not a known field selector: only "metadata.name", '
                                f'"metadata.namespace"')
        tests.append((field, op != "!=", value))
    return FieldSelector(text, tuple(tests))
