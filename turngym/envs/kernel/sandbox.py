"""Run untrusted code in an isolated child process (issue 8 item 3, issue 17 item 3).

``run_in_sandbox(entry_module, payload, limits)`` runs ``entry_module`` as ``__main__`` in a fresh
``python -I`` child (the same interpreter and virtual environment as the caller), sends
``payload`` as JSON on stdin and parses the child's result from the *last* line of its stdout
(one JSON object). :class:`SandboxPool` runs many such children concurrently. The kernel
grader does not use stdout: its children come from the warm fork server
(:mod:`~turngym.envs.kernel.forkserver`) behind the same walls and talk over a private channel.

Walls (the child-side half lives in ``_sandbox_boot.py``, uid bookkeeping in
``_sandbox_uids.py``; "root" means the caller runs as root, as CI does here):

* **One process per candidate**, its own session: a crash, ``os._exit`` or a corrupted
  interpreter never touches the caller.
* **Seccomp filter** (every mode, root or not, on x86-64 and aarch64): no process creation,
  no exec, no sockets, no ptrace, no namespaces, no mounts (list in ``_sandbox_boot.py``).
  Threads stay possible.
* **Resource limits**: ``RLIMIT_CPU`` (SIGXCPU, SIGKILL one second later), ``RLIMIT_AS``
  (``MemoryError`` rather than the OOM killer), ``RLIMIT_NOFILE``, ``RLIMIT_FSIZE``,
  ``RLIMIT_CORE=0`` and, root only, ``RLIMIT_NPROC``.
* **Own unprivileged uid** (root only): every concurrent sandbox leases a distinct uid
  (``62000 + slot``, no passwd entry needed), so ``RLIMIT_NPROC`` binds per sandbox and the
  host can find and kill anything left by owner.
* **Namespaces** (root only; probed once): **network** (only a loopback device, down),
  **mount** with a **minimal read-only root** (``pivot_root`` into a tmpfs holding read-only
  binds of the system dirs, the interpreter and the import dirs; private size-capped ``/tmp``,
  ``/var/tmp``, ``/dev/shm``; nothing else of the host, so no world-writable host dir such as
  ``/run/lock`` is reachable and nothing written survives), **pid** (own ``/proc``; everything
  dies with it), **ipc** (System V and POSIX queues private) and **uts**.
  ``SandboxLimits.hide_paths`` are covered by empty read-only mounts inside the root.
* **Private working directory** (cwd, ``HOME`` and ``TMPDIR``), deleted afterwards;
  **scrubbed environment**; **wall-clock timeout** (the process group is killed);
  **leftover processes** counted, killed and reported; **output cap**.

Without root or namespaces (the fallback) the child still gets seccomp, rlimits and the
scrubbed environment, and :attr:`SandboxResult.notes` lists what is missing: no network
isolation, the host's file system (``/tmp`` shared: files the sandbox uid leaves in the
scratch dirs are found by owner, deleted and reported) and, without root, no own uid.

How the child finds ``turngym``: ``-I`` drops ``PYTHONPATH`` and the cwd from ``sys.path``, so
the bootstrap prepends the caller's ``sys.path`` directories (plus ``sys_path``, given first)
before running the entry module; each of them, the interpreter's prefixes and the system dirs
are bound read-only at the same paths inside the minimal root (a checkout under ``/tmp`` too).

Not covered: CPU *share* (use ``max_workers`` <= cores), GPU memory, side channels, kernel
exploits. ``ok`` ignores ``violations``: the reward decides.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from turngym.envs.kernel import _sandbox_boot as _boot
from turngym.envs.kernel._sandbox_uids import (
    _LEASES,
    SCRATCH_DIRS,
    UID_SLOTS,
    _kill_uid,
    _remove_scratch_files,
)

GiB, MiB = 1 << 30, 1 << 20
_BOOT_SOURCE = (Path(__file__).with_name("_sandbox_boot.py")).read_text()
_STDERR_KEEP = 64 * 1024
_MEMORY_MARKERS = ("MemoryError", "Cannot allocate memory", "can't allocate memory", "bad_alloc")
_NETWORK_MARKERS = ("Network is unreachable", "socket.socket(", "create_connection(")


@dataclass(frozen=True)
class SandboxLimits:
    """Limits for one sandboxed child; defaults suit one CPU kernel evaluation."""

    cpu_seconds: int = 60
    """CPU time (user + system) before SIGXCPU; SIGKILL one second later."""
    wall_seconds: float = 120
    """Wall-clock time before the whole sandbox is killed."""
    memory_bytes: int = 4 * GiB
    """Address-space limit (``RLIMIT_AS``), not resident memory."""
    max_open_files: int = 256
    max_processes: int = 64
    """Processes and threads of the sandbox uid (binds only when the caller is root)."""
    max_output_bytes: int = 1 * MiB
    """Stdout kept (the tail); the rest is dropped and reported."""
    network: bool = False
    """Allow network access (skips the network namespace and the socket part of seccomp is
    still applied: a child that needs sockets needs ``seccomp=False`` too)."""
    max_file_bytes: int = 64 * MiB
    """Largest file the child may write (``RLIMIT_FSIZE``)."""
    tmp_bytes: int = 256 * MiB
    """Size of each private tmpfs (``/tmp``, ``/var/tmp``, ``/dev/shm``); counts against RAM."""
    hide_paths: tuple[str, ...] = ()
    """Absolute paths covered by an empty read-only mount inside the sandbox (needs
    namespaces)."""
    triton_interpret: bool = False
    """Set ``TRITON_INTERPRET=1`` (Triton kernels run on the CPU interpreter)."""
    gpu: bool = False
    """Expose the caller's ``CUDA_VISIBLE_DEVICES`` and lift ``RLIMIT_AS`` (CUDA reserves
    terabytes of address space); otherwise ``CUDA_VISIBLE_DEVICES=""``."""
    seccomp: bool = True
    """Install the seccomp filter (no process creation, exec, sockets, ptrace, mounts)."""


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of one sandboxed run."""

    ok: bool
    """Exited 0 and printed a parseable JSON object on the last stdout line."""
    result: dict | None
    timed_out: bool
    exit_code: int | None
    """The candidate's exit status; negative for a signal, as in :mod:`subprocess`."""
    stderr_tail: str
    violations: list[str]
    """What the sandbox caught the candidate doing (each contained)."""
    wall_seconds: float
    notes: list[str] = field(default_factory=list)
    """Walls that were up (``isolation: ...``) and any that were missing."""
    cpu_seconds: float | None = None
    """CPU time of the whole sandbox (user + system, every process), measured by its parent
    (``wait4``), not by the child; ``None`` when unknown."""


