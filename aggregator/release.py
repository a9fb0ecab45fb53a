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


def release(items: list[Any]) -> None:
    """Empty `items`, a list the caller hands over (it keeps no other use of it), SLICE at a time.

    Safe for objects others still hold: only the list's own references go, what is still used
    elsewhere stays alive. To let go of a container that others may still read (a round's state
    a render is using), pass `list(container)`, the caller's own references to its items, and
    drop the container first."""
    while items:
        del items[-SLICE:]


def references(*containers: Any) -> list[Any]:
    """The items of `containers` (lists, tuples, sets; a dict's values) in one list that keeps them
    alive, to `release` once the caller has dropped the containers, which then free only themselves
    (and a dict its keys). One level: a slice of 1024 items frees what each item alone holds."""
    out: list[Any] = []
    for c in containers:
        out.extend(c.values() if isinstance(c, dict) else c)
    return out
