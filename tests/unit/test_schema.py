"""Event schema v1: accepts real captures, names the field of every problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ca4_events import field_errors, json_schema, parse_event, summarize
from ca4_events.schema import GpuMetadataEvent
from ca4_events.workload import MAX_WORKLOAD_DEPTH

SCHEMA_FILE = Path(__file__).parents[2] / "schemas" / "gpu-metadata-event.v1.schema.json"


def minimal() -> dict[str, Any]:
    return {"collected_at": "2026-11-28T02:42:19Z", "source": {"provider": "colab", "host": "h"}}


def errors_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as exc:
        parse_event(data)
    return {e["field"]: e["message"] for e in field_errors(exc.value)}


def test_a_cpu_only_snapshot_is_a_valid_event() -> None:
    event = parse_event(minimal())
    assert event.accelerators == [], "a CPU-only runtime must give a valid event with no accelerators"
    assert event.schema_version == 1


def test_every_h200_snapshot_round_trips_through_json(h200_events: list[GpuMetadataEvent]) -> None:
    assert len(h200_events) == 6, f"nvml-series.json holds 1 idle + 5 load snapshots, got {len(h200_events)}"
    for event in h200_events:
        again = GpuMetadataEvent.model_validate_json(event.model_dump_json(exclude_none=True))
        assert again == event, "dumping without nulls and reading back must give the same event"


def test_collected_at_must_carry_a_time_zone() -> None:
    data = minimal() | {"collected_at": "2026-11-28T02:42:19"}
    assert "collected_at" in errors_of(data)


def test_a_negative_memory_value_is_refused_with_its_path(load_event: GpuMetadataEvent) -> None:
    data = json.loads(load_event.model_dump_json())
    data["accelerators"][0]["memory_used_bytes"] = -1
    errors = errors_of(data)
    assert list(errors) == ["accelerators[0].memory_used_bytes"], f"got {errors}"
    assert "greater than or equal to 0" in errors["accelerators[0].memory_used_bytes"]


def test_a_misspelled_field_is_named_not_dropped() -> None:
    data = minimal() | {
        "accelerators": [{"kind": "gpu", "index": 0, "uuid": "GPU-1", "name": "x", "utilisation_gpu_pct": 5}]
    }
    errors = errors_of(data)
    assert "accelerators[0].utilisation_gpu_pct" in errors, f"got {errors}"


def test_unsupported_names_must_be_real_fields_and_null() -> None:
    acc = {"kind": "gpu", "index": 0, "uuid": "GPU-1", "name": "x"}
    ok = parse_event(minimal() | {"accelerators": [acc | {"unsupported": ["fan_speed_pct"]}]})
    assert ok.accelerators[0].fan_speed_pct is None
    bad_name = errors_of(minimal() | {"accelerators": [acc | {"unsupported": ["warp_drive"]}]})
    assert "unknown field 'warp_drive'" in bad_name["accelerators[0]"]
    has_value = errors_of(
        minimal() | {"accelerators": [acc | {"fan_speed_pct": 30, "unsupported": ["fan_speed_pct"]}]}
    )
    assert "has a value" in has_value["accelerators[0]"]


def test_the_same_accelerator_twice_in_one_snapshot_is_refused() -> None:
    acc = {"kind": "gpu", "index": 0, "uuid": "GPU-1", "name": "x"}
    errors = errors_of(minimal() | {"accelerators": [acc, acc | {"index": 1}]})
    assert "appears twice" in errors["(event)"]


def test_workload_may_nest_exactly_the_limit() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(MAX_WORKLOAD_DEPTH - 1):  # the workload object itself is the first level
        node["x"] = {}
        node = node["x"]
    node["leaf"] = [1, 2]  # an array is a level too
    with pytest.raises(ValidationError):
        parse_event(minimal() | {"workload": deep})
    node["leaf"] = 1
    assert parse_event(minimal() | {"workload": deep}).workload == deep


def test_workload_nesting_is_bounded() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(MAX_WORKLOAD_DEPTH + 2):
        node["x"] = {}
        node = node["x"]
    errors = errors_of(minimal() | {"workload": deep})
    assert "nested deeper" in errors["workload"]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        (
            {"source": {"provider": "colab", "host": "h", "tags": {"team.name": "x"}}},
            'source.tags["team.name"] (key)',
        ),
        ({"workload": {"job": {"a.b": 1}}}, "workload"),
        ({"workload": {"$where": "1"}}, "workload"),
        ({"workload": {"steps": [{"ok": 1}, {"": 2}]}}, "workload"),
    ],
    ids=["dotted-tag", "dotted-nested-key", "dollar-key", "empty-key-in-list"],
)
def test_keys_the_database_would_refuse_are_refused_here(patch: dict[str, Any], field: str) -> None:
    errors = errors_of(minimal() | patch)
    assert field in errors, f"expected an error on {field}, got {errors}"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"collected_at": 0}, "collected_at"),
        ({"event_id": 7}, "event_id"),
        ({"host": {"cpu_count": True}}, "host.cpu_count"),
        ({"host": {"cpu_count": "8"}}, "host.cpu_count"),
        ({"host": {"cpu_count": 8.5}}, "host.cpu_count"),
        ({"schema_version": "1"}, "schema_version"),
        ({"schema_version": True}, "schema_version"),
        ({"collected_at": "1700000000"}, "collected_at"),
        ({"workload": {"loss": float("nan")}}, "workload"),
        ({"workload": {"steps": [1, float("inf")]}}, "workload"),
    ],
    ids=[
        "unix-time",
        "numeric-id",
        "bool-as-int",
        "string-as-int",
        "fraction-as-int",
        "string-version",
        "bool-version",
        "unix-time-as-string",
        "nan-in-workload",
        "infinity-in-workload",
    ],
)
def test_json_types_are_taken_strictly(patch: dict[str, Any], field: str) -> None:
    assert field in errors_of(minimal() | patch)


def test_integral_floats_count_as_integers_as_in_json_schema() -> None:
    event = parse_event(minimal() | {"schema_version": 1.0, "host": {"cpu_count": 8.0}})
    assert event.host is not None and event.host.cpu_count == 8 and isinstance(event.host.cpu_count, int)


def test_summary_line_names_fields_and_counts_the_rest() -> None:
    with pytest.raises(ValidationError) as exc:
        parse_event({"source": {"provider": "mars"}})
    line = summarize(field_errors(exc.value), limit=2)
    assert line.startswith("collected_at: Field required; source.provider:"), line
    assert line.endswith("(+1 more)"), line


def test_partition_key_prefers_the_session() -> None:
    event = parse_event(minimal() | {"source": {"provider": "colab", "host": "h", "session_id": "s"}})
    assert event.partition_key() == "s"
    assert parse_event(minimal()).partition_key() == "h"


def test_published_json_schema_matches_the_models() -> None:
    published = json.loads(SCHEMA_FILE.read_text())
    assert published == json_schema(), (
        f"{SCHEMA_FILE} is stale: regenerate it with `nox -s schema` and commit it"
    )


def test_integer_bounds_hold_for_integral_floats_and_are_published() -> None:
    errors = errors_of(minimal() | {"host": {"cpu_count": 0.0}})
    assert errors == {"host.cpu_count": "Input should be greater than or equal to 1"}, errors
    cpu_count = json_schema()["$defs"]["HostInfo"]["properties"]["cpu_count"]["anyOf"][0]
    assert cpu_count == {"type": "integer", "minimum": 1, "maximum": 65_536}, cpu_count


def test_workload_size_counts_escaped_json_as_published() -> None:
    # 16 KiB as compact JSON, non-ASCII counted as its \\uXXXX escape (six bytes per character)
    overhead = len('{"note":""}')
    assert parse_event(minimal() | {"workload": {"note": "x" * (16 * 1024 - overhead)}}).workload
    errors = errors_of(minimal() | {"workload": {"note": "x" * (16 * 1024 - overhead + 1)}})
    assert errors["workload"] == "workload is 16385 bytes as JSON; the limit is 16384", errors
    errors = errors_of(minimal() | {"workload": {"note": "é" * 2731}})
    assert "16397 bytes as JSON" in errors["workload"], errors


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"workload": {"step": 2**63}}, "workload"),
        ({"workload": {"steps": [1, -(2**63) - 1]}}, "workload"),
        (
            {"accelerators": [{"kind": "tpu", "index": 0, "uuid": "t", "name": "v5e", "device_id": 2**63}]},
            "accelerators[0].device_id",
        ),
    ],
    ids=["workload-int", "workload-negative-in-list", "device-id"],
)
def test_an_integer_the_database_cannot_store_is_refused_here(patch: dict[str, Any], field: str) -> None:
    # BSON integers are signed 64-bit: accepted here, such a value made every write of its batch fail
    errors = errors_of(minimal() | patch)
    assert field in errors, f"expected an error on {field}, got {errors}"
    assert parse_event(minimal() | {"workload": {"step": 2**63 - 1}}).workload == {"step": 2**63 - 1}
