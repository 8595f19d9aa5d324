"""Warm fork server: a pre-imported template process forks every sandboxed child (issue 17).

Starting ``python`` and importing torch costs ~2 s per evaluation; forking a process that
already imported it costs milliseconds. :class:`ForkServer` starts one *template* process
(``python -I``, root if the caller is) that imports the modules named in ``preload`` and
calls their ``warm()``, then waits on a control socket. For each :meth:`ForkServer.spawn` it
forks a child, which puts up the same walls as :func:`~turngym.envs.kernel.sandbox.
run_in_sandbox` *after* the fork (new session, namespaces, minimal read-only root, own uid,
rlimits, seccomp: ``_sandbox_boot.enter``) and then runs ``target(channel_fd, **args)``. The
template never runs candidate code and never receives any: it only forks; code and data
reach each child over that child's own channel from the grader.

The template reports each child's exit status and CPU time (``wait4``, so the number comes
from outside the child). :class:`SandboxChild` is the host's handle: the grader's end of the
channel, the process, and :meth:`SandboxChild.finish`, which kills what is left, sweeps the
child's uid and turns the walls' report into a :class:`~turngym.envs.kernel.sandbox.
SandboxResult`.

Example::

    server = ForkServer()
    child = server.spawn("turngym.envs.kernel.harness:serve", {"role": "replay"})
    ...  # talk on child.channel
    result = child.finish()
"""

from __future__ import annotations

import atexit
import fcntl
import gc
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from typing import Any

from turngym.envs.kernel import sandbox as sb
from turngym.envs.kernel._sandbox_uids import _LEASES, _kill_uid

__all__ = ["ForkServer", "SandboxChild", "default_server", "package_hide_paths"]

_SHIM = (
    "import json, sys; cfg = json.loads(sys.argv[1]); sys.path[:0] = cfg['sys_path']; "
    "from turngym.envs.kernel.forkserver import template_main; template_main(cfg)"
)
_READY_TIMEOUT = 300.0


def package_hide_paths() -> tuple[str, ...]:
    """The turngym package (its oracles) and a checkout's ``tests`` dir: hidden in children."""
    import turngym

    hide = [os.path.realpath(p) for p in turngym.__path__]
    for pkg in list(hide):
        tests = os.path.join(os.path.dirname(pkg), "tests")
        if os.path.isdir(tests):
            hide.append(tests)
    return tuple(hide)


