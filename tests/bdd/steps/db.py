"""Steps of db.feature."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pytest_bdd import parsers, then, when

from tests.bdd.targets.base import Target


@when("I insert a verification document through the in-cluster path", target_fixture="roundtrip")
def insert_verification_document(target: Target) -> tuple[dict[str, Any], dict[str, Any]]:
    """Insert, read back and delete one document in collection ca4_verify."""
    target.require("database")
    doc = {
        "_id": f"verify-{uuid.uuid4()}",
        "purpose": "ca4-verify-db",
        "at": dt.datetime.now(dt.UTC).isoformat(),
    }
    (result,) = target.db([{"op": "roundtrip", "doc": doc}])
    return doc, result


@then("the same document is read back")
def same_document(roundtrip: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """What was read equals what was written."""
    doc, result = roundtrip
    assert result["read_back"] == doc, f"wrote {doc}, read back {result['read_back']}"


@then("the verification document is removed afterwards")
def removed(roundtrip: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """The probe cleans up after itself."""
    doc, result = roundtrip
    assert result["deleted"] == 1, f"{doc['_id']} was not deleted (deleted={result['deleted']})"


@when("I list the collections through the in-cluster path", target_fixture="collections")
def list_collections(target: Target) -> list[str]:
    """Collection names of database ca4."""
    target.require("database")
    (names,) = target.db([{"op": "collections"}])
    return list(names)


@then(parsers.parse('the collection "{name}" exists'))
def collection_exists(collections: list[str], name: str) -> None:
    """The worker created it."""
    assert name in collections, f"collection {name} not in {collections}"
