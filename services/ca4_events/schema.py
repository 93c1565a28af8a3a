"""Event schema version 1: one snapshot of one host's accelerators at one instant.

Designed from real NVIDIA H200 captures (``nvidia-smi -q -x``, ``--query-gpu`` CSV and
NVML readings, see ``tests/fixtures/gpu/h200``). Names are snake_case with the unit in
the name. A value the device could not report is ``null`` and its field name is listed
in ``unsupported``: null is "unknown", never zero.

The API validates with these models, the worker reads with them and the OpenAPI document
is generated from them. ``schema_version`` lets old producers keep working after a change.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
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

from ca4_events.fields import (
    INT64_MAX,
    INTEGRAL,
    MAX_FRAMEWORKS,
    MAX_TAGS,
    Bytes,
    Celsius,
    Counter,
    Frameworks,
    MHz,
    Name,
    Percent,
    ShortText,
    Tags,
    Watts,
    not_a_number,
    timestamp,
    version,
)
from ca4_events.workload import check_workload, with_workload_defs, workload_schema

SCHEMA_VERSION: Literal[1] = 1

MAX_ACCELERATORS = 64
MAX_PROCESSES = 256


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

    cpu_count: Annotated[int, Field(ge=1, le=65_536), INTEGRAL] | None = None
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

    pid: Annotated[int, Field(ge=0, le=2**31 - 1), INTEGRAL]
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
    index: Annotated[int, Field(ge=0, le=4096), INTEGRAL]
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
    clock_event_reasons_mask: Annotated[int, Field(ge=0, le=INT64_MAX), INTEGRAL] | None = Field(
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
    pcie_link_gen: Annotated[int, Field(ge=1, le=16), INTEGRAL] | None = None
    pcie_link_width: Annotated[int, Field(ge=1, le=64), INTEGRAL] | None = None

    processes: list[Process] = Field(default_factory=list, max_length=MAX_PROCESSES)

    # TPU (what JAX reports), in the same shape
    device_kind: ShortText | None = Field(default=None, examples=["TPU v5 lite"])
    device_id: Annotated[int, Field(ge=0, le=INT64_MAX), INTEGRAL] | None = None
    coords: list[Annotated[int, Field(ge=0, le=65_536), INTEGRAL]] | None = Field(default=None, max_length=4)
    core_on_chip: Annotated[int, Field(ge=0, le=64), INTEGRAL] | None = None
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


@functools.cache
def _reportable_fields() -> frozenset[str]:
    structural = {"kind", "index", "uuid", "name", "processes", "unsupported"}
    return frozenset(Accelerator.model_fields) - structural


class GpuMetadataEvent(_Model):
    """A snapshot of one host's accelerators (schema version 1)."""

    schema_version: Annotated[Literal[1], BeforeValidator(version)] = Field(
        default=SCHEMA_VERSION, description="Version of this schema the producer speaks."
    )
    event_id: Annotated[UUID, Field(strict=False), BeforeValidator(not_a_number)] | None = Field(
        default=None,
        description=(
            "Idempotency key. Send the same id on a retry and the event is stored once; "
            "when absent, the API assigns a UUIDv7."
        ),
    )
    collected_at: Annotated[AwareDatetime, Field(strict=False), BeforeValidator(timestamp)] = Field(
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
    workload: Annotated[dict[str, Any], WithJsonSchema(workload_schema())] | None = Field(
        default=None,
        description="Free-form: what the producer was doing (job id, framework, model, step).",
    )

    @field_validator("workload")
    @classmethod
    def _workload_is_bounded(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        check_workload(value)
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
