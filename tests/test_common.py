"""The shared pieces: settings loading and the stoppable waitress server."""

from __future__ import annotations

import dataclasses
import threading
import time
import urllib.request

import pytest

from k8smon_common.config import (
    ConfigError,
    HostPort,
    load_settings,
    markdown_table,
    option,
    parse_csv,
    parse_hostport,
    parse_positive_float,
)
from k8smon_common.http_server import ServerHandle


@dataclasses.dataclass(frozen=True)
class _Settings:
    listen: HostPort = option(HostPort("0.0.0.0", 9100), "address to serve on", parse=parse_hostport)
    interval: float = option(5.0, "seconds between samples", parse=parse_positive_float)
    names: tuple[str, ...] = option(("a", "b"), "names", parse=parse_csv, env_aliases=("OLD_NAMES",))

    def validate(self) -> list[str]:
        return ["--interval must be below 60 seconds"] if self.interval >= 60 else []


def _load(argv: list[str], env: dict[str, str] | None = None) -> _Settings:
    return load_settings(_Settings, argv, env or {}, prog="t", description="t")


def test_defaults_env_and_flags_in_precedence_order() -> None:
    assert _load([]) == _Settings()
    assert _load([], {"K8SMON_INTERVAL": "2"}).interval == 2.0
    assert _load(["--interval", "3"], {"K8SMON_INTERVAL": "2"}).interval == 3.0
    assert _load([], {"OLD_NAMES": "x, y,,"}).names == ("x", "y")
    assert _load([], {"K8SMON_NAMES": ""}).names == ()
    assert _load(["--listen", ":80"]).listen == HostPort("0.0.0.0", 80)
    assert _load(["--listen", "[::1]:80"]).listen == HostPort("::1", 80)


def test_every_bad_value_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        _load(["--listen", "nope"], {"K8SMON_INTERVAL": "-1"})
    assert len(err.value.problems) == 2
    text = str(err.value)
    assert "--listen='nope'" in text and "K8SMON_INTERVAL='-1'" in text


def test_cross_field_validation_runs_after_parsing() -> None:
    with pytest.raises(ConfigError, match="below 60"):
        _load(["--interval", "90"])


def test_markdown_table_names_flag_env_and_default() -> None:
    table = markdown_table(_Settings)
    assert "| `--interval` | `K8SMON_INTERVAL` | `5.0` |" in table
    assert "`OLD_NAMES`" in table


def test_server_handle_serves_and_lets_inflight_requests_finish() -> None:
    started = threading.Event()

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        if environ["PATH_INFO"] == "/slow":
            started.set()
            time.sleep(0.5)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = ServerHandle(app).start()
    assert server.port > 0
    assert urllib.request.urlopen(server.url + "/", timeout=5).read() == b"ok"
    result: list[bytes] = []
    slow = server.url + "/slow"
    t = threading.Thread(target=lambda: result.append(urllib.request.urlopen(slow, timeout=5).read()))
    t.start()
    assert started.wait(5)
    server.stop()
    t.join(5)
    assert result == [b"ok"], "an in-flight request must complete during stop()"
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url + "/", timeout=2)


def test_stop_does_not_wait_for_idle_keep_alive_connections() -> None:
    import http.client

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    server = ServerHandle(app).start()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"ok"  # the connection stays open (HTTP/1.1 keep-alive)
        began = time.monotonic()
        server.stop(timeout=5)
        assert time.monotonic() - began < 2.0, "stop() waited for an idle keep-alive client"
    finally:
        conn.close()


def test_server_handle_serves_connections_on_descriptors_past_1024() -> None:
    """The aggregator holds a kept-alive connection per exporter: past ~1000 nodes every accepted
    request has a descriptor >= 1024, which select() refuses (waitress's loop then died)."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1200
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {want}")
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    held: list[int] = []
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))

        def app(environ, start_response):  # type: ignore[no-untyped-def]
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]

        server = ServerHandle(app).start()
        try:
            assert urllib.request.urlopen(server.url + "/", timeout=5).read() == b"ok"
            assert urllib.request.urlopen(server.url + "/", timeout=5).read() == b"ok"  # the loop lives on
        finally:
            server.stop()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
