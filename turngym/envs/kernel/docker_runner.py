"""Run the same sandboxed evaluation inside a Docker container (issue 8, item 7; optional).

:func:`run_in_docker` has :func:`~turngym.envs.kernel.sandbox.run_in_sandbox`'s contract (entry
module run as ``__main__``, payload as JSON on stdin, result as JSON on the last stdout line,
a :class:`~turngym.envs.kernel.sandbox.SandboxResult` back) but lets the container engine
provide the isolation, through the ``docker`` SDK (``pip install turngym[docker]``):

* ``network_mode="none"``: only a loopback device; no route to the host or anywhere else.
* ``user="65534:65534"``, ``cap_drop=["ALL"]``, ``no-new-privileges``: an unprivileged user.
* ``read_only=True`` root filesystem; ``/tmp`` and the working dir are size-capped tmpfs.
* ``mem_limit`` (resident memory, cgroup; *not* address space as in the process sandbox),
  ``pids_limit`` (processes and threads), one CPU (``nano_cpus``), ulimits for CPU time,
  open files, file size and core dumps.
* The caller's import dirs (``sys_path``, the directory holding ``turngym``) are bind-mounted
  read-only at the same paths; nothing else of the host is visible.
* Wall-clock timeout: the container is killed and removed; its pid namespace takes every
  process with it, so nothing can be left running.

The image must provide a Python with the candidate's dependencies (``torch`` for kernel
tasks); the default ``python:3.11-slim`` suits stdlib-only children. Docker is not needed
anywhere else in turngym; tests skip this module when no engine answers.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from turngym.envs.kernel.sandbox import SandboxLimits, SandboxResult, _parse_last_line

DEFAULT_IMAGE = "python:3.11-slim"
_SHIM = (
    "import runpy, sys; sys.path[:0] = {path!r}; sys.argv = [{entry!r}]; "
    "sys.dont_write_bytecode = True; runpy.run_module({entry!r}, run_name='__main__', "
    "alter_sys=True)"
)


def docker_available() -> bool:
    """Whether the docker SDK is installed and an engine answers a ping."""
    try:
        import docker

        return bool(docker.from_env(timeout=5).ping())
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return False


def container_kwargs(entry_module: str, limits: SandboxLimits, sys_path: Iterable[str],
                     payload_dir: str) -> dict:
    """Arguments for ``client.containers.create`` (pure, so it is testable without an engine)."""
    import turngym

    paths = [str(Path(p).resolve()) for p in sys_path]
    paths.append(str(Path(turngym.__file__).resolve().parents[1]))
    volumes = {p: {"bind": p, "mode": "ro"} for p in dict.fromkeys(paths)}
    volumes[payload_dir] = {"bind": "/sandbox/in", "mode": "ro"}
    shim = _SHIM.format(path=list(dict.fromkeys(paths)), entry=entry_module)
    ulimits = [
        {"Name": "cpu", "Soft": limits.cpu_seconds, "Hard": limits.cpu_seconds + 1},
        {"Name": "nofile", "Soft": limits.max_open_files, "Hard": limits.max_open_files},
        {"Name": "fsize", "Soft": limits.max_file_bytes, "Hard": limits.max_file_bytes},
        {"Name": "core", "Soft": 0, "Hard": 0},
    ]
    return {
        "command": ["sh", "-c", 'exec python -I -c "$0" < /sandbox/in/payload.json', shim],
        "network_mode": "bridge" if limits.network else "none",
        "user": "65534:65534",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": True,
        "tmpfs": {"/tmp": f"size={limits.tmp_bytes}", "/sandbox/work": f"size={limits.tmp_bytes}"},
        "working_dir": "/sandbox/work",
        "environment": {"HOME": "/sandbox/work", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
                        "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
                        **({"TRITON_INTERPRET": "1"} if limits.triton_interpret else {})},
        "mem_limit": limits.memory_bytes,
        "pids_limit": limits.max_processes,
        "nano_cpus": 1_000_000_000,
        "ulimits": ulimits,
        "volumes": volumes,
    }


def run_in_docker(entry_module: str, payload: dict, limits: SandboxLimits | None = None, *,
                  image: str = DEFAULT_IMAGE, sys_path: Iterable[str] = (),
                  client: Any | None = None) -> SandboxResult:
    """Run ``entry_module`` in a fresh container; same contract as ``run_in_sandbox``.

    Args:
        entry_module: Module run as ``__main__`` (importable from ``sys_path`` or turngym's root).
        payload: JSON-serialisable input, fed on stdin.
        limits: Limits mapped onto the container (see the module docstring).
        image: Image providing Python and the child's dependencies.
        sys_path: Host dirs to mount read-only and put first on the child's ``sys.path``.
        client: A ``docker.DockerClient``; ``docker.from_env()`` when omitted.

    Returns:
        The outcome; ``notes`` names the image and the engine's isolation.
    """
    import docker
    from docker.types import Ulimit

    limits = limits or SandboxLimits()
    client = client or docker.from_env()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="turngym-docker-") as payload_dir:
        Path(payload_dir, "payload.json").write_text(json.dumps(payload))
        Path(payload_dir).chmod(0o755)
        Path(payload_dir, "payload.json").chmod(0o644)
        kwargs = container_kwargs(entry_module, limits, sys_path, payload_dir)
        kwargs["ulimits"] = [Ulimit(name=u["Name"], soft=u["Soft"], hard=u["Hard"])
                             for u in kwargs["ulimits"]]
        container = client.containers.create(image, **kwargs)
        try:
            return _wait(container, limits, image, start)
        finally:
            container.remove(force=True)


def _wait(container, limits: SandboxLimits, image: str, start: float) -> SandboxResult:
    """Start, wait with the wall-clock limit, collect output and turn it into a result."""
    container.start()
    timed_out, code = False, None
    try:
        code = container.wait(timeout=limits.wall_seconds)["StatusCode"]
    except Exception:  # noqa: BLE001 - requests' ReadTimeout/ConnectionError: over time
        timed_out = True
        container.kill()
    stdout = container.logs(stdout=True, stderr=False)[-limits.max_output_bytes:]
    stderr = container.logs(stdout=False, stderr=True).decode(errors="replace")
    container.reload()
    violations = [f"wall-clock limit ({limits.wall_seconds:g} s)"] if timed_out else []
    if container.attrs.get("State", {}).get("OOMKilled") or "MemoryError" in stderr:
        violations.append(f"memory limit ({limits.memory_bytes} bytes resident)")
    if code in (128 + 24, 128 + 9) and not timed_out:
        violations.append(f"cpu limit ({limits.cpu_seconds} s)")
    if "Network is unreachable" in stderr:
        violations.append("network attempted")
    result = None if timed_out else _parse_last_line(stdout)
    return SandboxResult(
        ok=code == 0 and result is not None, result=result, timed_out=timed_out,
        exit_code=None if timed_out else code, stderr_tail=stderr[-4000:],
        violations=violations, wall_seconds=time.monotonic() - start,
        notes=[f"isolation: docker container ({image}), network none, uid 65534, read-only"],
    )
