"""The aggregator's in-memory history: what is stored, how, and how it reaches disk.

    store.py     Store: the lock, the writers (ingest, mark_down, end_round) and the readers
    live.py      mutable per-entity state inside the Store (never handed out)
    views.py     read-only copies the Store hands to the API and the federation cache
    series.py    bounded series of exact values, one per entity: a plain open chunk, closed chunks
    chunks.py    the closed chunks' codec (delta / decimal / XOR, bitmaps, byte planes, zstd)
    rollup.py    namespace and deployment sums over one round's pods
    listing.py   the current pods as one shared, indexed, immutable listing
    snapshot.py  the per-entity state as plain records (the snapshot format) and back
    statefile.py the snapshot on disk (`--state-file`)
"""

from aggregator.store.store import Store

__all__ = ["Store"]
