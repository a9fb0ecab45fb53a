"""The federation's container families, line by line, and their label cache across rounds."""

from __future__ import annotations

import pytest

from aggregator.federation import _same_names, container_lines
from aggregator.model import ContainerReading, PodReading

KEY = ("shop", "web-1")
APP = ContainerReading("app", {"cpu_usage_cores": 0.25, "memory_limit_bytes": 2.0**28})
SIDE = ContainerReading('si"de', {"cpu_usage_cores": 0.5})


def pod(uid: str = "uid-1", *containers: ContainerReading) -> PodReading:
    return PodReading("shop", "web-1", uid, containers=containers or (APP, SIDE))


def test_container_lines_text() -> None:
    text, cache = container_lines([KEY, ("shop", "bare")], ["n1", "n1"],
                                  [pod(), PodReading("shop", "bare", "uid-2")])
    labels = 'node="n1",namespace="shop",pod="web-1",uid="uid-1"'
    assert "".join(text) == (
        "# HELP k8smon_container_cpu_usage_cores CPU the container used over the last sampling interval.\n"
        "# TYPE k8smon_container_cpu_usage_cores gauge\n"
        f'k8smon_container_cpu_usage_cores{{{labels},container="app"}} 0.25\n'
        f'k8smon_container_cpu_usage_cores{{{labels},container="si\\"de"}} 0.5\n'
        "# HELP k8smon_container_memory_limit_bytes The container's memory limit.\n"
        "# TYPE k8smon_container_memory_limit_bytes gauge\n"
        f'k8smon_container_memory_limit_bytes{{{labels},container="app"}} 268435456.0\n'
    )
    assert set(cache) == {KEY}  # a pod without containers is not cached


# Each change alone, and to a value another cached field held: a cache that compared the wrong field,
# or needed two to change, would serve the old labels.
@pytest.mark.parametrize(
    ("node", "reading"),
    [
        ("uid-1", pod()),  # moved to a node named like its uid
        ("n1", pod("n1")),  # recreated with a uid equal to the old node name
        ("n1", pod("uid-1", ContainerReading("app2", APP.values), SIDE)),  # a container renamed
        ("n1", pod("uid-1", APP)),  # one container fewer
        ("n1", pod("uid-1", SIDE, APP)),  # the same names in another order
    ],
    ids=["node", "uid", "renamed", "fewer", "reordered"],
)
def test_the_label_cache_follows_any_change(node: str, reading: PodReading) -> None:
    _, cache = container_lines([KEY], ["n1"], [pod()])
    cached, _ = container_lines([KEY], [node], [reading], cache)
    fresh, _ = container_lines([KEY], [node], [reading])
    assert cached == fresh
    first = reading.containers[0].name.replace('"', '\\"')
    labels = f'node="{node}",namespace="shop",pod="web-1",uid="{reading.uid}",container="{first}"'
    assert labels in "".join(fresh)


def test_same_names() -> None:
    assert _same_names(("app", 'si"de'), (APP, SIDE))
    assert not _same_names(("app",), (APP, SIDE))
    assert not _same_names(("app", "other"), (APP, SIDE))
    assert not _same_names((), (APP,))
    assert _same_names((), ())
