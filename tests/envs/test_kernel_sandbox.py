"""Containment tests for the kernel sandbox (issue 8, item 3 and the adversarial Done-when).

Each adversarial child lives in ``sandbox_children.py`` and is bounded by itself or by tight
limits; after every test the ``host_unharmed`` fixture checks that no process of a sandbox uid
is left and that no file owned by one appeared in the shared scratch dirs. Cases that need
root (own uid, namespaces) skip without it.
"""

from __future__ import annotations

import dataclasses
import fcntl
import glob
import json
import os
import socket
import sys
import time
from pathlib import Path

import pytest

from turngym.envs.kernel import _sandbox_uids as sbx_uids
from turngym.envs.kernel import sandbox
from turngym.envs.kernel.sandbox import SandboxLimits, SandboxPool, run_in_sandbox

pytestmark = pytest.mark.integration

CHILDREN = str(Path(__file__).parent)
REPO = Path(__file__).resolve().parents[2]
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="own uid and namespaces need root")
TIGHT = SandboxLimits(cpu_seconds=3, wall_seconds=10, memory_bytes=1 << 30, max_processes=16)
SANDBOX_UIDS = range(sbx_uids.UID_BASE, sbx_uids.UID_BASE + sbx_uids.UID_SLOTS)


def run(case: str, limits: SandboxLimits = TIGHT, **payload: object) -> sandbox.SandboxResult:
    payload = {"case": case, **payload}
    return run_in_sandbox("sandbox_children", payload, limits, sys_path=[CHILDREN])


