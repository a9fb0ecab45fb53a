"""Label and field selectors parsed and matched the way the Kubernetes API server does."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

Matcher = Callable[[dict], bool]

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_RE = re.compile(rf"^\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)\s*$")
_EQ_RE = re.compile(rf"^\s*(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})\s*$")
_EXISTS_RE = re.compile(rf"^\s*(?P<neg>!?)\s*(?P<key>{_KEY})\s*$")
_VALUE_RE = re.compile(rf"^{_VALUE}$")


class SelectorError(ValueError):
    """A selector the real server would answer with 400 BadRequest."""


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector: key, operator, values."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" also match objects without the label, as on a real server.
        return not present or value not in self.values


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _parse_requirement(term: str) -> Requirement:
    if m := _SET_RE.match(term):
        values = [v.strip() for v in m.group("values").split(",")]
        if values == [""] or any(not _VALUE_RE.match(v) for v in values):
            raise SelectorError(f"invalid values in label selector term {term!r}")
        return Requirement(m.group("key"), m.group("op"), frozenset(values))
    if m := _EQ_RE.match(term):
        op = "!=" if m.group("op") == "!=" else "="
        return Requirement(m.group("key"), op, frozenset([m.group("value")]))
    if m := _EXISTS_RE.match(term):
        return Requirement(m.group("key"), "!exists" if m.group("neg") else "exists")
    raise SelectorError(f"unable to parse requirement: {term!r}")


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse `a=b,c!=d,e in (x,y),f notin (z),g,!h`; an empty selector matches everything."""
    if not text or not text.strip():
        return []
    return [_parse_requirement(term) for term in _split_top_level(text)]


def labels_match(requirements: Iterable[Requirement], obj: dict) -> bool:
    """True when the object's labels satisfy every requirement."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(req.matches(labels) for req in requirements)


@dataclass(frozen=True)
class FieldTerm:
    """One term of a field selector: `path=value` or `path!=value`."""

    path: str
    value: str
    negate: bool

    def matches(self, obj: dict) -> bool:
        return (field_value(obj, self.path) == self.value) != self.negate


def field_value(obj: dict, path: str) -> str:
    """The string form the server compares: missing fields are "", booleans are "true"/"false"."""
    current: object = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def parse_field_selector(text: str | None, *, allowed: Iterable[str]) -> list[FieldTerm]:
    """Parse `spec.nodeName=n1,metadata.name!=x`; unknown field labels are rejected like the server does."""
    if not text or not text.strip():
        return []
    allowed_set = set(allowed)
    terms = []
    for raw in text.split(","):
        term = raw.strip()
        for op in ("!=", "==", "="):
            if op in term:
                path, value = term.split(op, 1)
                break
        else:
            raise SelectorError(f"invalid selector: {term!r}; can't understand {term!r}")
        path = path.strip()
        if path not in allowed_set:
            raise SelectorError(f'field label not supported: "{path}"')
        terms.append(FieldTerm(path, value.strip(), negate=(op == "!=")))
    return terms


def fields_match(terms: Iterable[FieldTerm], obj: dict) -> bool:
    """True when the object satisfies every field term."""
    return all(term.matches(obj) for term in terms)
