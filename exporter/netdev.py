"""Parse `/proc/<pid>/net/dev` and pick the interfaces that count."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

from exporter.model import NetCounters

# Columns after "name:" in /proc/net/dev: 8 receive fields then 8 transmit fields.
_RX_BYTES = 0
_TX_BYTES = 8
_FIELDS = 16


def parse_net_dev(text: str) -> dict[str, NetCounters]:
    """Interface name -> cumulative bytes, from the text of a `net/dev` file; ValueError on garbage."""
    counters: dict[str, NetCounters] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if lineno <= 2 or not line.strip():  # two header lines
            continue
        # The kernel pads the name to 6 columns and a big counter may touch the colon ("eth0:335860864"),
        # so split on the colon, which an interface name can never contain (dev_valid_name).
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or len(fields) < _FIELDS or not name.strip():
            raise ValueError(f"net/dev line {lineno} is not '<iface>: <16 counters>': {line!r}")
        try:
            rx, tx = int(fields[_RX_BYTES]), int(fields[_TX_BYTES])
        except ValueError as exc:
            raise ValueError(f"net/dev line {lineno} has a non-integer byte counter: {line!r}") from exc
        counters[name.strip()] = NetCounters(receive_bytes=rx, transmit_bytes=tx)
    return counters


def is_excluded(name: str, excluded: Sequence[str]) -> bool:
    """Whether interface `name` matches one of the glob patterns (case-sensitive, like the kernel)."""
    return any(fnmatchcase(name, pattern) for pattern in excluded)


def counted_interfaces(counters: Mapping[str, NetCounters], *,
                       excluded: Sequence[str]) -> dict[str, NetCounters]:
    """The interfaces that match none of the `excluded` globs."""
    return {name: c for name, c in counters.items() if not is_excluded(name, excluded)}


def sum_interfaces(counters: Mapping[str, NetCounters], *, excluded: Sequence[str]) -> NetCounters:
    """Total bytes over the interfaces that match none of the `excluded` globs."""
    return NetCounters.total(counted_interfaces(counters, excluded=excluded))
