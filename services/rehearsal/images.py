"""Container images without a daemon or a registry: buildah (Debian's) writes docker-archive
tars, and each node's containerd imports them, as ``k3s ctr images import`` does on AWS.

buildah keeps its store under the CA4 cache (vfs driver). It also creates
``/var/lib/containers/cache`` and ``/etc/cni/net.d/cni.lock`` whatever ``--root`` says
(REHEARSAL.md): it runs in a private mount namespace whose ``/var/lib`` is a scratch folder,
and an ``/etc/cni`` it created is removed afterwards, so this machine keeps no trace.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BUILDAH_TIMEOUT_S = 900
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


class ImageError(RuntimeError):
    """An image could not be built or imported; the message has the command's output."""


@dataclass(frozen=True)
class Image:
    """An image and the tar it is saved in."""

    ref: str  # localhost/ca4-rehearsal/coredns:v1.14.1-<digest of its content>
    tar: Path
    # the name the manifests use, for a stand-in (docker.io/apache/kafka:4.1.1): each node
    # tags the imported image with it
    alias: str | None = None


class Buildah:
    """buildah with its store in the cache, each call in a mount namespace of its own."""

    def __init__(self, cache: Path) -> None:
        self.root = cache / "rehearsal" / "buildah"
        self.images = cache / "rehearsal" / "images"

    def run(self, args: Sequence[str], *, what: str) -> str:
        """One buildah command with the rehearsal's store, in a mount namespace of its own."""
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
        self,
        name: str,
        files: dict[str, Path],
        entrypoint: Sequence[str],
        user: str = "65534",
        alias: str | None = None,
    ) -> Image:
        """An image ``FROM scratch`` holding ``files`` (path in the image -> file here), saved as a
        tar. Its tag ends in a digest of what goes in, so a changed binary is a new image (the
        nodes keep their images across down/up) and the same content is never built twice."""
        digest = hashlib.sha256(json.dumps([list(entrypoint), user]).encode())
        for inside, outside in sorted(files.items()):
            digest.update(inside.encode())
            digest.update(hashlib.sha256(outside.read_bytes()).digest())
        ref = f"{name}-{digest.hexdigest()[:10]}"
        tar = self.images / (ref.replace("/", "_").replace(":", "_") + ".tar")
        if tar.exists():
            return Image(ref, tar, alias)
        self.images.mkdir(parents=True, exist_ok=True)
        container = self.run(["from", "scratch"], what=ref)
        try:
            for inside, outside in files.items():
                self.run(["copy", "--chmod", "0755", container, str(outside), inside], what=ref)
            self.run(
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
            self.run(["commit", "--quiet", "--rm", container, ref], what=ref)
        except ImageError:
            self.run(["rm", container], what=ref)
            raise
        partial = tar.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        self.run(["push", "--quiet", ref, f"docker-archive:{partial}:{ref}"], what=ref)
        partial.rename(tar)
        self.prune(ref, tar)
        return Image(ref, tar, alias)

    def prune(self, ref: str, keep: Path) -> None:
        """Drop the saved tars and the store's tags of the same image at other tags (an earlier
        commit's project image, a rebuilt stand-in): the cache holds one of each, not a history."""
        repo = ref.rsplit(":", 1)[0]
        prefix = repo.replace("/", "_").replace(":", "_") + "_"
        for old in self.images.glob(f"{prefix}*.tar"):
            if old != keep:
                old.unlink(missing_ok=True)
                old.with_suffix(".args").unlink(missing_ok=True)
        listed = self.run(["images", "--format", "{{.Name}}:{{.Tag}}"], what="buildah images")
        for other in listed.split():
            if other.rsplit(":", 1)[0] == repo and other != ref:
                with contextlib.suppress(ImageError):
                    self.run(["rmi", other], what=other)

    def has(self, ref: str) -> bool:
        """The image is in buildah's store."""
        try:
            self.run(["inspect", "--type", "image", ref], what=ref)
        except ImageError:
            return False
        return True

    def dockerfile(
        self, ref: str, context: Path, build_args: dict[str, str], alias: str | None = None
    ) -> Image:
        """``buildah bud`` of the context's Dockerfile (RUN steps on this machine's network, for
        PyPI), saved as a tar; the same reference already saved with the same build arguments is
        reused. The arguments count: the project's image of one rehearsal embeds its stand-ins'
        CAs, which another rehearsal's (tests/rehearsal's, say) do not sign."""
        tar = self.images / (ref.replace("/", "_").replace(":", "_") + ".tar")
        digest = hashlib.sha256(json.dumps(build_args, sort_keys=True).encode()).hexdigest()
        built_with = tar.with_suffix(".args")
        if tar.exists() and built_with.exists() and built_with.read_text().strip() == digest:
            return Image(ref, tar, alias)
        self.images.mkdir(parents=True, exist_ok=True)
        args = ["bud", "--quiet", "--isolation", "chroot", "--network", "host", "--pull-never", "--layers"]
        # the RUN steps trust what this machine trusts (its egress may inspect TLS with its own
        # CA): its bundle over the image's, for the build only; nothing of it stays in a layer
        if HOST_CA_BUNDLE.exists():
            args += ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
        for key, value in build_args.items():
            args += ["--build-arg", f"{key}={value}"]
        self.run([*args, "-t", ref, "-f", str(context / "Dockerfile"), str(context)], what=ref)
        partial = tar.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        self.run(["push", "--quiet", ref, f"docker-archive:{partial}:{ref}"], what=ref)
        partial.rename(tar)
        built_with.write_text(digest + "\n")
        self.prune(ref, tar)
        return Image(ref, tar, alias)


def _json_list(items: Sequence[str]) -> str:
    return json.dumps(list(items))


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses (debootstrap fetches from the same place)."""
    for source in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in source.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    for line in (
        Path("/etc/apt/sources.list").read_text().splitlines()
        if Path("/etc/apt/sources.list").exists()
        else []
    ):
        parts = line.split()
        if parts[:1] == ["deb"] and len(parts) > 2 and "security" not in parts[1]:
            return parts[1]
    return "http://deb.debian.org/debian"


class DebianBase:
    """A Debian 12 image made with debootstrap from this machine's apt mirror: by default with
    Python, the base the project's Dockerfile gets as BASE_IMAGE where no registry serves
    python:slim; with other packages, the base of a stand-in (Java for Kafka)."""

    SUITE = "bookworm"
    PACKAGES = ("python3", "python3-pip")
    TIMEOUT_S = 1200

    def __init__(
        self, buildah: Buildah, name: str = "debian-python", packages: Sequence[str] = PACKAGES
    ) -> None:
        self.buildah = buildah
        self.name = name
        self.packages = (*packages, "ca-certificates")

    def ensure(self) -> str:
        """The image reference in buildah's store (made once: one to three minutes)."""
        mirror = apt_mirror()
        key = hashlib.sha256(json.dumps([self.SUITE, mirror, self.packages]).encode()).hexdigest()[:10]
        ref = f"localhost/ca4-rehearsal/{self.name}:{self.SUITE}-{key}"
        if self.buildah.has(ref):
            return ref
        rootfs = self.buildah.root / f"rootfs-{key}"
        shutil.rmtree(rootfs, ignore_errors=True)
        script = (
            f"debootstrap --variant=minbase --include={','.join(self.packages)} "
            f"{self.SUITE} {shlex.quote(str(rootfs))} {shlex.quote(mirror)}"
        )
        # debootstrap mounts /proc and /sys inside the target: in a namespace of its own
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=self.TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise ImageError(
                f"debootstrap {self.SUITE} from {mirror} failed: {(done.stdout + done.stderr)[-800:]}"
            )
        for trimmed in (
            "dev",
            "proc",
            "sys",
            "var/cache/apt",
            "var/lib/apt/lists",
            "usr/share/doc",
            "usr/share/man",
        ):
            target = rootfs / trimmed
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True, exist_ok=True)
        container = self.buildah.run(["from", "scratch"], what=ref)
        self.buildah.run(["copy", container, str(rootfs), "/"], what=ref)
        self.buildah.run(
            ["config", "--cmd", '["/usr/bin/python3"]', "--label", "ca4.rehearsal=true", container], what=ref
        )
        self.buildah.run(["commit", "--quiet", "--rm", container, ref], what=ref)
        shutil.rmtree(rootfs, ignore_errors=True)
        return ref

    def trusting(self, ca: Path) -> str:
        """This base with one more CA in its system trust store, and AWS_CA_BUNDLE naming that
        store (botocore reads its own bundle otherwise): how an image trusts the rehearsal's
        "public" CA, which signs the S3 stand-in, as a Debian image trusts the public CAs."""
        base = self.ensure()
        key = hashlib.sha256(base.encode() + ca.read_bytes()).hexdigest()[:10]
        ref = f"localhost/ca4-rehearsal/{self.name}-trusting:{key}"
        if self.buildah.has(ref):
            return ref
        with tempfile.TemporaryDirectory(prefix="ca4-trusting-") as tmp:
            shutil.copy(ca, Path(tmp) / "ca.crt")
            (Path(tmp) / "Dockerfile").write_text(
                f"FROM {base}\n"
                "COPY ca.crt /usr/local/share/ca-certificates/ca4-rehearsal-public.crt\n"
                "RUN update-ca-certificates\n"
                "ENV AWS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt\n"
            )
            args = ["bud", "--quiet", "--isolation", "chroot", "--pull-never", "-t", ref, tmp]
            self.buildah.run(args, what=ref)
        return ref
