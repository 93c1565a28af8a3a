"""Container images without a daemon or a registry: buildah (Debian's) writes docker-archive
tars, and each node's containerd imports them, as ``k3s ctr images import`` does on AWS.

buildah keeps its store under the CA4 cache (vfs driver). It also creates
``/var/lib/containers/cache`` and ``/etc/cni/net.d/cni.lock`` whatever ``--root`` says
(REHEARSAL.md): it runs in a private mount namespace whose ``/var/lib`` is a scratch folder,
and an ``/etc/cni`` it created is removed afterwards, so this machine keeps no trace.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BUILDAH_TIMEOUT_S = 900


class ImageError(RuntimeError):
    """An image could not be built or imported; the message has the command's output."""


@dataclass(frozen=True)
class Image:
    """An image and the tar it is saved in."""

    ref: str  # localhost/ca4-rehearsal/coredns:v1.15.0
    tar: Path


class Buildah:
    """buildah with its store in the cache, each call in a mount namespace of its own."""

    def __init__(self, cache: Path) -> None:
        self.root = cache / "rehearsal" / "buildah"
        self.images = cache / "rehearsal" / "images"

    def _run(self, args: Sequence[str], *, what: str) -> str:
        store = [
            "--root",
            str(self.root / "store"),
            "--runroot",
            str(self.root / "run"),
            "--storage-driver",
            "vfs",
        ]
        scratch = self.root / "var-lib"
        scratch.mkdir(parents=True, exist_ok=True)
        command = " ".join(shlex.quote(a) for a in ["buildah", *store, *args])
        script = f"mount --bind {shlex.quote(str(scratch))} /var/lib && exec {command}"
        had_cni = Path("/etc/cni").exists()
        try:
            done = subprocess.run(
                ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script],
                capture_output=True,
                text=True,
                timeout=BUILDAH_TIMEOUT_S,
                check=False,
            )
        finally:
            if not had_cni and Path("/etc/cni").exists():
                shutil.rmtree("/etc/cni", ignore_errors=True)
        if done.returncode != 0:
            raise ImageError(
                f"{what}: buildah {args[0]} failed: {(done.stderr or done.stdout).strip()[-800:]}"
            )
        return done.stdout.strip()

    def from_files(
        self, ref: str, files: dict[str, Path], entrypoint: Sequence[str], user: str = "65534"
    ) -> Image:
        """An image ``FROM scratch`` holding ``files`` (path in the image -> file here), saved as a tar;
        an image already saved is reused."""
        tar = self.images / (ref.replace("/", "_").replace(":", "_") + ".tar")
        if tar.exists():
            return Image(ref, tar)
        self.images.mkdir(parents=True, exist_ok=True)
        container = self._run(["from", "scratch"], what=ref)
        try:
            for inside, outside in files.items():
                self._run(["copy", "--chmod", "0755", container, str(outside), inside], what=ref)
            self._run(
                [
                    "config",
                    "--entrypoint",
                    _json_list(entrypoint),
                    "--user",
                    user,
                    "--label",
                    "ca4.rehearsal=true",
                    container,
                ],
                what=ref,
            )
            self._run(["commit", "--quiet", "--rm", container, ref], what=ref)
        except ImageError:
            self._run(["rm", container], what=ref)
            raise
        partial = tar.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        self._run(["push", "--quiet", ref, f"docker-archive:{partial}:{ref}"], what=ref)
        partial.rename(tar)
        return Image(ref, tar)


def _json_list(items: Sequence[str]) -> str:
    import json  # noqa: PLC0415

    return json.dumps(list(items))
