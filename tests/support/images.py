"""Build the Dockerfiles/ images with buildah and run them under a private containerd, as a node would.

No image registry is reachable from the test machines, so one thing differs from what users get: the
base image. A Debian bookworm root filesystem made by `mmdebstrap` (python3 3.11, pip, `python` as
python3, pip's EXTERNALLY-MANAGED marker removed, like the python:*-slim images) is committed under the
Dockerfiles' default base name, python:3.11-slim-bookworm, in a private buildah store. The rootfs
tarball is cached under /var/cache/k8smon-images, keyed by a hash of its recipe; everything else
(buildah store, containerd root, state and socket) lives in one temporary directory that `close()`
methods and the test's teardown remove, mounts included.

The images are started with `ctr` under a private containerd (tests/support/containerd.py) the way
kubelet asks containerd to start a pod's container: `ctr_args_for()` translates a rendered
Deployment/DaemonSet (user, capabilities, seccomp, read-only root, hostPath and emptyDir volumes, env,
resource limits) into `ctr run` options. What `ctr` 1.6 cannot express is written next to the code that
works around it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.support.containerd import Containerd, unmount_all_under

CACHE_DIR = Path(os.environ.get("K8SMON_IMAGE_CACHE", "/var/cache/k8smon-images"))
BASE_NAME = "docker.io/library/python:3.11-slim-bookworm"  # the Dockerfiles' default BASE_IMAGE
# The stand-in base. Kept close to python:3.11-slim-bookworm: no recommends, no docs/man/locales, apt
# lists dropped; merged /usr through mmdebstrap's hook (bookworm's usrmerge package would pull in perl).
BASE_SUITE = "bookworm"
BASE_ARGS = (
    "--variant=minbase",
    "--include=python3,python3-pip,python-is-python3,ca-certificates",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    "--aptopt=APT::Install-Recommends \"false\"",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    '--customize-hook=rm -f "$1"/usr/lib/python3.*/EXTERNALLY-MANAGED',
    '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
)
BASE_CONFIG = (  # what python:3.11-slim-bookworm's config sets that matters here
    "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "--env", "LANG=C.UTF-8",
    "--cmd", "python3",
)
# Every capability name, in kernel order (CAP_CHOWN = 0 ... CAP_CHECKPOINT_RESTORE = 40).
ALL_CAPS = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL",
    "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON",
    "BPF", "CHECKPOINT_RESTORE",
)


def _run(argv: Sequence[str], *, timeout: float, cwd: Path | None = None) -> str:
    """Run a tool; on failure raise with its output (the assertion message is what a CI log shows)."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv[:6])} ... exited {done.returncode}:\n"
                             f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def base_rootfs() -> tuple[Path, bool]:
    """The stand-in base rootfs tarball and whether it was built now (cold) rather than found cached."""
    recipe = json.dumps([BASE_SUITE, *BASE_ARGS])
    path = CACHE_DIR / f"base-{BASE_SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:16]}.tar"
    if path.exists():
        return path, False
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"partial-{os.getpid()}-{path.name}")
    try:
        _run(["mmdebstrap", "--format=tar", *BASE_ARGS, BASE_SUITE, str(partial)], timeout=900)
        partial.replace(path)  # atomic: a concurrent run sees the whole tarball or none
    finally:
        partial.unlink(missing_ok=True)
    for old in CACHE_DIR.glob(f"base-{BASE_SUITE}-*.tar"):  # earlier recipes: bounded, one tarball kept
        if old != path:
            old.unlink(missing_ok=True)
    return path, True


def host_pip_mounts() -> list[str]:
    """`-v` options giving a build's RUN steps this machine's pip configuration and CA bundle, read-only, so
    pip reaches the package index the way the host's pip does (a proxy or private index with its own CA).
    Only machine-wide configuration: a user's pip.conf may point at directories the build cannot see."""
    paths = ["/etc/pip.conf", "/etc/xdg/pip"]
    cafile = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    paths.append(os.path.realpath(cafile) if os.path.exists(cafile) else cafile)
    return [f"--volume={p}:{p}:ro" for p in paths if os.path.exists(p)]


def proxy_build_args() -> list[str]:
    """Docker's predefined proxy build args, passed on when this machine uses a proxy (RUN steps see them
    without an ARG line, in docker and buildah alike)."""
    names = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
    return [f"--build-arg={n}={os.environ[n]}" for n in names if os.environ.get(n)]


