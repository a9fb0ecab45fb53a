"""Answer bodies too large to join in one go: a file over their parts, read a block at a time."""

from __future__ import annotations

import bisect
import io
from collections.abc import Sequence

import falcon

LARGE_BODY = 1 << 20  # bytes: an answer body past this leaves as a file (http_api.StreamLargeBodies, here)


class PartsFile:
    """A read-only, seekable file over byte parts, joined a block of parts at a time as it is read.

    The whole pod listing is ~90k parts (~35 MB at 1000 x 30), scattered over the heap. Joined into
    one body it cost 30-46 ms of CPU per answer (every part visited twice, then 35 MB of fresh pages
    written) and kept a copy per answer in flight; read from here, 14-16 ms and no copy
    (bench/profiles/2026-12-04-bodies-from-parts.txt). waitress sends a seekable `wsgi.file_wrapper`
    from in place (tell, read a socket buffer, seek back, seek on by what the socket took): each read
    here joins the blocks it covers and keeps them for the reads that follow. A block is BLOCK_PARTS
    parts of a long list (a listing's pod documents), or one part of a short one (the /metrics text's
    ~0.5-MB slices, sliced as they are). The sizes are summed a block at a time, so no single call
    holds the GIL over every part (~5-8 ms at 90k parts).
    """

    BLOCK_PARTS = 256
    FEW = 4096  # up to this many parts, each is a block

    def __init__(self, parts: Sequence[bytes]) -> None:
        self._parts = parts
        self._per = n = 1 if len(parts) <= self.FEW else self.BLOCK_PARTS
        self._starts = [0]  # offset of each block, then the size
        for i in range(0, len(parts), n):
            self._starts.append(self._starts[-1] + sum(map(len, parts[i : i + n])))
        self.size = self._starts[-1]
        self._pos = 0
        self._blocks: dict[int, bytes] = {}  # joined blocks from the last read's first on

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self._pos + size)
        if self._pos >= end:
            return b""
        first = bisect.bisect_right(self._starts, self._pos) - 1
        for k in [k for k in self._blocks if k < first]:  # reads move on: earlier blocks are done
            del self._blocks[k]
        pieces: list[bytes] = []
        k = first
        while self._starts[k] < end:
            block = self._blocks.get(k)
            if block is None:
                n = self._per
                block = self._blocks[k] = b"".join(self._parts[k * n : (k + 1) * n])
            lo = max(self._pos, self._starts[k]) - self._starts[k]
            hi = min(end, self._starts[k + 1]) - self._starts[k]
            pieces.append(block[lo:hi])
            k += 1
        self._pos = end
        return b"".join(pieces)  # one piece: that piece itself, no copy

    def close(self) -> None:
        self._blocks.clear()


def body_from_parts(resp: falcon.Response, parts: Sequence[bytes], *, threshold: int = LARGE_BODY) -> None:
    """Sets the answer's body to the parts joined: as bytes up to `threshold`, past it as a
    `PartsFile`, which joins them a socket buffer at a time as the server sends them."""
    body = PartsFile(parts)
    if body.size <= threshold:
        resp.data = b"".join(parts)
    else:
        resp.stream = body
        resp.content_length = body.size
