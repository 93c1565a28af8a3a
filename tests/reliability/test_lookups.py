"""By-id lookups stay fast on a full local database: the waits of every suite and the demo use them.

The local database is FerretDB 1.24 on SQLite. Its unique ``_id`` index does not serve its own
``_id`` query, and ``$in`` is never pushed down (``local_stack.ferretdb.index_id_lookups``), so
after the fault scenarios had stored ~30 000 documents one ``$in`` poll took most of a 30 s wait.
This fills ``gpu_metadata`` to the scale's size (20 000 in make test, 100 000 in nox -s chaos),
then times, side by side, what the helpers do (``support.by_id``: one ``find_one`` per id) and a
query that must scan the collection, for the most recently stored documents.
"""

from __future__ import annotations

import statistics
import time
import uuid

from ca4_events import names
from tests.integration.support import Stack, by_id, h200_events, to_body
from tests.reliability.harness import Reliability

LOOKED_UP = 100  # the newest documents, as a wait looks up what was just written
INSERT_BATCH = 1000


def _fill(stack: Stack, size: int) -> list[str]:
    """Top the events collection up to ``size`` documents (H200 snapshots, ~1.2 KB each); the
    ids of the last LOOKED_UP written."""
    coll = stack.db[names.COLLECTION_EVENTS]
    bodies = [to_body(e) for e in h200_events("lookup-scale", "lookup", {"run": "lookup-scale"})]
    need = max(size - coll.estimated_document_count(), LOOKED_UP)
    written: list[str] = []
    for start in range(0, need, INSERT_BATCH):
        batch = [
            {**bodies[i % len(bodies)], "_id": str(uuid.uuid4())}
            for i in range(start, min(need, start + INSERT_BATCH))
        ]
        coll.insert_many(batch, ordered=False)
        written += [doc["_id"] for doc in batch]
    return written[-LOOKED_UP:]


def test_by_id_lookups_stay_fast_at_the_scales_size(local_stack: Stack, reliability: Reliability) -> None:
    size = reliability.scale.stored_documents
    started = time.monotonic()
    newest = _fill(local_stack, size)
    fill_s = time.monotonic() - started
    coll = local_stack.db[names.COLLECTION_EVENTS]
    stored = coll.estimated_document_count()
    per_lookup: list[float] = []
    for event_id in newest:
        t = time.perf_counter()
        found = by_id(coll, [event_id], {"_id": 1})
        per_lookup.append(time.perf_counter() - t)
        assert event_id in found, f"{event_id} was inserted and not found by id"
    t = time.perf_counter()
    coll.count_documents({"source.tags.no-such-tag": "x"})  # a filter no index serves: a full scan
    scan_s = time.perf_counter() - t
    median, worst = statistics.median(per_lookup), max(per_lookup)
    print(
        f"\n{stored} documents (filled in {fill_s:.1f} s): by-id lookup median {median * 1000:.1f} ms, "
        f"max {worst * 1000:.1f} ms; one full scan {scan_s * 1000:.0f} ms"
    )
    assert stored >= size, f"the collection holds {stored} documents, expected at least {size}"
    assert median * 20 < scan_s, (
        f"a by-id lookup (median {median * 1000:.1f} ms) is not 20 x faster than a scan of {stored} "
        f"documents ({scan_s * 1000:.0f} ms): it is scanning (is the _id lookup index missing?)"
    )
    assert worst < 0.25, (
        f"the slowest of {LOOKED_UP} by-id lookups took {worst * 1000:.0f} ms at {stored} documents"
    )
