"""Plain-text views of snapshots and deliveries, for notebooks and terminals (no pandas needed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ca4_events.schema import Accelerator, GpuMetadataEvent
from ca4_producer.client import Delivery

_GIB = 1 << 30


def _fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def _memory(acc: Accelerator) -> str:
    if acc.memory_total_bytes is None:
        return "-"
    used = "-" if acc.memory_used_bytes is None else f"{acc.memory_used_bytes / _GIB:.2f}"
    return f"{used}/{acc.memory_total_bytes / _GIB:.2f} GiB"


def accelerator_table(event: GpuMetadataEvent) -> str:
    """One line per accelerator: identity, load, memory, power, temperature and what is unsupported."""
    if not event.accelerators:
        return "no accelerators: a CPU-only runtime (the event is still valid and is sent)"
    header = (
        "idx",
        "kind",
        "name",
        "uuid",
        "cc",
        "util%",
        "memory",
        "power W",
        "limit W",
        "temp C",
        "unsupported",
    )
    rows = [
        (
            str(a.index),
            a.kind,
            a.name,
            a.uuid,
            a.compute_capability or "-",
            _fmt(a.utilization_gpu_pct, digits=0),
            _memory(a),
            _fmt(a.power_draw_w),
            _fmt(a.power_limit_w),
            _fmt(a.temperature_gpu_c, digits=0),
            ",".join(a.unsupported) or "-",
        )
        for a in event.accelerators
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    return "\n".join(lines)


def delivery_lines(deliveries: Sequence[Delivery]) -> str:
    """``POST /metadata -> 202  <n> event(s)  attempts=<k>`` per request, then each event id."""
    lines: list[str] = []
    for d in deliveries:
        lines.append(
            f"POST /metadata -> {d.status}  {len(d.event_ids)} event(s)  attempts={d.attempts}"
            + (f"  refused={len(d.refused)}" if d.refused else "")
        )
        lines.extend(f"  {event_id}" for event_id in d.accepted_ids)
        for item in d.refused:
            why = item.get("detail") or item.get("errors")
            lines.append(f"  refused {item.get('event_id')}: {item.get('status')} {why}")
    return "\n".join(lines)
