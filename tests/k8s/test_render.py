"""scripts/render_platform_config.py: the Secrets and overlays from `terraform output -json`:
deterministic, private, complete, and refusing what DocumentDB or the services would refuse."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests.k8s.conftest import SAMPLE_OUTPUTS, SAMPLE_TAG, SAMPLE_TOKEN, render_into
from tests.kube import REPO, Obj, find, kustomize_build, load_objects

# the first kustomize build may compile kustomize from the Go module proxy (no kubectl)
pytestmark = pytest.mark.timeout(900)


def render_args(outputs: str, tokens: str, out: str, brokers: int | str, *extra: str) -> list[str]:
    """The renderer's command line: the outputs, the token file, the broker count, the folder."""
    return [
        "--outputs",
        outputs,
        "--api-tokens-file",
        tokens,
        "--kafka-brokers",
        str(brokers),
        "--out",
        out,
        *extra,
    ]


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under folder, by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_outputs_give_byte_identical_files(
    renderer: ModuleType, tokens_file: Path, tmp_path: Path
) -> None:
    """Rendered twice (and once more over the first rendering): the same bytes, so apply changes nothing."""
    first, second = tmp_path / "a" / "rendered", tmp_path / "b" / "rendered"
    assert render_into(renderer, first, tokens_file) == 0
    before = tree(first)
    assert render_into(renderer, second, tokens_file) == 0
    assert render_into(renderer, first, tokens_file) == 0
    assert tree(first) == before, "a second rendering into the same folder changed a file"
    assert tree(second) == before, (
        f"two renderings differ: {sorted(k for k in before if before[k] != tree(second).get(k))}"
    )
    assert sorted(before) == [
        "app/kustomization.yaml",
        "platform/ca4-edge-api-config.yaml",
        "platform/ca4-mongo-credentials.yaml",
        "platform/ca4-s3-config.yaml",
        "platform/kustomization.yaml",
    ], f"unexpected files {sorted(before)}"


def test_different_outputs_give_different_secrets(
    renderer: ModuleType, tokens_file: Path, tmp_path: Path
) -> None:
    """Determinism is not constancy: a changed bucket shows in the Secret."""
    data = json.loads(SAMPLE_OUTPUTS.read_text())
    data["s3_bucket_name"]["value"] = "ca4-archive-other"
    changed = tmp_path / "outputs.json"
    changed.write_text(json.dumps(data))
    out = tmp_path / "out"
    assert renderer.main(render_args(str(changed), str(tokens_file), str(out), 3)) == 0
    (s3,) = load_objects([out / "platform" / "ca4-s3-config.yaml"])
    assert base64.b64decode(s3.body["data"]["S3_BUCKET"]).decode() == "ca4-archive-other", (
        f"{s3.ref}: {s3.body['data']}"
    )


