"""Child-side bootstrap of the kernel sandbox; see :mod:`turngym.envs.kernel.sandbox`.

The host runs this file's *source* as ``python -I -c <source> <config json>``, as root when it
can. It must stay standalone (standard library only, no turngym imports): it runs before the
candidate's ``sys.path`` is set up and, with ``-I``, without the caller's environment.

Process tree inside one sandbox::

    host (pytest, trainer) -> boot (root; new mount/net/pid namespaces)
                              -> init (pid 1 of the new pid namespace; root; mounts /proc)
                                 -> candidate (unprivileged uid, rlimits, runs entry_module)

Without namespaces (not root, or the kernel refuses), ``boot`` itself becomes the candidate.
``boot``/``init`` report what they set up on the report pipe (one JSON object per line).
"""

import ctypes
import json
import os
import resource
import runpy
import signal
import sys

CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE, MNT_DETACH = 4096, 16384, 1 << 18, 2
MS_REMOUNT = 32
PR_SET_PDEATHSIG = 1
SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    def enc(s: str | None) -> bytes | None:
        return None if s is None else s.encode()

    rc = _libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data or None))
    _check(rc, f"mount {target}")


def _report(cfg: dict, **fields: object) -> None:
    os.write(cfg["report_fd"], (json.dumps(fields) + "\n").encode())


def _unshare(cfg: dict) -> list[str]:
    """Enter new mount, network and pid namespaces; returns the measures that took effect."""
    if not cfg["namespaces"]:
        return []
    flags = CLONE_NEWNS | CLONE_NEWPID | (CLONE_NEWNET if not cfg["network"] else 0)
    if _libc.unshare(flags) != 0:
        return []
    return ["mount-namespace", "pid-namespace"] + ([] if cfg["network"] else ["network-namespace"])


