"""The live target finds its inputs where the lifecycle left them; the environment overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bdd.targets import live_inputs
from tests.bdd.targets.live import LiveTarget

SAMPLE_OUTPUTS = Path(__file__).parents[1] / "k8s" / "fixtures" / "terraform-outputs.json"


@pytest.fixture
def lifecycle(tmp_path: Path) -> dict[str, str]:
    """What ca4-apply, ca4-bootstrap-k3s and ca4-platform-setup leave behind, and nothing set."""
    secrets = tmp_path / "kubeconfigs"
    secrets.mkdir()
    (secrets / "ca4-kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    (secrets / "ca4-api-tokens").write_text("# CA4 API tokens\nsha256:" + "0" * 64 + "\ntok-1\ntok-2\n")
    (secrets / "ca4-api-ca.pem").write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    return {"CA4_SECRETS_DIR": str(secrets), "CA4_TF_OUTPUTS": str(SAMPLE_OUTPUTS)}


def test_a_user_who_ran_the_targets_in_order_sets_nothing(lifecycle: dict[str, str]) -> None:
    outputs = {k: v["value"] for k, v in json.loads(SAMPLE_OUTPUTS.read_text()).items()}
    got = live_inputs.resolve(lifecycle)
    secrets = Path(lifecycle["CA4_SECRETS_DIR"])
    assert got.problems == {}, got.problems
    assert got.api_url == outputs["edge_api_url"], got.api_url
    assert got.token == "tok-1", "the first plain token, not the digest or a comment"
    assert got.ca_bundle == str(secrets / "ca4-api-ca.pem"), got.ca_bundle
    assert (got.bucket, got.prefix, got.region) == (
        outputs["s3_bucket_name"],
        outputs["s3_prefix"],
        outputs["aws_region"],
    )
    assert got.brokers == min(3, len(outputs["edge_node_private_ips"])), got.brokers
    assert got.kubeconfig == secrets / "ca4-kubeconfig", got.kubeconfig


def test_the_environment_overrides_each_input(lifecycle: dict[str, str]) -> None:
    env = {
        **lifecycle,
        "EDGE_API_URL": "https://api.example.test/",
        "CA4_API_TOKEN": "from-env",
        "CA4_CA_BUNDLE": "/etc/ca.pem",
        "CA4_S3_BUCKET": "other-bucket",
        "CA4_S3_PREFIX": "p/",
        "CA4_KAFKA_BROKERS": "1",
        "CA4_KUBECONFIG": "/elsewhere/kubeconfig",
    }
    got = live_inputs.resolve(env)
    assert (got.api_url, got.token, got.ca_bundle) == ("https://api.example.test", "from-env", "/etc/ca.pem")
    assert (got.bucket, got.prefix, got.brokers) == ("other-bucket", "p/", 1)
    assert got.kubeconfig == Path("/elsewhere/kubeconfig")
    assert got.origins["token"] == "environment CA4_API_TOKEN", got.origins


def test_a_personal_kubeconfig_is_never_used(lifecycle: dict[str, str], tmp_path: Path) -> None:
    """KUBECONFIG names the user's own cluster: verifying it instead of CA4's would be wrong."""
    target = LiveTarget({**lifecycle, "KUBECONFIG": str(tmp_path / "personal")})
    assert target.kubeconfig == Path(lifecycle["CA4_SECRETS_DIR"]) / "ca4-kubeconfig", target.kubeconfig


def test_without_a_stack_each_missing_input_says_how_to_get_it(tmp_path: Path) -> None:
    empty = tmp_path / "outputs.json"
    empty.write_text("{}")
    target = LiveTarget({"CA4_SECRETS_DIR": str(tmp_path / "none"), "CA4_TF_OUTPUTS": str(empty)})
    api, token, s3 = (target.missing(n) or "" for n in ("api", "token", "s3"))
    assert "EDGE_API_URL is not set" in api and "make ca4-plan ca4-apply" in api, api
    assert "CA4_API_TOKEN is not set" in token and "make ca4-platform-setup" in token, token
    assert "CA4_S3_BUCKET is not set" in s3, s3
    cluster = target.missing("cluster") or ""
    assert "no kubeconfig at" in cluster and "make ca4-bootstrap-k3s" in cluster, cluster
    assert target.ca_bundle == "", "no CA file: the public roots only"


def test_a_tokens_file_with_digests_only_is_reported(tmp_path: Path) -> None:
    tokens = tmp_path / "ca4-api-tokens"
    tokens.write_text("sha256:" + "a" * 64 + "\n")
    assert live_inputs.first_token(tokens) == ""
    got = live_inputs.resolve({"CA4_API_TOKENS_FILE": str(tokens), "CA4_TF_OUTPUTS": str(SAMPLE_OUTPUTS)})
    assert "holds no plain token" in got.problems["token"], got.problems
