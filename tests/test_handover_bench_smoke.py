"""A tiny bounded run of the hand-over benchmark (`python -m bench handover`): it prints one figure per
format, and the three formats carry the same points (a format that lost values would make its figure
meaningless)."""

from __future__ import annotations

import math
import pickle
import re

import pytest

from bench import handover_bench as hb


def test_handover_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert hb.main(["--nodes", "3", "--pods", "4", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "3 nodes x 4 pods: 12 pods" in out
    figures = re.findall(r"sender +([\d.]+) ms +receiver +([\d.]+) ms +([\d.]+) MB", out)
    assert len(figures) == 3, out


def _points(receiver: hb.Receiver) -> dict[tuple[str, str], list[tuple[float, tuple[float | None, ...]]]]:
    return {key: [(t, tuple(None if v is None or math.isnan(v) else v for v in row))
                  for t, row in series.points()] for key, series in receiver.series.items()}


def test_every_format_carries_the_same_points_and_documents() -> None:
    store, views = hb.build(3, 4)
    rows = hb._rows(store, views)
    received = []
    formats = ((hb._objects(views, rows), "objects"), (hb._tuples(views, rows), "tuples"),
               (hb._documents(store, rows), "documents"))
    for items, take in formats:
        receiver = hb.Receiver(views)
        getattr(receiver, take)(pickle.loads(pickle.dumps(items, protocol=5)))
        received.append(_points(receiver))
    assert received[0] == received[1] == received[2]
    assert all(len(points) == 1 for points in received[0].values())
    assert len(received[0]) == 12
    # what the scrape side would send for the listing: each pod's document as the API encodes it
    docs = {(ns, pod): doc for ns, pod, _t, doc, _point in hb._documents(store, rows)}
    assert b'"pod_name":"pod-0-0"' in docs["ns-0", "pod-0-0"] and b'"containers"' in docs["ns-0", "pod-0-0"]
