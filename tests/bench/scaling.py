"""What the per-event table cannot say: what more server processes bring, and what a
single-event request waits for.

- ``API_WORKERS`` 1 and 2, batches of 100, with the API pinned apart from the rest of the
  stack (the broker, the worker, the database) and the load generator: with one process the
  API has CPU 0 to itself and the others share CPU 1; with two, the API may use both, so the
  second process can only take what the others leave of CPU 1. On a node with more cores
  than the stack needs, the second figure is the one that grows.
- ``KAFKA_LINGER_MS`` 0, 1 and 5 for single events: each request waits for its own ack, so
  a client with ``concurrency`` requests in flight gets at most concurrency / (ack wait)
  requests per second, whatever the handler costs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from local_stack import pipeline
from local_stack.config import StackConfig

WORKER_COUNTS = (1, 2)
LINGERS_MS = (0, 1, 5)


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (uvicorn's worker processes)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def _threads(pid: int) -> list[int]:
    try:
        return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def _set_affinity(pids: list[int], cpus: set[int]) -> None:
    for pid in pids:
        for tid in _threads(pid):
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(tid, cpus)


def stack_pids(cfg: StackConfig) -> dict[str, int]:
    """Every running process of the stack by name (its PID files), the API's workers included."""
    pids = {}
    for pid_file in cfg.run_dir.glob("*.pid"):
        with contextlib.suppress(OSError, ValueError):
            pids[pid_file.stem] = int(pid_file.read_text().strip())
    return pids


@contextlib.contextmanager
def pinned_apart(cfg: StackConfig, api_cpus: set[int], other_cpus: set[int]) -> Iterator[None]:
    """The API's processes on ``api_cpus``, the rest of the stack on ``other_cpus``; every CPU
    again afterwards."""
    every = set(os.sched_getaffinity(0))
    api_name = pipeline.api_process(cfg).name
    pids = stack_pids(cfg)
    api = descendants(pids.pop(api_name))
    others = [p for pid in pids.values() for p in descendants(pid)]
    _set_affinity(api, api_cpus)
    _set_affinity(others, other_cpus)
    try:
        yield
    finally:
        _set_affinity(api + others, every)


def placements() -> dict[int, tuple[set[int], set[int]]] | None:
    """Per worker count, (the API's CPUs, the others' CPUs); None on a single CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    first, rest = {cpus[0]}, set(cpus[1:])
    return {1: (first, rest), 2: (set(cpus), rest)}


def markdown(figures: dict[str, Any]) -> list[str]:
    """The two tables as Markdown lines."""
    lines = ["Server processes (`API_WORKERS`), batches of 100, the API pinned apart from the rest:", ""]
    workers = figures.get("api_workers", {})
    if "not_measured" in workers:
        lines.append(f"Not measured: {workers['not_measured']}.")
    else:
        lines += [
            "| API_WORKERS | API on CPUs | the rest on CPUs | events/s | p50 ms | API CPU us/event |",
            "| ---: | --- | --- | ---: | ---: | ---: |",
        ]
        for count, run in workers.items():
            cpu = run.get("server_cpu_seconds")
            per_event = round(cpu / run["acknowledged"] * 1e6, 1) if cpu and run.get("acknowledged") else None
            lines.append(
                f"| {count} | {run['api_cpus']} | {run['other_cpus']} | {run['events_per_second']} "
                f"| {run['latency_ms_p50']} | {per_event} |"
            )
    lines += [
        "",
        "Single events and the producer's linger (each request waits for its own ack):",
        "",
        "| KAFKA_LINGER_MS | requests/s | p50 ms | p99 ms |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for linger, run in figures.get("single_linger", {}).items():
        lines.append(
            f"| {linger} | {run['events_per_second']} | {run['latency_ms_p50']} | {run['latency_ms_p99']} |"
        )
    return lines
