"""Pod listings: filters, sort order and paging from the query string, applied to the store's pods.

`/api/pods` takes every parameter below; the per-node, per-namespace and per-deployment pod
listings take the ones that do not repeat their path (`q`, `sort`, `limit`, `offset`).

- `namespace=`, `node=`, `deployment=`: exact matches; `q=`: a substring of the pod name.
- `sort=name|cpu|memory|disk|network`, `-` in front for descending (`sort=-cpu`). `name` is
  namespace then pod name, the default; `memory` is the working set, `disk` and `network` the
  read+write and receive+transmit bytes per second. Pods without the figure come last either way;
  ties keep the name order.
- `limit=N` (1..10000) and `offset=K` page the sorted, filtered list; the answer carries `total`
  (matches over all pages), `offset`, `limit` and `next_offset` (null on the last page).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import falcon

from aggregator.api import params
from aggregator.api.errors import BadParameter
from aggregator.api.views import PREPARED, PodDocCache
from aggregator.store.listing import PodListing
from aggregator.store.views import PodView, Sample

MAX_LIMIT = 10_000
MAX_QUERY = 253  # a pod name is at most 253 characters; a longer substring can match nothing
# A listing answer of more pods than this, built per request, costs tens of ms of CPU (30-50 µs a
# pod): it asks for each round's documents to be prepared once, between rounds, and while they are,
# shares that preparation instead.
PREPARE_AT = 500


def _sum(mapping: Any, a: str, b: str) -> float | None:
    x, y = mapping.get(a), mapping.get(b)
    if x is None and y is None:
        return None
    return (x or 0.0) + (y or 0.0)


def _first(pair: tuple[float, PodView]) -> float:
    return pair[0]


SORT_KEYS: dict[str, Callable[[Sample], float | None]] = {
    "cpu": lambda s: s.cpu_millicores,
    "memory": lambda s: s.values.get("memory_working_set_bytes"),
    "disk": lambda s: _sum(s.rates, "disk_read_bytes_total", "disk_written_bytes_total"),
    "network": lambda s: _sum(s.rates, "network_receive_bytes_total", "network_transmit_bytes_total"),
}
SORTS = ("name", *SORT_KEYS)
SORT_VALUES = tuple(v for s in SORTS for v in (s, f"-{s}"))

# Query parameters each kind of pod listing takes (the guard in errors.QueryGuard reads these).
PAGE_PARAMS = frozenset({"q", "sort", "limit", "offset"})
ALL_PODS_PARAMS = PAGE_PARAMS | {"namespace", "node", "deployment"}


@dataclass(frozen=True)
class PodQuery:
    namespace: str | None = None
    node: str | None = None
    deployment: str | None = None
    text: str | None = None
    sort: str = "name"
    descending: bool = False
    limit: int | None = None
    offset: int = 0

    def select(self, pods: PodListing) -> Sequence[PodView]:
        """The matching pods in the asked order.

        Exact filters come from the listing's indexes; the sort order of the whole listing is built
        once per listing and shared, so a page of it costs the page (a filtered one sorts its matches).
        """
        out = pods.select(namespace=self.namespace, node=self.node, deployment=self.deployment)
        if self.text is not None:
            text = self.text
            out = [p for p in out if text in p.pod.lower()]
        if self.sort == "name":
            return out[::-1] if self.descending else out
        if out is pods.views:
            return pods.memo(("sort", self.sort, self.descending), lambda: self._sorted(pods.views))
        return self._sorted(out)

    def _sorted(self, pods: Sequence[PodView]) -> tuple[PodView, ...]:
        """`pods` (in name order) by the sort key; pods without the figure last, ties in name order."""
        key = SORT_KEYS[self.sort]
        known: list[tuple[float, PodView]] = []
        unknown: list[PodView] = []
        for p in pods:
            v = key(p.sample)
            if v is None:
                unknown.append(p)
            else:
                known.append((v, p))
        known.sort(key=_first, reverse=self.descending)  # stable: ties keep the name order
        return (*(p for _, p in known), *unknown)  # a tuple: the whole listing's order is shared

    def page(self, pods: Sequence[PodView]) -> tuple[Sequence[PodView], dict[str, Any]]:
        """This page's pods and the paging fields of the answer."""
        end = len(pods) if self.limit is None else self.offset + self.limit
        chunk = pods[self.offset : end]
        more = end < len(pods)
        return chunk, {
            "total": len(pods),
            "offset": self.offset,
            "limit": self.limit,
            "next_offset": end if more else None,
        }

    @property
    def filtered(self) -> bool:
        """True when the answer is not the whole current listing (the doc cache is then only read)."""
        return any(v is not None for v in (self.namespace, self.node, self.deployment, self.text)) or bool(
            self.limit is not None or self.offset
        )


