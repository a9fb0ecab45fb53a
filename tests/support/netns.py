"""Two network namespaces joined by a veth pair, made and always deleted by the test that uses them.

Addresses are link-local (169.254.0.0/16), a random /30 per pair, and exist only on that pair inside the
two namespaces: nothing is added to the host's own namespace, so tests cannot disturb its routing.
"""

from __future__ import annotations

import contextlib
import random
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@dataclass
class NetnsPair:
    """Namespaces `a` and `b`, veth `veth_a` (in a, address `addr_a`) <-> `veth_b` (in b, `addr_b`)."""

    a: str
    b: str
    veth_a: str
    veth_b: str
    addr_a: str
    addr_b: str

    def exec_argv(self, ns: str, argv: Sequence[str]) -> list[str]:
        """argv that runs `argv` inside namespace `ns` (`ip netns exec` execs in place: same PID)."""
        return ["ip", "netns", "exec", ns, *argv]


@contextlib.contextmanager
def netns_pair(owner: str = "") -> Iterator[NetnsPair]:
    """Create the pair; on exit (also after failures) delete both namespaces, which removes the veths.
    `owner` (a short tag) goes into the namespace names."""
    tag = uuid.uuid4().hex[:8]
    third, fourth = random.randint(1, 254), random.randrange(0, 252, 4)
    ns = f"k8smon-{owner}-" if owner else "k8smon-"
    pair = NetnsPair(a=f"{ns}a-{tag}", b=f"{ns}b-{tag}", veth_a=f"km{tag}a", veth_b=f"km{tag}b",
                     addr_a=f"169.254.{third}.{fourth + 1}", addr_b=f"169.254.{third}.{fourth + 2}")
    created: list[str] = []
    try:
        for ns in (pair.a, pair.b):
            _ip("netns", "add", ns)
            created.append(ns)
        _ip("link", "add", pair.veth_a, "netns", pair.a, "type", "veth", "peer", "name", pair.veth_b,
            "netns", pair.b)
        for ns, dev, addr in ((pair.a, pair.veth_a, pair.addr_a), (pair.b, pair.veth_b, pair.addr_b)):
            _ip("-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield pair
    finally:
        errors = []
        for ns in reversed(created):
            try:
                _ip("netns", "del", ns)
            except subprocess.CalledProcessError as exc:
                errors.append(f"{ns}: {exc.stderr!r}")
        if errors:
            raise RuntimeError("network namespaces left behind: " + "; ".join(errors))
