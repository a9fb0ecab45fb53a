"""parse_net_dev / sum_interfaces on real-format text, hostile lines and glob exclusion."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.host import DEFAULT_EXCLUDED_INTERFACES
from exporter.model import NetCounters
from exporter.netdev import is_excluded, parse_net_dev, sum_interfaces

HEADER = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls"
    " carrier compressed\n"
)
# Copied from this machine, including a counter that touches the colon ("eth0:335860864").
REAL = HEADER + (
    "    lo:    9217     113    0    0    0     0          0         0     9217     113    0    0    0     0"
    "       0          0\n"
    "  eth0:335860864    9029    0    0    0     0          0         0   589811    4169    0    0    0     0"
    "       0          0\n"
    "veth1a2b3c: 18446744073709551615 1 0 0 0 0 0 0 42 1 0 0 0 0 0 0\n"
)


def test_parses_real_lines_including_glued_colon_and_u64_max() -> None:
    counters = parse_net_dev(REAL)
    assert counters == {
        "lo": NetCounters(9217, 9217),
        "eth0": NetCounters(335860864, 589811),
        "veth1a2b3c": NetCounters(2**64 - 1, 42),
    }


def test_header_only_means_no_interfaces() -> None:
    assert parse_net_dev(HEADER) == {}
    assert parse_net_dev("") == {}


@pytest.mark.parametrize("line", [
    "eth0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16",  # no colon
    "eth0: 1 2 3",  # too few counters
    "eth0: x 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16",  # not a number
    ": 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16",  # no name
])
def test_garbage_lines_raise_value_error_naming_the_line(line: str) -> None:
    with pytest.raises(ValueError, match="line 3"):
        parse_net_dev(HEADER + line + "\n")


def test_sum_excludes_lo_and_virtual_interfaces_by_glob() -> None:
    counters = {
        "lo": NetCounters(1, 1), "eth0": NetCounters(100, 10), "ens5": NetCounters(1000, 20),
        "veth0": NetCounters(7, 7), "cali12": NetCounters(7, 7), "flannel.1": NetCounters(7, 7),
        "cni0": NetCounters(7, 7), "docker0": NetCounters(7, 7), "br-abc": NetCounters(7, 7),
        "vxlan.calico": NetCounters(7, 7), "tunl0": NetCounters(7, 7), "kube-ipvs0": NetCounters(7, 7),
        "cilium_host": NetCounters(7, 7), "lxc12": NetCounters(7, 7), "nodelocaldns": NetCounters(7, 7),
    }
    assert sum_interfaces(counters, excluded=DEFAULT_EXCLUDED_INTERFACES) == NetCounters(1100, 30)
    assert sum_interfaces(counters, excluded=()) == NetCounters(1 + 100 + 1000 + 7 * 12, 1 + 10 + 20 + 7 * 12)
    assert sum_interfaces(counters, excluded=("e*",)) == NetCounters(1 + 7 * 12, 1 + 7 * 12)


def test_globs_are_case_sensitive_and_whole_name() -> None:
    assert is_excluded("veth9", ["veth*"])
    assert not is_excluded("Veth9", ["veth*"])
    assert not is_excluded("lo0", ["lo"])
    assert not is_excluded("eth0", DEFAULT_EXCLUDED_INTERFACES)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="ascii"), max_size=400))
def test_any_text_parses_or_raises_value_error(text: str) -> None:
    try:
        counters = parse_net_dev(HEADER + text)
    except ValueError:
        return
    for c in counters.values():
        assert isinstance(c.receive_bytes, int) and isinstance(c.transmit_bytes, int)
