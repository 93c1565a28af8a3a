"""Stand-ins for the images the manifests pull from public registries, none of which is served
on the rehearsal's machine; each is the same software at the same version, built from a
registry that is (Maven Central, the Go module proxy, Debian's archive), and tagged with the
manifest's own reference, so the manifests run unchanged (``imagePullPolicy: IfNotPresent``
finds the image on the node). Those that cannot be had are named in ``UNAVAILABLE``.

- ``apache/kafka:4.1.1``: Debian with its Java 17 runtime, Kafka's jars from Maven Central,
  and ``standins/kafka``: the launcher ``/etc/kafka/docker/run`` (Kafka's own
  ``kafka.docker.KafkaDockerWrapper`` writes the properties and formats the storage, as in the
  official image), ``/opt/kafka/bin`` scripts, default configuration, uid 1000.
- ``prom/prometheus:v3.10.0``: ``github.com/prometheus/prometheus`` at the matching module
  version (3.10.0 is ``v0.310.0``), with the Kubernetes service discovery only (the build tags
  ``remove_all_sd,enable_kubernetes_sd``: the only discovery our configuration uses) and no
  bundled web UI (the HTTP API, which the checks and Grafana use, is all there).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from local_stack.kafka import COMPLETE_MARKER, maven_jars
from local_stack.procs import StackError
from rehearsal.build import Builder, Part
from rehearsal.gomod import BuildError, go_directive, module_file, module_replaces, wrapper_build
from rehearsal.images import Buildah, DebianBase, Image

STANDINS = Path(__file__).resolve().parent / "standins"

# The distribution's bin/ wrappers of the command-line tools: script -> main class (Kafka 4.1).
KAFKA_TOOLS = {
    "kafka-topics.sh": "org.apache.kafka.tools.TopicCommand",
    "kafka-configs.sh": "kafka.admin.ConfigCommand",
    "kafka-storage.sh": "kafka.tools.StorageTool",
    "kafka-metadata-quorum.sh": "org.apache.kafka.tools.MetadataQuorumCommand",
    "kafka-consumer-groups.sh": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-console-consumer.sh": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-console-producer.sh": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-broker-api-versions.sh": "org.apache.kafka.tools.BrokerApiVersionsCommand",
    "kafka-get-offsets.sh": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-features.sh": "org.apache.kafka.tools.FeatureCommand",
    "kafka-cluster.sh": "org.apache.kafka.tools.ClusterTool",
}

# What the manifests pull that cannot be had here, and why (checked against the Go proxy and
# the environment's package notes); the rehearsal says so instead of deploying them.
UNAVAILABLE = {
    "danielqsj/kafka-exporter": "github.com/danielqsj/kafka_exporter is refused by the Go module proxy (403)",
    "grafana/grafana": "github.com/grafana/grafana is refused by the Go module proxy (403) and is AGPL",
    "grafana/loki": "github.com/grafana/loki/v3 is AGPL, which this project may not build in",
    "grafana/alloy": "github.com/grafana/alloy is refused by the Go module proxy (403)",
}

PROMETHEUS_TAGS = "remove_all_sd,enable_kubernetes_sd"


def manifest_image(repo: Path, manifest: str, name: str) -> str:
    """The reference ``image: NAME:TAG`` in one of the manifests (the one place it is pinned)."""
    text = (repo / "manifests" / manifest).read_text()
    m = re.search(rf"^\s*image:\s*({re.escape(name)}:\S+)\s*$", text, flags=re.MULTILINE)
    if not m:
        raise BuildError(f"manifests/{manifest} has no 'image: {name}:...' line")
    return m.group(1)


def prometheus_module_version(image_tag: str) -> str:
    """Prometheus 3.x's Go module version for a release tag: v3.10.0 -> v0.310.0."""
    m = re.fullmatch(r"v3\.(\d+)\.(\d+)", image_tag)
    if not m:
        raise BuildError(f"prom/prometheus:{image_tag} is not a 3.x release tag")
    return f"v0.3{int(m.group(1)):02d}.{m.group(2)}"


def kafka_tool_script(main_class: str) -> str:
    """One ``/opt/kafka/bin`` wrapper: the class on the image's classpath."""
    return (
        "#!/bin/bash\n"
        "# A wrapper of the rehearsal's Kafka image, as in the distribution's bin/.\n"
        f'exec /opt/kafka/bin/kafka-run-class.sh {main_class} "$@"\n'
    )


