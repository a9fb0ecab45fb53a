"""Units as `kubectl top` prints them, sparklines, and tables laid out as kubectl's tabwriter does."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import TextIO

UNKNOWN = "<unknown>"  # what kubectl top prints for a node without metrics
SPARKS = "▁▂▃▄▅▆▇█"
PADDING = 3  # kubectl's tabwriter: cell width = widest cell + 3, at least 6
MIN_WIDTH = 6
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def cpu(millicores: float | None) -> str:
    """`250m`: whole millicores rounded up, as Quantity.MilliValue() does for kubectl."""
    return UNKNOWN if millicores is None else f"{math.ceil(round(millicores, 6))}m"


def memory(value: float | None) -> str:
    """`128Mi`: whole mebibytes rounded down, as kubectl prints Value()/(1024*1024)."""
    return UNKNOWN if value is None else f"{int(value) // (1024 * 1024)}Mi"


def percent(part: float | None, whole: float | None) -> str:
    """`12%`: truncated to an integer, as kubectl computes node CPU% and MEMORY%."""
    if part is None or not whole:
        return UNKNOWN
    return f"{int(part / whole * 100)}%"


def rate(value: float | None) -> str:
    """Bytes per second, binary units, kubectl-like suffixes: `0`, `512`, `12Ki`, `3Mi` (per second)."""
    if value is None:
        return UNKNOWN
    for unit in ("", "Ki", "Mi", "Gi"):
        if value < 1024 or unit == "Gi":
            return f"{value:.0f}{unit}" if value >= 10 or unit == "" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def sparkline(values: Sequence[float | None], width: int = 16) -> str:
    """The last `width` values as bars from 0 to their maximum; `-` where a value is unknown."""
    tail = list(values)[-width:]
    known = [v for v in tail if v is not None]
    if not known:
        return "-"
    top = max(known)
    bars = []
    for v in tail:
        if v is None:
            bars.append(" ")
        elif top <= 0:
            bars.append(SPARKS[0])
        else:
            bars.append(SPARKS[min(len(SPARKS) - 1, int(v / top * (len(SPARKS) - 1) + 0.5))])
    return "".join(bars)


def colour_enabled(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Colour only on a terminal, never with NO_COLOR set (no-color.org) or TERM=dumb."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR", "") != "" or env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Style:
    """ANSI styles, or nothing at all when colour is off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled and text else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)

    def cyan(self, text: str) -> str:
        return self._wrap("36", text)

    def level(self, text: str) -> str:
        """A percentage coloured by how full: yellow from 70%, red from 90%."""
        m = re.match(r"(\d+)%", text)
        if not m:
            return text
        n = int(m.group(1))
        return self.red(text) if n >= 90 else self.yellow(text) if n >= 70 else text


def visible_len(text: str) -> int:
    return len(_ANSI.sub("", text))


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, headers: bool = True,
          style: Style | None = None) -> str:
    """Rows laid out as kubectl's tabwriter lays out `kubectl top`: every cell, the last one too, is
    padded to the column's widest cell plus 3 spaces (at least 6 wide)."""
    all_rows = [list(header), *map(list, rows)] if headers else [list(r) for r in rows]
    if not all_rows:
        return ""
    widths = [
        max(MIN_WIDTH, max(visible_len(r[i]) for r in all_rows) + PADDING) for i in range(len(all_rows[0]))
    ]
    lines = []
    for n, row in enumerate(all_rows):
        cells = [cell + " " * (w - visible_len(cell)) for cell, w in zip(row, widths, strict=True)]
        line = "".join(cells)
        if headers and n == 0 and style is not None:
            line = style.bold(line)
        lines.append(line)
    return "\n".join(lines) + "\n"
