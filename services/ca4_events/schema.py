"""Event schema version 1: one snapshot of one host's accelerators at one instant.

Designed from real NVIDIA H200 captures (``nvidia-smi -q -x``, ``--query-gpu`` CSV and
NVML readings, see ``tests/fixtures/gpu/h200``). Names are snake_case with the unit in
the name. A value the device could not report is ``null`` and its field name is listed
in ``unsupported``: null is "unknown", never zero.

The API validates with these models, the worker reads with them and the OpenAPI document
is generated from them. ``schema_version`` lets old producers keep working after a change.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

SCHEMA_VERSION: Literal[1] = 1

MAX_ACCELERATORS = 64
MAX_PROCESSES = 256
MAX_TAGS = 64
MAX_FRAMEWORKS = 16
MAX_TAG_VALUE = 256
MAX_WORKLOAD_BYTES = 16 * 1024
MAX_WORKLOAD_DEPTH = 8


def _integral(value: Any) -> Any:
    # JSON Schema counts 206.0 as an integer, so the API does too; 206.5, true and "206" stay refused
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _not_a_number(value: Any) -> Any:
    # JSON carries timestamps and UUIDs as strings; a number here is a mistake, not a Unix time
    # (producers in Python may pass datetime and UUID objects, which are fine)
    if isinstance(value, int | float):
        raise ValueError("must be a string (RFC 3339 for timestamps), not a number")
    return value


_RFC3339_DATE = re.compile(r"\s*\d{4}-\d{2}-\d{2}[Tt ]")


def _timestamp(value: Any) -> Any:
    # pydantic would read "1700000000" as a Unix time; JSON producers must send RFC 3339
    if isinstance(value, str) and not _RFC3339_DATE.match(value):
        raise ValueError("must be an RFC 3339 timestamp with a time zone, e.g. 2026-11-28T12:00:00Z")
    return _not_a_number(value)


def _version(value: Any) -> Any:
    if isinstance(value, bool):  # True == 1 in Python, not in JSON
        raise ValueError("must be the number 1, not a boolean")
    return _integral(value)


Int = Annotated[int, BeforeValidator(_integral)]
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
Bytes = Annotated[Int, Field(ge=0, le=2**63 - 1)]
Counter = Annotated[Int, Field(ge=0, le=2**63 - 1)]
Celsius = Annotated[float, Field(ge=-60, le=250)]
Watts = Annotated[float, Field(ge=0, le=100_000)]
MHz = Annotated[Int, Field(ge=0, le=100_000)]


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


def _workload_schema(depth: int = MAX_WORKLOAD_DEPTH) -> dict[str, Any]:
    """The workload object: database-safe keys, ``depth`` levels in all (see ``_workload_defs``)."""
    return {
        "type": "object",
        "propertyNames": {"pattern": _DB_KEY_PATTERN},
        "additionalProperties": {_WORKLOAD_MARK: depth},
    }


class _Model(BaseModel):
    # Unknown fields are rejected so a typo ("utilisation_gpu_pct") is a named error, not a
    # silently dropped value. Strict: JSON's own types only, so false is not 0 and "5" is
    # not 5; timestamps and UUIDs, which JSON can only carry as strings, are parsed from them.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True, strict=True)


class Source(_Model):
    """Where the snapshot came from."""

    provider: Literal["colab", "gcp", "aws", "azure", "onprem", "other"] = Field(
        description="Platform the producer runs on."
    )
    host: Name = Field(description="Host name (or a stable pseudonym) of the producer.")
    session_id: ShortText | None = Field(
        default=None,
        description="Producer session (e.g. one Colab runtime); the Kafka key when present.",
    )
    region: ShortText | None = None
    instance_type: ShortText | None = Field(default=None, examples=["a3-highgpu-1g"])
    tags: Tags = Field(default_factory=dict, max_length=MAX_TAGS)


class HostInfo(_Model):
    """The machine the accelerators are attached to."""

    cpu_count: Annotated[Int, Field(ge=1, le=65_536)] | None = None
    memory_total_bytes: Bytes | None = None
    os: Name | None = Field(default=None, examples=["Linux-6.8.0-x86_64-with-glibc2.35"])
    python_version: ShortText | None = Field(default=None, examples=["3.11.7"])


class Software(_Model):
    """Driver and library versions."""

    driver_version: ShortText | None = Field(default=None, examples=["580.159.04"])
    cuda_driver_version: ShortText | None = Field(default=None, examples=["13.0"])
    nvml_version: ShortText | None = Field(default=None, examples=["13.580.159.04"])
    framework: Frameworks = Field(
        default_factory=dict,
        max_length=MAX_FRAMEWORKS,
        description="Framework versions, e.g. {'torch': '2.11.0+cu130', 'jax': '0.6.0'}.",
    )


class Process(_Model):
    """A process holding memory on the accelerator."""

    pid: Annotated[Int, Field(ge=0, le=2**31 - 1)]
    name: Name | None = None
    used_memory_bytes: Bytes | None = None


def _accelerator_schema(schema: dict[str, Any]) -> None:
    """Publish what JSON Schema can say about ``unsupported``: only field names of this model.

    That each listed field is null is checked by the model (a 422 naming the field); an
    if/then per field would state it, but schema-driven generators (schemathesis) cannot
    work with such a schema, so the rule lives in the description instead.
    """
    schema["properties"]["unsupported"]["items"] = {"enum": sorted(_reportable_fields())}


class Accelerator(_Model):
    """One GPU or TPU device at the snapshot instant."""

    model_config = ConfigDict(json_schema_extra=_accelerator_schema)

    kind: Literal["gpu", "tpu"]
    index: Annotated[Int, Field(ge=0, le=4096)]
    uuid: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="Stable device id (NVML UUID for GPUs; host-qualified device id for TPUs).",
        examples=["GPU-bfb5ba6a-db8e-fc7b-5fdc-aeabcd37bce1"],
    )
    name: Name = Field(examples=["NVIDIA H200"])
    serial: ShortText | None = None
    pci_bus_id: ShortText | None = Field(default=None, examples=["00000000:00:06.0"])
    architecture: ShortText | None = Field(default=None, examples=["Hopper"])
    compute_capability: Annotated[str, StringConstraints(pattern=r"^\d{1,2}\.\d{1,2}$")] | None = Field(
        default=None, examples=["9.0"]
    )

    # modes
    pstate: Annotated[str, StringConstraints(pattern=r"^P\d{1,2}$")] | None = None
    persistence_mode: bool | None = None
    compute_mode: ShortText | None = Field(default=None, examples=["Default"])
    mig_mode: bool | None = None
    ecc_mode: bool | None = None

    # memory
    memory_total_bytes: Bytes | None = None
    memory_used_bytes: Bytes | None = None
    memory_free_bytes: Bytes | None = None

    # load, thermals, power
    utilization_gpu_pct: Percent | None = None
    utilization_memory_pct: Percent | None = None
    temperature_gpu_c: Celsius | None = None
    temperature_memory_c: Celsius | None = None
    power_draw_w: Watts | None = None
    power_limit_w: Watts | None = None
    energy_total_mj: Counter | None = Field(
        default=None, description="Energy since the driver loaded, millijoules (NVML)."
    )
    fan_speed_pct: Percent | None = None

    # clocks
    clock_sm_mhz: MHz | None = None
    clock_memory_mhz: MHz | None = None
    clock_graphics_mhz: MHz | None = None
    clock_sm_max_mhz: MHz | None = None
    clock_memory_max_mhz: MHz | None = None
    clock_event_reasons_mask: Annotated[Int, Field(ge=0, le=2**64 - 1)] | None = Field(
        default=None,
        description="NVML clocks-event (throttle) reasons bit mask; 0x4 = software power cap.",
    )

    # errors
    ecc_errors_corrected_volatile: Counter | None = None
    ecc_errors_uncorrected_volatile: Counter | None = None
    ecc_errors_corrected_aggregate: Counter | None = None
    ecc_errors_uncorrected_aggregate: Counter | None = None
    remapped_rows_correctable: Counter | None = None
    remapped_rows_uncorrectable: Counter | None = None
    remapped_rows_pending: bool | None = None
    remapped_rows_failure: bool | None = None

    # PCIe
    pcie_link_gen: Annotated[Int, Field(ge=1, le=16)] | None = None
    pcie_link_width: Annotated[Int, Field(ge=1, le=64)] | None = None

    processes: list[Process] = Field(default_factory=list, max_length=MAX_PROCESSES)

    # TPU (what JAX reports), in the same shape
    device_kind: ShortText | None = Field(default=None, examples=["TPU v5 lite"])
    device_id: Annotated[Int, Field(ge=0)] | None = None
    coords: list[Annotated[Int, Field(ge=0, le=65_536)]] | None = Field(default=None, max_length=4)
    core_on_chip: Annotated[Int, Field(ge=0, le=64)] | None = None
    memory_peak_bytes: Bytes | None = None

    unsupported: list[ShortText] = Field(
        default_factory=list,
        max_length=128,
        description="Names of fields this device could not report; each listed field must be null.",
    )

    @model_validator(mode="after")
    def _unsupported_fields_are_null(self) -> Accelerator:
        reportable = _reportable_fields()
        for name in self.unsupported:
            if name not in reportable:
                raise ValueError(f"unsupported names an unknown field {name!r}")
            if getattr(self, name) is not None:
                raise ValueError(f"field {name!r} is listed as unsupported but has a value")
        return self


def _reportable_fields() -> frozenset[str]:
    structural = {"kind", "index", "uuid", "name", "processes", "unsupported"}
    return frozenset(Accelerator.model_fields) - structural


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


class GpuMetadataEvent(_Model):
    """A snapshot of one host's accelerators (schema version 1)."""

    schema_version: Annotated[Literal[1], BeforeValidator(_version)] = Field(
        default=SCHEMA_VERSION, description="Version of this schema the producer speaks."
    )
    event_id: Annotated[UUID, Field(strict=False), BeforeValidator(_not_a_number)] | None = Field(
        default=None,
        description=(
            "Idempotency key. Send the same id on a retry and the event is stored once; "
            "when absent, the API assigns a UUIDv7."
        ),
    )
    collected_at: Annotated[AwareDatetime, Field(strict=False), BeforeValidator(_timestamp)] = Field(
        description="When the producer took the snapshot (RFC 3339 with a time zone)."
    )
    source: Source
    host: HostInfo | None = None
    software: Software | None = None
    accelerators: list[Accelerator] = Field(
        default_factory=list,
        max_length=MAX_ACCELERATORS,
        description=(
            "Empty on a CPU-only runtime, which is still a valid event. "
            "Each accelerator's uuid appears once per snapshot."
        ),
    )
    workload: Annotated[dict[str, Any], WithJsonSchema(_workload_schema())] | None = Field(
        default=None,
        description="Free-form: what the producer was doing (job id, framework, model, step).",
    )

    @field_validator("workload")
    @classmethod
    def _workload_is_bounded(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
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
        return value

    @model_validator(mode="after")
    def _accelerators_are_distinct(self) -> GpuMetadataEvent:
        seen: set[str] = set()
        for acc in self.accelerators:
            if acc.uuid in seen:
                raise ValueError(f"accelerator uuid {acc.uuid!r} appears twice in one snapshot")
            seen.add(acc.uuid)
        return self

    def partition_key(self) -> str:
        """Kafka key: the producer session when known, else the host, so one producer stays ordered."""
        return self.source.session_id or self.source.host


class EventBatch(_Model):
    """Several events in one request (``POST /metadata``); each gets its own result.

    The API also caps the count (``API_MAX_BATCH_EVENTS``), which its OpenAPI document adds.
    """

    events: list[GpuMetadataEvent] = Field(min_length=1)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of one event, as published in ``schemas/``."""
    schema = GpuMetadataEvent.model_json_schema()
    schema = with_workload_defs(schema, schema.setdefault("$defs", {}), "#/$defs/")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://ca4.dev/schemas/gpu-metadata-event.v1.json"
    return schema
