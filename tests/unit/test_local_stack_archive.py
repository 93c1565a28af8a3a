"""The archive scan the demo, the integration tests and the reliability harness share (moto in-process)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local_stack import s3
from local_stack.config import BUCKET, REGION


def _put(client: Any, key: str, *docs: dict[str, Any]) -> None:
    body = gzip.compress(b"".join(json.dumps(d).encode() + b"\n" for d in docs))
    client.put_object(Bucket=BUCKET, Key=key, Body=body)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "unit")
    with mock_aws():
        c = boto3.client("s3", region_name=REGION)
        c.create_bucket(Bucket=BUCKET)
        yield c


def test_each_object_is_read_once_and_superseded_keys_are_forgotten(client: Any) -> None:
    _put(client, "enriched/p0-o1-2.jsonl.gz", {"_id": "a", "run": "r"}, {"_id": "b", "run": "other"})
    _put(client, "enriched/p1-o1-1.jsonl.gz", {"_id": "c", "run": "r"})
    _put(client, "raw/p0-o1-2.jsonl.gz", {"_id": "x", "run": "r"})
    seen: dict[str, set[str]] = {}

    def mine(doc: dict[str, Any]) -> bool:
        return doc["run"] == "r"

    assert s3.archived_ids(client, seen, keep=mine) == {
        "enriched/p0-o1-2.jsonl.gz": {"a"},
        "enriched/p1-o1-1.jsonl.gz": {"c"},
    }
    # a key names one offset range, so its content is not read again
    _put(client, "enriched/p1-o1-1.jsonl.gz", {"_id": "changed", "run": "r"})
    assert s3.archived_ids(client, seen, keep=mine)["enriched/p1-o1-1.jsonl.gz"] == {"c"}
    # a wider range supersedes p0-o1-2, which is deleted: only the new object counts
    _put(client, "enriched/p0-o1-3.jsonl.gz", {"_id": "a", "run": "r"}, {"_id": "d", "run": "r"})
    client.delete_object(Bucket=BUCKET, Key="enriched/p0-o1-2.jsonl.gz")
    assert s3.archived_ids(client, seen, keep=mine) == {
        "enriched/p0-o1-3.jsonl.gz": {"a", "d"},
        "enriched/p1-o1-1.jsonl.gz": {"c"},
    }
    assert "enriched/p0-o1-2.jsonl.gz" not in seen


def test_an_object_deleted_after_the_listing_is_skipped(client: Any) -> None:
    _put(client, "enriched/p0-o1-1.jsonl.gz", {"_id": "a"})
    _put(client, "enriched/p0-o2-2.jsonl.gz", {"_id": "b"})

    class DeletedBeforeRead:
        """The worker deletes a superseded object between our listing and our read."""

        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

        def get_object(self, Bucket: str, Key: str) -> Any:
            if Key.endswith("o1-1.jsonl.gz"):
                client.delete_object(Bucket=Bucket, Key=Key)
            return client.get_object(Bucket=Bucket, Key=Key)

    assert s3.archived_ids(DeletedBeforeRead(), {}) == {"enriched/p0-o2-2.jsonl.gz": {"b"}}


def test_objects_older_than_since_are_left_out(client: Any) -> None:
    _put(client, "enriched/p0-o1-1.jsonl.gz", {"_id": "a"})
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    assert s3.archived_ids(client, {}, since=later) == {}
    assert s3.archived_ids(client, {}, since=later - dt.timedelta(hours=1)) == {
        "enriched/p0-o1-1.jsonl.gz": {"a"}
    }
