"""Scrapes one exporter: an asyncio HTTP/1.1 GET under a total deadline and a size limit, then parse.

A hand-written client instead of a library because the limits have to hold against hostile peers:
the deadline covers connect, headers and body together (a server that accepts and never answers,
or drips a byte a second, costs exactly `timeout`), the byte limit applies to the body as sent and
again after gzip decompression (a gzip bomb stops at the limit), and nothing is buffered beyond it.
Every failure becomes a ScrapeError whose message is the target's "down" reason.

Connections are persistent, as Prometheus keeps them: after a good scrape the connection waits, idle,
for the target's next round (at most one per target, never two requests on one), so a round does not
pay a TCP handshake per target. Anything unexpected drops it: an error, a timeout, a size limit, a
response that cannot be delimited or says `Connection: close`, a body that does not parse, the target
leaving discovery. A server that closed an idle connection is not a failure: the request is retried once
on a fresh connection, within the same deadline (Go's net/http, which Prometheus uses, does the same).
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

try:
    import orjson
except ImportError:  # pragma: no cover - an install dependency; json alone still parses every document
    orjson = None  # type: ignore[assignment]

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


class _NoAnswer(ScrapeError):
    """The connection ended before a single byte of the response: on a reused connection, the server
    closed it while it was idle (the request was never read), so it is safe to send again."""


async def _read_headers(reader: asyncio.StreamReader) -> tuple[str, int, dict[str, str]]:
    """The response's version, status and headers (names in lower case)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise ScrapeError(f"response headers over {MAX_HEADER_BYTES} bytes") from None
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise _NoAnswer("connection closed before the response headers") from None
        raise ScrapeError("connection closed before the response headers") from None
    except ConnectionError as exc:
        raise _NoAnswer(f"connection lost: {exc}") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ScrapeError(f"not an HTTP response: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:MAX_HEADERS + 1]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return parts[0], int(parts[1]), headers


async def _chunked_line(reader: asyncio.StreamReader, too_long: str) -> bytes:
    """One line of a chunked body's framing (a size line or a trailer), whole."""
    try:
        line = await reader.readline()
    except ValueError:  # a line over the reader's limit
        raise ScrapeError(too_long) from None
    if not line.endswith(b"\n"):
        raise ScrapeError("connection closed inside a chunked body")
    return line


async def _read_chunked(reader: asyncio.StreamReader, body: _Body) -> None:
    while True:
        size_line = await _chunked_line(reader, "bad chunk size line in a chunked body")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ScrapeError("bad chunk size in a chunked body") from None
        if size == 0:
            await _skip_trailers(reader)  # read to the end, so the connection can carry the next request
            return
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


async def _skip_trailers(reader: asyncio.StreamReader) -> None:
    for _ in range(MAX_HEADERS + 1):
        line = await _chunked_line(reader, "bad trailer in a chunked body")
        if line in (b"\r\n", b"\n"):
            return
    raise ScrapeError(f"over {MAX_HEADERS} trailers in a chunked body")


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


class Connection:
    """One HTTP/1.1 connection to a target, bound to the event loop that opened it."""

    __slots__ = ("loop", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.loop = asyncio.get_running_loop()

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        try:
            reader, writer = await asyncio.open_connection(host, port, limit=MAX_HEADER_BYTES)
        except ConnectionRefusedError:
            raise ScrapeError("connection refused") from None
        except OSError as exc:
            raise ScrapeError(f"connect failed: {exc.strerror or exc}") from None
        return cls(reader, writer)

    def usable(self) -> bool:
        """Still open at our end and no end-of-stream seen from the server (it may still close it)."""
        return (self.loop is asyncio.get_running_loop() and not self.writer.is_closing()
                and not self.reader.at_eof())

    def close(self) -> None:
        try:
            self.writer.close()
        except RuntimeError:  # its event loop is gone (a caller that ran rounds in throwaway loops)
            log.debug("connection's event loop already closed")


def _reusable(version: str, headers: dict[str, str]) -> bool:
    """Whether the connection may carry another request once this response's body is read: HTTP/1.1,
    no `Connection: close`, and a body whose end is known without the server closing the connection."""
    if version != "HTTP/1.1" or "close" in headers.get("connection", "").lower():
        return False
    return "chunked" in headers.get("transfer-encoding", "").lower() or headers.get(
        "content-length", "").isdigit()


async def fetch(
    conn: Connection, host: str, port: int, *, path: str = "/metrics", max_bytes: int,
    accept: str = TEXT_ACCEPT,
) -> tuple[str, bytes, bool]:
    """GET `path` once on `conn` (no deadline here: the caller sets it): the Content-Type, the body
    (decompressed) and whether the connection may be reused. Raises ScrapeError (`_NoAnswer` when not a
    byte came back); the caller closes `conn` after any exception."""
    hostname = f"[{host}]" if ":" in host else host
    try:
        conn.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {hostname}:{port}\r\nAccept: {accept}\r\n"
            "Accept-Encoding: gzip\r\nUser-Agent: k8smon-aggregator\r\n\r\n".encode()
        )
        await conn.writer.drain()
    except ConnectionError as exc:
        raise _NoAnswer(f"connection lost: {exc}") from None
    version, status, headers = await _read_headers(conn.reader)
    try:
        if status == 503 and await _no_sample_yet(conn.reader, headers):
            # Not a failure: the exporter is starting. Down (nothing to show) with that reason.
            raise ScrapeError(NO_SAMPLE_YET, source=None)
        if status != 200:
            raise ScrapeError(f"HTTP {status}")
        body = await _read_body(conn.reader, headers, max_bytes)
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        raise ScrapeError(f"connection lost: {exc}") from None
    return headers.get("content-type", ""), body, _reusable(version, headers)


def load_document(text: str) -> object:
    """A snapshot document parsed: orjson (11 % of the aggregator's CPU at 1000 nodes was the standard
    library's decoder; orjson ~3x faster), and the standard library for what orjson refuses, which
    exporters may write: NaN and Infinity (snapshotdoc.encode keeps json's defaults), integers past
    64 bits, lone surrogates. Both give the same Python values for everything orjson accepts."""
    if orjson is not None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)

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
        self._idle: dict[str, Connection] = {}  # the connection kept for each target's next scrape
        self.connections_opened = 0

    def forget(self, keep: set[str]) -> None:
        """Drop per-target parser caches and idle connections of targets no longer discovered."""
        for target in [t for t in self._parsers if t not in keep]:
            del self._parsers[target]
        for target in [t for t in self._idle if t not in keep]:
            self._idle.pop(target).close()

    async def close(self) -> None:
        """Close every idle connection (call it in the event loop that scraped, before it ends)."""
        idle, self._idle = self._idle, {}
        for conn in idle.values():
            conn.close()
        await asyncio.sleep(0)  # let the transports finish closing their sockets

    async def _fetch(self, target: str, host: str, port: int) -> tuple[str, bytes, Connection | None]:
        """The Content-Type and body, and the connection when it may serve the target's next scrape."""
        conn = self._idle.pop(target, None)  # taken while in use: never two requests on one connection
        if conn is not None and not conn.usable():
            conn.close()
            conn = None
        if conn is not None:
            try:
                return await self._exchange(conn, host, port)
            except _NoAnswer:
                log.debug("idle connection to %s was closed by the server; reconnecting", target)
        conn = await Connection.open(host, port)
        self.connections_opened += 1
        return await self._exchange(conn, host, port)

    async def _exchange(self, conn: Connection, host: str, port: int) -> tuple[str, bytes, Connection | None]:
        try:
            content_type, body, reusable = await fetch(conn, host, port, path=self._path,
                                                       max_bytes=self._max_bytes, accept=self._accept)
        except BaseException:  # errors, and the deadline's cancellation: the connection's state is unknown
            conn.close()
            raise
        if not reusable:
            conn.close()
        return content_type, body, conn if reusable else None

    def _keep(self, target: str, conn: Connection) -> None:
        old = self._idle.pop(target, None)
        if old is not None:  # bounded: one idle connection per target
            old.close()
        self._idle[target] = conn

    @property
    def fallbacks(self) -> int:
        """Documents that needed the reference parser, over the current targets."""
        return sum(p.fallbacks for p in self._parsers.values())

    async def scrape(self, target: str, node: str | None) -> ScrapeOutcome:
        """Fetch and parse one target; never raises (a failure is a down status with its reason)."""
        started = self._clock()
        t0 = time.perf_counter()
        conn: Connection | None = None
        try:
            address = parse_hostport(target)
            async with asyncio.timeout(self._timeout):
                content_type, payload, conn = await self._fetch(target, address.host, address.port)
            try:
                reading, samples = self._parse(target, payload, node, content_type)
            except BaseException:
                if conn is not None:  # a body that does not parse: start the next scrape afresh
                    conn.close()
                raise
        except TimeoutError:
            return self._down(target, node, f"timeout after {self._timeout:g}s",
                              started=started, t0=t0, source="scrape")
        except ScrapeError as exc:
            return self._down(target, node, str(exc), started=started, t0=t0, source=exc.source)
        except ValueError as exc:  # a target string that is no host:port (static targets are validated)
            return self._down(target, node, f"bad target: {exc}", started=started, t0=t0,
                              source="scrape")
        if conn is not None:
            self._keep(target, conn)
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
            doc = load_document(text)
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