@functools.lru_cache(maxsize=1)
def _namespaces_available() -> bool:
    """Whether a child may create mount, pid, ipc and network namespaces (probed once)."""
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return False
    probe = "import ctypes,sys; sys.exit(ctypes.CDLL(None,use_errno=True).unshare(0x6C020000)!=0)"
    try:
        return subprocess.run([sys.executable, "-I", "-c", probe], timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _blocking_ancestor(path: str) -> str | None:
    """The outermost ancestor of ``path`` that other users cannot traverse, if any."""
    parts = Path(path).parts
    for i in range(2, len(parts)):
        anc = str(Path(*parts[:i]))
        try:
            if not os.stat(anc).st_mode & stat.S_IXOTH:
                return anc
        except OSError:
            return None
    return None


def interpreter_hidden(paths: Iterable[str] = ()) -> bool:
    """Whether the interpreter or an import dir is under a dir other uids cannot traverse.

    Without a mount namespace such a child could not even import the standard library as
    another uid, so it then keeps the caller's uid (and says so in the notes).
    """
    dirs = [sys.prefix, sys.base_prefix, *paths]
    return any(_blocking_ancestor(os.path.realpath(p)) for p in dirs if p and os.path.isdir(p))


def root_binds(sys_path: Iterable[str]) -> list[str]:
    """Host paths bound read-only into the minimal root: system dirs, prefixes, import dirs."""
    binds = [d for d in _boot.SYSTEM_DIRS if os.path.lexists(d)]
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, *sys_path):
        if p and os.path.isdir(p):
            binds.append(os.path.realpath(p))
    return list(dict.fromkeys(binds))


