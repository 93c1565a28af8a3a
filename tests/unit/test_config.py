"""Settings: secrets without defaults, readable errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from metadata_worker.config import Settings as WorkerSettings
from processor_api.config import Settings as ApiSettings


def test_api_tokens_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_TOKENS", raising=False)
    with pytest.raises(ValidationError, match="api_tokens"):
        ApiSettings()  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("tokens", "fragment"),
    [("short", "shorter than 16"), ("sha256:abc", "64 hex digits"), (" , ", "empty")],
)
def test_weak_or_malformed_tokens_are_refused(tokens: str, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        ApiSettings(api_tokens=tokens)


def test_tokens_are_kept_only_as_digests() -> None:
    s = ApiSettings(api_tokens="a-long-enough-token-1, a-long-enough-token-2")
    assert len(s.token_digests()) == 2 and all(len(d) == 32 for d in s.token_digests())
    assert "a-long-enough" not in repr(s), "tokens must not show in reprs or logs"


def test_environment_names_are_the_field_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKENS", "token-from-the-environment")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092, k2:9092")
    s = ApiSettings()  # type: ignore[call-arg]
    assert s.bootstrap_list() == ["k1:9092", "k2:9092"]


def test_worker_archive_needs_a_bucket() -> None:
    with pytest.raises(ValidationError, match="S3_BUCKET"):
        WorkerSettings(mongo_uri="mongodb://x", archive_enabled=True)
    assert WorkerSettings(mongo_uri="mongodb://x", archive_enabled=True, s3_bucket="b").s3_bucket == "b"
