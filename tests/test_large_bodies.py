"""Large answers leave as a file wrapper over their bytes (http_api.StreamLargeBodies) or over their
parts (bodies.body_from_parts; tests/test_parts_file.py reads that file alone), served by a real
waitress server on loopback: the same bytes and headers as one joined body, for GET and HEAD, and
small answers untouched."""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import falcon
import pytest

from k8smon_common.bodies import body_from_parts
from k8smon_common.http_api import StreamLargeBodies
from k8smon_common.http_server import ServerHandle

BIG = bytes(range(256)) * 8192  # 2 MiB, every byte value
SMALL = b'{"ok":true}'
# A listing's shape: many small parts of uneven sizes, empty ones among them; ~2.4 MB in all
PARTS = [bytes([i % 251]) * (i % 97) for i in range(50_000)]


class Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "application/octet-stream"
        resp.data = self._data

    on_head = on_get


class Parts:
    def __init__(self, parts: list[bytes]) -> None:
        self._parts = parts

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "application/octet-stream"
        body_from_parts(resp, self._parts)

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
    app.add_route("/parts", Parts(PARTS))
    app.add_route("/few-parts", Parts([b'{"a":', b"1", b"}"]))
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


def test_a_body_of_many_parts_is_sent_from_a_parts_file_byte_for_byte(
        server: tuple[ServerHandle, list[int]]) -> None:
    handle, wrapped = server
    whole = b"".join(PARTS)
    assert len(whole) > 1 << 20
    resp, body = _fetch(handle, "GET", "/parts")
    assert resp.status == 200 and body == whole
    assert resp.getheader("Content-Length") == str(len(whole)) and resp.getheader("Transfer-Encoding") is None
    assert wrapped == [1]
    resp, body = _fetch(handle, "HEAD", "/parts")
    assert resp.status == 200 and body == b"" and resp.getheader("Content-Length") == str(len(whole))
    resp, body = _fetch(handle, "GET", "/few-parts")  # under the threshold: joined, as bytes
    assert resp.status == 200 and body == b'{"a":1}' and resp.getheader("Content-Length") == "7"
    assert wrapped == [1, 1]  # the HEAD went through it too; the small answer did not

