"""``nvidia-smi -q``: the human-readable output (indented ``Key : value`` sections)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ca4_events.schema import Process
from ca4_producer.readings import FieldReader
from ca4_producer.smi.fields import SmiReport, mib_or_none, read_fields

_KEY_VALUE = re.compile(r"^(?P<key>.+?)\s+:\s?(?P<value>.*)$")


def _text_tree(text: str) -> dict[str, Any]:
    """Indented ``Key : value`` lines -> nested dicts; a repeated key collects its values in a list."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(-1, root)]
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("="):
            continue
        indent = len(line) - len(line.lstrip(" "))
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        match = _KEY_VALUE.match(line.strip())
        if match:
            _add(parent, match["key"].strip(), match["value"].strip())
        else:
            # a section header ("PCI", "GPU 00000000:00:06.0"); lines indented deeper than a
            # valued line (e.g. "HW Thermal Slowdown" under "HW Slowdown") stay its siblings
            child: dict[str, Any] = {}
            _add(parent, line.strip(), child)
            stack.append((indent, child))
    return root


def _add(parent: dict[str, Any], key: str, value: Any) -> None:
    if key not in parent:
        parent[key] = value
    elif isinstance(parent[key], list):
        parent[key].append(value)
    else:
        parent[key] = [parent[key], value]


def _tree_get(tree: Mapping[str, Any], path: str) -> Any:
    node: Any = tree
    for part in path.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def parse_text(text: str) -> SmiReport:
    """Parse ``nvidia-smi -q`` (the human-readable form) into the same report as the XML."""
    tree = _text_tree(text)
    accelerators = []
    gpus = [(k, v) for k, v in tree.items() if k.startswith("GPU ") and isinstance(v, dict)]
    for index, (header, gpu) in enumerate(gpus):

        def lookup(paths: Sequence[str], gpu: dict[str, Any] = gpu) -> str | None:
            for path in paths:
                value = _tree_get(gpu, path)
                if isinstance(value, str):
                    return value
            return None

        r = FieldReader()
        read_fields(r, lookup, text_format=True)
        accelerators.append(
            r.accelerator(
                processes=_text_processes(gpu.get("Processes")),
                kind="gpu",
                index=index,
                uuid=lookup(("GPU UUID",)) or f"GPU-{header.removeprefix('GPU ')}",
                name=lookup(("Product Name",)) or "NVIDIA GPU",
            )
        )
    return SmiReport(
        accelerators=tuple(accelerators),
        driver_version=tree.get("Driver Version") if isinstance(tree.get("Driver Version"), str) else None,
        cuda_version=tree.get("CUDA Version") if isinstance(tree.get("CUDA Version"), str) else None,
        timestamp=tree.get("Timestamp") if isinstance(tree.get("Timestamp"), str) else None,
    )


def _text_processes(section: Any) -> list[Process]:
    # "Processes : None" when idle; otherwise one "Process ID", "Name", "Used GPU Memory" per process
    if not isinstance(section, dict):
        return []

    def column(key: str) -> list[str]:
        value = section.get(key)
        return value if isinstance(value, list) else [] if value is None else [value]

    pids, names, used = column("Process ID"), column("Name"), column("Used GPU Memory")
    return [
        Process(pid=int(pid), name=name or None, used_memory_bytes=mib_or_none(mem))
        for pid, name, mem in zip(pids, names, used, strict=False)
        if pid.isdigit()
    ]