def boot_config(workdir: str, uid: int | None, limits: SandboxLimits, sys_path: list[str],
                report_fd: int, entry: str = "") -> dict:
    """What the walls need (``_sandbox_boot.enter``), as one JSON-able dict.

    ``uid`` is ``None`` if the child must keep the caller's uid. ``workdir`` is an empty host
    dir: with namespaces the minimal root is mounted on it (and the child's working dir of
    the same name lives in its private ``/tmp``); without, it is the working dir itself.
    """
    lim = asdict(limits)
    if limits.gpu:
        lim["memory_bytes"] = -1  # RLIM_INFINITY
    namespaces = uid is not None and _namespaces_available()
    if not namespaces and interpreter_hidden(sys_path):
        uid = None
    return {
        "entry": entry, "workdir": workdir, "root": workdir, "uid": uid, "gid": uid,
        "limits": lim, "network": limits.network, "namespaces": namespaces,
        "tmp_bytes": limits.tmp_bytes, "hide_paths": list(limits.hide_paths),
        "sys_path": sys_path, "report_fd": report_fd, "seccomp": limits.seccomp,
        "binds": root_binds(sys_path) if namespaces else [],
    }


class _TailReader(threading.Thread):
    """Drains a pipe, keeping only the last ``keep`` bytes and counting the total."""

    def __init__(self, stream, keep: int) -> None:
        super().__init__(daemon=True)
        self.stream, self.keep, self.total, self.data = stream, keep, 0, bytearray()
        self.start()

    def run(self) -> None:
        read = getattr(self.stream, "read1", None) or (lambda n: os.read(self.stream, n))
        try:
            while chunk := read(65536):
                self.total += len(chunk)
                self.data += chunk
                if len(self.data) > 2 * self.keep:
                    del self.data[: len(self.data) - self.keep]
        except (OSError, ValueError):
            pass
        del self.data[: max(0, len(self.data) - self.keep)]


def _feed(stream, data: bytes) -> None:
    """Write the payload and close stdin; a child that never reads it is not an error."""
    try:
        stream.write(data)
        stream.close()
    except (BrokenPipeError, OSError):
        pass


def child_env(workdir: str, limits: SandboxLimits) -> dict[str, str]:
    """The scrubbed environment: nothing of the caller's except the interpreter's directory."""
    env = {
        "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "TORCHINDUCTOR_CACHE_DIR": os.path.join(workdir, ".inductor"),
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "") if limits.gpu else "",
    }
    if limits.triton_interpret:
        env["TRITON_INTERPRET"] = "1"
    return env


def _parse_last_line(stdout: bytes) -> dict | None:
    """The JSON object on the last non-empty stdout line, or ``None``."""
    for line in reversed(stdout.splitlines()):
        if line.strip():
            try:
                value = json.loads(line)
            except (ValueError, RecursionError):
                return None
            return value if isinstance(value, dict) else None
    return None


def read_reports(fd: int) -> dict:
    """Merge the JSON lines the walls wrote on the report pipe (non-blocking; closes ``fd``)."""
    os.set_blocking(fd, False)
    raw = b""
    try:
        while chunk := os.read(fd, 65536):
            raw += chunk
    except BlockingIOError:
        pass
    os.close(fd)
    merged: dict = {}
    for line in raw.splitlines()[:16]:
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            merged.update(value)
    return merged


def _classify(code: int | None, timed_out: bool, stderr: str, limits: SandboxLimits) -> list[str]:
    """Violations readable from the exit status and stderr (heuristics for memory/network)."""
    found = []
    if timed_out:
        found.append(f"wall-clock limit ({limits.wall_seconds:g} s)")
    elif code in (-signal.SIGXCPU, 128 + signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGKILL):
        found.append(f"cpu limit ({limits.cpu_seconds} s)")
    if any(marker in stderr for marker in _MEMORY_MARKERS):
        found.append(f"memory limit ({limits.memory_bytes} bytes of address space)")
    if any(marker in stderr for marker in _NETWORK_MARKERS):
        found.append("network attempted")
    return found


