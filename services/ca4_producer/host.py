"""The host around the accelerators: CPU, memory, OS, Python, platform and framework versions.

Everything here is cheap and import-free: framework versions come from package metadata, so
describing a host never imports torch or jax (seconds each, and they may claim a GPU).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import socket
from collections.abc import Mapping
from importlib import metadata
from typing import Literal

from ca4_events.schema import HostInfo

Provider = Literal["colab", "gcp", "aws", "azure", "onprem", "other"]

# distribution name -> the key the event's software.framework uses
_FRAMEWORKS = {"torch": "torch", "jax": "jax", "jaxlib": "jaxlib", "tensorflow": "tensorflow"}


def host_info() -> HostInfo:
    """CPU count, physical memory, OS and Python version of this machine."""
    memory: int | None = None
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not every OS has these sysconf names
        memory = None
    return HostInfo(
        cpu_count=os.cpu_count(),
        memory_total_bytes=memory if memory and memory > 0 else None,
        os=platform.platform()[:256] or None,
        python_version=platform.python_version(),
    )


def in_colab(env: Mapping[str, str] | None = None) -> bool:
    """True inside a Google Colab runtime."""
    env = os.environ if env is None else env
    if env.get("COLAB_RELEASE_TAG") or env.get("COLAB_GPU") is not None:
        return True
    try:
        return importlib.util.find_spec("google.colab") is not None
    except ModuleNotFoundError:  # no "google" namespace package at all
        return False


def detect_provider(env: Mapping[str, str] | None = None) -> Provider:
    """``colab`` inside Colab, else ``onprem``; pass ``provider=`` to the collector to say more."""
    return "colab" if in_colab(env) else "onprem"


def hostname() -> str:
    """This machine's name (Colab runtimes get a random one per session)."""
    return socket.gethostname() or "unknown-host"


def framework_versions() -> dict[str, str]:
    """Installed ML framework versions, read from package metadata (nothing is imported)."""
    found: dict[str, str] = {}
    for dist, key in _FRAMEWORKS.items():
        try:
            found[key] = metadata.version(dist)[:128]
        except metadata.PackageNotFoundError:
            continue
    return found
