"""The Colab bundle: the producer and the event schema as one small zip, importable without pip.

A notebook needs ``ca4_producer`` and the ``ca4_events`` schema it validates with, and
nothing else from this repository. Both are pure Python and need only ``pydantic`` (>= 2.9)
and ``httpx``, which Colab runtimes already ship, so the zip goes straight onto
``sys.path`` (``zipimport``): no clone, no build step, no package index.

The zip is deterministic (sorted entries, fixed timestamps and modes), so the same sources
always give the same SHA-256, and a notebook can pin the bundle it trusts by that digest.
"""

from __future__ import annotations

import hashlib
import importlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("ca4_events", "ca4_producer")
BUNDLE_NAME = "ca4_producer.zip"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold


@dataclass(frozen=True)
class Bundle:
    """A built bundle: where it is, its SHA-256, and the files it holds."""

    path: Path
    sha256: str
    files: tuple[str, ...]


def _package_files(package: str) -> list[tuple[str, Path]]:
    root = Path(importlib.import_module(package).__file__ or "").parent
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix in (".py", ".typed", ".json")]
    return sorted(
        (f"{package}/{p.relative_to(root).as_posix()}", p) for p in files if "__pycache__" not in p.parts
    )


def build_bundle(out_dir: Path, name: str = BUNDLE_NAME) -> Bundle:
    """Write the bundle into ``out_dir`` and return its digest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / name
    entries = [entry for package in PACKAGES for entry in _package_files(package)]
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arcname, path in entries:
            info = zipfile.ZipInfo(arcname, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    return Bundle(path=target, sha256=digest, files=tuple(a for a, _ in entries))
