"""Scrapes one exporter: an asyncio HTTP/1.1 GET under a total deadline and a size limit, then parse.

A hand-written client instead of a library because the limits have to hold against hostile peers:
the deadline covers connect, headers and body together (a server that accepts and never answers,
or drips a byte a second, costs exactly `timeout`), the byte limit applies to the body as sent and
again after gzip decompression (a gzip bomb stops at the limit), and nothing is buffered beyond it.
Every failure becomes a ScrapeError whose message is the target's "down" reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from aggregator.model import NodeReading, TargetStatus
from aggregator.parser import FastParser, ParseError
from aggregator.readings import Conversion, ReadingError, from_document, to_reading
from aggregator.stats import AggregatorStats
from k8smon_common import snapshotdoc
from k8smon_common.config import parse_hostport
from k8smon_common.contract import NO_SAMPLE_YET

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
MAX_ERROR_BODY = 1024  # bytes of a 503 body read to tell "no sample yet" from other failures
MAX_HEADERS = 100
READ_CHUNK = 64 * 1024
TEXT_ACCEPT = "text/plain;version=0.0.4"


class ScrapeError(Exception):
    """A scrape failed; `str()` is the reason shown for the target."""

    def __init__(self, reason: str, *, source: str | None = "scrape") -> None:
        super().__init__(reason)
        self.source = source  # the errors-metric label: scrape | parse | ...; None: not an error


@dataclass(frozen=True, slots=True)
class ScrapeOutcome:
    """The record of one scrape, and the reading when it succeeded."""

    status: TargetStatus
    reading: NodeReading | None


class _Body:
    """Accumulates body bytes, decompressing gzip, refusing anything past `limit` bytes either way."""

    def __init__(self, *, limit: int, gzip: bool) -> None:
        self._limit = limit
        self._raw = 0
        self._parts: list[bytes] = []
        self._size = 0
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None

    def feed(self, data: bytes) -> None:
        self._raw += len(data)
        if self._raw > self._limit:
            raise ScrapeError(f"response too large (over {self._limit} bytes)")
        if self._inflate is None:
            self._keep(data)
            return
        try:
            self._keep(self._inflate.decompress(data, self._limit - self._size + 1))
            while self._inflate.unconsumed_tail:
                tail = self._inflate.unconsumed_tail
                self._keep(self._inflate.decompress(tail, self._limit - self._size + 1))
        except zlib.error as exc:
            raise ScrapeError(f"bad gzip body: {exc}") from exc

    def _keep(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            raise ScrapeError(f"response too large (over {self._limit} bytes once decompressed)")
        self._parts.append(data)

    def finish(self) -> bytes:
        if self._inflate is not None and not self._inflate.eof:
            raise ScrapeError("bad gzip body: truncated")
        return b"".join(self._parts)


async def _read_headers(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise ScrapeError(f"response headers over {MAX_HEADER_BYTES} bytes") from None
    except asyncio.IncompleteReadError:
        raise ScrapeError("connection closed before the response headers") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ScrapeError(f"not an HTTP response: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:MAX_HEADERS + 1]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _read_chunked(reader: asyncio.StreamReader, body: _Body) -> None:
    while True:
        try:
            size_line = await reader.readline()
        except ValueError:  # a size line over the reader's limit
            raise ScrapeError("bad chunk size line in a chunked body") from None
        if not size_line.endswith(b"\n"):
            raise ScrapeError("connection closed inside a chunked body")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ScrapeError("bad chunk size in a chunked body") from None
        if size == 0:
            return  # trailers, if any, are not needed: the connection is closed after the body
        if size < 0:
            raise ScrapeError("bad chunk size in a chunked body")
        remaining = size
        while remaining:
            data = await reader.read(min(remaining, READ_CHUNK))
            if not data:
                raise ScrapeError("connection closed inside a chunked body")
            remaining -= len(data)
            body.feed(data)
        await reader.readexactly(2)


async def _read_plain(reader: asyncio.StreamReader, body: _Body, length: str | None, max_bytes: int) -> None:
    remaining = int(length) if length and length.isdigit() else None
    if remaining is not None and remaining > max_bytes:
        raise ScrapeError(f"response too large (Content-Length {remaining} > {max_bytes} bytes)")
    while remaining is None or remaining > 0:
        data = await reader.read(READ_CHUNK if remaining is None else min(remaining, READ_CHUNK))
        if not data:
            if remaining:
                raise ScrapeError("connection closed before the end of the body")
            return
        body.feed(data)
        if remaining is not None:
            remaining -= len(data)


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str], max_bytes: int) -> bytes:
    encoding = headers.get("content-encoding", "identity").lower()
    if encoding not in {"gzip", "identity"}:
        raise ScrapeError(f"unsupported Content-Encoding {encoding!r}")
    body = _Body(limit=max_bytes, gzip=encoding == "gzip")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        await _read_chunked(reader, body)
    else:
        await _read_plain(reader, body, headers.get("content-length"), max_bytes)
    return body.finish()


async def _no_sample_yet(reader: asyncio.StreamReader, headers: dict[str, str]) -> bool:
    """True when a 503's (small) body is the exporter's NO_SAMPLE_YET."""
    try:
        body = await _read_body(reader, headers, MAX_ERROR_BODY)
    except ScrapeError:
        return False
    return body.decode("utf-8", "replace").strip() == NO_SAMPLE_YET


async def fetch(
    host: str, port: int, *, path: str = "/metrics", max_bytes: int, accept: str = TEXT_ACCEPT
) -> tuple[str, bytes]:
    """GET `path` once (no deadline here: the caller sets it); the Content-Type and the body, decompressed."""
    try:
        reader, writer = await asyncio.open_connection(host, port, limit=MAX_HEADER_BYTES)
    except ConnectionRefusedError:
        raise ScrapeError("connection refused") from None
    except OSError as exc:
        raise ScrapeError(f"connect failed: {exc.strerror or exc}") from None
    try:
        hostname = f"[{host}]" if ":" in host else host
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {hostname}:{port}\r\nAccept: {accept}\r\n"
            "Accept-Encoding: gzip\r\nUser-Agent: k8smon-aggregator\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        status, headers = await _read_headers(reader)
        if status == 503 and await _no_sample_yet(reader, headers):
            # Not a failure: the exporter is starting. Down (nothing to show) with that reason.
            raise ScrapeError(NO_SAMPLE_YET, source=None)
        if status != 200:
            raise ScrapeError(f"HTTP {status}")
        return headers.get("content-type", ""), await _read_body(reader, headers, max_bytes)
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        raise ScrapeError(f"connection lost: {exc}") from None
    finally:
        writer.close()


class Scraper:
    """Scrapes targets, one FastParser (and its head cache) per target."""

    def __init__(
        self,
        *,
        timeout: float,
        max_response_bytes: int,
        stats: AggregatorStats,
        clock: Callable[[], float] = time.time,
        path: str = "/metrics",
        max_series: int | None = None,
        max_label_length: int | None = None,
        max_labels: int | None = None,
        scrape_format: str = "auto",
    ) -> None:
        self._timeout = timeout
        # auto: ask for the exporter's JSON snapshot document; whatever comes back is read by its type
        self._accept = snapshotdoc.ACCEPT if scrape_format == "auto" else TEXT_ACCEPT
        self._max_bytes = max_response_bytes
        self._max_series = max_series  # --max-series-per-target: more marks the target down
        self._max_label_length = max_label_length
        self._max_labels = max_labels
        self._stats = stats
        self._clock = clock
        self._path = path
        self._parsers: dict[str, FastParser] = {}

    def forget(self, keep: set[str]) -> None:
        """Drop per-target parser caches of targets no longer discovered."""
        for target in [t for t in self._parsers if t not in keep]:
            del self._parsers[target]

    @property
    def fallbacks(self) -> int:
        """Documents that needed the reference parser, over the current targets."""
        return sum(p.fallbacks for p in self._parsers.values())

    async def scrape(self, target: str, node: str | None) -> ScrapeOutcome:
        """Fetch and parse one target; never raises (a failure is a down status with its reason)."""
        started = self._clock()
        t0 = time.perf_counter()
        try:
            address = parse_hostport(target)
            async with asyncio.timeout(self._timeout):
                content_type, payload = await fetch(address.host, address.port, path=self._path,
                                                    max_bytes=self._max_bytes, accept=self._accept)
            reading, samples = self._parse(target, payload, node, content_type)
        except TimeoutError:
            return self._down(target, node, f"timeout after {self._timeout:g}s",
                              started=started, t0=t0, source="scrape")
        except ScrapeError as exc:
            return self._down(target, node, str(exc), started=started, t0=t0, source=exc.source)
        except ValueError as exc:  # a target string that is no host:port (static targets are validated)
            return self._down(target, node, f"bad target: {exc}", started=started, t0=t0,
                              source="scrape")
        status = TargetStatus(
            target=target,
            node=reading.node,
            up=True,
            last_error=None,
            last_scrape=started,
            duration_seconds=time.perf_counter() - t0,
            samples=samples,
        )
        return ScrapeOutcome(status=status, reading=reading)

    def _parse(
        self, target: str, payload: bytes, node: str | None, content_type: str = ""
    ) -> tuple[NodeReading, int]:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ScrapeError(f"parse error: body is not UTF-8 ({exc.reason} at byte {exc.start})",
                              source="parse") from None
        if content_type.partition(";")[0].strip().lower() == snapshotdoc.MEDIA_TYPE:
            conversion = self._document(target, text, node)
        else:
            conversion = self._text(target, text, node)
        if conversion.dropped:
            self._stats.error("nonfinite", conversion.dropped)
        if conversion.rejected:
            self._stats.error("limit_labels", conversion.rejected)
            log.warning("target %s: %d pod(s) dropped for labels over --max-label-length %s or "
                        "--max-labels-per-series %s", target, conversion.rejected, self._max_label_length,
                        self._max_labels)
        return conversion.reading, conversion.samples

    def _document(self, target: str, text: str, node: str | None) -> Conversion:
        """The reading of a JSON snapshot document (k8smon_common/snapshotdoc.py)."""
        try:
            doc = json.loads(text)
        except ValueError as exc:  # JSONDecodeError, or a number too deep to parse
            raise ScrapeError(f"parse error: bad snapshot document: {exc}"[:400], source="parse") from None
        try:
            conversion = from_document(doc, node_hint=node, max_label_length=self._max_label_length,
                                       max_labels=self._max_labels)
        except ReadingError as exc:
            raise ScrapeError(f"parse error: {exc}"[:400], source="parse") from None
        self._check_series(target, conversion.samples)
        return conversion

    def _check_series(self, target: str, count: int) -> None:
        if self._max_series is not None and count > self._max_series:
            # Down rather than truncated: a partial pod list would look like pods that vanished.
            log.warning("target %s sent %d series, over --max-series-per-target %d; marked down",
                        target, count, self._max_series)
            raise ScrapeError(f"too many series ({count} > {self._max_series})", source="limit_series")

    def _text(self, target: str, text: str, node: str | None) -> Conversion:
        """The reading of a text-format exposition."""
        parser = self._parsers.get(target)
        if parser is None:
            parser = self._parsers[target] = FastParser()
        try:
            samples = parser.parse(text)
        except ParseError as exc:
            raise ScrapeError(f"parse error: {exc}"[:400], source="parse") from None
        self._check_series(target, len(samples))
        try:
            return to_reading(samples, node_hint=node, max_label_length=self._max_label_length,
                              max_labels=self._max_labels)
        except ReadingError as exc:
            raise ScrapeError(f"parse error: {exc}"[:400], source="parse") from None

    def _down(
        self, target: str, node: str | None, reason: str, *, started: float, t0: float, source: str | None
    ) -> ScrapeOutcome:
        if source is not None:
            self._stats.error(source)
        log.debug("scrape of %s failed: %s", target, reason)
        status = TargetStatus(
            target=target,
            node=node,
            up=False,
            last_error=reason,
            last_scrape=started,
            duration_seconds=time.perf_counter() - t0,
            samples=0,
        )
        return ScrapeOutcome(status=status, reading=None)