class SandboxChild:
    """A live child of the fork server: its channel and, at the end, its SandboxResult."""

    def __init__(self, server: ForkServer, pid: int, channel: socket.socket, cfg: dict,
                 limits: sb.SandboxLimits, lease_fd: int | None, report_fd: int,
                 err: sb._TailReader, start: float) -> None:
        self.server, self.pid, self.channel, self.cfg = server, pid, channel, cfg
        self.limits, self._lease_fd, self._report_fd, self._err = limits, lease_fd, report_fd, err
        self.start = start
        self.result: sb.SandboxResult | None = None

    def alive(self) -> bool:
        """Whether the child is still running (no exit record, template alive)."""
        return self.result is None and self.server.alive() and self.pid not in self.server._exits

    def kill(self) -> None:
        """SIGKILL the child's process group (its pid namespace dies with init)."""
        for kill in (os.killpg, os.kill):
            try:
                kill(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def finish(self, timed_out: bool = False, grace: float = 2.0) -> sb.SandboxResult:
        """Close the channel, wait ``grace`` seconds, kill the rest and collect the result."""
        if self.result is not None:
            return self.result
        try:
            self.channel.close()
        except OSError:
            pass
        exit_info = self.server.wait_exit(self.pid, grace)
        if exit_info is None:
            self.kill()
            exit_info = self.server.wait_exit(self.pid, 10.0) or {}
        cfg, limits = self.cfg, self.limits
        try:
            report = sb.read_reports(self._report_fd)
            self._err.join(timeout=5)
            stderr = self._err.data.decode(errors="replace")
            code = report.get("exit_code", exit_info.get("code"))
            violations = sb.sandbox_violations(report, cfg, timed_out, code, stderr, limits)
        finally:
            shutil.rmtree(cfg["workdir"], ignore_errors=True)
            if self._lease_fd is not None:
                _LEASES.release(self._lease_fd)
        self.result = sb.SandboxResult(
            ok=code == 0 and not timed_out, result=None, timed_out=timed_out,
            exit_code=None if timed_out else code, stderr_tail=stderr[-4000:],
            violations=violations, wall_seconds=time.monotonic() - self.start,
            notes=sb.outcome_notes(report, cfg["uid"], limits),
            cpu_seconds=exit_info.get("cpu_s"),
        )
        return self.result


class ForkServer:
    """One warm template process per host process; thread-safe :meth:`spawn`.

    Args:
        preload: Modules the template imports (and whose ``warm()`` it calls) before forking.
        sys_path: Import dirs for the template; default: the dir holding ``turngym`` first,
            then the caller's ``sys.path`` (an editable install, a wheel or a checkout anywhere).
    """

    def __init__(self, preload: tuple[str, ...] = ("turngym.envs.kernel.harness",),
                 sys_path: list[str] | None = None) -> None:
        self.preload = preload
        self._sys_path = sys_path
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._exits: dict[int, dict] = {}
        self._replies: dict[str, dict] = {}
        self._proc: subprocess.Popen | None = None
        self._ctrl: socket.socket | None = None
        self._home = ""

    def _paths(self) -> list[str]:
        import turngym

        roots = [os.path.dirname(os.path.realpath(p)) for p in turngym.__path__]
        return sb.check_sys_path([*roots, *(self._sys_path or [])])

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._home = f"/tmp/turngym-template-{uuid.uuid4().hex[:12]}"
        os.makedirs(self._home)
        os.chmod(self._home, 0o711)  # children may reach their own dir below, not list others
        env = sb.child_env(self._home, sb.SandboxLimits(triton_interpret=True))
        cfg = {"sys_path": self._paths(), "ctrl_fd": theirs.fileno(), "preload": self.preload}
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _SHIM, json.dumps(cfg)], pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=env, cwd="/", start_new_session=True,
        )
        theirs.close()
        ours.settimeout(_READY_TIMEOUT)
        try:
            ready = json.loads(ours.recv(1 << 16) or b"{}")
        except (OSError, ValueError):
            ready = {}
        if not ready.get("ready"):
            stderr = self._proc.stderr if self._proc else None
            err = stderr.read().decode(errors="replace")[-2000:] if stderr else ""
            self.close()
            raise RuntimeError(f"the sandbox fork server did not start:\n{err}")
        ours.settimeout(None)
        self._ctrl = ours
        threading.Thread(target=self._reader, daemon=True, name="forkserver-reader").start()

    def _reader(self) -> None:
        ctrl = self._ctrl
        while ctrl is not None:
            try:
                msg = ctrl.recv(1 << 16)
            except OSError:
                msg = b""
            if not msg:
                break
            data = json.loads(msg)
            with self._cond:
                if "exit" in data:
                    self._exits[data["exit"]] = data
                else:
                    self._replies[data["id"]] = data
                self._cond.notify_all()
        with self._cond:  # the template died: every child is gone with it
            self._exits.setdefault(-1, {})
            self._cond.notify_all()

    def wait_exit(self, pid: int, timeout: float) -> dict | None:
        """The template's exit record for ``pid`` (``code``, ``cpu_s``), or ``None``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while pid not in self._exits:
                left = deadline - time.monotonic()
                if left <= 0 or -1 in self._exits:
                    return self._exits.pop(pid, None)
                self._cond.wait(left)
            return self._exits.pop(pid)

    def alive(self) -> bool:
        """Whether the template process is running."""
        return self._proc is not None and self._proc.poll() is None and -1 not in self._exits

    def ensure_started(self) -> None:
        """Start (or restart) the template; its start-up is nobody's evaluation time."""
        with self._lock:
            if not self.alive():
                self.close()
                self._exits.clear()
                self._start()

    def spawn(self, target: str, args: dict[str, Any], limits: sb.SandboxLimits | None = None,
              lease: tuple[int, int] | None = None) -> SandboxChild:  # fmt: skip
        """Fork a walled child running ``target(channel_fd, **args)`` (``"module:function"``).

        ``lease``: a ``(uid, lock_fd)`` the caller took for it (see
        :meth:`~turngym.envs.kernel._sandbox_uids._UidLeases.acquire_many`); the child owns it
        from here on. Without one (as root), a uid is leased here.
        """
        limits = limits or sb.SandboxLimits()
        if lease is None and os.geteuid() == 0:
            lease = _LEASES.acquire()
        try:
            return self._spawn(target, args, limits, lease)
        except BaseException:
            if lease is not None:
                _LEASES.release(lease[1])
            raise

    def _spawn(self, target: str, args: dict[str, Any], limits: sb.SandboxLimits,
               lease: tuple[int, int] | None) -> SandboxChild:  # fmt: skip
        self.ensure_started()
        uid, lease_fd = lease if lease is not None else (None, None)
        start = time.monotonic()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        err_r, err_w = os.pipe()
        report_r, report_w = os.pipe()
        # Below the template's home: one host dir for every child, removed by close() (atexit).
        workdir = f"{self._home}/sbx-{uuid.uuid4().hex[:12]}"
        try:
            cfg = sb.boot_config(workdir, uid, limits, self._paths(), 4)
            if uid is not None and not cfg["namespaces"]:
                _kill_uid(uid)
            os.makedirs(workdir, mode=0o700)
            if not cfg["namespaces"] and cfg["uid"] is not None:
                os.chown(workdir, cfg["uid"], cfg["gid"])
            req_id = uuid.uuid4().hex
            env = sb.child_env(workdir, limits)
            msg = json.dumps({"id": req_id, "boot": cfg, "target": target, "args": args,
                              "env": env}).encode()
            with self._lock:
                if self._ctrl is None:  # a concurrent restart of the template failed
                    raise RuntimeError("the sandbox fork server is not running")
                socket.send_fds(self._ctrl, [msg], [theirs.fileno(), err_w, report_w])
            pid = self._await_reply(req_id)["pid"]
        except BaseException:
            for fd in (err_r, report_r):
                os.close(fd)
            ours.close()
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        finally:
            theirs.close()
            os.close(err_w)
            os.close(report_w)
        err = sb._TailReader(err_r, sb._STDERR_KEEP)
        return SandboxChild(self, pid, ours, cfg, limits, lease_fd, report_r, err, start)

    def _await_reply(self, req_id: str) -> dict:
        deadline = time.monotonic() + 60
        with self._cond:
            while req_id not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or -1 in self._exits:
                    raise RuntimeError("the sandbox fork server did not answer a spawn request")
                self._cond.wait(left)
            return self._replies.pop(req_id)

    def close(self) -> None:
        """Stop the template (its children are killed by their own owners' timeouts)."""
        if self._ctrl is not None:
            self._ctrl.close()
            self._ctrl = None
        if self._proc is not None:
            try:
                self._proc.kill()
            except OSError:
                pass
            self._proc.wait()
            if self._proc.stderr:
                self._proc.stderr.close()
            self._proc = None
        if self._home:
            shutil.rmtree(self._home, ignore_errors=True)


