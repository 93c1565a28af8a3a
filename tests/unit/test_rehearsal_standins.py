"""The rehearsal's stand-in images: which manifest image each replaces, and the names it uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rehearsal import standins
from rehearsal.build import BuildError
from rehearsal.pins import REPO


def manifest_images() -> set[str]:
    """Every ``image:`` reference in the manifests."""
    found = set()
    for path in (REPO / "manifests").rglob("*.yaml"):
        found |= set(re.findall(r"^\s*image:\s*(\S+)\s*$", path.read_text(), flags=re.MULTILINE))
    return found


def test_every_public_image_of_the_manifests_is_stood_in_or_named_unavailable() -> None:
    recipes = standins.StandIns(REPO, Path("/nonexistent"), None, None)._recipes()  # type: ignore[arg-type]
    public = {ref for ref in manifest_images() if not ref.startswith("localhost/")}
    unaccounted = {
        ref for ref in public if ref not in recipes and ref.rsplit(":", 1)[0] not in standins.UNAVAILABLE
    }
    assert not unaccounted, f"manifest images neither stood in nor named unavailable: {sorted(unaccounted)}"
    assert set(recipes) == {"apache/kafka:4.1.1", "prom/prometheus:v3.10.0"}, sorted(recipes)


def test_the_kafka_stand_in_is_the_local_stacks_kafka_version() -> None:
    pom = (REPO / "services" / "local_stack" / "kafka-pom.xml").read_text()
    ref = standins.manifest_image(REPO, "platform/kafka-statefulset.yaml", "apache/kafka")
    assert f"<kafka.version>{ref.split(':')[1]}</kafka.version>" in pom, ref


@pytest.mark.parametrize(
    ("tag", "module"), [("v3.10.0", "v0.310.0"), ("v3.2.1", "v0.302.1"), ("v3.15.12", "v0.315.12")]
)
def test_prometheus_release_tags_map_to_its_go_module_versions_and_back(tag: str, module: str) -> None:
    assert standins.prometheus_module_version(tag) == module
    assert standins._release(module) == tag.removeprefix("v")


def test_a_prometheus_2_tag_is_refused_by_name() -> None:
    with pytest.raises(BuildError, match=r"prom/prometheus:v2\.55\.0 is not a 3\.x release tag"):
        standins.prometheus_module_version("v2.55.0")


@pytest.mark.parametrize(
    ("ref", "qualified"),
    [
        ("apache/kafka:4.1.1", "docker.io/apache/kafka:4.1.1"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("localhost/ca4-services:git-abc", "localhost/ca4-services:git-abc"),
        ("quay.io/prometheus/prometheus:v3.10.0", "quay.io/prometheus/prometheus:v3.10.0"),
        ("registry:5000/x/y:1", "registry:5000/x/y:1"),
    ],
)
def test_references_are_qualified_as_containerds_cri_looks_them_up(ref: str, qualified: str) -> None:
    assert standins.fully_qualified(ref) == qualified


def test_each_kafka_tool_script_runs_its_class_with_the_arguments() -> None:
    script = standins.kafka_tool_script("org.apache.kafka.tools.TopicCommand")
    assert script.startswith("#!/bin/bash\n")
    assert 'exec /opt/kafka/bin/kafka-run-class.sh org.apache.kafka.tools.TopicCommand "$@"' in script
    # the tools the project's scripts and alerts name are all there
    assert {"kafka-topics.sh", "kafka-configs.sh", "kafka-console-consumer.sh"} <= set(standins.KAFKA_TOOLS)


def test_the_context_digest_changes_with_content_and_mode_only(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("one")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_text("two")
    first = standins.tree_digest(tmp_path, extra="base")
    assert standins.tree_digest(tmp_path, extra="base") == first
    assert standins.tree_digest(tmp_path, extra="other base") != first
    (tmp_path / "sub" / "b").chmod(0o755)
    moded = standins.tree_digest(tmp_path, extra="base")
    assert moded != first
    (tmp_path / "a").write_text("changed")
    assert standins.tree_digest(tmp_path, extra="base") not in (first, moded)


def test_a_manifest_without_the_image_is_an_error_naming_both(tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "x.yaml").write_text("image: other/thing:1\n")
    with pytest.raises(BuildError, match=r"manifests/x.yaml has no 'image: apache/kafka:\.\.\.' line"):
        standins.manifest_image(tmp_path, "x.yaml", "apache/kafka")