def _int(req: falcon.Request, name: str, *, minimum: int, maximum: int | None = None) -> int | None:
    raw = req.get_param(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(name, f"{name} must be an integer, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise BadParameter(name, f"{name} must be {bound}, got {value}")
    return value


def _optional(req: falcon.Request, name: str, check: Callable[[str, str], str]) -> str | None:
    value = req.get_param(name)
    return None if value in (None, "") else check(value, name)


def parse(req: falcon.Request, *, filters: bool) -> PodQuery:
    """The listing query of `req`; `filters` adds namespace/node/deployment (only /api/pods)."""
    sort = req.get_param("sort") or "name"
    if sort not in SORT_VALUES:
        choices = ", ".join(SORTS)
        raise BadParameter("sort", f"sort must be one of {choices} (- in front: descending), got {sort!r}")
    text = req.get_param("q")
    if text is not None and len(text) > MAX_QUERY:
        raise BadParameter("q", f"q must be at most {MAX_QUERY} characters")
    return PodQuery(
        namespace=params.optional_namespace(req) if filters else None,
        node=_optional(req, "node", params.subdomain) if filters else None,
        deployment=_optional(req, "deployment", params.subdomain) if filters else None,
        text=text.lower() if text else None,
        sort=sort.removeprefix("-"),
        descending=sort.startswith("-"),
        limit=_int(req, "limit", minimum=1, maximum=MAX_LIMIT),
        offset=_int(req, "offset", minimum=0) or 0,
    )


def answer_json(
    pod_docs: PodDocCache,
    query: PodQuery,
    pods: PodListing,
    *,
    now: float,
    dumps: Callable[[object], bytes],
    head: Mapping[str, Any] | None = None,
) -> bytes:
    """The answer's JSON bytes: `head`'s fields (the listing's own: namespace, node...), `pods` (this
    page), `count` and the paging fields, joined from the cache's per-pod JSON (the whole `/api/pods`
    listing: 30k documents).

    Every listing, whole or not, is answered from one round's prepared table when there is one: while
    the warmer prepares the round that just ended, the one before it (`ready_instead_of`), so answers
    given at the same moment agree and none of them builds documents. Without a prepared round, the
    whole listing prepares it (once, for every request that follows) and a part builds its own
    pods; a part of more than PREPARE_AT pods (6000 of a namespace at 1000 x 30: ~0.3 s) asks for the
    next rounds to be prepared, and once the warmer prepares every round (`preparing`), shares the
    round's preparation as the whole listing does: built per request, such parts made the same
    documents again and again whenever no prepared round was current (rounds longer than
    --stale-after under load: 58 % of the pod documents made under 4 polling clients). A part asked
    for cold still costs only its own pods, not the whole round's (~1.6 s at 30k pods)."""
    pods = pod_docs.ready_instead_of(pods, now=now)
    chunk, paging = query.page(query.select(pods))
    whole = len(chunk) == len(pods.views)
    big = whole or len(chunk) > PREPARE_AT
    shared = whole or pods.built(PREPARED) or (big and pod_docs.preparing())  # before this one asks
    if big:
        pod_docs.ask()  # keeps the warmer preparing the next rounds
    prepared = pod_docs.prepare(pods, asked=False) if shared else None
    if whole and query.sort == "name" and not query.descending:  # the listing itself, in its order
        array = pod_docs.whole(pods, now=now)
    else:
        array = pod_docs.encoded(chunk, now=now, full=not query.filtered, prepared=prepared)
    rest = dumps({"count": len(chunk), **paging})
    opening = dumps(head)[:-1] + b"," if head else b"{"
    return b"".join((opening, b'"pods":', *array, b",", rest[1:]))