def outcome_notes(report: dict, uid: int | None, limits: SandboxLimits) -> list[str]:
    """``isolation: ...`` (the walls that were up) plus one note per missing wall."""
    measures = report.get("measures", [])
    notes = [f"isolation: {', '.join(measures) or 'none'}", *report.get("notes", [])]
    if uid is None:
        notes.append("runs as the caller's uid (not root, or the interpreter is unreachable for "
                     "other uids without a mount namespace): no process limit, no uid sweep")
    if "network-namespace" not in measures and not limits.network:
        notes.append("network namespace unavailable: the child has the host's network (the "
                     "seccomp filter still refuses sockets)" if "seccomp" in measures else
                     "network namespace unavailable: the child has the host's network")
    if "minimal-read-only-root" not in measures:
        notes.append("no private root: the child sees the host's file system (reads what its "
                     "uid may read; files it leaves in /tmp, /var/tmp, /dev/shm are deleted)")
    if limits.seccomp and "seccomp" not in measures:
        notes.append("seccomp filter unavailable: process creation, exec and sockets are "
                     "only reported by audit hooks")
    return notes


def sandbox_violations(report: dict, cfg: dict, timed_out: bool, code: int | None, stderr: str,
                       limits: SandboxLimits) -> list[str]:
    """Everything the walls caught, from the report, the uid sweep and the exit status.

    The uid sweeps (processes, files in the shared scratch dirs) run only without namespaces:
    with them, nothing outlives the pid namespace and nothing written leaves the private root.
    """
    violations: list[str] = []
    leftover = int(report.get("leftover_processes", 0) or 0)
    uid = cfg["uid"] if not cfg["namespaces"] else None
    if uid is not None:  # processes that escaped the group (there is no pid namespace)
        leftover += _kill_uid(uid)
    if leftover and not timed_out:
        violations.append(f"left {leftover} processes running")
    violations = _classify(code, timed_out, stderr, limits) + violations
    for path in report.get("scratch_files", [])[:20]:
        violations.append(f"wrote outside its directory: {path} (private tmpfs, discarded)")
    for path in _remove_scratch_files(uid, cfg["workdir"]) if uid is not None else []:
        violations.append(f"wrote outside its directory: {path} (deleted)")
    return violations


def check_sys_path(sys_path: Iterable[str]) -> list[str]:
    """Absolute import dirs for the child; a scratch dir itself is refused (it is replaced)."""
    extra = [os.path.abspath(p) for p in sys_path]
    hidden = [p for p in extra if p in SCRATCH_DIRS]
    if hidden and _namespaces_available():
        raise ValueError(f"sys_path {hidden} is a scratch dir, which the sandbox replaces with a "
                         "private tmpfs; put child modules in a subdirectory or elsewhere")
    return extra + [p for p in sys.path if p and os.path.isdir(p) and p not in SCRATCH_DIRS]


def run_in_sandbox(entry_module: str, payload: dict, limits: SandboxLimits | None = None, *,
                   sys_path: Iterable[str] = ()) -> SandboxResult:
    """Run ``python -I -m entry_module`` in an isolated child and collect its JSON result.

    Args:
        entry_module: Importable module run as ``__main__``; it reads ``payload`` as JSON from
            stdin and prints its result as one JSON object on the last line of stdout.
        payload: JSON-serialisable input for the child.
        limits: Resource and isolation limits; ``SandboxLimits()`` when omitted.
        sys_path: Extra import directories for the child, searched before the caller's
            ``sys.path`` (which the child gets too, since ``-I`` drops ``PYTHONPATH``). Each is
            bound read-only into the child's minimal root (a checkout under ``/tmp`` works).

    Returns:
        The outcome; never raises for anything the child does.

    Raises:
        ValueError: A ``sys_path`` entry is a scratch dir itself (it would be replaced).
    """
    limits = limits or SandboxLimits()
    path = check_sys_path(sys_path)
    uid, lease_fd = _LEASES.acquire() if os.geteuid() == 0 else (None, None)
    workdir = f"/tmp/turngym-sbx-{uuid.uuid4().hex[:12]}"
    report_r, report_w = os.pipe()
    start = time.monotonic()
    try:
        cfg = boot_config(workdir, uid, limits, path, report_w, entry_module)
        if uid is not None and not cfg["namespaces"]:
            _kill_uid(uid)  # strays of a crashed earlier caller must not count against us
        os.makedirs(workdir, mode=0o700)
        if not cfg["namespaces"] and cfg["uid"] is not None:
            os.chown(workdir, cfg["uid"], cfg["gid"])
        proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _BOOT_SOURCE, json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=child_env(workdir, limits), cwd="/", pass_fds=(report_w,), start_new_session=True,
        )
        os.close(report_w)
        report_w = -1
        return _supervise(proc, payload, limits, cfg, report_r, start)
    finally:
        if report_w >= 0:
            os.close(report_w)
            os.close(report_r)
        shutil.rmtree(workdir, ignore_errors=True)
        if lease_fd is not None:
            _LEASES.release(lease_fd)


