"""The rehearsal's processes: PID files and logs under its state folder, started detached,
joined to a node's namespaces where they belong, waited for with a bound and a reason."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from local_stack.procs import Process, StackError

LIFETIME_S = 7 * 24 * 3600  # namespace holders sleep this long: a forgotten cluster ends by itself
WAIT_S = 180  # the longest any one wait of up takes


class RehearsalError(StackError):
    """A step of the rehearsal failed; the message says which and what was seen."""


class Daemons:
    """Named background processes of one rehearsal."""

    def __init__(self, state: Path) -> None:
        self.state = state

    def proc(self, name: str) -> Process:
        """A named daemon (PID file and log under the state folder)."""
        return Process(name, self.state / "run", self.state / "logs")

    def start(self, name: str, argv: list[str], *, join: str | None = None) -> Process:
        """Start a daemon unless it runs; ``join``: the holder whose mount and network
        namespaces it enters (``nsenter`` execs it: the PID is the daemon's own)."""
        proc = self.proc(name)
        if proc.alive():
            return proc
        if join is not None:
            pid = self.proc(join).pid()
            if pid is None:
                raise RehearsalError(f"{name}: its namespace holder {join} is not running")
            argv = ["nsenter", "-t", str(pid), "-m", "-n", "--", *argv]
        proc.start(argv, env=daemon_env())
        return proc

    def wait(
        self, what: str, check: Callable[[], object], proc: Process | None = None, timeout: float = WAIT_S
    ) -> None:
        """Poll ``check`` until it is true; fail naming ``what`` (and ``proc``'s log) after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if check():
                    return
            if proc is not None and not proc.alive():
                raise RehearsalError(f"{what}: {proc.name} exited{tail(proc.log_file)}")
            time.sleep(0.5)
        raise RehearsalError(f"{what}: not after {timeout:.0f} s{tail(proc.log_file if proc else None)}")

    def wait_holder(self, name: str) -> None:
        """A namespace holder has made its mounts (it execs ``sleep`` once they are done)."""
        holder = self.proc(name)
        self.wait(
            f"{name} mounting its namespace", lambda: _comm(holder.pid()) == "sleep", holder, timeout=20
        )


def _comm(pid: int | None) -> str:
    if pid is None:
        return ""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def daemon_env() -> dict[str, str]:
    """A small, fixed environment for the daemons (nothing of the caller's CA4_*, KUBECONFIG...)."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return env


def run(argv: list[str], what: str, timeout: float = 60) -> str:
    """Run a setup command; its stdout, or a RehearsalError naming ``what``."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RehearsalError(f"{what}: {done.stderr.strip()[-400:]}")
    return done.stdout


def tail(path: Path | None, lines: int = 12) -> str:
    """The end of a log, for an error message."""
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- last lines of {path} ---\n" + "\n".join(text)
