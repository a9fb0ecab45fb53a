"""Kubernetes quantity and duration strings, canonical as apimachinery prints them.

CPU goes out as metrics-server builds it, `NewScaledQuantity(nanocores, -9)` (DecimalSI): trailing
zeros come off in steps of 1000, so 1500000n prints as `1500u` and 2000000n as `2m`. Memory is
`NewQuantity(bytes, BinarySI)`: a multiple of 1024 prints with Ki/Mi/Gi..., anything else as the plain
integer (2000 bytes is `2000`), and under 1024 in magnitude as DecimalSI (1000 bytes is `1k`), which is
what `Quantity.String()` does.
"""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime

_DECIMAL_SUFFIXES = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
_BINARY_SUFFIXES = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]


def decimal_quantity(value: int, scale: int) -> str:
    """`value` x 10**`scale` in canonical DecimalSI form (exponent a multiple of 3)."""
    if value == 0:
        return "0"
    # On the decimal digits (30k pods x 3 containers per list: the loop on integers cost 3x more).
    digits = str(value)
    mantissa = digits.rstrip("0")
    exponent = scale + len(digits) - len(mantissa)
    shift = exponent % 3  # Python's % is non-negative: bring the exponent down to a multiple of 3
    mantissa += "0" * shift
    exponent -= shift
    if exponent > 18:
        mantissa += "0" * (exponent - 18)
        exponent = 18
    if exponent < -9:  # cannot happen from nanocores; kept exact rather than rounded
        raise ValueError(f"{value}e{scale} is finer than nano")
    return mantissa + _DECIMAL_SUFFIXES[exponent]


def binary_quantity(value: int) -> str:
    """`value` bytes in canonical BinarySI form (Ki/Mi/... when exact, plain decimal otherwise)."""
    # CanonicalizeBytes switches to DecimalSI only under 1024 in magnitude (1000 bytes is `1k`); at or
    # above, a value with no factor of 1024 is the bare integer (2000 bytes is `2000`, not `2k`).
    if -1024 < value < 1024:
        return decimal_quantity(value, 0)
    power = 0
    while value % 1024 == 0 and power < len(_BINARY_SUFFIXES) - 1:
        value //= 1024
        power += 1
    return f"{value}{_BINARY_SUFFIXES[power]}"


def cpu_quantity(cores: float) -> str:
    """CPU cores as metrics-server prints them: whole nanocores, DecimalSI."""
    return decimal_quantity(round(cores * 1e9), -9)


def memory_quantity(bytes_: float) -> str:
    """Bytes as metrics-server prints them: whole bytes, BinarySI."""
    return binary_quantity(round(bytes_))


@functools.lru_cache(maxsize=1024)  # a handful of distinct windows per cluster
def go_duration(seconds: float) -> str:
    """A duration as Go's `time.Duration.String()` (and so `metav1.Duration`) writes it: `15s`,
    `10.5s`, `1m0.5s`, `1h2m3s`, `0s`, `250ms`."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:  # below a second Go picks the largest unit that keeps a whole part
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _fraction(ns, size) + unit
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = _fraction(rest, 10**9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _fraction(value: int, size: int) -> str:
    whole, frac = divmod(value, size)
    if not frac:
        return str(whole)
    digits = str(frac).rjust(len(str(size)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def rfc3339(timestamp: float) -> str:
    """A Unix time as `metav1.Time` serialises it: RFC 3339, whole seconds, UTC `Z`."""
    if not math.isfinite(timestamp):
        raise ValueError(f"not a time: {timestamp!r}")
    return _rfc3339(int(timestamp))


@functools.lru_cache(maxsize=8192)  # one sample time per node and round: a list repeats them
def _rfc3339(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