@dataclass
class StandIns:
    """Builds the stand-in images once (cached like the cluster's parts) and names the rest."""

    repo: Path
    cache: Path
    builder: Builder
    buildah: Buildah

    def prometheus_part(self) -> Part:
        """Prometheus from its Go module, at the version of the manifest's image."""
        ref = manifest_image(self.repo, "monitoring/prometheus/prometheus.yaml", "prom/prometheus")
        return Part(
            "prometheus",
            prometheus_module_version(ref.rsplit(":", 1)[1]),
            ("prometheus",),
            _build_prometheus,
        )

    def images(self) -> dict[str, Image]:
        """Every stand-in, keyed by the manifest's reference."""
        return {ref: build() for ref, build in self._recipes().items()}

    def _recipes(self) -> dict[str, Callable[[], Image]]:
        kafka = manifest_image(self.repo, "platform/kafka-statefulset.yaml", "apache/kafka")
        prometheus = manifest_image(self.repo, "monitoring/prometheus/prometheus.yaml", "prom/prometheus")
        return {kafka: lambda: self.kafka(kafka), prometheus: lambda: self.prometheus(prometheus)}

    def kafka(self, ref: str) -> Image:
        """``apache/kafka:VERSION`` from Maven's jars on a Debian Java runtime."""
        version = ref.rsplit(":", 1)[1]
        pom = STANDINS / "kafka" / "pom.xml"
        local = (self.repo / "services" / "local_stack" / "kafka-pom.xml").read_text()
        if f"<kafka.version>{version}</kafka.version>" not in local:
            raise BuildError(
                f"{ref} in the manifests, but services/local_stack/kafka-pom.xml pins another Kafka"
            )
        context = self.cache / "rehearsal" / "context-kafka"
        libs = self._kafka_jars(pom, version)
        shutil.rmtree(context, ignore_errors=True)
        shutil.copytree(STANDINS / "kafka", context, ignore=shutil.ignore_patterns("pom.xml"))
        shutil.copytree(
            libs, context / "libs", ignore=shutil.ignore_patterns(COMPLETE_MARKER), copy_function=_link
        )
        for script, main_class in KAFKA_TOOLS.items():
            (context / "bin" / script).write_text(kafka_tool_script(main_class))
            (context / "bin" / script).chmod(0o755)
        base = DebianBase(self.buildah, name="debian-java", packages=("openjdk-17-jre-headless",)).ensure()
        key = tree_digest(context, extra=base)
        try:
            return self.buildah.dockerfile(
                f"localhost/ca4-rehearsal/kafka:{version}-{key}",
                context,
                {"BASE_IMAGE": base},
                alias=fully_qualified(ref),
            )
        finally:
            shutil.rmtree(context, ignore_errors=True)

    def _kafka_jars(self, pom: Path, version: str) -> Path:
        libs = self.cache / "rehearsal" / f"kafka-{version}-image-libs"
        try:
            return maven_jars(pom, libs, "kafka-tools", self.cache / "logs" / "mvn-kafka-image.log")
        except StackError as exc:
            raise BuildError(str(exc)) from None

    def prometheus(self, ref: str) -> Image:
        """``prom/prometheus:VERSION`` from its Go module, the binary at the image's path."""
        part = self.prometheus_part()
        self.builder.ensure_parts([part])
        binary = self.builder.bin_dir(part) / "prometheus"
        # the official image runs /bin/prometheus as nobody with /prometheus as its data folder
        return self.buildah.from_files(
            f"localhost/ca4-rehearsal/prometheus:{ref.rsplit(':', 1)[1]}",
            {"/bin/prometheus": binary},
            entrypoint=["/bin/prometheus"],
            alias=fully_qualified(ref),
        )


def fully_qualified(ref: str) -> str:
    """The name containerd's CRI looks an image up by: apache/kafka:4.1.1 is
    docker.io/apache/kafka:4.1.1, busybox:1 is docker.io/library/busybox:1."""
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return ref
    return f"docker.io/{ref}" if "/" in ref else f"docker.io/library/{ref}"


def tree_digest(folder: Path, extra: str = "") -> str:
    """Ten hex digits of a digest of every file's path, mode and content under ``folder``."""
    digest = hashlib.sha256(extra.encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder)}:{path.stat().st_mode & 0o777:o}".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:10]


def _link(src: str, dst: str) -> object:
    """Hard-link a jar into the build context (same file system), else copy it."""
    try:
        Path(dst).hardlink_to(src)
    except OSError:
        return shutil.copy2(src, dst)
    return dst


def _build_prometheus(builder: Builder, part: Part, out: Path) -> None:
    module = "github.com/prometheus/prometheus"
    _, gomod = module_file(builder, module, part.version)
    flags = " ".join(
        [
            "-s",
            "-w",
            f"-X github.com/prometheus/common/version.Version={_release(part.version)}",
            "-X github.com/prometheus/common/version.Branch=ca4-rehearsal",
        ]
    )
    wrapper_build(
        builder,
        "prometheus",
        [(module, part.version)],
        [f"{module}/cmd/prometheus"],
        replaces=module_replaces(gomod),
        out=out,
        flags=flags,
        go=go_directive(gomod),
        tags=PROMETHEUS_TAGS,
    )


def _release(module_version: str) -> str:
    """v0.310.0 -> 3.10.0 (what ``prometheus --version`` says for the official build)."""
    m = re.fullmatch(r"v0\.3(\d\d)\.(\d+)", module_version)
    if not m:
        raise BuildError(f"{module_version} is not a Prometheus 3.x module version")
    return f"3.{int(m.group(1))}.{m.group(2)}"


def missing_note() -> list[str]:
    """One line per image that cannot be had, for the start-up output."""
    return [f"{ref}: not available here ({why})" for ref, why in UNAVAILABLE.items()]
