"""Pod documents encoded in a helper process, so the aggregator's own GIL is free for requests.

Preparing a round's pod listing makes 30k pod documents (`views.pod_doc`) and encodes them: ~1 s of
CPU a round at 1000 x 30, a third of the aggregator's samples while clients poll the listing, all of
it on the one GIL that the scrape loop and every request share. Here the aggregator sends the pods'
raw fields (a tuple of strings, floats and the sample's dicts per pod: ~1/4 of a document's cost to
pickle) to `python -m aggregator.api.docworker`, which rebuilds each `PodView` and answers with the
bytes that `PodDocCache` would have made itself: the same `pod_doc`, the same encoder (`api_dumps`),
its opening brace and `age_seconds` left out. The worker runs on the other core meanwhile, and while
the aggregator waits for it, its GIL is released.

Frames on the child's stdin and stdout: an 8-byte big-endian length, then a pickle. Requests are
lists of pod tuples (BATCH pods at most, so no single pickling keeps the GIL long); answers are
`("ok", [bytes, ...])` or `("error", text)`. The child exits when its stdin closes (the aggregator
stopped or died). Anything that goes wrong (the child cannot start, dies, hangs past `timeout`,
answers garbage or an error) is logged and counted (`k8smon_aggregator_errors_total{source=
"listing_worker"}`), `encode` returns None and the caller builds the documents itself, so a listing is
never lost or different; a new child is started at most once per `retry_after` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

from aggregator.model import ContainerReading
from aggregator.stats import AggregatorStats
from aggregator.store.views import PodView, Sample

log = logging.getLogger(__name__)

BATCH = 500  # pods per frame: ~4 ms of pickling at a time on the aggregator's side
_LENGTH = struct.Struct(">Q")
MAX_FRAME = 1 << 30  # a length past this is garbage, not an answer

PodFields = tuple[Any, ...]


def pod_fields(p: PodView) -> PodFields:
    """What `pod_doc` reads of a pod, as built-in types only (pickled ~2.5x faster than the dataclasses)."""
    s = p.sample
    return (
        p.namespace, p.pod, p.uid, p.node, p.deployment, p.owner_kind, p.owner_name, p.last_seen,
        s.timestamp, s.values, s.deltas, s.rates, s.interval_seconds,
        tuple((c.name, c.values) for c in p.containers),
    )


def pod_view(f: PodFields) -> PodView:
    """`pod_fields` undone."""
    return PodView(
        namespace=f[0], pod=f[1], uid=f[2], node=f[3], deployment=f[4], owner_kind=f[5], owner_name=f[6],
        last_seen=f[7],
        sample=Sample(timestamp=f[8], values=f[9], deltas=f[10], rates=f[11], interval_seconds=f[12]),
        containers=tuple(ContainerReading(name, values) for name, values in f[13]),
    )


class WorkerError(Exception):
    """The worker could not answer: the message says why."""


def _frame(payload: object) -> bytes:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def _send(fd: int, data: bytes, deadline: float) -> None:
    """All of `data` to a non-blocking pipe, or WorkerError at `deadline` (a child that stopped reading)."""
    view = memoryview(data)
    while view:
        if not select.select([], [fd], [], max(0.0, deadline - time.monotonic()))[1]:
            raise WorkerError("the worker stopped reading")
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            continue


def _receive(fd: int, n: int, deadline: float) -> bytes:
    """Exactly `n` bytes from a non-blocking pipe, or WorkerError at `deadline` or at its end."""
    chunks: list[bytes] = []
    while n:
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            raise WorkerError("no answer in time")
        try:
            data = os.read(fd, min(n, 1 << 20))
        except BlockingIOError:
            continue
        if not data:
            raise WorkerError("the worker closed its output")
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


def _answer(fd: int, deadline: float) -> Any:
    (length,) = _LENGTH.unpack(_receive(fd, _LENGTH.size, deadline))
    if length > MAX_FRAME:
        raise WorkerError(f"a frame of {length} bytes announced")
    data = _receive(fd, length, deadline)
    try:
        return pickle.loads(data)  # noqa: S301 (our own child, over its pipe)
    except Exception as exc:  # garbage raises any of a dozen types
        raise WorkerError(f"an answer that is not a pickle ({type(exc).__name__}: {exc})") from None


class DocWorker:
    """The aggregator's handle on one helper process; `encode` is safe from any thread (one batch
    stream at a time: the warmer and a request preparing at once take turns)."""

    def __init__(
        self,
        *,
        stats: AggregatorStats | None = None,
        timeout: float = 30.0,
        retry_after: float = 30.0,
        command: Sequence[str] | None = None,
    ) -> None:
        self._stats = stats
        self.timeout = timeout  # per batch; a batch of 500 pods takes ~20 ms
        self.retry_after = retry_after
        self._command = list(command) if command else [sys.executable, "-m", "aggregator.api.docworker"]
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._next_start = 0.0  # time.monotonic() before which no new child is started
        self.started = 0  # children started
        self.pods_encoded = 0  # pods whose documents a child made (tests and the benchmark read both)
        self._closed = False

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def encode(self, pods: Sequence[PodView]) -> list[bytes] | None:
        """Each pod's JSON without its opening brace and `age_seconds`, as `PodDocCache` keeps it; None
        when the worker cannot answer (the caller then makes them itself)."""
        with self._lock:
            proc = self._running()
            if proc is None:
                return None
            try:
                return self._exchange(proc, pods)
            except (WorkerError, OSError) as exc:
                self._fail(str(exc))
                return None

    def _running(self) -> subprocess.Popen[bytes] | None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            return proc
        if proc is not None:
            self._fail(f"the worker exited with status {proc.returncode}")
        if self._closed or time.monotonic() < self._next_start:
            return None
        try:
            proc = subprocess.Popen(self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
            assert proc.stdin is not None and proc.stdout is not None
            os.set_blocking(proc.stdin.fileno(), False)
            os.set_blocking(proc.stdout.fileno(), False)
        except OSError as exc:
            self._fail(f"cannot start it: {exc}")
            return None
        self._proc = proc
        self.started += 1
        log.info("listing worker started (pid %d)", proc.pid)
        return proc

    def _exchange(self, proc: subprocess.Popen[bytes], pods: Sequence[PodView]) -> list[bytes]:
        assert proc.stdin is not None and proc.stdout is not None
        to_child, from_child = proc.stdin.fileno(), proc.stdout.fileno()
        out: list[bytes] = []
        batches = [pods[i:i + BATCH] for i in range(0, len(pods), BATCH)]
        request = _frame([pod_fields(p) for p in batches[0]]) if batches else b""
        for i, batch in enumerate(batches):
            deadline = time.monotonic() + self.timeout
            _send(to_child, request, deadline)
            # The next batch while the worker makes this one's documents (written only once this
            # answer is read: both pipes full at once would deadlock).
            request = _frame([pod_fields(p) for p in batches[i + 1]]) if i + 1 < len(batches) else b""
            answer = _answer(from_child, deadline)
            if not (isinstance(answer, tuple) and len(answer) == 2):
                raise WorkerError(f"an unexpected answer ({type(answer).__name__})")
            status, body = answer
            if status != "ok":
                raise WorkerError(f"it failed: {body}")
            if not (isinstance(body, list) and len(body) == len(batch)
                    and all(type(b) is bytes for b in body)):
                raise WorkerError("an answer of the wrong shape")
            out += body
        self.pods_encoded += len(out)
        return out

    def _fail(self, why: str) -> None:
        """Log and count the failure; end the child (a new one after `retry_after`)."""
        log.warning("listing worker: %s; pod documents are made in-process until it is restarted", why)
        if self._stats is not None:
            self._stats.error("listing_worker")
        self._stop_child(grace=0.05)  # it failed: nothing it might still write is wanted
        self._next_start = time.monotonic() + self.retry_after

    def _stop_child(self, *, grace: float) -> None:
        """Close its pipes (it leaves its loop at the end of its input), killed after `grace` seconds."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        """End the child (its stdin closes, it exits); no new one is started."""
        with self._lock:
            self._closed = True
            self._stop_child(grace=2.0)


def _read(src: IO[bytes], n: int) -> bytes:
    data = src.read(n)
    if len(data) != n:
        raise WorkerError("input ended inside a frame")
    return data


def serve(src: IO[bytes], out: IO[bytes]) -> None:
    """The child's loop: a batch of pod fields in, their documents' JSON out, until `src` ends."""
    from aggregator.api.app import api_dumps  # the app's encoder: orjson when installed, as in the parent
    from aggregator.api.views import pod_doc

    dumps = api_dumps()
    while True:
        header = src.read(_LENGTH.size)
        if not header:
            return  # the aggregator closed our stdin
        if len(header) != _LENGTH.size:
            raise WorkerError("input ended inside a frame")
        (length,) = _LENGTH.unpack(header)
        batch = pickle.loads(_read(src, length))  # noqa: S301 (from the aggregator that started us)
        try:
            encoded = []
            for fields in batch:
                doc = pod_doc(pod_view(fields), now=fields[7])
                del doc["age_seconds"]  # added per answer, in front (PodDocCache.encoded)
                encoded.append(dumps(doc)[1:])
            answer: tuple[str, object] = ("ok", encoded)
        except Exception as exc:  # the parent makes these documents itself and meets the same error
            answer = ("error", f"{type(exc).__name__}: {exc}")
        out.write(_frame(answer))
        out.flush()


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt, WorkerError):  # the parent went away
        serve(sys.stdin.buffer, sys.stdout.buffer)
