"""`k8smon top`'s units, kubectl's table layout, sparklines, colour rules, selectors and container rows."""

from __future__ import annotations

import io

import pytest

from k8smon_cli import fmt, top
from k8smon_cli.client import Client, UsageError


@pytest.mark.parametrize(
    ("millicores", "text"),
    [(250, "250m"), (249.2, "250m"), (0.4, "1m"), (0, "0m"), (1500.0, "1500m"), (1e-9, "0m"),
     (None, "<unknown>")],
)
def test_cpu_is_whole_millicores_rounded_up_as_kubectl(millicores: float | None, text: str) -> None:
    assert fmt.cpu(millicores) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(128 * 2**20, "128Mi"), (128 * 2**20 + 2**20 - 1, "128Mi"), (2**20 - 1, "0Mi"), (2 * 2**30, "2048Mi"),
     (None, "<unknown>")],
)
def test_memory_is_whole_mebibytes_rounded_down_as_kubectl(value: float | None, text: str) -> None:
    assert fmt.memory(value) == text


def test_percent_is_truncated() -> None:
    assert fmt.percent(251, 2000) == "12%"
    assert fmt.percent(3999, 4000) == "99%"
    assert fmt.percent(1, None) == "<unknown>" and fmt.percent(None, 10) == "<unknown>"


def test_table_pads_like_kubectls_tabwriter() -> None:
    """Each cell, the last one too, padded to the column's widest + 3 (at least 6 wide)."""
    out = fmt.table(["NAME", "CPU(cores)", "CPU%"], [["a", "5m", "1%"], ["node-long", "1500m", "37%"]])
    assert out == (
        "NAME        CPU(cores)   CPU%   \n"
        "a           5m           1%     \n"
        "node-long   1500m        37%    \n"
    )
    assert fmt.table(["A"], [["b"]], headers=False) == "b     \n"  # minimum width 6


def test_table_aligns_on_visible_width_when_coloured() -> None:
    style = fmt.Style(True)
    out = fmt.table(["NAME", "MEMORY%"], [["x", style.red("95%")], ["yy", "5%"]], style=style)
    plain = fmt._ANSI.sub("", out)
    assert plain.splitlines() == ["NAME   MEMORY%   ", "x      95%       ", "yy     5%        "]


def test_sparkline() -> None:
    assert fmt.sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert fmt.sparkline([5, 5, 5]) == "███"
    assert fmt.sparkline([0, 0]) == "▁▁"
    assert fmt.sparkline([None, 4, None, 8]) == " ▅ █"
    assert fmt.sparkline([]) == "-" and fmt.sparkline([None]) == "-"
    assert len(fmt.sparkline(list(range(100)), width=16)) == 16


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "env", "expected"),
    [
        (_Tty(), {}, True),
        (_Tty(), {"NO_COLOR": "1"}, False),
        (_Tty(), {"NO_COLOR": ""}, True),  # no-color.org: set and not empty
        (_Tty(), {"TERM": "dumb"}, False),
        (io.StringIO(), {}, False),  # a pipe or a file
    ],
)
def test_colour_rules(stream: io.StringIO, env: dict[str, str], expected: bool) -> None:
    assert fmt.colour_enabled(stream, env) is expected


def test_style_off_adds_nothing() -> None:
    style = fmt.Style(False)
    assert style.bold("x") == "x" and style.level("95%") == "95%"
    on = fmt.Style(True)
    assert on.level("95%") == "\x1b[31m95%\x1b[0m" and on.level("75%") == "\x1b[33m75%\x1b[0m"
    assert on.level("5%") == "5%"


def _pod(name: str, cpu: float | None, mem: float | None, **extra: object) -> dict[str, object]:
    return {"pod_name": name, "namespace": "ns", "cpu_millicores": cpu, "memory_bytes": mem, **extra}


def test_sort_descending_with_unknowns_last_and_name_ascending() -> None:
    docs = [_pod("b", 10, None), _pod("a", None, 5), _pod("c", 30, 1)]
    assert [d["pod_name"] for d in top.sort_docs(docs, "cpu")] == ["c", "b", "a"]
    assert [d["pod_name"] for d in top.sort_docs(docs, "memory")] == ["a", "c", "b"]
    assert [d["pod_name"] for d in top.sort_docs(docs, "name")] == ["a", "b", "c"]


def test_nodes_that_are_not_up_show_unknown_and_come_last() -> None:
    docs = [{"node_name": "a", "status": "down", "cpu_millicores": 5, "memory_bytes": 1,
             "cpu_capacity_millicores": 10, "memory_total_bytes": 10},
            {"node_name": "b", "status": "up", "cpu_millicores": 1, "memory_bytes": 2**20,
             "cpu_capacity_millicores": 10, "memory_total_bytes": 2**21}]
    q = top.Query(kind="nodes")
    ordered = top.sort_docs(docs, None)
    _, rows = top.rows(q, ordered, None, wide=False, style=fmt.Style(False))
    unknown = "<unknown>"
    assert rows == [["b", "1m", "10%", "1Mi", "50%"], ["a", unknown, unknown, unknown, unknown]]


def test_container_rows_when_documents_carry_containers() -> None:
    doc = _pod("web-1", 300, 3 * 2**20, containers=[
        {"name": "app", "cpu_millicores": 250.2, "memory_bytes": 2 * 2**20},
        {"name": "sidecar", "cpu_millicores": 49.8, "memory_bytes": 2**20},
    ])
    q = top.Query(kind="pods", containers=True, all_namespaces=True)
    header, rows = top.rows(q, [doc], None, wide=False, style=fmt.Style(False))
    assert header == ["NAMESPACE", "POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert rows == [["ns", "web-1", "app", "251m", "2Mi"], ["ns", "web-1", "sidecar", "50m", "1Mi"]]
    assert top.has_containers([doc]) and not top.has_containers([_pod("x", 1, 1)])
    assert not top.has_containers([_pod("pushed", 1, 1, containers=[])])
    pushed = _pod("pushed", 1, 1, containers=[])
    _, rows = top.rows(q, [doc, pushed], None, wide=False, style=fmt.Style(False))
    assert rows[-1] == ["ns", "pushed", "-", "<unknown>", "<unknown>"]


def test_label_selectors() -> None:
    docs = [_pod("a", 1, 1, labels={"app": "web", "tier": "front"}), _pod("b", 1, 1, labels={"app": "db"})]
    names = lambda sel: [d["pod_name"] for d in top.select(docs, sel)]  # noqa: E731
    assert names("app=web") == ["a"] and names("app==db") == ["b"]
    assert names("app!=web") == ["b"] and names("tier") == ["a"] and names("!tier") == ["b"]
    assert names("app=web,tier=back") == []
    with pytest.raises(UsageError, match="carry none"):
        top.select([_pod("x", 1, 1)], "app=web")
    with pytest.raises(UsageError, match="invalid label selector"):
        top.parse_selector("=x")


def test_server_address_forms() -> None:
    assert Client("http://h:5000/").server == "http://h:5000"
    with pytest.raises(UsageError):
        Client("file:///etc/passwd")


def test_window_labels() -> None:
    assert top.window_label(300) == "CPU(5m)" and top.window_label(3600) == "CPU(1h)"
    assert top.window_label(90) == "CPU(90s)"
