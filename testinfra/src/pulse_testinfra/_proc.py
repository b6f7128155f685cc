"""Small helpers shared by the server launchers: ports, child processes, log tails."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


class ServerStartError(RuntimeError):
    """A server did not become ready; the message carries the tail of its logs."""


def free_port(host: str = LOOPBACK) -> int:
    """A port that was free on ``host`` a moment ago."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Return ``count`` distinct ports that were free on ``host`` a moment ago."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def port_is_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 60) -> str:
    """Last ``lines`` lines of a log file ('' if it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _parent_death_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when this process dies.

    Linux only. PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is
    only used when launching from the main thread (pytest fixtures, CLIs).
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return preexec


def spawn(
    args: list[str],
    *,
    cwd: Path,
    log_path: Path,
    env: dict[str, str] | None = None,
    stdin_pipe: bool = False,
) -> subprocess.Popen[bytes]:
    """Start a server child process with stdout+stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_parent_death_preexec(),
            start_new_session=True,
        )


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill(proc)
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    return proc.returncode


def kill(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL (a crash, as far as the server can tell) and reap."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()


def run_coro_sync(factory: Callable[[], Coroutine[Any, Any, T]], timeout: float | None = None) -> T:
    """Run a coroutine to completion on a fresh event loop in a helper thread.

    Works whether or not the caller is itself inside a running event loop (sync
    fixtures used by async tests), at the price of blocking the caller.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, factory()).result(timeout=timeout)


class ManagedServer:
    """Lifecycle shared by the launchers: one child process, a workdir, restartable.

    Subclasses set ``_proc``, ``workdir`` and ``_owns_workdir`` and implement ``start``.
    """

    stop_timeout: float = 30.0
    _proc: subprocess.Popen[bytes] | None
    workdir: Path
    _owns_workdir: bool

    def start(self) -> Self:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float | None = None) -> int | None:
        """Graceful shutdown (SIGTERM, SIGKILL after ``timeout``); keeps data and ports."""
        proc, self._proc = self._proc, None
        return terminate(proc, self.stop_timeout if timeout is None else timeout)

    def kill(self) -> None:
        """SIGKILL the server, as in a crash; data and ports are kept."""
        proc, self._proc = self._proc, None
        kill(proc)

    def restart(self, *, hard: bool = False) -> Self:
        """Stop (or SIGKILL with ``hard=True``) and start on the same ports and data."""
        if hard:
            self.kill()
        else:
            self.stop()
        return self.start()

    def close(self) -> None:
        """Stop and remove the workdir if this object created it."""
        self.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