def _idle_uids() -> list[int]:
    """Sandbox uids no caller holds right now (other processes may be using the rest)."""
    idle = []
    sbx_uids._LEASES._dir.mkdir(mode=0o700, exist_ok=True)
    for uid in SANDBOX_UIDS:
        fd = os.open(sbx_uids._LEASES._dir / f"uid-{uid}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            idle.append(uid)
        except BlockingIOError:
            pass
        finally:
            os.close(fd)
    return idle


def _files_of(uids: list[int]) -> list[str]:
    found = []
    for d in sbx_uids.SCRATCH_DIRS:
        for entry in os.scandir(d) if os.path.isdir(d) else ():
            try:
                if entry.stat(follow_symlinks=False).st_uid in uids:
                    found.append(entry.path)
            except OSError:
                continue
    return found


@pytest.fixture(autouse=True)
def host_unharmed():
    """The host must be fine after every test: no sandbox processes, no stray files.

    Only uids no one holds are checked: another process (a trainer, another test run) may be
    using the sandbox at the same time, and its live sandboxes are not our leftovers.
    """
    yield
    if ROOT:
        idle = _idle_uids()
        assert [u for u in idle if sbx_uids._uid_processes(u)] == []
        assert _files_of(idle) == []
    ours = [p for p in Path("/tmp").glob("turngym-sbx-*") if p.stat().st_uid in _idle_uids()]
    assert ours == []


@pytest.fixture(params=["namespaces", "flat"])
def mode(request, monkeypatch):
    """Run a test with the namespaces and, as root, again without them (the fallback path)."""
    if request.param == "flat":
        if not ROOT:
            pytest.skip("without root there is only the flat mode, tested by the other param")
        monkeypatch.setattr(sandbox, "_namespaces_available", lambda: False)
    elif not sandbox._namespaces_available():
        pytest.skip("namespaces unavailable here")
    return request.param


def _interpreter_hidden() -> bool:
    return sandbox.interpreter_hidden(sys.path)


@pytest.fixture
def uid_mode(mode):
    """Like ``mode``, for tests that need the child on its own uid (for the uid sweep)."""
    if not ROOT:
        pytest.skip("own uid needs root")
    if mode == "flat" and _interpreter_hidden():
        pytest.skip("flat mode here runs as root: the interpreter is under a 0700 dir")
    return mode


def test_roundtrip_scrubbed_env_and_private_dir():
    res = run("echo", x=21)
    assert res.ok and res.result["x"] == 42 and res.violations == []
    assert set(res.result["env"]) <= {"PATH", "HOME", "TMPDIR", "LANG", "OMP_NUM_THREADS",
                                      "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                      "TORCHINDUCTOR_CACHE_DIR", "CUDA_VISIBLE_DEVICES"}
    assert res.result["cwd"] == res.result["home"] and res.result["cwd_writable"] == "ok"
    if ROOT:
        assert res.result["uid"] in SANDBOX_UIDS


def test_crash_and_garbage_are_not_ok():
    res = run("crash")
    assert not res.ok and res.exit_code == 3 and res.result is None
    res = run_in_sandbox("no_such_module_xyz", {}, TIGHT)
    assert not res.ok and "No module named" in res.stderr_tail


def test_infinite_loop_hits_cpu_limit(mode):
    res = run("spin", SandboxLimits(cpu_seconds=1, wall_seconds=20))
    assert not res.ok and not res.timed_out
    assert any(v.startswith("cpu limit") for v in res.violations)


def test_sleeper_hits_wall_clock(mode):
    start = time.monotonic()
    res = run("sleep", SandboxLimits(wall_seconds=1.5))
    assert res.timed_out and not res.ok and time.monotonic() - start < 10
    assert any(v.startswith("wall-clock") for v in res.violations)


def test_memory_bomb_hits_address_space_limit(mode):
    res = run("memory")
    assert not res.ok and "MemoryError" in res.stderr_tail
    assert any(v.startswith("memory limit") for v in res.violations)


def test_fork_bomb_is_refused_by_seccomp(mode):
    res = run("forkbomb", SandboxLimits(cpu_seconds=10, wall_seconds=30, max_processes=16))
    assert res.ok, res.stderr_tail
    assert res.result["forked"] == 0 and res.result["refused"] == 300
    assert any("seccomp" in n for n in res.notes)


@needs_root
@pytest.mark.slow
def test_fork_bomb_without_seccomp_is_capped_and_reaped(uid_mode):
    """The process limit is still a wall of its own (seccomp off)."""
    limits = SandboxLimits(cpu_seconds=10, wall_seconds=30, max_processes=16, seccomp=False)
    res = run("forkbomb", limits)
    assert res.ok, res.stderr_tail
    assert res.result["forked"] < 16 and res.result["refused"] > 0
    if uid_mode == "flat":  # in the pid namespace they die with pid 1 (the fixture checks)
        assert any(v.startswith("left ") for v in res.violations)


def test_leftover_processes_are_killed_and_reported(uid_mode):
    res = run("leave", dataclasses.replace(TIGHT, seccomp=False))
    assert res.ok and res.result["spawned"]
    if uid_mode == "flat":  # with a pid namespace, nothing outlives the candidate (pid 1)
        assert any(v.startswith("left ") and "processes running" in v for v in res.violations)
    assert not run("leave").ok  # with seccomp, the daemon cannot even be forked


@needs_root
def test_network_is_unreachable_inside():
    if not sandbox._namespaces_available():
        pytest.skip("no network namespace here; the result notes say so")
    with socket.socket() as server:  # a real listener of the host on loopback
        server.bind(("127.0.0.1", 0))
        server.listen()
        res = run("network", port=server.getsockname()[1])
        open_net = run("network", dataclasses.replace(TIGHT, seccomp=False),
                       port=server.getsockname()[1])
    assert not res.ok and "network attempted" in res.violations
    assert "Operation not permitted" in res.stderr_tail  # seccomp: no socket at all
    assert not open_net.ok and "Network is unreachable" in open_net.stderr_tail  # the namespace


def test_network_unavailable_is_noted(monkeypatch):
    monkeypatch.setattr(sandbox, "_namespaces_available", lambda: False)
    res = run("echo", x=1)
    assert res.ok and any("network namespace unavailable" in n for n in res.notes)
    # The fallback says what is missing, and seccomp is still up.
    assert any(n.startswith("no private root") for n in res.notes)
    assert "seccomp" in res.notes[0]
    if ROOT and _interpreter_hidden():  # no mount namespace to reach the interpreter: stays root
        assert res.result["uid"] == 0 and any("caller's uid" in n for n in res.notes)


@needs_root
def test_writes_outside_are_blocked_or_detected(uid_mode, tmp_path):
    repo_file = REPO / "sandbox_escape.txt"
    paths = ["/tmp/turngym-escape.txt", "/var/tmp/turngym-escape.txt", str(repo_file),
             "/root/turngym-escape.txt", str(REPO / "turngym" / "escape.py")]
    res = run("write", paths=paths)
    assert res.ok
    for path in paths[2:]:  # root-owned (or, for a checkout under /tmp, bound read-only): refused
        refused = ("PermissionError", "OSError: [Errno 30] Read-only file system")
        assert res.result[path].startswith(refused), res.result[path]
        assert not os.path.exists(path)
    for path in paths[:2]:  # world-writable: written, then discarded/deleted and reported
        assert res.result[path] == "ok"
        assert any(v.startswith(f"wrote outside its directory: {path}") for v in res.violations)
        assert not os.path.exists(path)


@needs_root
def test_reading_the_parents_files_and_memory(uid_mode):
    parent = os.getpid()
    paths = [f"/proc/{parent}/mem", f"/proc/{parent}/environ", "/root/.bashrc",
             str(REPO / "README.md")]
    res = run("read", paths=paths)
    assert res.ok
    for path in paths[:3]:  # another uid: ptrace check / 0700 home; no /proc of the host
        assert not res.result[path] == "ok", path
    # Honest limit: world-readable import dirs (this repository) stay readable unless hidden.
    assert res.result[str(REPO / "README.md")] == "ok"
    if uid_mode == "namespaces":  # /root holds only what was bound in (the interpreter)
        assert res.result["root_entries"] in ([], [".pyenv"], None)
        hidden = run("read", SandboxLimits(hide_paths=(str(REPO / "README.md"),)),
                     paths=[str(REPO / "README.md")])
        assert hidden.result[str(REPO / "README.md")] != "ok"


def test_output_flood_is_capped():
    res = run("flood", SandboxLimits(max_output_bytes=64 * 1024))
    assert any(v.startswith("output limit") for v in res.violations)
    assert res.ok and res.result == {"case": "flood"}


def test_pool_runs_many_candidates_concurrently():
    with SandboxPool(max_workers=2) as pool:
        futures = [pool.submit("sandbox_children", {"case": "echo", "x": i}, TIGHT,
                               sys_path=[CHILDREN]) for i in range(8)]
        results = [f.result() for f in futures]
        mapped = list(pool.map("sandbox_children", [{"case": "echo", "x": i} for i in range(4)],
                               TIGHT, sys_path=[CHILDREN]))
    assert [r.result["x"] for r in results] == [2 * i for i in range(8)]
    assert [r.result["x"] for r in mapped] == [0, 2, 4, 6]
    assert all(r.ok and not r.violations for r in results + mapped)
    if ROOT:  # concurrent sandboxes never share a uid at the same time; all were distinct slots
        assert {r.result["uid"] for r in results} <= set(SANDBOX_UIDS)


def test_pool_rejects_more_workers_than_uid_slots():
    with pytest.raises(ValueError, match="uid slots"):
        SandboxPool(max_workers=sbx_uids.UID_SLOTS + 1)


def test_docker_kwargs_isolate_the_container(tmp_path):
    from turngym.envs.kernel.docker_runner import container_kwargs

    kw = container_kwargs("sandbox_children", TIGHT, [CHILDREN], str(tmp_path))
    assert kw["network_mode"] == "none" and kw["read_only"] and kw["cap_drop"] == ["ALL"]
    assert kw["user"] == "65534:65534" and kw["pids_limit"] == TIGHT.max_processes
    assert all(v["mode"] == "ro" for v in kw["volumes"].values())
    assert kw["volumes"][CHILDREN]["bind"] == CHILDREN


@pytest.mark.slow
def test_docker_runner_roundtrip():
    from turngym.envs.kernel.docker_runner import docker_available, run_in_docker

    if not docker_available():
        pytest.skip("no Docker engine reachable")
    res = run_in_docker("sandbox_children", {"case": "echo", "x": 4}, TIGHT, sys_path=[CHILDREN])
    assert res.ok and res.result["x"] == 8 and res.result["uid"] == 65534
    net = run_in_docker("sandbox_children", {"case": "network", "port": 9}, TIGHT,
                        sys_path=[CHILDREN])
    assert not net.ok and "network attempted" in net.violations


def test_import_dirs_under_tmp_stay_importable_and_a_scratch_root_is_refused():
    """A checkout under /tmp (CI clones often are) is bound read-only into the private /tmp."""
    import shutil

    if not sandbox._namespaces_available():
        pytest.skip("only the namespace mode replaces /tmp")
    import tempfile

    checkout = Path(tempfile.mkdtemp(prefix="turngym-checkout-", dir="/tmp"))
    try:
        checkout.chmod(0o755)  # like a git clone: readable by the sandbox uid
        shutil.copy(Path(CHILDREN) / "sandbox_children.py", checkout / "tmp_children.py")
        res = run_in_sandbox("tmp_children", {"case": "echo", "x": 5}, TIGHT,
                             sys_path=[str(checkout)])
    finally:
        shutil.rmtree(checkout)
    assert res.ok and res.result["x"] == 10 and res.violations == [], res.stderr_tail
    with pytest.raises(ValueError, match="scratch dir"):
        run_in_sandbox("sandbox_children", {"case": "echo"}, TIGHT, sys_path=["/tmp"])


# --- Issue 17: seccomp, the minimal root, persistence ------------------------------------------
def test_seccomp_refuses_process_creation_exec_sockets_ptrace_namespaces_mounts(mode):
    res = run("syscalls")
    assert res.ok, res.stderr_tail
    for name in ("fork", "exec", "socket", "socketpair"):
        assert "Operation not permitted" in res.result[name], (name, res.result[name])
    for name in ("unshare", "ptrace", "mount", "setns"):
        assert res.result[name] == "Operation not permitted", (name, res.result[name])
    assert res.result["thread"] == "ok"  # threads stay possible


@needs_root
def test_minimal_root_hides_the_host_and_is_read_only():
    if not sandbox._namespaces_available():
        pytest.skip("namespaces unavailable here")
    other = [p for p in ("/work/main", "/home", "/srv", "/run", "/mnt", "/opt", "/boot")
             if os.path.exists(p) and not any(p == d or d.startswith(p + "/")
                                              for d in sandbox.root_binds(sys.path))]
    res = run("exists", paths=other + ["/usr/bin", "/dev/null", "/dev/sda", "/proc/self"],
              dirs=["/", "/usr", "/etc", str(REPO)])
    assert res.ok, res.stderr_tail
    assert [p for p in other if res.result[p]] == []
    assert res.result["/usr/bin"] and res.result["/dev/null"] and res.result["/proc/self"]
    assert not res.result["/dev/sda"]
    for d, outcome in res.result["writable"].items():
        assert outcome != "ok", d
    assert "minimal-read-only-root" in res.notes[0] and "ipc-namespace" in res.notes[0]


def _world_writable_dirs() -> list[str]:
    """World-writable dirs of the host: the usual suspects plus a shallow scan of /."""
    found = {d for d in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/dev/mqueue")
             if os.path.isdir(d)}
    for pattern in ("/*", "/*/*", "/*/*/*"):
        for path in glob.glob(pattern):
            if path.startswith(("/proc", "/sys")):
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            if os.path.isdir(path) and st.st_mode & 0o002:
                found.add(path)
    return sorted(found)


@needs_root
def test_no_world_writable_host_dir_is_shared(uid_mode):
    """Every world-writable dir of the host: absent, read-only or private inside; host clean."""
    dirs = _world_writable_dirs()
    before = {d: set(os.listdir(d)) for d in dirs}
    res = run("exists", paths=[], dirs=dirs)
    assert res.ok, res.stderr_tail
    for d, outcome in res.result["writable"].items():
        if outcome == "ok":  # only in a private tmpfs (reported) or, flat, deleted by owner
            assert any(v.startswith(f"wrote outside its directory: {d}") for v in res.violations)
    assert {d: set(os.listdir(d)) for d in dirs} == before


@needs_root
def test_system_v_ipc_stays_private():
    if not sandbox._namespaces_available():
        pytest.skip("namespaces unavailable here")
    res = run("ipc")
    assert res.ok and res.result["shmid"] >= 0, res.stderr_tail
    with open("/proc/sysvipc/shm") as f:
        assert " 29799 " not in f.read()  # the key 0x7467 never shows up on the host


def test_fork_server_children_get_the_same_walls():
    """Children forked from the warm template: own uid, seccomp, minimal root, package hidden."""
    from turngym.envs.kernel.forkserver import ForkServer, with_hidden_package

    server = ForkServer(preload=("turngym.envs.kernel.harness", "sandbox_children"),
                        sys_path=[CHILDREN])
    oracle = REPO / "turngym" / "envs" / "kernel" / "tasks.py"
    try:
        child = server.spawn("sandbox_children:fs_probe",
                             {"paths": [str(oracle), str(REPO / "tests" / "conftest.py")]},
                             with_hidden_package(TIGHT))
        child.channel.settimeout(120)
        raw = b""
        while chunk := child.channel.recv(1 << 16):
            raw += chunk
        result = child.finish()
    finally:
        server.close()
    seen = json.loads(raw[1:])
    assert result.exit_code == 0 and result.cpu_seconds is not None, result
    assert "seccomp" in result.notes[0] and "Operation not permitted" in seen["fork"]
    assert "turngym.envs.kernel.tasks" not in seen["kernel_modules"]  # no oracle in memory
    if ROOT:
        assert seen["uid"] in SANDBOX_UIDS
    if sandbox._namespaces_available():  # oracles and tests are hidden
        assert all(v != "ok" for v in seen["read"].values()), seen["read"]
