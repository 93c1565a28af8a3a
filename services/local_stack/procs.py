"""Background processes with PID files and one log file each; progress lines for long steps."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from local_stack.config import StackConfig, port_env

# Popen handles of the processes this interpreter started: kept so they are reaped with
# wait() (no zombies) and never garbage-collected while running (ResourceWarning)
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class StackError(Exception):
    """A local-stack step failed; the message says what and what to do."""


@contextlib.contextmanager
def step(message: str) -> Iterator[None]:
    """Print ``message…`` then ``done 3.2 s`` (or ``FAILED``) on the same line."""
    print(f"{message}… ", end="", flush=True)
    started = time.monotonic()
    try:
        yield
    except BaseException:
        print("FAILED", flush=True)
        raise
    print(f"done {time.monotonic() - started:.1f} s", flush=True)


def note(message: str) -> None:
    """A progress line of its own."""
    print(message, flush=True)


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_free_port(cfg: StackConfig, field: str) -> None:
    """A ``StackError`` naming the port and the variable that moves it, when something else listens.

    ``field`` is the ``StackConfig`` port field (``"kafka_port"``); its variable is derived from it.
    """
    port = int(getattr(cfg, field))
    if port_open(port):
        raise StackError(f"port {port} is taken by another program; stop it or set {port_env(field)}")


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback URLs we build
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    log_file: Path | None = None,
    proc: Process | None = None,
) -> None:
    """Poll ``check`` until true; fail with the log's tail after ``timeout`` or if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and not proc.alive():
            raise StackError(f"{what}: the process exited during start-up{_tail(log_file)}")
        time.sleep(0.2)
    raise StackError(f"{what}: not ready after {timeout:.0f} s{_tail(log_file)}")


def _tail(log_file: Path | None, lines: int = 15) -> str:
    if log_file is None or not log_file.exists():
        return ""
    text = log_file.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- last lines of {log_file} ---\n" + "\n".join(text)


@dataclass(frozen=True)
class Process:
    """A named background process of the stack."""

    name: str
    run_dir: Path
    logs_dir: Path

    @property
    def pid_file(self) -> Path:
        """Holds the PID while the process runs."""
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        """stdout and stderr of the process."""
        return self.logs_dir / f"{self.name}.log"

    def _recorded_pid(self) -> int | None:
        """The PID in the PID file, whether or not that process still runs."""
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def pid(self) -> int | None:
        """The recorded PID, if that process still exists."""
        pid = self._recorded_pid()
        if pid is None:
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        if _is_zombie(pid):
            return None
        return pid

    def alive(self) -> bool:
        """The process is running."""
        return self.pid() is not None

    def start(self, argv: Sequence[str], env: dict[str, str], cwd: Path | None = None) -> int:
        """Start detached (own session), output appended to the log file; returns the PID."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                list(argv),
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _CHILDREN[proc.pid] = proc
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    def wait(self, timeout: float) -> int:
        """Exit code of a process this interpreter started, once it exits (``TimeoutExpired`` if not)."""
        # the PID file, not pid(): a child that already died is a zombie, which pid() hides
        pid = self._recorded_pid()
        child = _CHILDREN.get(pid) if pid is not None else None
        if child is None:
            raise StackError(f"{self.name} was not started by this process; its exit code is unknown")
        return child.wait(timeout=timeout)

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig``; False when the process is not running."""
        pid = self.pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        return True

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM, wait, then SIGKILL; True when it was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            _reap(pid)
            time.sleep(0.1)
        if self.pid() is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return True


def _reap(pid: int) -> None:
    # our own children must be waited for, or they linger as zombies
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _CHILDREN[pid]
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def run_checked(
    argv: Sequence[str],
    what: str,
    *,
    log_file: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 1800,
) -> None:
    """Run a setup command to completion, output to ``log_file``; readable error on failure."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        log.write(f"\n===== {' '.join(argv)}\n".encode())
        log.flush()
        try:
            result = subprocess.run(
                list(argv),
                env=env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"{what} took longer than {timeout:.0f} s{_tail(log_file)}") from exc
    if result.returncode != 0:
        raise StackError(f"{what} failed (exit {result.returncode}){_tail(log_file)}")


def base_env() -> dict[str, str]:
    """The environment a third-party server starts with: PATH and HOME only, nothing of ours."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(Path.home())),
    }


def python() -> str:
    """The interpreter the services run with (the one running the stack)."""
    return sys.executable
