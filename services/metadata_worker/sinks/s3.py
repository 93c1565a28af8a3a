"""The S3 archive: gzip JSON Lines per batch and partition, under ``raw/`` and ``enriched/``.

Keys are derived from the records alone, so re-archiving after a crash overwrites
instead of adding::

    {prefix}raw/topic=gpu-metadata/dt=2026-11-28/hour=02/gpu-metadata-p0-o00000000000000001200-00000000000000001699.jsonl.gz

``dt``/``hour`` come from the first record's Kafka timestamp and the name from the
partition and offset range. A replayed batch starts at the same committed offset; if it
ends elsewhere (a bigger or smaller poll), the older object with the same first offset
is deleted after the new one is written, so no record is archived twice. Gzip output is
byte-for-byte reproducible (``mtime=0``).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from metadata_worker.errors import SinkUnavailable

log = logging.getLogger(__name__)

KINDS = ("raw", "enriched")


@dataclass(frozen=True, slots=True)
class ArchiveRange:
    """One partition's offset range in one batch: everything an archive key is derived from."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    first_ts_ms: int  # Kafka timestamp of the first record: fixes dt=/hour=

    def __post_init__(self) -> None:
        if self.last_offset < self.first_offset:
            raise ValueError("last_offset is before first_offset")

    def prefix(self, kind: str, prefix: str = "") -> str:
        """Everything of the key up to and including the first offset (shared by every attempt)."""
        if kind not in KINDS:
            raise ValueError(f"archive kind must be one of {KINDS}, not {kind!r}")
        when = dt.datetime.fromtimestamp(self.first_ts_ms / 1000, dt.UTC)
        return (
            f"{prefix}{kind}/topic={self.topic}/dt={when:%Y-%m-%d}/hour={when:%H}/"
            f"{self.topic}-p{self.partition}-o{self.first_offset:020d}-"
        )

    def key(self, kind: str, prefix: str = "") -> str:
        """The deterministic key of this range's object."""
        return self.prefix(kind, prefix) + f"{self.last_offset:020d}.jsonl.gz"


def _json_default(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot archive a {type(value).__name__}")


def gzip_lines(lines: Sequence[bytes]) -> bytes:
    """Reproducible gzip of newline-terminated lines."""
    return gzip.compress(b"".join(line.rstrip(b"\n") + b"\n" for line in lines), mtime=0)


def enriched_line(doc: dict[str, Any]) -> bytes:
    """One enriched document as a JSON line (dates in ISO 8601)."""
    return json.dumps(doc, default=_json_default, separators=(",", ":"), sort_keys=True).encode()


class S3Archive:
    """Writes archive objects with a boto3 S3 client."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self._s3 = client
        self.bucket = bucket
        self.prefix = prefix

    def write_range(
        self, rng: ArchiveRange, raw_lines: Sequence[bytes], enriched_docs: Sequence[dict[str, Any]]
    ) -> list[str]:
        """Archive one partition's offset range; returns the keys written."""
        written = []
        enriched = [enriched_line(d) for d in enriched_docs]
        for kind, lines in (("raw", list(raw_lines)), ("enriched", enriched)):
            if not lines:
                continue
            key = rng.key(kind, self.prefix)
            try:
                self._s3.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=gzip_lines(lines),
                    ContentType="application/x-ndjson",
                    ContentEncoding="gzip",
                    Metadata={
                        "ca4-topic": rng.topic,
                        "ca4-partition": str(rng.partition),
                        "ca4-first-offset": str(rng.first_offset),
                        "ca4-last-offset": str(rng.last_offset),
                        "ca4-records": str(len(lines)),
                    },
                )
                self._delete_superseded(rng.prefix(kind, self.prefix), keep=key)
            except (BotoCoreError, ClientError) as exc:
                raise SinkUnavailable(f"archive write to s3://{self.bucket}/{key} failed: {exc}") from exc
            written.append(key)
        return written

    def _delete_superseded(self, prefix: str, *, keep: str) -> None:
        listing = self._s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        stale = [o["Key"] for o in listing.get("Contents", []) if o["Key"] != keep]
        for key in stale:
            self._s3.delete_object(Bucket=self.bucket, Key=key)
            log.info(
                "replaced archive object from an earlier attempt",
                extra={"deleted": key, "kept": keep},
            )
