"""Letting go of a round's worth of objects a slice at a time, so that freeing them never holds the GIL long.

When the last reference to a list goes, CPython frees everything only it kept alive in one C call:
the 30k readings a round leaves behind, the 600k lines of a `/metrics` text, the 30k cached pod
documents of the previous listing took 20-100 ms each at 1000 nodes x 30 pods, and every request and
the scrape loop waited for it (bench/gil_bench.py). `release` drops the references a slice at a time
instead; other threads can run between slices. The work is the same, only no longer in one piece.
"""

from __future__ import annotations

from typing import Any

SLICE = 1024  # references dropped at a time (1024 readings: ~1-3 ms of freeing)
_CONTAINERS = (list, tuple, set, frozenset, dict)


def release(items: list[Any]) -> None:
    """Empty `items`, a list the caller hands over (it keeps no other use of it), SLICE at a time.

    Safe for objects others still hold: only the list's own references go, what is still used
    elsewhere stays alive. To let go of a container that others may still read (a round's state
    a render is using), pass `list(container)`, the caller's own references to its items, and
    drop the container first."""
    while items:
        del items[-SLICE:]


def references(*containers: Any, depth: int = 2) -> list[Any]:
    """The items of `containers` (lists, tuples, sets, dicts' keys and values) and, down to `depth`
    levels, the items of those that are containers too: one flat list of references that keeps
    them all alive, for `release` once the caller has dropped the containers themselves."""
    out: list[Any] = []
    level = list(containers)
    for _ in range(depth):
        nested: list[Any] = []
        for c in level:
            items: Any = (*c.keys(), *c.values()) if isinstance(c, dict) else c
            out.extend(items)
            nested.extend(i for i in items if isinstance(i, _CONTAINERS) and len(i) > 1)
        level = nested
    return out
