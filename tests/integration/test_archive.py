"""The S3 archive: gzip JSON Lines under raw/ and enriched/ with deterministic keys."""

from __future__ import annotations

import gzip
import json
import re

from ca4_events.schema import GpuMetadataEvent
from local_stack.config import BUCKET
from tests.integration.support import Stack

KEY = re.compile(
    r"^enriched/topic=gpu-metadata/dt=\d{4}-\d{2}-\d{2}/hour=\d{2}/"
    r"gpu-metadata-p(?P<partition>\d+)-o(?P<first>\d{20})-(?P<last>\d{20})\.jsonl\.gz$"
)


def test_every_event_is_archived_raw_and_enriched(
    local_stack: Stack, session_events: list[GpuMetadataEvent]
) -> None:
    ids = set(local_stack.post_events(session_events))
    stored = local_stack.wait_for_documents(sorted(ids))
    holding = local_stack.archived(ids)
    s3 = local_stack.s3()
    for key, mine in holding.items():
        match = KEY.match(key)
        assert match, f"archive key {key} does not follow the documented layout"
        first, last = int(match["first"]), int(match["last"])
        for event_id in mine:
            offset = stored[event_id]["kafka"]["offset"]
            assert first <= offset <= last, f"{event_id} at offset {offset} is outside {key}"
            assert stored[event_id]["kafka"]["partition"] == int(match["partition"])
        raw_key = "raw/" + key.removeprefix("enriched/")
        raw = gzip.decompress(s3.get_object(Bucket=BUCKET, Key=raw_key)["Body"].read()).splitlines()
        raw_ids = {json.loads(line)["event_id"] for line in raw}
        assert mine <= raw_ids, f"{raw_key} misses raw events {mine - raw_ids}"
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert head["Metadata"]["ca4-first-offset"] == str(first)
        assert head["ContentEncoding"] == "gzip"
