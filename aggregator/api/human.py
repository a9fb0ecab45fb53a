"""Human-readable forms of the API's numbers ("2.53 GiB", "2.53 cores", "1.2 MiB/s")."""

from __future__ import annotations

import functools
import math

from k8smon_common import http_api

_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_SCALE = tuple(1024.0**k for k in range(len(_BINARY)))  # each unit in bytes


def _ok(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _sig3(v: float) -> str:
    """Three significant figures, never in exponent form: "2.53", "0.25", "1000", "1500", "0.00002"."""
    text = f"{v:.3g}"
    if "e" not in text:
        return text
    if abs(v) >= 1:
        return f"{v:.0f}"  # 1000-9999 (a unit's top end before the next one, or many cores): whole
    return f"{v:.6f}".rstrip("0").rstrip(".") or "0"


def size(value: float | None) -> str | None:
    """Bytes with binary units, three significant figures above 1 KiB: "2.53 GiB"."""
    if not _ok(value):
        return None
    assert value is not None
    v = float(value)
    # the unit that fits, 1024**k <= |v| < 1024**(k+1), from the binary exponent e of v
    # (2**(e-1) <= |v| < 2**e); PiB at most. Dividing by a power of two is exact.
    k = min((math.frexp(v)[1] - 1) // 10, len(_BINARY) - 1)
    if k <= 0:
        return f"{v:.0f} B"
    return f"{_sig3(v / _SCALE[k])} {_BINARY[k]}"


def rate(value: float | None) -> str | None:
    """Bytes per second: "1.2 MiB/s"."""
    text = size(value)
    return None if text is None else f"{text}/s"


def cores(millicores: float | None) -> str | None:
    """CPU from millicores: "2.53 cores", "1 core", "1500 cores"."""
    if not _ok(millicores):
        return None
    assert millicores is not None
    text = _sig3(millicores / 1000)
    return f"{text} {'core' if text == '1' else 'cores'}"


def setting_size(value: float | None) -> str | None:
    """`size` of a request, limit or capacity, remembered: those repeat across a workload's pods
    and a node pool's nodes. Usage and rates differ from pod to pod and round to round, and
    remembering them cost more than it saved: with 30k pods' distinct values every form was a miss
    that evicted another (~1.9 us a form; computed, ~0.75 us)."""
    if value and _ok(value):
        return _size_remembered(value)
    return size(value)


def setting_cores(millicores: float | None) -> str | None:
    """`cores` of a request, limit or capacity, remembered as `setting_size` is."""
    if millicores and _ok(millicores):
        return _cores_remembered(millicores)
    return cores(millicores)


# Zero is not remembered: 0.0 and -0.0 are equal keys with different texts ("0 B", "-0 B"); nor is
# NaN (never equal to itself, it would only fill the cache).
_size_remembered = functools.lru_cache(maxsize=4096)(size)
_cores_remembered = functools.lru_cache(maxsize=4096)(cores)


def percent(value: float | None) -> str | None:
    """One decimal: "37.5%"."""
    if not _ok(value):
        return None
    return f"{value:.1f}%"


def duration(seconds: float) -> str:
    """Uptime-style duration: "2d 3h 4m 5s"."""
    s = max(0, int(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return " ".join([*parts, f"{s}s"])


iso = http_api.iso  # ISO-8601 UTC with `Z`, millisecond precision: the exporter's `/` says the same
