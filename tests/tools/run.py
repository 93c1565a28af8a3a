"""Running a command from a test: bounded, its text output captured, its exit status left to the test."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` as the tests use it; the caller asserts on ``returncode`` and the output."""
    # fmt: off
    return subprocess.run(list(argv), env=env, cwd=cwd, input=input,
                          capture_output=True, text=True, timeout=timeout, check=False)
    # fmt: on
