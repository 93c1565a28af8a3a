"""Database probe: one script, run in-process against the local database or inside a toolbox Job.

Live, the laptop never connects to DocumentDB (it sits in private subnets): the live
target runs this file with ``python -c`` in a short-lived Job in namespace ``app``, with
``MONGO_URI`` and ``MONGO_DATABASE`` from the Secret ``ca4-mongo-credentials``, and reads
the JSON it prints. It depends only on the standard library and pymongo (both in the CA4
image), so the same code runs in both places.

Operations (a JSON list in argv[1]; the result is a JSON list in the same order):
  {"op": "roundtrip", "doc": {...}}          insert into ca4_verify, read back, delete
  {"op": "count", "collection": "..."}       number of documents
  {"op": "get", "collection": "...", "id": "..."}   one document by _id, or null
  {"op": "run", "collection": "...", "run": "..."}  [_id, workload.seq] of a load's events
  {"op": "collections"}                      collection names
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from typing import Any

from pymongo import MongoClient

VERIFY_COLLECTION = "ca4_verify"
RESULT_MARKER = "CA4_DBPROBE_RESULT "


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def run(uri: str, database: str, ops: list[dict[str, Any]]) -> list[Any]:
    """Run ``ops`` against ``database`` and return JSON-safe results."""
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=10_000, tz_aware=True)
    try:
        db = client[database]
        out: list[Any] = []
        for op in ops:
            kind = op["op"]
            if kind == "roundtrip":
                doc = dict(op["doc"])
                inserted = db[VERIFY_COLLECTION].insert_one(doc).inserted_id
                read_back = db[VERIFY_COLLECTION].find_one({"_id": inserted})
                deleted = db[VERIFY_COLLECTION].delete_one({"_id": inserted}).deleted_count
                out.append({"inserted_id": inserted, "read_back": _plain(read_back), "deleted": deleted})
            elif kind == "count":
                out.append(db[op["collection"]].count_documents({}))
            elif kind == "get":
                out.append(_plain(db[op["collection"]].find_one({"_id": op["id"]})))
            elif kind == "run":
                found = db[op["collection"]].find({"workload.run": op["run"]}, {"_id": 1, "workload.seq": 1})
                out.append([[d["_id"], d.get("workload", {}).get("seq")] for d in found])
            elif kind == "collections":
                out.append(sorted(db.list_collection_names()))
            else:
                raise ValueError(f"unknown probe operation {kind!r}")
        return out
    finally:
        client.close()


def main() -> None:
    """Entry point inside the toolbox Job: print one marked JSON line."""
    ops = json.loads(sys.argv[1])
    result = run(os.environ["MONGO_URI"], os.environ.get("MONGO_DATABASE", "ca4"), ops)
    print(RESULT_MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
