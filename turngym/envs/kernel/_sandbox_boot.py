"""Child-side walls of the kernel sandbox; see :mod:`turngym.envs.kernel.sandbox`.

Used two ways, so it must stay standalone (standard library only, no turngym imports):

* as a script: the host runs this file's *source* as ``python -I -c <source> <config json>``
  (:func:`turngym.envs.kernel.sandbox.run_in_sandbox`), and :func:`main` runs ``entry`` as
  ``__main__`` behind the walls;
* as a module: the warm fork server (:mod:`~turngym.envs.kernel.forkserver`) calls
  :func:`enter` in each forked child with the function to run behind the walls.

Process tree inside one sandbox::

    boot (root; new mount/net/pid/ipc/uts namespaces, minimal read-only root; reports)
      -> candidate (pid 1 of the new pid namespace: mounts /proc, then own uid, rlimits,
                    no_new_privs, seccomp filter, runs the target)

When the candidate (pid 1) exits, the kernel kills every other process of its namespace.
Without namespaces (not root, or the kernel refuses), ``boot`` itself becomes the candidate
(rlimits, seccomp and, as root, the uid still apply). ``boot`` reports what it set up and, at
the end, the candidate's exit status, CPU time (``wait4``) and the files it left in the
private scratch dirs on the report pipe (one JSON object per line).

The walls, from the outside in:

* **Minimal root** (``pivot_root`` into a fresh tmpfs): only the system dirs (``/usr``,
  ``/etc``, the ``/lib*`` and ``/bin`` links), the interpreter's prefixes and the import dirs
  are bound in, each *read-only*; ``/tmp``, ``/var/tmp``, ``/dev/shm`` and the working dir are
  private size-capped tmpfs; ``/dev`` holds only null, zero, full, random, urandom; ``/proc``
  is the pid namespace's own. Nothing else of the host exists inside: no other checkout, no
  ``/run/lock`` or any other world-writable host dir, so nothing written survives the
  sandbox. ``hide_paths`` (the package's oracles and tests) are covered by empty read-only
  mounts.
* **Seccomp filter** (:func:`seccomp_program`, a classic BPF program installed with
  ``prctl``; x86-64 and aarch64): process creation (``fork``, ``vfork``, ``clone`` without
  ``CLONE_THREAD``, ``clone3``), ``execve``/``execveat``, socket creation and use
  (``socket``, ``socketpair``, ``connect``, ``bind``, ``listen``, ``accept``), ``ptrace`` and
  cross-process memory access, namespaces (``unshare``, ``setns``), every mount call, BPF,
  perf events, io_uring, keyrings, module loading, reboot and friends fail with ``EPERM``
  (``clone3`` with ``ENOSYS``, so libc falls back to the filtered ``clone``). Threads stay
  possible (``clone`` with ``CLONE_THREAD`` and no namespace flag).
* **Own uid** (root only), ``setgroups([])``; **rlimits** (CPU, address space, open files,
  file size, no core, processes).
"""

import ctypes
import json
import os
import platform
import resource
import runpy
import signal
import struct
import sys

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWUSER = 0x08000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
CLONE_THREAD = 0x00010000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE, MNT_DETACH = 32, 4096, 16384, 1 << 18, 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 1, 38, 22, 2
SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
               "/sys/devices/system/cpu")
DEVICES = ("null", "zero", "full", "random", "urandom")

_libc = ctypes.CDLL(None, use_errno=True)

