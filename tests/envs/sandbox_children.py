"""Child entry module for the sandbox tests: ``payload["case"]`` picks a (mis)behaviour.

Run by :func:`turngym.envs.kernel.sandbox.run_in_sandbox` as ``__main__`` with this directory
on the child's ``sys.path``. Every case is bounded by itself or by the sandbox's limits.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time


def _try(fn) -> str:
    try:
        fn()
        return "ok"
    except Exception as exc:  # noqa: BLE001 - the test inspects the failure
        return f"{type(exc).__name__}: {exc}"


def _write(path: str) -> None:
    with open(path, "w") as f:
        f.write("escaped")


def _read(path: str) -> None:
    with open(path, "rb") as f:
        f.read(16)


def _connect(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=2):
        pass


def _forkbomb() -> dict:
    forked, refused = 0, 0
    for _ in range(300):
        try:
            pid = os.fork()
        except OSError:
            refused += 1
            continue
        if pid == 0:
            time.sleep(600)
            os._exit(0)
        forked += 1
    return {"forked": forked, "refused": refused}


def _leave_behind() -> dict:
    if os.fork() == 0:  # a daemon: new session, double fork, sleeps
        os.setsid()
        if os.fork() == 0:
            time.sleep(600)
        os._exit(0)
    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
    return {"spawned": True}


def _syscalls() -> dict:
    """Try what the seccomp filter must refuse (and a thread, which it must allow)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    out = {"fork": _try(lambda: os.fork() == 0 and os._exit(0)),
           "exec": _try(lambda: os.execv("/bin/true", ["true"])),
           "socket": _try(lambda: socket.socket().close()),
           "socketpair": _try(lambda: socket.socketpair()),
           "thread": _try(lambda: threading.Thread(target=lambda: None).start())}
    for name, call in {"unshare": lambda: libc.unshare(0x10000000),  # CLONE_NEWUSER
                       "ptrace": lambda: libc.ptrace(16, 1, 0, 0),  # PTRACE_ATTACH to pid 1
                       "mount": lambda: libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, None),
                       "setns": lambda: libc.setns(0, 0)}.items():
        rc = call()
        out[name] = "ok" if rc == 0 else os.strerror(ctypes.get_errno())
    return out


def _sysv_shm() -> int:
    """Create a System V shared memory segment (persists on the host without an ipc ns)."""
    import ctypes

    return ctypes.CDLL(None).shmget(0x7467, 4096, 0o1666)  # IPC_CREAT | 0666


def main() -> None:
    p = json.load(sys.stdin)
    case = p["case"]
    out: dict = {"case": case}
    if case == "echo":
        out.update(x=p["x"] * 2, uid=os.getuid(), cwd=os.getcwd(), env=sorted(os.environ),
                   home=os.environ.get("HOME"), cwd_writable=_try(lambda: _write("ok.txt")))
    elif case == "spin":
        while True:
            pass
    elif case == "sleep":
        time.sleep(600)
    elif case == "forkbomb":
        out.update(_forkbomb())
    elif case == "memory":
        block = bytearray(8 << 30)  # 8 GiB > the address-space limit: MemoryError
        out["allocated"] = len(block)
    elif case == "network":
        out["loopback"] = _try(lambda: _connect("127.0.0.1", p["port"]))
        out["external"] = _try(lambda: _connect("1.1.1.1", 53))
        _connect("1.1.1.1", 53)  # uncaught, so the failure reaches stderr
    elif case == "write":
        out.update({path: _try(lambda path=path: _write(path)) for path in p["paths"]})
    elif case == "read":
        out.update({path: _try(lambda path=path: _read(path)) for path in p["paths"]})
        out["listdir_root"] = _try(lambda: os.listdir("/root") and None)
        out["root_entries"] = os.listdir("/root") if os.access("/root", os.R_OK) else None
    elif case == "leave":
        out.update(_leave_behind())
    elif case == "flood":
        sys.stdout.write("x" * (3 << 20) + "\n")
    elif case == "syscalls":
        out.update(_syscalls())
    elif case == "ipc":
        out["shmid"] = _sysv_shm()
    elif case == "exists":
        out.update({path: os.path.lexists(path) for path in p["paths"]})
        out["writable"] = {path: _try(lambda path=path: _write(os.path.join(path, "w")))
                           for path in p.get("dirs", [])}
    elif case == "crash":
        os._exit(3)
    print(json.dumps(out))


def fs_probe(fd: int, paths: list[str]) -> None:
    """Fork-server target: report the walls as seen from inside, on the channel ``fd``."""
    out = {"uid": os.getuid(), "fork": _try(lambda: os.fork() == 0 and os._exit(0)),
           "kernel_modules": sorted(m for m in sys.modules if m.startswith("turngym.envs.kernel")),
           "read": {path: _try(lambda path=path: _read(path)) for path in paths}}
    with socket.socket(fileno=fd) as sock:
        sock.sendall(b"H" + json.dumps(out).encode())


if __name__ == "__main__":
    main()
