"""CPU and memory of one cgroup from its files: the rules that pods (exporter/podstats.py) and their
containers (exporter/containers.py) share.

- CPU seconds: v2 `cpu.stat` usage_usec (always present in a cgroup2 tree, even on hybrid nodes where
  the cpu controller is bound to v1), else v1 `cpuacct.usage` (ns).
- Memory: v2 `memory.current` and `memory.stat` inactive_file, else v1 `memory.usage_in_bytes` and
  `memory.stat` total_inactive_file; working set = max(0, usage - inactive_file) as kubelet defines it.

`paths` maps hierarchy keys (`unified`, `cpuacct`, `memory`, ...) to the cgroup's directories. A missing
key or a file the kernel does not provide there is not a failure (the node's configuration): the next
source is tried. A directory that itself went away raises FileNotFoundError for the caller to treat as
churn; unexpected file contents raise ValueError or KeyError.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from exporter.podnet import read_text

# key -> (usage file, memory.stat key of inactive file cache)
_MEMORY_FILES = {"unified": ("memory.current", "inactive_file"),
                 "memory": ("memory.usage_in_bytes", "total_inactive_file")}


def read_cgroup_file(paths: Mapping[str, str], key: str, name: str) -> str | None:
    """A file of the `key` directory; None when there is no such directory in `paths` or the kernel has
    no such file in it; FileNotFoundError when the directory itself is gone."""
    directory = paths.get(key)
    if directory is None:
        return None
    try:
        return read_text(os.path.join(directory, name))
    except FileNotFoundError:
        if not os.path.isdir(directory):
            raise
        return None


def cpu_seconds(paths: Mapping[str, str], *, v1_when_unified_gone: bool = False) -> float | None:
    """Cumulative CPU seconds. `v1_when_unified_gone`: a missing `unified` directory is not churn when a
    `cpuacct` one is known (a container cgroup joined by name into every hierarchy of its pod)."""
    try:
        text = read_cgroup_file(paths, "unified", "cpu.stat")
    except FileNotFoundError:
        if not (v1_when_unified_gone and "cpuacct" in paths):
            raise
        text = None
    if text is not None:
        return stat_value(text, "usage_usec") / 1e6
    text = read_cgroup_file(paths, "cpuacct", "cpuacct.usage")
    return int(text) / 1e9 if text is not None else None


def memory_bytes(paths: Mapping[str, str],
                 keys: Sequence[str] = ("unified", "memory")) -> tuple[int, int] | None:
    """(usage, working set) from the first of `keys` whose usage file exists; None when none has one."""
    for key in keys:
        usage_file, inactive_key = _MEMORY_FILES[key]
        current = read_cgroup_file(paths, key, usage_file)
        if current is None:
            continue
        stat = read_cgroup_file(paths, key, "memory.stat")
        usage = int(current)
        inactive = stat_value(stat, inactive_key) if stat is not None else 0
        return usage, max(0, usage - inactive)
    return None


def stat_value(text: str, key: str) -> int:
    """The value of `key` in `key value` lines (cpu.stat, memory.stat); KeyError when absent.

    Looks the one key up instead of parsing all ~40 lines of memory.stat; matches at line starts only,
    so `inactive_file` never finds `total_inactive_file`.
    """
    needle = key + " "
    start = 0 if text.startswith(needle) else text.find("\n" + needle) + 1
    if start == 0 and not text.startswith(needle):
        raise KeyError(key)
    end = text.find("\n", start)
    return int(text[start + len(needle):end if end >= 0 else None])