# --- Seccomp ----------------------------------------------------------------------------------
# Denied syscalls by architecture: (AUDIT_ARCH, clone, clone3, pivot_root, {name: number}).
# Numbers from the kernel's unistd_64.h (x86-64) and asm-generic/unistd.h (aarch64).
_DENY_COMMON = {
    "execve": (59, 221), "execveat": (322, 281), "socket": (41, 198), "socketpair": (53, 199),
    "connect": (42, 203), "accept": (43, 202), "accept4": (288, 242), "bind": (49, 200),
    "listen": (50, 201), "ptrace": (101, 117), "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271), "kcmp": (312, 272), "unshare": (272, 97),
    "setns": (308, 268), "mount": (165, 40), "umount2": (166, 39), "pivot_root": (155, 41),
    "chroot": (161, 51), "open_tree": (428, 428), "move_mount": (429, 429),
    "fsopen": (430, 430), "fsconfig": (431, 431), "fsmount": (432, 432), "fspick": (433, 433),
    "mount_setattr": (442, 442), "bpf": (321, 280), "perf_event_open": (298, 241),
    "userfaultfd": (323, 282), "io_uring_setup": (425, 425), "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427), "keyctl": (250, 219), "add_key": (248, 217),
    "request_key": (249, 218), "init_module": (175, 105), "finit_module": (313, 273),
    "delete_module": (176, 106), "kexec_load": (246, 104), "kexec_file_load": (320, 294),
    "reboot": (169, 142), "swapon": (167, 224), "swapoff": (168, 225), "acct": (163, 89),
    "syslog": (103, 116), "quotactl": (179, 60), "personality": (135, 92),
    "name_to_handle_at": (303, 264), "open_by_handle_at": (304, 265),
    "pidfd_open": (434, 434), "pidfd_getfd": (438, 438), "migrate_pages": (256, 238),
    "move_pages": (279, 239),
}
_ARCHES = {
    "x86_64": (0xC000003E, 56, 435, 0, {"fork": 57, "vfork": 58, "uselib": 134, "vhangup": 153}),
    "aarch64": (0xC00000B7, 220, 435, 1, {}),
}
_RET_ALLOW, _RET_KILL = 0x7FFF0000, 0x80000000
_RET_EPERM, _RET_ENOSYS = 0x00050000 | 1, 0x00050000 | 38
_NS_FLAGS = (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER
             | CLONE_NEWPID | CLONE_NEWNET)


def seccomp_program(machine: str | None = None) -> list[tuple[int, int, int, int]] | None:
    """The sandbox's BPF program as ``(code, jt, jf, k)`` tuples, or ``None`` on other arches.

    Layout: kill on a foreign architecture (and, on x86-64, any x32 syscall number), then one
    ``jeq`` per denied syscall jumping to ``ret EPERM``; ``clone`` is allowed only with
    ``CLONE_THREAD`` and without namespace flags; ``clone3`` returns ``ENOSYS``; the rest is
    allowed.
    """
    spec = _ARCHES.get(machine or platform.machine())
    if spec is None:
        return None
    arch, clone, clone3, column, extra = spec
    denied = sorted({nums[column] for nums in _DENY_COMMON.values()} | set(extra.values()))
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    # Tail (fixed positions counted from the end): [ALLOW, CLONE_CHECK x4, EPERM, ENOSYS, KILL]
    body = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, _RET_KILL), (ld, 0, 0, 0)]
    if column == 0:
        body.append((jge, 0, 1, 0x40000000))  # x32 ABI: deny
        body.append((ret, 0, 0, _RET_EPERM))
    checks = [(nr, "eperm") for nr in denied] + [(clone, "clone"), (clone3, "enosys")]
    n = len(checks)
    # After the n checks: 0 ALLOW, 1 LD arg0, 2 JSET ns, 3 JSET thread, 4 ALLOW, 5 EPERM, 6 ENOSYS
    targets = {"clone": n + 1, "eperm": n + 5, "enosys": n + 6}
    for i, (nr, target) in enumerate(checks):
        body.append((jeq, targets[target] - i - 1, 0, nr))
    body += [
        (ret, 0, 0, _RET_ALLOW),
        (ld, 0, 0, 16),  # args[0], low 32 bits (clone flags)
        (jset, 2, 0, _NS_FLAGS),  # -> EPERM
        (jset, 0, 1, CLONE_THREAD),  # thread -> ALLOW, else -> EPERM
        (ret, 0, 0, _RET_ALLOW),
        (ret, 0, 0, _RET_EPERM),
        (ret, 0, 0, _RET_ENOSYS),
    ]
    return body


