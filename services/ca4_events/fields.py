"""The event schema's field types: the annotated types its models use (units, bounds,
tag keys a database accepts) and the converters that keep JSON's meaning (206.0 is an
integer, true is not 1, a timestamp is an RFC 3339 string, never a number)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, WithJsonSchema

MAX_TAGS = 64
MAX_FRAMEWORKS = 16
MAX_TAG_VALUE = 256


def _integral(value: Any) -> Any:
    # JSON Schema counts 206.0 as an integer, so the API does too; 206.5, true and "206" stay refused
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def not_a_number(value: Any) -> Any:
    # JSON carries timestamps and UUIDs as strings; a number here is a mistake, not a Unix time
    # (producers in Python may pass datetime and UUID objects, which are fine)
    if isinstance(value, int | float):
        raise ValueError("must be a string (RFC 3339 for timestamps), not a number")
    return value


_RFC3339_DATE = re.compile(r"\s*\d{4}-\d{2}-\d{2}[Tt ]")


def timestamp(value: Any) -> Any:
    # pydantic would read "1700000000" as a Unix time; JSON producers must send RFC 3339
    if isinstance(value, str) and not _RFC3339_DATE.match(value):
        raise ValueError("must be an RFC 3339 timestamp with a time zone, e.g. 2026-11-28T12:00:00Z")
    return not_a_number(value)


def version(value: Any) -> Any:
    if isinstance(value, bool):  # True == 1 in Python, not in JSON
        raise ValueError("must be the number 1, not a boolean")
    return _integral(value)


# an integer field's bounds stand before INTEGRAL: pydantic then checks them in its core,
# where bounds after a Python validator would be two more Python calls per field
INTEGRAL = BeforeValidator(_integral)
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
_TAG_KEY_PATTERN = r"^[A-Za-z0-9_:/-]{1,64}$"
_TAG_KEY = re.compile(_TAG_KEY_PATTERN)


def _tag_key(value: str) -> str:
    # no "." and no "$": DocumentDB (and FerretDB) refuse such field names, so they are
    # refused here, at the API, instead of becoming a dead letter after a 202
    if not _TAG_KEY.fullmatch(value):
        raise ValueError(f"key {value!r} must be 1-64 letters, digits or _ : / - (no '.' or '$')")
    return value


def _keyed_object(values: dict[str, Any], max_properties: int) -> dict[str, Any]:
    """JSON Schema of a mapping whose keys follow the tag-key rule."""
    return {
        "type": "object",
        "patternProperties": {_TAG_KEY_PATTERN: values},
        "additionalProperties": False,
        "maxProperties": max_properties,
    }


# the readable message comes from the validator; the published JSON Schema states the same rule
TagKey = Annotated[
    str, AfterValidator(_tag_key), WithJsonSchema({"type": "string", "pattern": _TAG_KEY_PATTERN})
]
TagValue = Annotated[str, StringConstraints(max_length=MAX_TAG_VALUE)]
Tags = Annotated[
    dict[TagKey, TagValue],
    WithJsonSchema(_keyed_object({"type": "string", "maxLength": MAX_TAG_VALUE}, MAX_TAGS)),
]
Frameworks = Annotated[
    dict[TagKey, ShortText],
    WithJsonSchema(_keyed_object({"type": "string", "minLength": 1, "maxLength": 128}, MAX_FRAMEWORKS)),
]
Percent = Annotated[float, Field(ge=0, le=100)]
# BSON, so DocumentDB, stores integers as signed 64-bit: a larger one would be accepted here
# and then refused by every write of the worker, so no integer field goes past it
INT64_MAX = 2**63 - 1
Bytes = Annotated[int, Field(ge=0, le=INT64_MAX), INTEGRAL]
Counter = Annotated[int, Field(ge=0, le=INT64_MAX), INTEGRAL]
Celsius = Annotated[float, Field(ge=-60, le=250)]
Watts = Annotated[float, Field(ge=0, le=100_000)]
MHz = Annotated[int, Field(ge=0, le=100_000), INTEGRAL]
