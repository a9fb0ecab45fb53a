"""Graceful shutdown: in-flight requests finish, idle keep-alive clients do not hold the process, exit 0.

ServerHandle (both components serve through it) is driven with a real waitress server and a WSGI app
whose slow route waits for the test's signal, so "in flight during stop()" is certain, not timed.
The two CLIs are run as processes and sent SIGTERM with a keep-alive client connected (and, for the
aggregator, a scrape hanging on an exporter that never answers).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from k8smon_common.http_server import ServerHandle
from tests.support import free_port, require, wait_until

ROOT = Path(__file__).resolve().parent.parent
NODE_A = ROOT / "tests" / "fixtures" / "nodes" / "node-a"
SLOW_BODY = b"finished after shutdown began\n" * 1000


class SlowApp:
    """`/slow` blocks until `release` is set (after `entered`); anything else answers at once."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/slow":
            self.entered.set()
            assert self.release.wait(30), "the test never released the slow request"
            body = SLOW_BODY
        else:
            body = b"fast\n"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]


def _request(sock: socket.socket, path: str, *, keep_alive: bool) -> None:
    connection = "keep-alive" if keep_alive else "close"
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: {connection}\r\n\r\n".encode())


def _read_response(sock: socket.socket, *, timeout: float) -> tuple[bytes, bytes]:
    """(head, body) of one Content-Length response."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before the response headers: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    length = int(lengths[0].split(b":")[1])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {len(body)} of {length} body bytes"
        body += chunk
    return head, body


def _closed_by_peer(sock: socket.socket, *, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_stop_finishes_an_in_flight_request_and_closes_idle_keep_alive_connections() -> None:
    app = SlowApp()
    handle = ServerHandle(app, host="127.0.0.1", port=0, threads=2).start()
    idle = socket.create_connection(("127.0.0.1", handle.port), timeout=10)
    slow = socket.create_connection(("127.0.0.1", handle.port), timeout=10)
    stopper: threading.Thread | None = None
    try:
        _request(idle, "/fast", keep_alive=True)
        head, body = _read_response(idle, timeout=10)
        assert head.startswith(b"HTTP/1.1 200") and body == b"fast\n"  # the connection now sits idle, open

        _request(slow, "/slow", keep_alive=False)
        assert app.entered.wait(10), "slow request never reached the app"
        stop_time: list[float] = []

        def stop() -> None:
            t0 = time.monotonic()
            handle.stop(timeout=20)
            stop_time.append(time.monotonic() - t0)

        stopper = threading.Thread(target=stop)
        stopper.start()
        stopper.join(0.5)
        assert stopper.is_alive(), "stop() returned while a request was still in flight"
        released = time.monotonic()
        app.release.set()
        head, body = _read_response(slow, timeout=10)
        assert head.startswith(b"HTTP/1.1 200") and body == SLOW_BODY  # completed in full
        stopper.join(10)
        assert not stopper.is_alive(), "stop() did not return"
        # The idle keep-alive client was closed rather than waited for (waitress would keep it 120 s).
        assert time.monotonic() - released < 5, stop_time
        assert _closed_by_peer(idle, timeout=5)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", handle.port), timeout=2).close()
    finally:
        app.release.set()
        if stopper is None:
            handle.stop(timeout=5)
        idle.close()
        slow.close()


@contextmanager
def _process(args: list[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("K8SMON_") and k not in {"KUBERNETES_SERVICE_HOST", "NODE_NAME"}}
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _get_ok(port: int, path: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            _request(s, path, keep_alive=False)
            head, _ = _read_response(s, timeout=5)
            return head.startswith(b"HTTP/1.1 200")
    except (OSError, AssertionError):
        return False


def _sigterm_with_idle_client(proc: subprocess.Popen[bytes], port: int, path: str) -> float:
    """Open a keep-alive connection, leave it idle, SIGTERM; seconds until the process exited 0."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
        _request(idle, path, keep_alive=True)
        head, _ = _read_response(idle, timeout=10)
        assert head.startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0  # the pod's grace period
        elapsed = time.monotonic() - t0
        assert _closed_by_peer(idle, timeout=5)
    return elapsed


def test_exporter_exits_0_on_sigterm_with_an_idle_keep_alive_scraper(tmp_path: Path) -> None:
    require((NODE_A / "proc").is_dir(), f"fixture tree {NODE_A} missing")
    port = free_port()
    args = ["-m", "exporter", "--listen", f"127.0.0.1:{port}", "--node-name", "node-a",
            "--proc-root", str(NODE_A / "proc"), "--sys-root", str(NODE_A / "sys"),
            "--cgroup-root", str(NODE_A / "cgroup"), "--rootfs", str(NODE_A), "--interval", "0.2",
            "--exclude-namespaces", "", "--kubeconfig", ""]
    with _process(args, tmp_path / "exporter.log") as proc:
        wait_until(lambda: proc.poll() is not None or _get_ok(port, "/healthz"), timeout=30,
                   message="exporter healthy", interval=0.1)
        assert proc.poll() is None, (tmp_path / "exporter.log").read_text()
        elapsed = _sigterm_with_idle_client(proc, port, "/metrics")
    assert elapsed < 4, f"exporter took {elapsed:.1f}s to stop (waiting for the idle client: 5 s)"
    assert "received SIGTERM" in (tmp_path / "exporter.log").read_text()


def test_aggregator_exits_0_on_sigterm_mid_scrape_with_an_idle_keep_alive_client(tmp_path: Path) -> None:
    # An "exporter" that completes the TCP handshake (kernel backlog) and never answers: the scrape
    # in flight at SIGTERM would run for the whole --scrape-timeout if stopping waited for it.
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)
    port = free_port()
    state = tmp_path / "state.bin"
    args = ["-m", "aggregator", "--listen", f"127.0.0.1:{port}",
            "--targets", f"127.0.0.1:{hung.getsockname()[1]}", "--scrape-interval", "10",
            "--scrape-timeout", "9", "--state-file", str(state), "--log-format", "json"]
    try:
        with _process(args, tmp_path / "aggregator.log") as proc:
            wait_until(lambda: proc.poll() is not None or _get_ok(port, "/healthz"), timeout=60,
                       message="aggregator serving", interval=0.1)
            assert proc.poll() is None, (tmp_path / "aggregator.log").read_text()
            elapsed = _sigterm_with_idle_client(proc, port, "/api/nodes")
    finally:
        hung.close()
    # Under 4 s: waiting for the hung scrape would take 9 s, waiting for the idle client 5 s (join timeout).
    assert elapsed < 4, f"aggregator took {elapsed:.1f}s to stop"
    text = (tmp_path / "aggregator.log").read_text()
    lines = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
    assert any("SIGTERM" in x["msg"] for x in lines) and lines[-1]["msg"] == "stopped"
    assert state.exists()  # the final snapshot was written on the way out
