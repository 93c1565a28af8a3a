"""The database sink: ``gpu_metadata`` (one document per event) and ``gpu_devices`` (latest state).

Writes are idempotent: ``_id`` is the event id, so a replayed record is a duplicate-key
no-op (code 11000), counted but not an error. Inserts are unordered bulk writes, the
fast path on both DocumentDB and FerretDB. DocumentDB has no retryable writes
(``retryWrites=false``), so transient failures surface here as ``SinkUnavailable`` and
the worker retries the whole batch.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import bson
from bson.errors import InvalidDocument
from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from ca4_events import names
from metadata_worker.errors import SinkUnavailable

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
# write errors that no retry can fix: the document itself is refused
PERMANENT_WRITE_ERRORS = frozenset({2, 121, 10334, 17419, 17280})


@dataclass
class WriteResult:
    """What one bulk insert did."""

    inserted: int = 0
    duplicates: int = 0
    refused: dict[int, str] = field(default_factory=dict)  # index in the batch -> error


def connect(uri: str, app_name: str = "ca4-metadata-worker") -> MongoClient[dict[str, Any]]:
    """A client with short timeouts, so an outage is noticed quickly and retried."""
    return MongoClient(
        uri,
        appname=app_name,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=5000,
        socketTimeoutMS=30000,
    )


class MongoSink:
    """Writes enriched events and device states."""

    def __init__(self, db: Database[dict[str, Any]]) -> None:
        self._db = db
        self.events: Collection[dict[str, Any]] = db[names.COLLECTION_EVENTS]
        self.devices: Collection[dict[str, Any]] = db[names.COLLECTION_DEVICES]

    def ensure_indexes(self) -> None:
        """Create the query indexes (idempotent)."""
        try:
            self.events.create_index([("collected_at", DESCENDING)])
            self.events.create_index([("source.host", ASCENDING), ("collected_at", DESCENDING)])
            self.events.create_index([("accelerators.uuid", ASCENDING)])
            self.devices.create_index([("last_seen_at", DESCENDING)])
        except PyMongoError as exc:
            raise SinkUnavailable(f"could not create indexes: {exc}") from exc

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            self._db.client.admin.command("ping")
        except PyMongoError:
            return False
        return True

    def insert_events(self, docs: list[dict[str, Any]]) -> WriteResult:
        """Insert; duplicates are counted, refused documents reported by index."""
        if not docs:
            return WriteResult()
        try:
            res = self.events.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            return self._classify(exc, len(docs))
        except (OverflowError, InvalidDocument) as exc:
            return self._insert_encodable(docs, exc)
        except PyMongoError as exc:
            raise SinkUnavailable(f"database write failed: {exc}") from exc
        return WriteResult(inserted=len(res.inserted_ids))

    def _insert_encodable(self, docs: list[dict[str, Any]], error: Exception) -> WriteResult:
        """A document BSON cannot encode (an integer past 64 bits, say) fails the whole call
        before anything is sent, batch after batch: it is refused (dead-lettered), the rest go in."""
        refused: dict[int, str] = {}
        keep: list[int] = []
        for i, doc in enumerate(docs):
            try:
                bson.encode(doc)
            except (OverflowError, InvalidDocument) as exc:
                refused[i] = f"not encodable as BSON: {exc}"
            else:
                keep.append(i)
        if not refused:  # no document's fault: retry the batch
            raise SinkUnavailable(f"database write failed: {error}") from error
        rest = self.insert_events([docs[i] for i in keep])
        refused |= {keep[i]: why for i, why in rest.refused.items()}
        return WriteResult(rest.inserted, rest.duplicates, refused)

    @staticmethod
    def _classify(exc: BulkWriteError, total: int) -> WriteResult:
        details = exc.details
        result = WriteResult(inserted=int(details.get("nInserted", 0)))
        for err in details.get("writeErrors", []):
            code = err.get("code")
            if code == DUPLICATE_KEY:
                result.duplicates += 1
            elif code in PERMANENT_WRITE_ERRORS:
                result.refused[int(err["index"])] = f"code {code}: {err.get('errmsg')}"
            else:
                raise SinkUnavailable(f"database refused a write (code {code}): {err.get('errmsg')}")
        if details.get("writeConcernErrors"):
            raise SinkUnavailable(f"write concern not met: {details['writeConcernErrors']}")
        accounted = result.inserted + result.duplicates + len(result.refused)
        if accounted != total:
            raise SinkUnavailable(f"bulk insert accounted for {accounted} of {total} documents")
        return result

    def upsert_devices(self, states: list[dict[str, Any]]) -> None:
        """Move each device's latest state forward; an older snapshot never overwrites a newer one."""
        try:
            for state in states:
                res = self.devices.update_one(
                    {"_id": state["_id"], "last_seen_at": {"$lt": state["last_seen_at"]}},
                    {"$set": {k: v for k, v in state.items() if k != "_id"}},
                )
                if res.matched_count:
                    continue
                # a duplicate key means the stored state is as new or newer: keep it
                with contextlib.suppress(DuplicateKeyError):
                    self.devices.insert_one({**state, "first_seen_at": state["last_seen_at"]})
        except PyMongoError as exc:
            raise SinkUnavailable(f"device state update failed: {exc}") from exc
