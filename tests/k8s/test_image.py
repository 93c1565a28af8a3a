"""The Dockerfile against what the cluster expects of the image (no Docker needed): pinned
base, non-root uid of the manifests, the DocumentDB CA bundle where mongo_uri's relative
tlsCAFile finds it, and a build context of exactly what the image installs."""

from __future__ import annotations

import re
from types import ModuleType

from tests.kube import REPO, Obj, find, pod_spec

DOCKERFILE = (REPO / "Dockerfile").read_text()


def instructions(keyword: str) -> list[str]:
    """Arguments of every instruction of one kind (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [m.group(1).strip() for m in re.finditer(rf"^{keyword}\s+(.*)$", text, re.M)]


def test_base_images_are_pinned_releases_and_identical() -> None:
    """Both stages name the same base (the venv links to its interpreter): BASE_IMAGE, whose
    default is a full Python release (the rehearsal passes its own Debian 12 image)."""
    bases = {f.split()[0] for f in instructions("FROM")}
    assert bases == {"${BASE_IMAGE}"}, f"stages use other bases than ${{BASE_IMAGE}}: {bases}"
    (base,) = [a.split("=", 1)[1] for a in instructions("ARG") if a.startswith("BASE_IMAGE=")]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base), (
        f"base {base!r} is not a pinned release"
    )
    first_from = DOCKERFILE.index("\nFROM ")
    assert DOCKERFILE.index("ARG BASE_IMAGE=") < first_from, "ARG BASE_IMAGE must come before the first FROM"


def test_runs_as_the_uid_of_the_manifests(objects: list[Obj]) -> None:
    """USER 10001:10001, as the Deployments' runAsUser and the verification toolbox Job."""
    (user,) = instructions("USER")
    for name in ("processor-api", "metadata-worker"):
        sc = pod_spec(find(objects, "Deployment", name, "app"))["securityContext"]
        assert user == f"{sc['runAsUser']}:{sc['runAsGroup']}", f"Dockerfile USER {user}, {name} runs as {sc}"


def test_ca_bundle_is_where_the_uri_points(renderer: ModuleType) -> None:
    """Downloaded from Terraform's documentdb_ca_bundle_url into the runtime WORKDIR, which
    is where the relative tlsCAFile=global-bundle.pem of mongo_uri resolves."""
    outputs_tf = (REPO / "ca4" / "terraform" / "outputs.tf").read_text()
    url = re.search(r'output "documentdb_ca_bundle_url".*?value\s*=\s*"([^"]+)"', outputs_tf, re.S)
    assert url, "ca4/terraform/outputs.tf has no documentdb_ca_bundle_url"
    assert f"ARG DOCUMENTDB_CA_BUNDLE_URL={url.group(1)}" in DOCKERFILE, (
        f"the image does not fetch {url.group(1)}"
    )
    workdir = instructions("WORKDIR")[-1]
    copied = [c for c in instructions("COPY") if "global-bundle.pem" in c]
    assert copied and copied[-1].endswith(f"{workdir}/global-bundle.pem"), (
        f"bundle copied by {copied}, WORKDIR {workdir}"
    )
    assert f"{workdir}/global-bundle.pem" in renderer.CA_BUNDLE_NAMES, "the renderer accepts another path"
    uri_option = re.search(r"tlsCAFile=([^&\"]+)", outputs_tf)
    assert uri_option is None or uri_option.group(1) in renderer.CA_BUNDLE_NAMES, (
        f"Terraform sets {uri_option}"
    )


def test_build_context_is_exactly_what_the_dockerfile_copies() -> None:
    """.dockerignore excludes everything but the COPY sources, so no state, kubeconfig or
    rendered Secret can enter an image."""
    lines = [
        ln.strip()
        for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*", f".dockerignore must start by excluding everything, starts with {lines[0]!r}"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    sources = set()
    for copy in instructions("COPY"):
        parts = [p for p in copy.split() if not p.startswith("--")]
        if any(p.startswith("--from") for p in copy.split()):
            continue
        sources.update(parts[:-1])
    assert allowed == sources, (
        f".dockerignore lets in {sorted(allowed)}, the Dockerfile copies {sorted(sources)}"
    )


def test_dependencies_come_from_the_lock_file() -> None:
    """uv sync --frozen, no dev groups: the image runs what the tests ran."""
    runs = " ".join(instructions("RUN"))
    assert "uv sync --frozen --no-default-groups --no-editable" in runs, f"RUN lines: {runs}"
    assert 'CMD ["python", "-m", "processor_api"]' in DOCKERFILE, "default command changed"
