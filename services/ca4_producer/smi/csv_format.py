"""``nvidia-smi --query-gpu=... --format=csv`` (and ``--query-compute-apps``)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence

from ca4_events.schema import Process
from ca4_producer.readings import FieldReader
from ca4_producer.smi.fields import SmiReport, mib_or_none, put, put_memory
from ca4_producer.smi.specs import SPECS

_UNIT = re.compile(r"\s*\[[^\]]*\]$")


def parse_query_csv(text: str) -> list[dict[str, str]]:
    """``--format=csv`` output -> one dict per row, keyed by the query name without its unit."""
    rows = list(csv.reader(io.StringIO(text), skipinitialspace=True))
    if not rows:
        return []
    header = [_UNIT.sub("", h.strip()) for h in rows[0]]
    return [dict(zip(header, (v.strip() for v in row), strict=False)) for row in rows[1:] if row]


def _csv_value(row: Mapping[str, str], names: Sequence[str]) -> str | None:
    for name in names:
        if name in row:
            return row[name]
    return None


def parse_query_gpu_csv(text: str, compute_apps_csv: str | None = None) -> SmiReport:
    """Parse ``--query-gpu=... --format=csv`` (with or without units); add processes when given.

    ``--query-compute-apps`` without a ``gpu_uuid`` column cannot say which GPU a process
    uses, so such processes are attached only when there is exactly one GPU.
    """
    rows = parse_query_csv(text)
    apps = parse_query_csv(compute_apps_csv) if compute_apps_csv else []
    accelerators = []
    for position, row in enumerate(rows):
        r = FieldReader()
        for spec in SPECS:
            if spec.csv:
                put(r, spec.field, _csv_value(row, spec.csv), spec.convert)
        put_memory(r, row.get("memory.total"), row.get("memory.free"))
        uuid = row.get("uuid") or f"GPU-index-{position}"
        mine = [a for a in apps if a.get("gpu_uuid") == uuid or ("gpu_uuid" not in a and len(rows) == 1)]
        processes = [
            Process(
                pid=int(a["pid"]),
                name=a.get("process_name") or None,
                used_memory_bytes=mib_or_none(a.get("used_gpu_memory") or a.get("used_memory")),
            )
            for a in mine
            if a.get("pid", "").isdigit()
        ]
        index = row.get("index")
        accelerators.append(
            r.accelerator(
                processes=processes,
                kind="gpu",
                index=int(index) if index and index.isdigit() else position,
                uuid=uuid,
                name=row.get("name") or "NVIDIA GPU",
            )
        )
    first = rows[0] if rows else {}
    return SmiReport(
        accelerators=tuple(accelerators),
        driver_version=first.get("driver_version"),
        timestamp=first.get("timestamp"),
    )
