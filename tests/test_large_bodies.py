"""Large answers leave as a file wrapper over their bytes (http_api.StreamLargeBodies), served by a real
waitress server on loopback: the same bytes and headers as before, for GET and HEAD, and small answers
untouched."""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import falcon
import pytest

from k8smon_common.http_api import StreamLargeBodies
from k8smon_common.http_server import ServerHandle

BIG = bytes(range(256)) * 8192  # 2 MiB, every byte value
SMALL = b'{"ok":true}'


class Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "application/octet-stream"
        resp.data = self._data

    on_head = on_get


class Media:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"values": list(range(300_000))}  # serialised by falcon after the middleware


def _spy(app: Callable[..., Any], wrapped: list[int]) -> Callable[..., Any]:
    """The WSGI app with the server's file_wrapper counted (so the test sees which bodies used it)."""

    def call(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        real = environ["wsgi.file_wrapper"]

        def file_wrapper(*args: Any) -> Any:
            wrapped.append(1)
            return real(*args)

        environ["wsgi.file_wrapper"] = file_wrapper
        return app(environ, start_response)  # type: ignore[no-any-return]

    return call


@pytest.fixture
def server() -> Iterator[tuple[ServerHandle, list[int]]]:
    app = falcon.App(middleware=[StreamLargeBodies(threshold=1 << 20)])
    app.add_route("/big", Body(BIG))
    app.add_route("/small", Body(SMALL))
    app.add_route("/media", Media())
    wrapped: list[int] = []
    handle = ServerHandle(_spy(app, wrapped), host="127.0.0.1", port=0, threads=2).start()
    try:
        yield handle, wrapped
    finally:
        handle.stop()


def _fetch(handle: ServerHandle, method: str, path: str) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", handle.port, timeout=10)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp, resp.read()
    finally:
        conn.close()


def test_a_large_body_is_sent_from_a_file_wrapper_byte_for_byte(
        server: tuple[ServerHandle, list[int]]) -> None:
    handle, wrapped = server
    resp, body = _fetch(handle, "GET", "/big")
    assert resp.status == 200 and body == BIG
    assert resp.getheader("Content-Length") == str(len(BIG)) and resp.getheader("Transfer-Encoding") is None
    assert resp.getheader("Content-Type") == "application/octet-stream"
    assert wrapped == [1]
    resp, body = _fetch(handle, "HEAD", "/big")
    assert resp.status == 200 and body == b"" and resp.getheader("Content-Length") == str(len(BIG))


def test_small_bodies_stay_bytes_and_media_is_left_to_falcon(server: tuple[ServerHandle, list[int]]) -> None:
    handle, wrapped = server
    resp, body = _fetch(handle, "GET", "/small")
    assert resp.status == 200 and body == SMALL and resp.getheader("Content-Length") == str(len(SMALL))
    resp, body = _fetch(handle, "GET", "/media")  # > threshold once serialised, but only after the middleware
    assert resp.status == 200 and len(body) > 1 << 20 and body.startswith(b'{"values": [0, 1, 2')
    assert wrapped == []
