"""The images on the rehearsal's nodes (``NodeImages``, a part of ``cluster.Cluster``): K3s's
bundled parts built ``FROM scratch``, the project's own image (its Dockerfile, a debootstrap base)
loaded by ``scripts/image_ca4.sh load``, the stand-ins for public images, and importing them into
a node's containerd.
"""

from __future__ import annotations

import base64
import os
import shlex
import subprocess
from pathlib import Path

from local_stack.procs import note, step
from rehearsal import aws
from rehearsal.clusterbase import ClusterBase
from rehearsal.daemons import RehearsalError
from rehearsal.images import DebianBase, Image
from rehearsal.standins import StandIns, missing_note
from rehearsal.topology import Node

IMAGE_PREFIX = "localhost/ca4-rehearsal"  # "localhost/": containerd never resolves them on a registry


class NodeImages(ClusterBase):
    """The images a rehearsal cluster builds and puts on its nodes."""

    def _images(self) -> dict[str, Image]:
        """The images of K3s's bundled parts, each ``FROM scratch`` with its binary."""
        p, binary, build = self.builder.pins, self.builder.binary, self.buildah.from_files
        busybox = Path("/bin/busybox")  # Debian's busybox-static; /bin/sh for local-path's helper scripts
        with step("images: pause, busybox, CoreDNS, local-path, Traefik (buildah, from scratch)"):
            self.images = {
                "pause": build(f"{IMAGE_PREFIX}/pause:3.10", {"/pause": binary("pause")}, ["/pause"]),
                "busybox": build(
                    f"{IMAGE_PREFIX}/busybox:1.35",
                    {"/bin/busybox": busybox, "/bin/sh": busybox},
                    ["/bin/sh"],
                    user="0",  # root, as K3s's: local-path's helper pods make the volume folders
                ),
                "coredns": build(
                    f"{IMAGE_PREFIX}/coredns:{p.coredns}", {"/coredns": binary("coredns")}, ["/coredns"]
                ),
                "traefik": build(
                    f"{IMAGE_PREFIX}/traefik:{p.traefik}", {"/traefik": binary("traefik")}, ["/traefik"]
                ),
                "local-path": build(
                    f"{IMAGE_PREFIX}/local-path-provisioner:{p.local_path}",
                    {"/local-path-provisioner": binary("local-path-provisioner")},
                    ["/local-path-provisioner"],
                ),
            }
        return self.images

    def project_image(self) -> Image:
        """The project's image built (``build_project_image``) and loaded on every node by
        ``scripts/image_ca4.sh load``, the code path of ``make ca4-image-load``."""
        repo = Path(__file__).resolve().parents[2]
        image = self.build_project_image()
        with step("scripts/image_ca4.sh load: podman save | ssh -J bastion | k3s ctr import, on each node"):
            self.image_load(repo)
        return image

    def build_project_image(self) -> Image:
        """The project's own Dockerfile, built for real with buildah on a Debian 12 base made
        with debootstrap (BASE_IMAGE, trusting the rehearsal's "public" CA as Debian trusts the
        public ones), tagged as ``scripts/image_ca4.sh tag`` names it (so ``make ca4-image-build``
        finds it built). The image's DocumentDB CA bundle is the DocumentDB stand-in's CA."""
        repo = Path(__file__).resolve().parents[2]
        done = subprocess.run(
            [str(repo / "scripts" / "image_ca4.sh"), "tag"],
            env={**os.environ, "CA4_IMAGE_ALLOW_DIRTY": "1"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RehearsalError(f"scripts/image_ca4.sh tag: {done.stderr.strip()}")
        ref = done.stdout.strip()
        with step(f"the project's image {ref} (Dockerfile, buildah, a debootstrap base)"):
            self.aws.ensure_certificates()
            base = DebianBase(self.buildah).trusting(self.aws.public_ca.path("ca.crt"))
            ca = base64.b64encode(aws.documentdb_bundle(self.aws)).decode()
            image = self.buildah.dockerfile(
                ref, repo, {"BASE_IMAGE": base, "DOCUMENTDB_CA_BUNDLE_PEM_B64": ca}
            )
        self.images["project"] = image
        return image

    def image_load(self, repo: Path) -> None:
        """``scripts/image_ca4.sh load``, as ``make ca4-image-load`` runs it, against these nodes."""
        argv = self.scratch_var_lib([f"{repo}/scripts/image_ca4.sh", "load"])
        self.script(argv, timeout=900, what="scripts/image_ca4.sh load")

    def scratch_var_lib(self, argv: list[str]) -> list[str]:
        """``argv`` in a mount namespace whose /var/lib is a scratch folder of buildah's: podman
        keeps a blob cache in /var/lib/containers, which this machine must not keep."""
        scratch = self.buildah.root / "var-lib"
        scratch.mkdir(parents=True, exist_ok=True)
        script = f'mount --bind {shlex.quote(str(scratch))} /var/lib && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", *argv]

    def standin_images(self, load: bool = True) -> dict[str, Image]:
        """The stand-ins for the images the manifests pull from public registries (Kafka,
        Prometheus; ``standins``), built once and (``load``) imported into every node under the
        manifests' own names; says which ones cannot be had."""
        repo = Path(__file__).resolve().parents[2]
        standins = StandIns(repo, self.s.cache, self.builder, self.buildah)
        with step("stand-in images for apache/kafka and prom/prometheus (Maven, Go, Debian)"):
            images = standins.images()
            for node in self.topology.nodes if load else []:
                for image in images.values():
                    self.import_image(node, image)
        for line in missing_note():
            note(line)
        self.images.update(images)
        return images

    def import_image(self, node: Node, image: Image) -> None:
        """Import a saved image into the node's containerd, unless it holds it already; a
        stand-in is also tagged with the manifests' name (moved there when rebuilt)."""
        if image.ref not in self.ctr(node, "-n", "k8s.io", "images", "ls", "-q").stdout.split():
            done = self.ctr(node, "-n", "k8s.io", "images", "import", str(image.tar))
            if done.returncode != 0:
                raise RehearsalError(
                    f"{node.name}: importing {image.ref} failed: {done.stderr.strip()[-400:]}"
                )
        if image.alias:
            done = self.ctr(node, "-n", "k8s.io", "images", "tag", "--force", image.ref, image.alias)
            if done.returncode != 0:
                raise RehearsalError(
                    f"{node.name}: tagging {image.ref} as {image.alias} failed: {done.stderr.strip()[-400:]}"
                )