def archive_layer_sizes(path: Path) -> list[int]:
    """Unpacked size in bytes of each layer of a docker-archive tarball, base first (their sum is the
    SIZE `docker images` shows)."""
    with tarfile.open(path) as tar:
        extracted = tar.extractfile("manifest.json")
        assert extracted is not None
        (manifest,) = json.load(extracted)
        return [tar.getmember(layer).size for layer in manifest["Layers"]]


def fs_type(path: Path) -> str:
    """The type of the filesystem `path` lies on (longest mount point that contains it)."""
    best, kind = "", ""
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            point, fstype = fields[4], fields[fields.index("-") + 1]
            inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fstype
    return kind


def on_overlay(path: Path) -> bool:
    """overlayfs cannot take an overlayfs upper layer: on an overlay root (a CI container, say) the stores
    fall back to plain copies (buildah `vfs`, containerd `native`), slower but working anywhere."""
    return fs_type(path) == "overlay"


def image_containerd(workdir: Path, *, namespace: str) -> Containerd:
    """Our own containerd (tests/support/containerd.py) under `workdir`, with the overlayfs snapshotter
    where the filesystem allows it (the images are hundreds of MB: plain copies only on overlay roots)."""
    return Containerd(namespace=namespace, workdir=workdir,
                      snapshotter="native" if on_overlay(workdir) else "overlayfs")


class Buildah:
    """A private buildah store (own --root/--runroot) under `workdir`, removed by `close()`."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "buildah"
        self.global_args = ["--root", str(self.dir / "root"), "--runroot", str(self.dir / "run"),
                            "--storage-driver", "vfs" if on_overlay(workdir) else "overlay"]

    def __call__(self, *args: str, timeout: float = 120, cwd: Path | None = None) -> str:
        return _run(["buildah", *self.global_args, *args], timeout=timeout, cwd=cwd)

    def commit_rootfs(self, tarball: Path, name: str, config: Sequence[str]) -> None:
        """Commit a rootfs tarball as image `name` (what `docker import` does)."""
        ctr = self("from", "scratch").strip()
        try:
            self("add", ctr, str(tarball), "/", timeout=300)
            self("config", *config, ctr)
            self("commit", "--quiet", ctr, name, timeout=300)
        finally:
            self("rm", ctr)

    def bud(self, args: Sequence[str], *, context: Path) -> str:
        """`buildah bud` with the given `docker build` arguments, run from `context`'s directory."""
        return self("bud", *args, timeout=900, cwd=context)

    def inspect(self, image: str) -> dict[str, Any]:
        return json.loads(self("inspect", "--type", "image", image))

    def push_archive(self, image: str, path: Path, ref: str) -> None:
        """Write `image` as a docker-archive tarball tagged `ref` (what `docker save` writes)."""
        self("push", "--quiet", image, f"docker-archive:{path}:{ref}", timeout=300)

    def close(self) -> list[str]:
        """Remove every container and image of this store, then the store; returns mounts left behind."""
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            self("rm", "--all")
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            self("rmi", "--all", "--force", timeout=300)
        left = unmount_all_under(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)
        return left


def remove_cgroup_trees(name: str, root: str = "/sys/fs/cgroup") -> list[str]:
    """rmdir `<hierarchy>/<name>` and everything below it in every hierarchy, deepest first (runc makes a
    container's parent cgroups in every controller and removes only the leaf). Returns what stayed."""
    assert name.startswith("k8smon-test-"), name  # never touch a cgroup a test did not make
    left = []
    for hierarchy in sorted(os.listdir(root)):
        top = os.path.join(root, hierarchy, name)
        if not os.path.isdir(top):
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: w[0].count("/"), reverse=True):
            try:
                os.rmdir(dirpath)
            except FileNotFoundError:
                pass
            except OSError as exc:
                left.append(f"{dirpath}: {exc}")
    return left


# --- a rendered workload as `ctr run` options -------------------------------------------------------

def _cpu(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def _bytes(quantity: str) -> int:
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "k": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * factor)
    return int(quantity)


