"""The event's free-form ``workload``: bounded (depth, size) and with keys a Mongo-compatible
database accepts, checked by the validator and stated, level by level, in the JSON Schema."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_json

MAX_WORKLOAD_BYTES = 16 * 1024
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what BSON (so DocumentDB) can store
MAX_WORKLOAD_DEPTH = 8


# keys a Mongo-compatible database accepts: not empty, no ".", no NUL, not starting with "$"
_DB_KEY_PATTERN = r"^[^.$\u0000][^.\u0000]*$"
_DB_KEY = re.compile(_DB_KEY_PATTERN)


WORKLOAD_DEF = "WorkloadValue{level}"  # names of the workload schema's levels in $defs
# pydantic resolves every "$ref" while it generates a schema and knows nothing of these
# levels, so the generated schema holds this marker until ``with_workload_defs`` swaps it
_WORKLOAD_MARK = "x-ca4-workload-level"


def _workload_defs(ref_prefix: str, depth: int = MAX_WORKLOAD_DEPTH) -> dict[str, Any]:
    """JSON Schema definitions of free-form workload values, one per remaining nesting level.

    JSON Schema cannot count nesting, so the depth is spelled out level by level: level k
    is a scalar, or an array or object of level k-1 values (level 1 is a scalar only); one
    definition per level keeps the schema linear in the depth. The 16 KiB size limit is
    enforced by the validator only.
    """
    scalar: dict[str, Any] = {"type": ["string", "number", "boolean", "null"]}
    db_keys = {"pattern": _DB_KEY_PATTERN}
    defs: dict[str, Any] = {WORKLOAD_DEF.format(level=1): scalar}
    for level in range(2, depth + 1):
        below = {"$ref": ref_prefix + WORKLOAD_DEF.format(level=level - 1)}
        defs[WORKLOAD_DEF.format(level=level)] = {
            "anyOf": [
                scalar,
                {"type": "array", "items": below},
                {"type": "object", "propertyNames": db_keys, "additionalProperties": below},
            ]
        }
    return defs


def with_workload_defs(schema: dict[str, Any], defs: dict[str, Any], ref_prefix: str) -> dict[str, Any]:
    """Point the generated schema's workload at its level definitions, added to ``defs``.

    ``ref_prefix`` is where ``defs`` live: ``#/$defs/`` in the published schema,
    ``#/components/schemas/`` in the OpenAPI document.
    """
    defs.update(_workload_defs(ref_prefix))

    def swap(node: Any) -> Any:
        if isinstance(node, dict):
            if _WORKLOAD_MARK in node:
                return {"$ref": ref_prefix + WORKLOAD_DEF.format(level=node[_WORKLOAD_MARK])}
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        return node

    return dict(swap(schema))


def workload_schema(depth: int = MAX_WORKLOAD_DEPTH) -> dict[str, Any]:
    """The workload object: database-safe keys, ``depth`` levels in all (see ``_workload_defs``)."""
    return {
        "type": "object",
        "propertyNames": {"pattern": _DB_KEY_PATTERN},
        "additionalProperties": {_WORKLOAD_MARK: depth},
    }


@dataclass
class _Scan:
    """What one walk over a workload found: its depth and the first refused key, by path."""

    depth: int = 0
    bad_key: str | None = None
    not_finite: bool = False
    too_large: str | None = None  # the first integer the database cannot store, by path


def _scan(value: Any, found: _Scan, path: str = "workload", level: int = 1) -> None:
    """Walk the workload once (it is validated on every event): depth, keys, NaN/Infinity.

    Stops descending past the depth limit, so an absurdly nested value costs no more.
    """
    if isinstance(value, float):
        found.not_finite = found.not_finite or not math.isfinite(value)
        return
    if isinstance(value, int) and not isinstance(value, bool):
        if found.too_large is None and not INT64_MIN <= value <= INT64_MAX:
            found.too_large = path
        return
    if not isinstance(value, dict | list) or level > MAX_WORKLOAD_DEPTH + 1:
        return
    found.depth = max(found.depth, level)
    if isinstance(value, dict):
        for key, item in value.items():
            if found.bad_key is None and not _DB_KEY.fullmatch(key):
                found.bad_key = f"{path}.{key!r}"
            _scan(item, found, f"{path}.{key}", level + 1)
    else:
        for i, item in enumerate(value):
            _scan(item, found, f"{path}[{i}]", level + 1)


def check_workload(value: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the limit a workload breaks: depth, size, or a database-refused key."""
    found = _Scan()
    _scan(value, found)
    if found.depth > MAX_WORKLOAD_DEPTH:
        raise ValueError(f"workload is nested deeper than {MAX_WORKLOAD_DEPTH} levels")
    if found.not_finite:
        raise ValueError("workload holds NaN or Infinity, which JSON does not allow")
    if found.too_large:
        raise ValueError(
            f"{found.too_large} is an integer outside the signed 64-bit range the database stores"
        )
    # its size as compact JSON, non-ASCII escaped as json.dumps does, counted in Rust
    size = len(to_json(value, ensure_ascii=True, fallback=str))
    if size > MAX_WORKLOAD_BYTES:
        raise ValueError(f"workload is {size} bytes as JSON; the limit is {MAX_WORKLOAD_BYTES}")
    if found.bad_key:
        raise ValueError(
            f"key {found.bad_key} is empty, contains '.' or NUL, or starts with '$', "
            "which the database refuses"
        )
