"""Checks for the tools the native local stack needs, each with how to get it."""

from __future__ import annotations

import re
import shutil
import subprocess

from local_stack.procs import StackError

HOW_TO = {
    "java": (
        "Java 17 or newer runs the Kafka broker.\n"
        "  Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y openjdk-17-jre-headless\n"
        "  macOS:         brew install openjdk@17"
    ),
    "mvn": (
        "Maven fetches Kafka's jars from Maven Central (first run only; they are cached).\n"
        "  Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y maven\n"
        "  macOS:         brew install maven"
    ),
    "go": (
        "Go 1.24 or newer builds FerretDB from the Go module proxy (first run only; cached).\n"
        "  Debian/Ubuntu: see https://go.dev/doc/install (Debian's golang package may be older)\n"
        "  macOS:         brew install go"
    ),
}


def require(tool: str, purpose: str) -> str:
    """Path of ``tool``, or a ``StackError`` naming it and how to install it."""
    path = shutil.which(tool)
    if path is None:
        raise StackError(f"'{tool}' was not found on PATH, and {purpose} needs it.\n{HOW_TO[tool]}")
    return path


def java_major(java: str) -> int:
    """Major version of ``java`` (``17`` for "17.0.15")."""
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def require_java(purpose: str) -> str:
    """A Java 17+ executable."""
    java = require("java", purpose)
    major = java_major(java)
    if major < 17:
        raise StackError(f"{java} is Java {major}; Kafka 4 needs Java 17 or newer.\n{HOW_TO['java']}")
    return java