_DEFAULT: ForkServer | None = None
_DEFAULT_LOCK = threading.Lock()


def default_server() -> ForkServer:
    """The process-wide fork server (started on first use; restarted if it died)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = ForkServer()
            atexit.register(_DEFAULT.close)
        return _DEFAULT


# --- Template side ----------------------------------------------------------------------------
def _reap(ctrl: socket.socket) -> None:
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        cpu = round(usage.ru_utime + usage.ru_stime, 6)
        ctrl.send(json.dumps({"exit": pid, "code": code, "cpu_s": cpu}).encode())


def _child(req: dict, fds: list[int], ctrl: socket.socket, wake: tuple[int, int]) -> None:
    """In the forked child: own session, stdio, fds 3 (channel) and 4 (report), walls, run."""
    from turngym.envs.kernel import _sandbox_boot as boot

    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        ctrl.detach()
        os.setsid()
        boot._libc.prctl(boot.PR_SET_PDEATHSIG, signal.SIGKILL)
        channel, err, report = fds
        devnull = os.open("/dev/null", os.O_RDWR)
        # Move everything above the target numbers first, so no dup2 clobbers a source.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 64) for fd in (devnull, err, err, channel, report)]
        for dst, src in enumerate(high):
            os.dup2(src, dst)
        os.closerange(5, 1 << 16)
        os.environ.clear()
        os.environ.update(req["env"])
        module, name = req["target"].split(":")
        target = getattr(sys.modules[module], name)
        cfg = dict(req["boot"], report_fd=4)
        args = req["args"]
        del req, fds, ctrl, wake
        boot.enter(cfg, lambda: target(3, **args))
    finally:
        os._exit(127)


def template_main(cfg: dict) -> None:
    """The template: preload, say ready, then fork one walled child per request."""
    import importlib

    # No PR_SET_PDEATHSIG here: it fires when the host *thread* that started us exits (a pool
    # thread, say). The template ends instead when the control socket closes (host gone).
    ctrl = socket.socket(fileno=cfg["ctrl_fd"])
    for name in cfg["preload"]:
        module = importlib.import_module(name)
        if hasattr(module, "warm"):
            module.warm()
    importlib.import_module("turngym.envs.kernel._sandbox_boot")
    # Children share the template's pages copy-on-write; keep the collector from touching
    # (and so copying) every preloaded object in every child.
    gc.collect()
    gc.freeze()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    ctrl.send(json.dumps({"ready": True, "pid": os.getpid()}).encode())
    while True:
        watched: list[socket.socket | int] = [ctrl, wake_r]
        ready, _, _ = select.select(watched, [], [])
        if wake_r in ready:
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
            _reap(ctrl)
        if ctrl not in ready:
            continue
        msg, fds, _, _ = socket.recv_fds(ctrl, 1 << 20, 8)
        if not msg:
            os._exit(0)
        req = json.loads(msg)
        pid = os.fork()
        if pid == 0:
            _child(req, list(fds), ctrl, (wake_r, wake_w))
        for fd in fds:
            os.close(fd)
        ctrl.send(json.dumps({"id": req["id"], "pid": pid}).encode())
        _reap(ctrl)


def with_hidden_package(limits: sb.SandboxLimits) -> sb.SandboxLimits:
    """``limits`` with the package's oracles and tests added to ``hide_paths``."""
    return replace(limits, hide_paths=tuple(dict.fromkeys((*limits.hide_paths,
                                                           *package_hide_paths()))))