def ctr_args_for(workload: dict[str, Any], *, node_name: str, env: dict[str, str], empty_dirs: Path,
                 netns: str, cgroup: str, pid_file: Path) -> list[str]:
    """`ctr run` options that start the workload's (only) container as kubelet would on this node.

    Only what a cluster adds around the pod is left out: no API server here, so no service account token
    or KUBERNETES_SERVICE_* variables (both components then run standalone) and optional Secrets are
    absent. `env` overrides the manifest's values (e.g. static targets instead of discovery). Anything in
    the manifest this function does not know fails, so a manifest change cannot silently go untested.
    """
    pod = workload["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    sc = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    opts: list[str] = ["--with-ns", f"network:/var/run/netns/{netns}", "--cgroup", cgroup,
                       "--pid-file", str(pid_file)]
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    assert not sc.get("privileged")
    if sc.get("readOnlyRootFilesystem"):
        opts.append("--read-only")
    # `ctr run` sets no_new_privs unless --allow-new-privs: allowPrivilegeEscalation false needs nothing.
    assert sc.get("allowPrivilegeEscalation") is False
    if sc.get("seccompProfile", {}).get("type") == "RuntimeDefault":
        opts.append("--seccomp")  # containerd's default profile is what RuntimeDefault means for it
    caps = sc.get("capabilities", {})
    assert not caps.get("add"), caps
    if caps.get("drop") == ["ALL"]:
        # ctr 1.6 refuses `--cap-drop ALL` ("capabilities must be specified with 'CAP_' prefix") and
        # ignores `CAP_ALL` without a word (the bounding set stayed 0xa80425fb), so name each one.
        for name in ALL_CAPS:
            opts += ["--cap-drop", f"CAP_{name}"]
    # runAsUser/runAsGroup: ctr 1.6 has no --user, so the image's USER applies; the caller checks that
    # it is the manifest's (it is what kubelet would enforce) and reads the running process's IDs.
    resources = container.get("resources", {})
    if "cpu" in resources.get("limits", {}):
        opts += ["--cpus", str(_cpu(resources["limits"]["cpu"]))]
    if "cpu" in resources.get("requests", {}):  # kubelet's requests -> shares mapping
        opts += ["--cpu-shares", str(max(2, int(_cpu(resources["requests"]["cpu"]) * 1024)))]
    if "memory" in resources.get("limits", {}):
        opts += ["--memory-limit", str(_bytes(resources["limits"]["memory"]))]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "hostPath" in volume:
            source = volume["hostPath"]["path"]
        elif "emptyDir" in volume:
            source_dir = empty_dirs / mount["name"]
            source_dir.mkdir(parents=True)
            source_dir.chmod(0o777)  # kubelet makes emptyDirs world-writable
            source = str(source_dir)
        else:
            raise AssertionError(f"volume kind not emulated here: {volume}")
        # kubelet bind-mounts volumes recursively; readOnly makes the mount (not its submounts) read-only.
        options = "rbind:ro" if mount.get("readOnly") else "rbind:rw"
        opts += ["--mount", f"type=bind,src={source},dst={mount['mountPath']},options={options}"]
    values: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            values[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]
        if ref.get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
            values[var["name"]] = node_name
        elif ref.get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            values[var["name"]] = workload["metadata"]["namespace"]
        elif ref.get("secretKeyRef", {}).get("optional"):
            continue  # the Secret does not exist here: kubelet leaves the variable unset
        else:
            raise AssertionError(f"env source not emulated here: {var}")
    values.update(env)
    for key, value in values.items():
        opts += ["--env", f"{key}={value}"]
    return opts


def process_status(pid: int) -> dict[str, str]:
    """/proc/<pid>/status as a dict (Uid, Gid, CapEff, CapBnd, NoNewPrivs, Seccomp, ...)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def mount_options(pid: int) -> dict[str, set[str]]:
    """Mount point (as the process sees it) -> per-mount options, from /proc/<pid>/mountinfo."""
    out = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text(encoding="utf-8").splitlines():
        fields = line.split()
        out[fields[4]] = set(fields[5].split(","))
    return out


@contextlib.contextmanager
def stopped_on_exit(containerd: Containerd, cid: str, proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """Make sure a container started with `Containerd.run` is gone when the block exits (also on failure)."""
    try:
        yield
    finally:
        if proc.poll() is None:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                containerd.kill(cid, "SIGKILL")
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
