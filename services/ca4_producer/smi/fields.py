"""Reading one GPU's fields through a format's lookup, and the parsed report of one output."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ca4_events.schema import Accelerator
from ca4_producer.readings import CLOCK_EVENT_REASONS, FieldReader, Reading, is_not_available
from ca4_producer.smi.specs import ECC_TEXT, ECC_XML, SPECS, Lookup, as_int, as_mib


def put(r: FieldReader, field: str, raw: str | None, convert: Callable[[str], Any]) -> None:
    if raw is None:
        return  # this output does not carry the field
    if is_not_available(raw):
        r.mark_unsupported(field)
        return
    try:
        r.put(field, convert(raw))
    except (ValueError, IndexError):
        r.mark_failed(field)  # printed, but not in a shape we know: unknown, not unsupported


def put_memory(r: FieldReader, total: str | None, free: str | None) -> None:
    """Memory in bytes, with used = total - free as NVML counts it (the printed "used" leaves
    out reserved memory; see ``ca4_producer.nvidia_smi``)."""
    if total is None or free is None:
        return
    memory_fields = ("memory_total_bytes", "memory_used_bytes", "memory_free_bytes")
    if is_not_available(total) or is_not_available(free):
        r.mark_unsupported(*memory_fields)
        return
    try:
        total_b, free_b = as_mib(total), as_mib(free)
    except (ValueError, IndexError):
        r.mark_failed(*memory_fields)
        return
    r.put("memory_total_bytes", total_b)
    r.put("memory_free_bytes", free_b)
    r.put("memory_used_bytes", max(total_b - free_b, 0))


def read_fields(r: FieldReader, lookup: Lookup, text_format: bool) -> None:
    for spec in SPECS:
        paths = spec.text if text_format else spec.xml
        if paths:
            put(r, spec.field, lookup(paths), spec.convert)
    put_memory(
        r,
        lookup(("FB Memory Usage/Total",) if text_format else ("fb_memory_usage/total",)),
        lookup(("FB Memory Usage/Free",) if text_format else ("fb_memory_usage/free",)),
    )

    for field, layouts in (ECC_TEXT if text_format else ECC_XML).items():
        put_sum(r, field, lookup, layouts)

    reasons = [
        (bit, lookup((f"Clocks Event Reasons/{label}", f"Clocks Throttle Reasons/{label}")))
        if text_format
        else (
            bit,
            lookup(
                (
                    f"clocks_event_reasons/clocks_event_reason_{suffix}",
                    f"clocks_throttle_reasons/clocks_throttle_reason_{suffix}",
                )
            ),
        )
        for bit, suffix, label in CLOCK_EVENT_REASONS
    ]
    present = [(bit, raw) for bit, raw in reasons if raw is not None]
    if present and all(is_not_available(raw) for _, raw in present):
        r.mark_unsupported("clock_event_reasons_mask")
    elif present:
        r.put("clock_event_reasons_mask", sum(bit for bit, raw in present if raw.strip().lower() == "active"))


def put_sum(r: FieldReader, field: str, lookup: Lookup, layouts: Sequence[Sequence[str]]) -> None:
    for parts in layouts:
        raws = [lookup((p,)) for p in parts]
        present = [raw for raw in raws if raw is not None]
        if not present:
            continue
        if all(is_not_available(raw) for raw in present):
            r.mark_unsupported(field)
            return
        try:
            r.put(field, sum(as_int(raw) for raw in present if not is_not_available(raw)))
        except (ValueError, IndexError):
            r.mark_failed(field)
        return


def mib_or_none(raw: str | None) -> int | None:
    if raw is None or is_not_available(raw):
        return None
    try:
        return as_mib(raw)
    except (ValueError, IndexError):
        return None


@dataclass(frozen=True)
class SmiReport:
    """One nvidia-smi output, parsed: the accelerators and the versions it printed."""

    accelerators: tuple[Accelerator, ...]
    driver_version: str | None = None
    cuda_version: str | None = None
    timestamp: str | None = None

    def collected_at(self) -> dt.datetime | None:
        """The printed timestamp, read as UTC (nvidia-smi prints the host's local time without a zone)."""
        if not self.timestamp:
            return None
        for fmt in ("%a %b %d %H:%M:%S %Y", "%Y/%m/%d %H:%M:%S.%f"):
            try:
                return dt.datetime.strptime(self.timestamp.strip(), fmt).replace(tzinfo=dt.UTC)
            except ValueError:
                continue
        return None

    def reading(self, source: str, origin: str | None = None) -> Reading:
        """As a collector ``Reading``."""
        return Reading(
            source=source,
            accelerators=self.accelerators,
            driver_version=self.driver_version,
            cuda_driver_version=self.cuda_version,
            origin=origin,
        )