def _supervise(proc: subprocess.Popen, payload: dict, limits: SandboxLimits, cfg: dict,
               report_fd: int, start: float) -> SandboxResult:
    """Feed, wait (killing on timeout), reap leftovers and turn it all into a result."""
    data = json.dumps(payload).encode()
    threading.Thread(target=_feed, args=(proc.stdin, data), daemon=True).start()
    out = _TailReader(proc.stdout, limits.max_output_bytes)
    err = _TailReader(proc.stderr, _STDERR_KEEP)
    timed_out = False
    try:
        proc.wait(timeout=limits.wall_seconds)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)  # the group; the pid namespace takes the rest
        proc.wait()
    wall = time.monotonic() - start
    report = read_reports(report_fd)
    out.join(timeout=5)
    err.join(timeout=5)
    stderr = err.data.decode(errors="replace")
    code = report.get("exit_code", proc.returncode)
    violations = sandbox_violations(report, cfg, timed_out, code, stderr, limits)
    if out.total > limits.max_output_bytes:
        violations.append(f"output limit ({out.total} > {limits.max_output_bytes} bytes)")
    result = None if timed_out else _parse_last_line(bytes(out.data))
    usage = report.get("usage") or {}
    return SandboxResult(
        ok=code == 0 and result is not None and not timed_out, result=result, timed_out=timed_out,
        exit_code=None if timed_out else code, stderr_tail=stderr[-4000:], violations=violations,
        wall_seconds=wall, notes=outcome_notes(report, cfg["uid"], limits),
        cpu_seconds=usage.get("cpu_s"),
    )


class SandboxPool:
    """Evaluates many candidates concurrently, one sandboxed process each.

    Threads only wait on child processes, so ``max_workers`` is the number of candidates running
    at once; keep it at or below the cores you want to use.

    Example::

        with SandboxPool(max_workers=2) as pool:
            results = list(pool.map("my.evaluator", payloads))
    """

    def __init__(self, max_workers: int | None = None) -> None:
        workers = max_workers or os.cpu_count() or 1
        if workers > UID_SLOTS:
            raise ValueError(f"max_workers={workers} exceeds the {UID_SLOTS} sandbox uid slots")
        self._executor = concurrent.futures.ThreadPoolExecutor(workers, "sandbox")

    def submit(self, entry_module: str, payload: dict, limits: SandboxLimits | None = None, *,
               sys_path: Iterable[str] = ()) -> concurrent.futures.Future[SandboxResult]:
        """Schedule one run; the future resolves to its :class:`SandboxResult`."""
        return self._executor.submit(run_in_sandbox, entry_module, payload, limits,
                                     sys_path=tuple(sys_path))

    def map(self, entry_module: str, payloads: Iterable[dict], limits: SandboxLimits | None = None,
            *, sys_path: Iterable[str] = ()) -> Iterator[SandboxResult]:
        """Run ``entry_module`` on every payload; results come back in payload order."""
        futures = [self.submit(entry_module, p, limits, sys_path=sys_path) for p in payloads]
        return (f.result() for f in futures)

    def close(self, wait: bool = True) -> None:
        """Stop accepting work; with ``wait``, block until running candidates finish."""
        self._executor.shutdown(wait=wait, cancel_futures=not wait)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