def _private_mounts(cfg: dict) -> None:
    """Give the sandbox private scratch dirs, keep the interpreter reachable, hide paths.

    * ``/tmp``, ``/var/tmp``, ``/dev/shm``: fresh size-capped tmpfs (the world-writable places an
      unprivileged uid could otherwise leave files in); they vanish with the namespace.
    * Interpreter/site-packages under an unreadable ancestor (a pyenv under ``/root``): bound
      into a staging dir, the ancestor is covered by an empty tmpfs, then the needed subtrees
      are bound back, so the child can import them but sees nothing else of that ancestor.
    * ``hide_paths``: covered by an empty read-only tmpfs.
    """
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Import dirs that live in a scratch dir (a checkout under /tmp, as CI clones often are)
    # would vanish under the tmpfs: hold them by O_PATH fds now, bind them back read-only after.
    kept = [(p, os.open(p, os.O_PATH | os.O_DIRECTORY)) for p in _scratch_imports(cfg)]
    tmpfs_opts = f"size={cfg['tmp_bytes']},mode=1777"
    for d in SCRATCH_DIRS:
        if os.path.isdir(d):
            _mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, tmpfs_opts)
    for path, fd in kept:
        os.makedirs(path, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
        os.close(fd)
    staged = []
    for i, (blocker, needed) in enumerate(cfg["rebind"]):
        for j, path in enumerate(needed):
            stage = f"/tmp/.stage-{i}-{j}"
            os.mkdir(stage)
            _mount(path, stage, None, MS_BIND | MS_REC)
            staged.append((stage, path))
        _mount("tmpfs", blocker, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for stage, path in staged:
        os.makedirs(path, mode=0o755, exist_ok=True)
        _mount(stage, path, None, MS_BIND | MS_REC)
        _check(_libc.umount2(stage.encode(), MNT_DETACH), f"umount {stage}")
        os.rmdir(stage)
    for i, path in enumerate(cfg["hide_paths"]):
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=0755")
        elif os.path.exists(path):  # a file: bind an unreadable root-owned file over it
            blank = f"/tmp/.hidden-{i}"
            os.close(os.open(blank, os.O_CREAT | os.O_WRONLY, 0))
            _mount(blank, path, None, MS_BIND)


def _scratch_imports(cfg: dict) -> list[str]:
    """The outermost ``sys_path`` dirs that lie inside a scratch dir."""
    inside = sorted(
        p for p in cfg["sys_path"]
        if os.path.isdir(p) and any(p.startswith(d + "/") for d in SCRATCH_DIRS)
    )  # fmt: skip
    return [p for i, p in enumerate(inside) if not any(p.startswith(q + "/") for q in inside[:i])]


def _scratch_leftovers(cfg: dict) -> list[str]:
    """Entries the candidate left in the private scratch dirs, outside its own directory."""
    kept = _scratch_imports(cfg)
    found = []
    for d in SCRATCH_DIRS:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            path = os.path.join(d, name)
            if path == cfg["workdir"] or cfg["workdir"].startswith(path + "/"):
                continue
            if any(k == path or k.startswith(path + "/") for k in kept):
                continue  # the parents of an import dir bound back in
            if not name.startswith(".hidden-"):
                found.append(path)
    return found


def _other_processes() -> list[int]:
    """Pids in this pid namespace (its fresh /proc) other than init itself, zombies excluded."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit() and name != "1":
            try:
                with open(f"/proc/{name}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state not in ("Z", "X"):
                pids.append(int(name))
    return pids


def _run_init(cfg: dict) -> None:
    """Pid 1 of the sandbox: start the candidate, reap it, count and kill what it left behind."""
    # Belt and braces: the host's timeout kills boot's process group, which includes init.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    pid = os.fork()
    if pid == 0:
        _become_candidate(cfg)
    while True:  # reap everything (orphans are reparented to us) until the candidate is done
        done, status = os.waitpid(-1, 0)
        if done == pid:
            break
    code = os.waitstatus_to_exitcode(status)
    leftover = len(_other_processes())
    _report(cfg, exit_code=code, leftover_processes=leftover, scratch_files=_scratch_leftovers(cfg))
    try:
        os.kill(-1, signal.SIGKILL)  # from pid 1 of the namespace: every other process in it
    except ProcessLookupError:
        pass  # nothing left
    os._exit(code if code >= 0 else 128 - code)


def _limit(kind: int, soft: int, hard: int | None = None) -> None:
    resource.setrlimit(kind, (soft, soft if hard is None else hard))


def _become_candidate(cfg: dict) -> None:
    """Apply rlimits, drop privileges and run ``entry_module`` as ``__main__`` (never returns)."""
    os.close(cfg["report_fd"])
    lim = cfg["limits"]
    _limit(resource.RLIMIT_CORE, 0)
    # CPU: SIGXCPU at the soft limit, SIGKILL one second later at the hard limit.
    _limit(resource.RLIMIT_CPU, lim["cpu_seconds"], lim["cpu_seconds"] + 1)
    _limit(resource.RLIMIT_AS, lim["memory_bytes"])
    _limit(resource.RLIMIT_NOFILE, lim["max_open_files"])
    _limit(resource.RLIMIT_FSIZE, lim["max_file_bytes"])
    if cfg["uid"] is not None:
        # RLIMIT_NPROC counts every process/thread of the *real uid* and never binds root, so it
        # is only set together with the switch to the sandbox's own uid.
        _limit(resource.RLIMIT_NPROC, lim["max_processes"])
        os.makedirs(cfg["workdir"], mode=0o700, exist_ok=True)
        os.chown(cfg["workdir"], cfg["uid"], cfg["gid"])
        os.setgroups([])
        os.setgid(cfg["gid"])
        os.setuid(cfg["uid"])  # real, effective and saved uid; all capabilities are dropped
    os.chdir(cfg["workdir"])
    os.umask(0o077)
    sys.dont_write_bytecode = True
    sys.path[:0] = [p for p in cfg["sys_path"] if p not in sys.path]
    sys.argv = [cfg["entry"]]
    code = 0
    try:
        runpy.run_module(cfg["entry"], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    """Entry point of ``boot``: namespaces, private mounts, then init + candidate."""
    cfg = json.loads(sys.argv[1])
    measures = _unshare(cfg)
    notes = []
    if measures:
        try:
            _private_mounts(cfg)
            measures.append("private-tmp")
        except OSError as exc:  # fail closed: never run the candidate half-isolated
            _report(cfg, measures=measures, notes=[f"private mounts failed: {exc}"])
            os._exit(126)
    elif cfg["namespaces"]:
        notes.append(f"unshare failed: {os.strerror(ctypes.get_errno())}")
    if cfg["uid"] is not None:
        measures.append(f"uid-{cfg['uid']}")
    _report(cfg, measures=measures, notes=notes)
    if "pid-namespace" not in measures:
        _become_candidate(cfg)
    pid = os.fork()  # the first child after unshare(CLONE_NEWPID) is pid 1 of the namespace
    if pid == 0:
        _run_init(cfg)
    os.close(cfg["report_fd"])
    signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGKILL))
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":  # also true under ``python -c``; importing it does nothing
    main()
