"""bodies.PartsFile: a file over byte parts reads and seeks as a bytes file of the parts joined would,
block boundaries, empty parts and waitress's own pattern of calls included (tests/test_large_bodies.py
serves one through a real waitress server)."""

from __future__ import annotations

import io
import random

import falcon
import pytest

from k8smon_common.bodies import PartsFile, body_from_parts


def test_a_parts_file_reads_and_seeks_as_a_bytes_file_of_the_joined_parts() -> None:
    """Random reads and seeks of every kind (whence 0/1/2, back, on, past the end) against io.BytesIO."""
    rng = random.Random(15)
    for trial in range(200):
        parts = [bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 2, 5, 40)))) for _ in range(
            rng.randrange(0, 30))]
        whole = b"".join(parts)
        per = rng.choice((1, 2, 3, 7, 256))
        blocks = type("Blocks", (PartsFile,), {"BLOCK_PARTS": per, "FEW": rng.choice((0, 10, 4096))})
        ours, ref = blocks(parts), io.BytesIO(whole)
        assert ours.size == len(whole) and ours.seekable() and ours.readable()
        for _ in range(40):
            op = rng.randrange(4)
            if op == 0:
                n = rng.choice((-1, None, 0, 1, 3, 17, 100, len(whole)))
                assert ours.read(n) == ref.read(n), trial
            elif op == 1:
                whence = rng.choice((io.SEEK_SET, io.SEEK_CUR, io.SEEK_END))
                lo = {io.SEEK_SET: 0, io.SEEK_CUR: -ref.tell(), io.SEEK_END: -len(whole)}[whence]
                offset = rng.randrange(lo, len(whole) + 10)
                assert ours.seek(offset, whence) == ref.seek(offset, whence), trial
            elif op == 2:  # waitress's own pattern: tell, read, back to it, on by what was sent
                start = ref.tell()
                assert ours.tell() == start
                n = rng.randrange(1, 64)
                assert ours.read(n) == ref.read(n)
                ours.seek(start), ref.seek(start)
                sent = rng.randrange(0, n + 1)
                assert ours.seek(sent, io.SEEK_CUR) == ref.seek(sent, io.SEEK_CUR)
            assert ours.tell() == ref.tell(), trial
    with pytest.raises(ValueError, match=r"^negative seek position -1$"):
        PartsFile([b"abc"]).seek(-1)
    with pytest.raises(ValueError, match=r"^negative seek position -2$"):
        PartsFile([b"abc"]).seek(-5, io.SEEK_END)


def test_a_read_joins_only_the_blocks_it_covers_and_keeps_none_before_them() -> None:
    class Counted(PartsFile):
        BLOCK_PARTS = 2
        FEW = 3

    parts = [b"ab", b"cd", b"ef", b"gh", b"ij"]  # more than FEW: blocks "abcd", "efgh", "ij"
    f = Counted(parts)
    f.seek(1)
    assert f.read(0) == b"" and f._blocks == {}  # an empty read joins nothing
    f.seek(0)
    assert f.size == 10 and f.read(3) == b"abc" and f._blocks == {0: b"abcd"}
    first = f._blocks[0]
    f.seek(0)
    assert f.read(5) == b"abcde" and f._blocks == {0: b"abcd", 1: b"efgh"}
    assert f._blocks[0] is first  # kept, not joined again
    f.seek(4)
    assert f.read(1) == b"e" and list(f._blocks) == [1]  # block 0 is behind every read from here
    assert f.read() == b"fghij" and list(f._blocks) == [1, 2]
    assert f.read() == b"" and f.tell() == 10
    f.close()
    assert f._blocks == {}


def test_up_to_few_parts_each_part_is_a_block_read_without_a_copy() -> None:
    class Few(PartsFile):
        BLOCK_PARTS = 2
        FEW = 3

    parts = [b"ab", b"cd", b"ef"]  # exactly FEW
    f = Few(parts)
    assert f.read(1) == b"a" and f._blocks == {0: b"ab"} and f._blocks[0] is parts[0]
    assert f.read(3) == b"bcd" and f._blocks[1] is parts[1]
    assert f.read(2) == b"ef" and f._blocks[2] is parts[2]


def test_a_read_of_one_whole_block_returns_it_without_a_copy() -> None:
    big = bytes(1000)
    f = PartsFile([big])
    assert f.read(1000) is big


def test_a_body_joins_its_parts_up_to_the_threshold_and_is_a_parts_file_past_it() -> None:
    resp = falcon.Response()
    body_from_parts(resp, [b"ab", b"cd"], threshold=4)
    assert resp.data == b"abcd" and resp.stream is None
    resp = falcon.Response()
    body_from_parts(resp, [b"ab", b"cd", b"e"], threshold=4)
    assert resp.data is None and isinstance(resp.stream, PartsFile)
    assert resp.content_length == "5" and resp.stream.read() == b"abcde"
    resp = falcon.Response()
    body_from_parts(resp, [bytes(1 << 20)])  # the default threshold: a MiB, as StreamLargeBodies'
    assert resp.data == bytes(1 << 20)
    body_from_parts(resp, [bytes(1 << 20), b"x"])
    assert resp.stream is not None and resp.content_length == str((1 << 20) + 1)
