"""Readable validation errors: one line per problem, naming the field by its JSON path."""

from __future__ import annotations

import json
from typing import Any, TypedDict

from pydantic import ValidationError

from ca4_events.schema import GpuMetadataEvent


class FieldError(TypedDict):
    """One problem with one field of a submitted event."""

    field: str
    message: str
    type: str


def field_path(loc: tuple[int | str, ...]) -> str:
    """``('accelerators', 0, 'uuid')`` -> ``accelerators[0].uuid``.

    Keys that are not plain names are bracketed (``tags["team.name"]``), and an error about
    a mapping's key rather than its value ends in `` (key)``.
    """
    out = ""
    suffix = ""
    for part in loc:
        if part == "[key]":
            suffix = " (key)"
        elif isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return (out or "(event)") + suffix


def field_errors(exc: ValidationError, prefix: tuple[int | str, ...] = ()) -> list[FieldError]:
    """Flatten a pydantic error into ``{field, message, type}`` items."""
    errors: list[FieldError] = []
    for err in exc.errors(include_url=False, include_input=False):
        # pydantic prefixes value errors with "Value error, "; the field already says where
        message = str(err["msg"]).removeprefix("Value error, ")
        errors.append(
            FieldError(field=field_path(prefix + tuple(err["loc"])), message=message, type=err["type"])
        )
    return errors


def summarize(errors: list[FieldError], limit: int = 5) -> str:
    """One line for logs and DLQ headers: ``field: message; field: message (+3 more)``."""
    parts = [f"{e['field']}: {e['message']}" for e in errors[:limit]]
    more = len(errors) - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def parse_event(data: Any) -> GpuMetadataEvent:
    """Validate a decoded JSON value as an event (raises ``ValidationError``)."""
    return GpuMetadataEvent.model_validate(data)
