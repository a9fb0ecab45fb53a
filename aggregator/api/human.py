"""Human-readable forms of the API's numbers ("2.53 GiB", "2.53 cores", "1.2 MiB/s")."""

from __future__ import annotations

import math
from datetime import UTC, datetime

_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def _ok(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _figures(v: float) -> str:
    """Three significant figures, never in exponent form: 1000 KiB is "1000 KiB", not "1e+03 KiB"."""
    if v == 0 or abs(v) >= 999.5:
        return f"{v:.0f}"
    decimals = 2 - math.floor(math.log10(abs(v)))
    text = f"{v:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def size(value: float | None) -> str | None:
    """Bytes with binary units, three significant figures above 1 KiB: "2.53 GiB"."""
    if not _ok(value):
        return None
    assert value is not None
    v, unit = float(value), _BINARY[0]
    for unit in _BINARY:  # the unit left when the loop stops is the one that fits
        if abs(v) < 1024 or unit == _BINARY[-1]:
            break
        v /= 1024
    if unit == "B":
        return f"{v:.0f} B"
    return f"{_figures(v)} {unit}"


def rate(value: float | None) -> str | None:
    """Bytes per second: "1.2 MiB/s"."""
    text = size(value)
    return None if text is None else f"{text}/s"


def cores(millicores: float | None) -> str | None:
    """CPU from millicores: "2.53 cores"."""
    if not _ok(millicores):
        return None
    assert millicores is not None
    return f"{_figures(millicores / 1000)} cores"


def percent(value: float | None) -> str | None:
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


def iso(ts: float | None) -> str | None:
    """ISO-8601 UTC with `Z`, millisecond precision (the seed's timestamp form)."""
    if ts is None or not math.isfinite(ts):
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
