"""``nvidia-smi -q -x``: the XML output, the collector's fallback when NVML is missing."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from ca4_events.schema import Process
from ca4_producer.readings import FieldReader
from ca4_producer.smi.fields import SmiReport, mib_or_none, read_fields


def _clean(raw: str | None) -> str | None:
    return None if raw is None else raw.strip()


def parse_xml(text: str | bytes) -> SmiReport:
    """Parse ``nvidia-smi -q -x``; every ``<gpu>`` becomes an ``Accelerator``, in the printed order."""
    # The input is nvidia-smi's own output on this host (or a capture of it). ElementTree never
    # fetches the external DTD it names and expands no external entities.
    root = ET.fromstring(text)  # noqa: S314
    accelerators = []
    for index, gpu in enumerate(root.findall("gpu")):

        def lookup(paths: Sequence[str], gpu: ET.Element = gpu) -> str | None:
            for path in paths:
                found = gpu.find(path)
                if found is not None:
                    return (found.text or "").strip()
            return None

        r = FieldReader()
        read_fields(r, lookup, text_format=False)
        processes = [
            Process(
                pid=int(_clean(p.findtext("pid")) or 0),
                name=_clean(p.findtext("process_name")) or None,
                used_memory_bytes=mib_or_none(p.findtext("used_memory")),
            )
            for p in gpu.findall("processes/process_info")
        ]
        accelerators.append(
            r.accelerator(
                processes=processes,
                kind="gpu",
                index=index,
                uuid=lookup(("uuid",)) or f"GPU-{gpu.get('id', index)}",
                name=lookup(("product_name",)) or "NVIDIA GPU",
            )
        )
    return SmiReport(
        accelerators=tuple(accelerators),
        driver_version=_clean(root.findtext("driver_version")),
        cuda_version=_clean(root.findtext("cuda_version")),
        timestamp=_clean(root.findtext("timestamp")),
    )
