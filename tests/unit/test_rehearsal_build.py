"""How the rehearsal cluster's Go parts are put together (no Go run here: the rehearsal tests build)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rehearsal import build
from rehearsal.pins import DEBIAN_COMMANDS, REPO, Pins, pins


def test_the_cluster_part_holds_every_binary_the_cluster_starts_and_one_per_name() -> None:
    parts = {p.name: p for p in build.Builder(Path("/nonexistent")).parts()}
    assert set(parts) == {"cluster", "kine", "local-path-provisioner"}, sorted(parts)
    binaries = parts["cluster"].binaries
    expected = {*build.KUBE_COMMANDS, "traefik", "kube-router", "coredns", "pause"}
    assert set(binaries) == expected and len(binaries) == len(expected), binaries


def test_our_two_mains_exist_and_the_modules_own_packages_are_under_them() -> None:
    modules = build.cluster_modules(pins())
    mains = [m for module in modules for m in module.mains]
    assert mains == ["kube-router", "coredns"], mains
    for main in mains:
        assert (build.GOMAIN / main / "main.go").read_text().startswith("// "), main
    kube = modules[0]
    assert kube.imports == [f"k8s.io/kubernetes/cmd/{c}" for c in build.KUBE_COMMANDS], kube.imports


def test_the_part_key_changes_with_a_pin() -> None:
    before = build.Builder(Path("/x")).parts()[0].key
    other = Pins(**{**pins().__dict__, "traefik": "v3.0.0"})
    after = build.Builder(Path("/x"), other).parts()[0].key
    assert before != after and before.startswith("cluster-v1.34.3-"), (before, after)


def test_replace_directives_merge_once_and_a_conflict_names_both() -> None:
    same = "github.com/a/b => github.com/c/b v1.0.0"
    assert build.merge_replaces([same, same, "x/y => z/y v2"]) == [same, "x/y => z/y v2"]
    with pytest.raises(build.BuildError, match=r"two modules replace github.com/a/b differently"):
        build.merge_replaces([same, "github.com/a/b => github.com/d/b v1.1.0"])


@pytest.mark.parametrize(
    ("gomod", "version"),
    [("module m\n\ngo 1.25.5\n", (1, 25, 5)), ("module m\ngo 1.21\n", (1, 21)), ("module m\n", (1, 22))],
)
def test_the_go_directive_is_read_as_numbers(gomod: str, version: tuple[int, ...]) -> None:
    assert build.go_directive(gomod) == version
    assert max((1, 24), build.go_directive("go 1.25.0\n")) == (1, 25, 0)


def test_module_replaces_keep_module_targets_and_drop_local_paths() -> None:
    gomod = (
        "module m\n\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n"
        "\tgithub.com/gorilla/mux => github.com/containous/mux v0.0.0-1 // a fork\n)\n"
        "replace cloud.google.com/go => cloud.google.com/go v0.123.0\n"
    )
    assert build.module_replaces(gomod) == [
        "github.com/gorilla/mux => github.com/containous/mux v0.0.0-1",
        "cloud.google.com/go => cloud.google.com/go v0.123.0",
    ]
    assert build.staging_modules(gomod) == ["k8s.io/api"]


def test_make_rehearsal_packages_installs_every_package_up_checks_for() -> None:
    line = next(
        ln for ln in (REPO / "Makefile").read_text().splitlines() if ln.startswith("REHEARSAL_PACKAGES ?=")
    )
    listed = set(line.split("?=", 1)[1].split())
    assert set(DEBIAN_COMMANDS.values()) == listed, (sorted(DEBIAN_COMMANDS.values()), sorted(listed))