def test_files_are_private(rendered: Path) -> None:
    """Mode 600 files in 700 folders: the Secrets hold the database password."""
    for path in [rendered / "platform", rendered / "app"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, f"{path}: mode {oct(path.stat().st_mode)}"
    for path in (p for p in rendered.rglob("*") if p.is_file()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path}: mode {oct(path.stat().st_mode)}"


def test_secret_values_come_from_the_outputs(rendered_secrets: list[Obj]) -> None:
    """Each key holds what the matching output says; tokens only as sha256 digests."""
    outputs = {k: v["value"] for k, v in json.loads(SAMPLE_OUTPUTS.read_text()).items()}

    def data(name: str) -> dict[str, str]:
        obj = find(rendered_secrets, "Secret", name, "app")
        return {k: base64.b64decode(v).decode() for k, v in obj.body["data"].items()}

    assert data("ca4-mongo-credentials") == {"MONGO_URI": outputs["mongo_uri"], "MONGO_DATABASE": "ca4"}
    assert data("ca4-s3-config") == {
        "S3_BUCKET": outputs["s3_bucket_name"],
        "S3_REGION": outputs["aws_region"],
        "S3_PREFIX": outputs["s3_prefix"],
        "ARCHIVE_ENABLED": "true",
    }
    edge = data("ca4-edge-api-config")
    assert edge["EDGE_API_URL"] == outputs["edge_api_url"]
    assert edge["API_TOKENS"] == "sha256:" + hashlib.sha256(SAMPLE_TOKEN.encode()).hexdigest(), (
        f"API_TOKENS {edge['API_TOKENS']}"
    )
    assert SAMPLE_TOKEN not in json.dumps([o.body for o in rendered_secrets]), (
        "a plain token reached a Secret"
    )
    assert edge["KAFKA_BOOTSTRAP_SERVERS"] == ",".join(
        f"kafka-{i}.kafka.platform.svc.cluster.local:9092" for i in range(3)
    ), f"bootstrap {edge['KAFKA_BOOTSTRAP_SERVERS']}"


@pytest.mark.parametrize("brokers", [1, 2, 3])
def test_overlay_sets_kafka_size_in_both_places(
    renderer: ModuleType, tokens_file: Path, tmp_path: Path, brokers: int
) -> None:
    """One setting: replicas, the ConfigMap's broker count and the bootstrap list agree."""
    out = tmp_path / "rendered"
    assert render_into(renderer, out, tokens_file, brokers=brokers) == 0
    objs = kustomize_build(out / "platform")
    sts = find(objs, "StatefulSet", "kafka", "platform")
    cm = find(objs, "ConfigMap", "kafka-cluster", "platform")
    assert sts.body["spec"]["replicas"] == brokers, (
        f"{sts.ref}: replicas {sts.body['spec']['replicas']}, expected {brokers}"
    )
    assert cm.body["data"]["brokers"] == str(brokers), (
        f"{cm.ref}: brokers {cm.body['data']['brokers']}, expected {brokers}"
    )
    edge = find(objs, "Secret", "ca4-edge-api-config", "app")
    bootstrap = base64.b64decode(edge.body["data"]["KAFKA_BOOTSTRAP_SERVERS"]).decode()
    assert bootstrap.count(":9092") == brokers, f"{edge.ref}: bootstrap {bootstrap} for {brokers} brokers"
    kinds = [o.kind for o in objs]
    assert kinds.index("Namespace") < kinds.index("Secret"), "kustomize must order the namespaces first"
    assert {o.name for o in objs if o.kind == "Secret"} == {
        "ca4-mongo-credentials",
        "ca4-s3-config",
        "ca4-edge-api-config",
    }


def test_app_overlay_pins_the_image_to_the_tag(built_overlays: dict[str, list[Obj]]) -> None:
    """Both Deployments run localhost/ca4-services:<tag>; nothing else changes."""
    objs = built_overlays["app"]
    for name in ("processor-api", "metadata-worker"):
        dep = find(objs, "Deployment", name, "app")
        images = {c["image"] for c in dep.body["spec"]["template"]["spec"]["containers"]}
        assert images == {f"localhost/ca4-services:{SAMPLE_TAG}"}, f"{dep.ref}: images {images}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("mongo_uri"), "'mongo_uri' is missing"),
        (lambda d: d.pop("edge_api_url"), "'edge_api_url' is missing"),
        (
            lambda d: d["mongo_uri"].update(
                value=d["mongo_uri"]["value"].replace("retryWrites=false", "retryWrites=true")
            ),
            "retryWrites=false",
        ),
        (
            lambda d: d["mongo_uri"].update(
                value=d["mongo_uri"]["value"].replace("tlsCAFile=global-bundle.pem", "tlsCAFile=/etc/x.pem")
            ),
            "tlsCAFile",
        ),
        (lambda d: d.pop("documentdb_database"), "documentdb_database"),
        (lambda d: d.clear(), "no outputs yet"),
    ],
    ids=[
        "no-mongo_uri",
        "no-edge_api_url",
        "retryable-writes",
        "other-ca-file",
        "no-documentdb_database",
        "empty",
    ],
)
def test_bad_outputs_are_refused_by_name(  # noqa: PLR0917 - pytest passes fixtures and parameters by position
    renderer: ModuleType,
    tokens_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: object,
    message: str,
) -> None:
    """Exit 2 and a message naming the output, before anything is written."""
    data = json.loads(SAMPLE_OUTPUTS.read_text())
    change(data)  # type: ignore[operator]
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(data))
    out = tmp_path / "out"
    code = renderer.main(render_args(str(outputs), str(tokens_file), str(out), 3))
    err = capsys.readouterr().err
    assert code == 2 and message in err, f"expected exit 2 naming {message!r}, got {code}: {err}"
    assert not (out / "platform").exists() or not any((out / "platform").iterdir()), (
        "files were written despite the error"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("short\n", "16+ characters"),
        ("# only a comment\n", "holds no token"),
        ("sha256:abc\n", "64 hex digits"),
    ],
)
def test_bad_token_files_are_refused(
    renderer: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    """The API would refuse these at start; the renderer says so first."""
    tokens = tmp_path / "tokens"
    tokens.write_text(content)
    code = renderer.main(render_args(str(SAMPLE_OUTPUTS), str(tokens), str(tmp_path / "o"), 3))
    err = capsys.readouterr().err
    assert code == 2 and message in err, f"expected exit 2 with {message!r}, got {code}: {err}"


def test_refuses_a_folder_in_the_repository_that_git_would_commit(
    renderer: ModuleType, tokens_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """rendered/ is gitignored; manifests/ is not, so nothing secret may be written there."""
    target = REPO / "manifests" / "ca4-render-test-never-created"
    code = render_into(renderer, target, tokens_file)
    err = capsys.readouterr().err
    assert code == 2 and "not gitignored" in err, f"expected a refusal, got {code}: {err}"
    assert not target.exists(), f"{target} was created"


def test_default_folder_is_gitignored() -> None:
    """The renderer's default output folder and the kubeconfig folder are ignored by git."""
    for path in (
        "rendered/platform/ca4-mongo-credentials.yaml",
        "kubeconfigs/ca4-kubeconfig",
        "kubeconfigs/ca4-k3s-token",
        ".cache/ca4-live/tunnels/k3s-api.pid",
    ):
        proc = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", path], check=False, timeout=10)
        assert proc.returncode == 0, f"{path} is not gitignored"


@pytest.mark.parametrize(
    ("tag", "brokers", "message"),
    [("git-0123:bad", 3, "not a valid tag"), ("", 3, "not a valid tag"), (SAMPLE_TAG, 4, "1 to 3 brokers")],
)
def test_bad_arguments_are_refused_before_anything_is_written(  # noqa: PLR0917 - fixtures and parameters
    renderer: ModuleType,
    tokens_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tag: str,
    brokers: int,
    message: str,
) -> None:
    """A bad --image-tag or --kafka-brokers: exit 2 and no Secret left behind for a half rendering."""
    out = tmp_path / "out"
    code = renderer.main(
        render_args(str(SAMPLE_OUTPUTS), str(tokens_file), str(out), str(brokers), "--image-tag", tag)
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err, f"expected exit 2 with {message!r}, got {code}: {err}"
    assert not out.exists(), f"files were written despite the error: {sorted(out.rglob('*'))}"


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [("https://198.18.1.21", "https://198.18.1.21"), ("https://s3.example:8443/", "https://s3.example:8443")],
)
def test_an_s3_endpoint_goes_into_the_archive_secret(
    renderer: ModuleType, tokens_file: Path, tmp_path: Path, endpoint: str, expected: str
) -> None:
    """--s3-endpoint-url (CA4_S3_ENDPOINT_URL): the worker's S3_ENDPOINT_URL; absent by default."""
    args = render_args(
        str(SAMPLE_OUTPUTS), str(tokens_file), str(tmp_path / "out"), 1, "--s3-endpoint-url", endpoint
    )
    assert renderer.main(args) == 0
    secret = load_objects([tmp_path / "out" / "platform" / "ca4-s3-config.yaml"])[0]
    assert base64.b64decode(secret.body["data"]["S3_ENDPOINT_URL"]).decode() == expected


@pytest.mark.parametrize("endpoint", ["http://198.18.1.21", "https://", "https://h/path", "s3.example"])
def test_a_bad_s3_endpoint_is_refused_by_name(
    renderer: ModuleType, tokens_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: str
) -> None:
    """Plain HTTP, no host, a path: exit 2 naming the option, nothing written."""
    args = render_args(
        str(SAMPLE_OUTPUTS), str(tokens_file), str(tmp_path / "out"), 1, "--s3-endpoint-url", endpoint
    )
    code = renderer.main(args)
    assert code == 2 and "--s3-endpoint-url" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
