"""Containers of one sampling cycle: named from the pod's statuses, CPU rates per container id, and each
name's CPU counter carried across restarts.

The sandbox and containers that cannot be told apart from it (no process visible) are left out: they stay
in the pod's figures. Other unnamed containers are labelled by their id's first 12 digits. CPU rates are
kept per container id, so a restarted container (new id, same name) has no rate until its second reading,
and never a negative one; its name's counter continues from the value last served under the name instead
of dropping to the new container's, so `k8smon_container_cpu_seconds_total` stays monotonic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Protocol

from exporter.containers import ContainerCgroup, ContainerUsage
from exporter.counters import cpu_rate
from exporter.model import ErrorSink, PodCgroup
from exporter.snapshot import ContainerSample, PodMeta


class ContainerSource(Protocol):
    def read(self, cgroup: PodCgroup) -> list[ContainerUsage]: ...

    def is_sandbox(self, container: ContainerCgroup) -> bool | None: ...


class _NameState:
    """A container name's counter across restarts: the id behind it, its last CPU reading, the offset."""

    __slots__ = ("cid", "last", "named", "offset")

    def __init__(self, cid: str, last: float, *, named: bool) -> None:
        self.cid, self.last, self.offset, self.named = cid, last, 0.0, named


class ContainerTracker:
    """Turns each pod's container readings into ContainerSamples; `end_cycle` after every pod was read."""

    def __init__(self, reader: ContainerSource, errors: ErrorSink, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._reader = reader
        self._errors = errors
        self._monotonic = monotonic
        self._prev: dict[str, tuple[float, float]] = {}  # container id -> (cpu seconds, monotonic time)
        self._seen: dict[str, tuple[float, float]] = {}  # the same, this cycle
        self._names: dict[str, dict[str, _NameState]] = {}  # pod uid -> container name -> its counter

    def read(self, cgroup: PodCgroup, meta: PodMeta | None) -> tuple[ContainerSample, ...]:
        """The pod's reported containers, by name."""
        try:
            usages = self._reader.read(cgroup)
        except OSError as exc:  # the reader should have handled it; the pod's own figures stay
            self._errors.record("cgroup", f"reading the containers of pod {cgroup.uid}", exc)
            return ()
        named = meta.containers if meta is not None else {}
        retired = meta.retired_container_ids if meta is not None else frozenset()
        states = self._names.setdefault(cgroup.uid, {})
        out: dict[str, ContainerSample] = {}
        for c in usages:
            cmeta = named.get(c.id)
            if cmeta is None:
                # Not named (yet): the sandbox, a container that ran before a restart, or one the
                # index has not heard of. Only the last is reported, and only once a process shows it.
                if c.id in retired or self._reader.is_sandbox(c.cgroup) is not False:
                    continue
                name = c.id[:12]
            else:
                name = cmeta.name
            if name in out:
                continue  # two cgroups claiming one name for a moment: the first (by id) is kept
            rate, total = self._cpu(c, states, name)
            out[name] = ContainerSample(name=name, id=c.id, cpu_seconds=total, cpu_usage_cores=rate,
                                        memory_working_set_bytes=c.memory_working_set_bytes, meta=cmeta)
        # Short-id names that went away are forgotten; a named container keeps its counter while its pod
        # lives (between a crash and the restart its status may name no container id at all).
        for stale in [n for n, st in states.items() if n not in out and not st.named]:
            del states[stale]
        return tuple(out[n] for n in sorted(out))

    def end_cycle(self, present: Collection[str]) -> None:
        """Containers not read this cycle drop their rate baseline; pods whose cgroup is gone, their names."""
        self._prev, self._seen = self._seen, {}
        self._names = {uid: names for uid, names in self._names.items() if uid in present}

    def _cpu(self, c: ContainerUsage, states: dict[str, _NameState], name: str
             ) -> tuple[float | None, float | None]:
        """(cores over the last interval of this container id, the name's continued CPU counter)."""
        if c.cpu_seconds is None:
            return None, None
        stamp = self._monotonic()
        rate = cpu_rate(self._prev.get(c.id), c.cpu_seconds, stamp)
        self._seen[c.id] = (c.cpu_seconds, stamp)
        state = states.get(name)
        if state is None:
            state = states[name] = _NameState(c.id, c.cpu_seconds, named=name != c.id[:12])
        elif state.cid != c.id or c.cpu_seconds < state.last:
            state.offset += state.last  # restarted: the new container's counter starts again at 0
            state.cid = c.id
        state.last = c.cpu_seconds
        return rate, state.offset + c.cpu_seconds