def install_seccomp() -> bool:
    """Set ``no_new_privs`` and install :func:`seccomp_program`; ``False`` if unsupported."""
    program = seccomp_program()
    if program is None:
        return False
    raw = b"".join(struct.pack("HBBI", *ins) for ins in program)
    buf = ctypes.create_string_buffer(raw, len(raw))

    class _Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = _Prog(len(program), ctypes.addressof(buf))
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), "seccomp")
    return True


# --- Namespaces and the minimal root ---------------------------------------------------------
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
    """Enter new mount, pid, ipc, uts and network namespaces; the measures that took effect."""
    if not cfg["namespaces"]:
        return []
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    flags |= 0 if cfg["network"] else CLONE_NEWNET
    if _libc.unshare(flags) != 0:
        return []
    measures = ["mount-namespace", "pid-namespace", "ipc-namespace"]
    return measures + ([] if cfg["network"] else ["network-namespace"])


def _bind_ro(source: str, target: str) -> None:
    _mount(source, target, None, MS_BIND)
    _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _populate_dev(root: str, tmp_opts: str) -> None:
    os.makedirs(root + "/dev/shm", mode=0o755)
    _mount("tmpfs", root + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, tmp_opts)
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            os.close(os.open(f"{root}/dev/{name}", os.O_CREAT | os.O_WRONLY, 0o666))
            _mount(f"/dev/{name}", f"{root}/dev/{name}", None, MS_BIND)
    os.symlink("/proc/self/fd", root + "/dev/fd")
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{i}", f"{root}/dev/{name}")


