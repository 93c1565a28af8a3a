"""The event's free-form ``workload``: bounded (depth, size) and with keys a Mongo-compatible
database accepts, checked by the validator and stated, level by level, in the JSON Schema."""

from __future__ import annotations

import json
import re
from typing import Any

MAX_WORKLOAD_BYTES = 16 * 1024
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


def _bad_key(value: Any, path: str = "workload") -> str | None:
    """The first key (by path) that a Mongo-compatible database would refuse, if any."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not _DB_KEY.fullmatch(key):
                return f"{path}.{key!r}"
            found = _bad_key(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _bad_key(item, f"{path}[{i}]")
            if found:
                return found
    return None


def _json_depth(value: Any, limit: int) -> int:
    """Nesting depth in containers (objects and arrays); scalars add nothing. Stops past ``limit``."""
    if not isinstance(value, dict | list) or limit < 0:
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_json_depth(child, limit - 1) for child in children), default=0)


def check_workload(value: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the limit a workload breaks: depth, size, or a database-refused key."""
    if _json_depth(value, MAX_WORKLOAD_DEPTH) > MAX_WORKLOAD_DEPTH:
        raise ValueError(f"workload is nested deeper than {MAX_WORKLOAD_DEPTH} levels")
    try:
        size = len(json.dumps(value, separators=(",", ":"), default=str, allow_nan=False))
    except ValueError:
        raise ValueError("workload holds NaN or Infinity, which JSON does not allow") from None
    if size > MAX_WORKLOAD_BYTES:
        raise ValueError(f"workload is {size} bytes as JSON; the limit is {MAX_WORKLOAD_BYTES}")
    bad = _bad_key(value)
    if bad:
        raise ValueError(
            f"key {bad} is empty, contains '.' or NUL, or starts with '$', which the database refuses"
        )
