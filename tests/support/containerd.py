"""A private containerd for tests: own root, state, sockets and config in a temporary directory, a
busybox image built from Debian's busybox-static (no registry needed), containers started the way
kubelet's cgroupfs driver places them, and a teardown that leaves nothing behind.

What teardown undoes, in order: our tasks (SIGKILL, delete), our containers (any other container and the
images too), the containerd process (SIGTERM then SIGKILL, by PID), any shim of ours still alive (found
by our socket path in its command line, by PID), mounts under our directory, our runc state directory
(`/run/containerd/runc/<namespace>`, which the runc shim always uses), the directory itself. Cgroups are
the caller's (`TestCgroupRoot`), removed after the processes are gone, in every hierarchy: runc on a
hybrid host also creates each container's cgroup in the `unified` and `systemd` hierarchies and in v1
controllers kubelet ignores.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

BUSYBOX = "/bin/busybox"
IMAGE = "k8smon.test/busybox:i11"
APPLETS = ("sh", "sleep", "dd", "head", "nc", "cat", "true")
CGROUP_ROOT = "/sys/fs/cgroup"
# Plain copies of the 2 MB layer: works on any filesystem (overlayfs cannot stack on a CI's overlay root).
SNAPSHOTTER = "native"


def is_static(path: str) -> bool:
    """True for an ELF executable without a program interpreter (runs alone in an empty image)."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit ELF only
        return False
    phoff = int.from_bytes(data[32:40], "little")
    phentsize, phnum = int.from_bytes(data[54:56], "little"), int.from_bytes(data[56:58], "little")
    types = (int.from_bytes(data[phoff + i * phentsize:phoff + i * phentsize + 4], "little")
             for i in range(phnum))
    return 3 not in types  # PT_INTERP


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def write_busybox_image(path: Path, *, busybox: str = BUSYBOX, ref: str = IMAGE) -> None:
    """An OCI image layout tarball: one layer with busybox, its applets as symlinks, and `/pause` (a
    symlink to busybox, so `exec -a sleep /pause` runs a process whose command name is `pause`, like
    kubelet's sandbox)."""
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w") as layer_tar:
        for d in ("bin", "proc", "sys", "dev", "tmp", "etc", "mem"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            layer_tar.addfile(info)
        _add(layer_tar, "bin/busybox", Path(busybox).read_bytes(), 0o755)
        for name in (*(f"bin/{a}" for a in APPLETS), "pause"):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, "/bin/busybox"
            layer_tar.addfile(info)
    layer = layer_buf.getvalue()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _digest(layer),
                    "size": len(layer)}],
    }).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _digest(manifest),
        "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": ref}}]}).encode()
    with tarfile.open(path, "w") as out:
        _add(out, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        _add(out, "index.json", index)
        for blob in (layer, config, manifest):
            _add(out, f"blobs/sha256/{_digest(blob)[7:]}", blob)


class Containerd:
    """One containerd process of our own (own root, state, sockets and config, no CRI plugin, never the
    machine's default instance); `close()` always leaves the machine as it found it.

    Used for per-container tests (a busybox image, detached containers: `run`) and for the image tests
    (tests/support/images.py: imported archives, foreground containers: `run_foreground`). The runc shim
    keeps its state in /run/containerd/runc/<namespace> whatever our state dir is, so the namespace must
    be ours alone too (`close()` removes that directory).
    """

    def __init__(self, *, namespace: str = "k8smon-test-i11", workdir: Path | None = None,
                 snapshotter: str = SNAPSHOTTER) -> None:
        # Short path: unix socket addresses are limited to 108 bytes.
        self.dir = (Path(tempfile.mkdtemp(prefix="k8smon-i11-ctd-")) if workdir is None
                    else workdir / "containerd")
        self.namespace = namespace
        self.snapshotter = snapshotter
        self.address = str(self.dir / "ctd.sock")
        self.log = self.dir / "containerd.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._containers: list[str] = []

    def start(self, timeout: float = 30.0) -> Containerd:
        d = self.dir
        d.mkdir(parents=True, exist_ok=True)
        config = d / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{d / "root"}"\nstate = "{d / "state"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",\n'
            '  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",\n'
            '  "io.containerd.snapshotter.v1.aufs"]\n'
            f'[grpc]\n  address = "{self.address}"\n'
            f'[ttrpc]\n  address = "{self.address}.ttrpc"\n'
            '[debug]\n  address = ""\n'
            '[metrics]\n  address = ""\n'
            f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{d / "opt"}"\n'
        )
        with open(self.log, "wb") as log:
            self._proc = subprocess.Popen(["containerd", "--config", str(config)], stdout=log,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"containerd exited {self._proc.returncode}: {tail}")
            if os.path.exists(self.address) and self.ctr("version", check=False, timeout=10).returncode == 0:
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"containerd did not answer in {timeout}s: "
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)

    def ctr_argv(self, *args: str) -> list[str]:
        return ["ctr", "--address", self.address, "--namespace", self.namespace, *args]

    def ctr(self, *args: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """`ctr` against our socket and namespace."""
        result = subprocess.run(self.ctr_argv(*args), check=False, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def import_busybox(self) -> str:
        tarball = self.dir / "busybox-oci.tar"
        write_busybox_image(tarball)
        self.import_archive(tarball)
        return IMAGE

    def import_archive(self, path: Path, timeout: float = 300.0) -> None:
        self.ctr("images", "import", "--snapshotter", self.snapshotter, str(path), timeout=timeout)

    def run(self, container_id: str, argv: Sequence[str], *, cgroup: str, netns: str | None = None,
            extra: Sequence[str] = ()) -> None:
        """Start a detached container (its output to /dev/null) in cgroup path `cgroup` (cgroupfs driver)."""
        args = ["run", "--detach", "--null-io", "--snapshotter", self.snapshotter,
                "--fifo-dir", str(self.dir / "fifo"), "--cgroup", cgroup]
        if netns is not None:
            args += ["--with-ns", f"network:{netns}"]
        self._containers.append(container_id)
        self.ctr(*args, *extra, IMAGE, container_id, *argv)

    def run_foreground(self, image: str, cid: str, options: Sequence[str], command: Sequence[str] = (),
                       *, log: Path) -> subprocess.Popen[bytes]:
        """`ctr run --rm` in the foreground: the Popen's exit status is the container's."""
        with open(log, "wb") as out:
            return subprocess.Popen(self.ctr_argv("run", "--rm", "--snapshotter", self.snapshotter, *options,
                                                  image, cid, *command),
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

    def kill(self, cid: str, sig: str = "SIGTERM") -> None:
        """What kubelet's StopContainer asks containerd for."""
        self.ctr("tasks", "kill", "--signal", sig, cid)

    def remove(self, container_id: str, timeout: float = 20.0) -> None:
        """Kill a container's task and delete task and container (runc removes its cgroups)."""
        self.ctr("tasks", "kill", "--signal", "SIGKILL", container_id, check=False)
        deadline = time.monotonic() + timeout
        while self.ctr("tasks", "delete", container_id, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"task {container_id} not deleted within {timeout}s")
            time.sleep(0.05)
        self.ctr("containers", "delete", container_id)
        self._containers.remove(container_id)

    def exec(self, container_id: str, argv: Sequence[str], *, timeout: float = 60.0) -> str:
        """Run a process in a running container and wait for it; its stdout."""
        return self.ctr("tasks", "exec", "--exec-id", f"x{uuid.uuid4().hex[:12]}", "--fifo-dir",
                        str(self.dir / "fifo"), container_id, *argv, timeout=timeout).stdout

    def close(self) -> list[str]:
        """Undo everything; returns what could not be undone or had to be forced (empty when clean):
        containers started with `run` are ours to remove; any other one still there is reported."""
        problems: list[str] = []
        if self._proc is not None and self._proc.poll() is None:
            for cid in reversed(self._containers):
                self.ctr("tasks", "kill", "--signal", "SIGKILL", cid, check=False)
            for cid in reversed(self._containers):
                deadline = time.monotonic() + 10
                while self.ctr("tasks", "delete", cid, check=False).returncode != 0:
                    if "not found" in self.ctr("tasks", "ls", check=False).stdout or \
                            cid not in self.ctr("tasks", "ls", check=False).stdout:
                        break
                    if time.monotonic() > deadline:
                        problems.append(f"task {cid} not deleted")
                        break
                    time.sleep(0.1)
                self.ctr("containers", "delete", cid, check=False)
            self._containers.clear()
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                for cid in self.ctr("containers", "list", "--quiet").stdout.split():
                    for args in (("tasks", "kill", "--signal", "SIGKILL", cid),
                                 ("tasks", "delete", "--force", cid), ("containers", "delete", cid)):
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            self.ctr(*args, check=False)
                    problems.append(f"container {cid} was still there")
                refs = self.ctr("images", "list", "--quiet").stdout.split()
                if refs:
                    self.ctr("images", "remove", *refs)
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        for pid in self._our_shims():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            problems.append(f"shim {pid} was still running (killed)")
        problems += [f"mount {m} was left (unmounted)" for m in unmount_all_under(self.dir)]
        with contextlib.suppress(OSError):  # absent, or not empty: then a shim of ours is still there
            (Path("/run/containerd/runc") / self.namespace).rmdir()
        shutil.rmtree(self.dir, ignore_errors=True)
        return problems

    def _our_shims(self) -> list[int]:
        """Shims of this instance: they outlive containerd, and name its socket in their argv."""
        pids = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if self.address.encode() in argv and b"containerd-shim" in argv[0]:
                pids.append(int(name))
        return pids


def mounts_under(prefix: Path) -> list[str]:
    """Mount points at or below `prefix` in this mount namespace, deepest first."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")  # \040 for a space, etc.
            if point == str(prefix) or point.startswith(f"{prefix}/"):
                found.append(point)
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def unmount_all_under(prefix: Path) -> list[str]:
    """Lazily unmount whatever is still mounted below `prefix`; returns what had been left mounted."""
    left = mounts_under(prefix)
    for point in left:
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30, check=False)
    return left


class TestCgroupRoot:
    """`/<name>` in every hierarchy, for kubelet-style paths beneath it, and a view directory whose
    entries link each hierarchy's `<name>` so an exporter's --cgroup-root sees only our tree.
    `close()` removes every cgroup under `<name>` in every hierarchy, deepest first."""

    __test__ = False  # not a pytest class

    def __init__(self, tag: str = "i11") -> None:
        self.name = f"k8smon-test-{tag}-{uuid.uuid4().hex[:8]}"
        self.view = Path(tempfile.mkdtemp(prefix=f"k8smon-{tag}-view-"))
        for entry in os.listdir(CGROUP_ROOT):
            mount = os.path.join(CGROUP_ROOT, entry)
            if os.path.isdir(mount) and not os.path.islink(mount):
                os.symlink(os.path.join(mount, self.name), self.view / entry)

    def mkdir(self, hierarchy: str, rel: str) -> str:
        """Create `<hierarchy>/<name>/<rel>` (and its parents); its path."""
        path = os.path.join(CGROUP_ROOT, hierarchy, self.name, rel)
        os.makedirs(path, exist_ok=True)
        return path

    def path(self, hierarchy: str, rel: str) -> str:
        return os.path.join(CGROUP_ROOT, hierarchy, self.name, rel)

    def leftovers(self) -> list[str]:
        return [os.path.join(CGROUP_ROOT, h, self.name) for h in os.listdir(CGROUP_ROOT)
                if os.path.isdir(os.path.join(CGROUP_ROOT, h, self.name))]

    def close(self) -> list[str]:
        problems = []
        for top in self.leftovers():
            dirs = sorted((d for d, _sub, _files in os.walk(top)), key=lambda d: d.count("/"), reverse=True)
            for d in dirs:
                deadline = time.monotonic() + 5
                while True:
                    try:
                        os.rmdir(d)
                        break
                    except FileNotFoundError:
                        break
                    except OSError as exc:  # a killed process leaves its cgroup a moment later
                        if time.monotonic() > deadline:
                            problems.append(f"{d}: {exc}")
                            break
                        time.sleep(0.05)
        shutil.rmtree(self.view, ignore_errors=True)
        return problems