def _build_root(cfg: dict) -> None:
    """Pivot into a fresh tmpfs holding only read-only binds of what the child needs.

    ``cfg["root"]`` is an empty host dir (the caller made it); the tmpfs mounted on it exists
    only in this mount namespace, and so does everything below.
    """
    root = cfg["root"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0755")
    tmp_opts = f"size={cfg['tmp_bytes']},mode=1777"
    for d in ("/tmp", "/var/tmp"):
        os.makedirs(root + d, mode=0o755)
        _mount("tmpfs", root + d, "tmpfs", MS_NOSUID | MS_NODEV, tmp_opts)
    _populate_dev(root, tmp_opts)
    for src in sorted(dict.fromkeys(cfg["binds"])):
        dst = root + src
        if os.path.islink(src):  # /bin -> usr/bin on merged-/usr systems
            if not os.path.lexists(dst):
                os.makedirs(os.path.dirname(dst), mode=0o755, exist_ok=True)
                os.symlink(os.readlink(src), dst)
            continue
        if not os.path.isdir(src):
            continue
        os.makedirs(dst, mode=0o755, exist_ok=True)
        _bind_ro(src, dst)
    blank = root + "/.hidden"  # root-owned, mode 000: the sandbox uid cannot open it
    os.close(os.open(blank, os.O_CREAT | os.O_WRONLY, 0))
    for path in cfg["hide_paths"]:
        target = root + path
        if os.path.isdir(target):
            _mount("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=0755")
        elif os.path.lexists(target):
            _mount(blank, target, None, MS_BIND)
    os.makedirs(root + "/proc", mode=0o555)
    os.makedirs(root + cfg["workdir"], mode=0o700, exist_ok=True)
    os.mkdir(root + "/.old")
    spec = _ARCHES.get(platform.machine())
    if spec is None:
        raise OSError(f"pivot_root: unknown syscall number on {platform.machine()}")
    nr = _DENY_COMMON["pivot_root"][spec[3]]
    _check(_libc.syscall(nr, root.encode(), (root + "/.old").encode()), "pivot_root")
    os.chdir("/")
    _check(_libc.umount2(b"/.old", MNT_DETACH), "umount /.old")
    os.rmdir("/.old")
    _mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _scratch_leftovers(cfg: dict) -> list[str]:
    """Entries the candidate left in the private scratch dirs, outside its own directory."""
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
            if any(b == path or b.startswith(path + "/") for b in cfg["binds"]):
                continue  # a parent of an import dir bound in (a checkout under /tmp)
            found.append(path)
    return found


def _rusage(ru: resource.struct_rusage) -> dict:
    return {"cpu_s": round(ru.ru_utime + ru.ru_stime, 6), "max_rss_kb": ru.ru_maxrss}


def _run_pid1(cfg: dict, target) -> None:
    """Pid 1 of the sandbox's pid namespace: mount its /proc, then become the candidate.

    The candidate itself is pid 1 (one fork less per sandbox): when it exits, the kernel kills
    whatever else is in the namespace. Boot, its parent, reports what it left.
    """
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _become_candidate(cfg, target)


def _limit(kind: int, soft: int, hard: int | None = None) -> None:
    resource.setrlimit(kind, (soft, soft if hard is None else hard))


def _become_candidate(cfg: dict, target) -> None:
    """Apply rlimits, drop privileges, install seccomp and run ``target()`` (never returns)."""
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
    code = 0
    try:
        if cfg.get("seccomp", True) and not install_seccomp() and cfg.get("require_seccomp"):
            raise OSError("seccomp is not supported on this architecture")
        target()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def walls(cfg: dict) -> list[str]:
    """The walls :func:`enter` puts up with ``cfg``, for the result notes."""
    found = []
    if cfg.get("seccomp", True):
        found.append("seccomp" if seccomp_program() is not None else "no-seccomp (arch)")
    return found


def enter(cfg: dict, target) -> None:
    """Put up the walls in this (fresh) process and run ``target()`` behind them; never returns.

    Namespaces and the minimal root (when ``cfg["namespaces"]``), then ``init`` and the
    candidate process. Fails closed: if the root cannot be built, nothing runs (exit 126).
    """
    os.umask(0o022)
    measures = _unshare(cfg)
    notes = []
    if measures:
        try:
            _build_root(cfg)
            measures.append("minimal-read-only-root")
        except OSError as exc:  # never run the candidate half-isolated
            _report(cfg, measures=measures, notes=[f"private root failed: {exc}"])
            os._exit(126)
    elif cfg["namespaces"]:
        notes.append(f"unshare failed: {os.strerror(ctypes.get_errno())}")
    if cfg["uid"] is not None:
        measures.append(f"uid-{cfg['uid']}")
    measures += walls(cfg)
    _report(cfg, measures=measures, notes=notes)
    if "pid-namespace" not in measures:
        _become_candidate(cfg, target)
    pid = os.fork()  # the first child after unshare(CLONE_NEWPID) is pid 1 of the namespace
    if pid == 0:
        _run_pid1(cfg, target)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGKILL))
    _, status, usage = os.wait4(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    # Pid 1 is gone, so every process of the namespace is dead (leftover_processes stays 0).
    _report(cfg, exit_code=code, leftover_processes=0, usage=_rusage(usage),
            scratch_files=_scratch_leftovers(cfg))
    os._exit(code if code >= 0 else 128 - code)


def main() -> None:
    """Script entry: walls, then ``cfg["entry"]`` as ``__main__``."""
    cfg = json.loads(sys.argv[1])

    def target() -> None:
        sys.dont_write_bytecode = True
        sys.path[:0] = [p for p in cfg["sys_path"] if p not in sys.path]
        sys.argv = [cfg["entry"]]
        runpy.run_module(cfg["entry"], run_name="__main__", alter_sys=True)

    enter(cfg, target)


if __name__ == "__main__":  # also true under ``python -c``; importing it does nothing
    main()
