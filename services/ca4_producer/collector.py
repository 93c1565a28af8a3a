"""The collector: picks the sources this host supports and turns one pass over them into an event.

Order of preference for NVIDIA GPUs: NVML through nvidia-ml-py (one library call per value),
then ``nvidia-smi -q -x`` when NVML is not importable or does not initialise. TPUs come from
JAX when a TPU is attached. With none of them the host is CPU-only, and its snapshot is
still a valid event with an empty ``accelerators`` list.

Every snapshot is timed (``collect_ms``: reading the devices and building the event), and the
time goes into the event's ``workload.ca4_collector`` so its cost is visible downstream.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ca4_events.ids import uuid7
from ca4_events.schema import GpuMetadataEvent, HostInfo, Source
from ca4_producer import host as host_mod
from ca4_producer.nvidia_smi import NvidiaSmiSource, Runner, run_command
from ca4_producer.nvml import NvmlSource
from ca4_producer.readings import Reading, SourceUnavailable, build_event
from ca4_producer.replay import ReplaySource
from ca4_producer.tpu import JaxTpuSource

log = logging.getLogger(__name__)


class AcceleratorSource(Protocol):
    """Something that reads accelerators: NVML, nvidia-smi, JAX, a replayed capture."""

    name: str

    def read(self) -> Reading:
        """One pass over the devices."""
        ...

    def close(self) -> None:
        """Release what the source holds."""
        ...


@dataclass(frozen=True)
class Snapshot:
    """One event and what it cost to take."""

    event: GpuMetadataEvent
    collect_ms: float
    sources: tuple[str, ...]


_UNSET: Any = object()


@dataclass
class Collector:
    """Takes snapshots of this host's accelerators; build one with ``detect()`` or ``replay()``."""

    sources: Sequence[AcceleratorSource]
    source: Source
    host: HostInfo | None = None
    # why each source that was tried is not used (shown by the notebook)
    skipped: list[str] = field(default_factory=list)
    # anything else a person should know about these snapshots (e.g. that they are replayed)
    notes: list[str] = field(default_factory=list)
    # read once: package metadata lookups cost milliseconds, and versions do not change mid-session
    frameworks: Mapping[str, str] = field(default_factory=host_mod.framework_versions)
    clock: Callable[[], float] = time.perf_counter
    now: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))

    @classmethod
    def detect(
        cls,
        *,
        provider: host_mod.Provider | None = None,
        session_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        nvml_module: Any = None,
        smi_binary: str | None = _UNSET,
        smi_run: Runner = run_command,
        jax_module: Any = _UNSET,
        tpu: bool | None = None,
    ) -> Collector:
        """Use every source that works here: NVML, else nvidia-smi; plus JAX TPUs; else CPU-only.

        The module/binary arguments replace the real ones in tests: ``smi_binary=None`` means
        "no nvidia-smi on PATH", ``jax_module=None`` means "no JAX", ``tpu=False`` skips TPUs.
        """
        sources: list[AcceleratorSource] = []
        skipped: list[str] = []
        try:
            sources.append(NvmlSource.open(nvml_module))
        except SourceUnavailable as exc:
            skipped.append(str(exc))
            try:
                if smi_binary is None:
                    raise SourceUnavailable("nvidia-smi: not on PATH (no NVIDIA driver installed here)")
                binary = None if smi_binary is _UNSET else smi_binary
                sources.append(NvidiaSmiSource.open(binary, smi_run))
            except SourceUnavailable as smi_exc:
                skipped.append(str(smi_exc))
        if tpu is not False:
            try:
                if jax_module is None:
                    raise SourceUnavailable("TPU: jax is not installed")
                module = None if jax_module is _UNSET else jax_module
                sources.append(JaxTpuSource.open(module, force=bool(tpu) or module is not None))
            except SourceUnavailable as exc:
                skipped.append(str(exc))
        if not sources:
            skipped.append("no accelerator source: snapshots describe a CPU-only runtime")
        return cls(
            sources=sources,
            source=default_source(provider=provider, session_id=session_id, tags=tags),
            host=host_mod.host_info(),
            skipped=skipped,
        )

    @classmethod
    def replay(
        cls,
        path: Path | str,
        *,
        provider: host_mod.Provider | None = None,
        session_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Collector:
        """Replay a capture folder or file instead of reading devices (tests, demos, CPU-only Colab)."""
        replay = ReplaySource.from_path(path)
        return cls(
            sources=[replay],
            source=default_source(
                provider=provider, session_id=session_id, tags={**(tags or {}), "replay": "true"}
            ),
            host=host_mod.host_info(),
            notes=[
                f"replaying {Path(path).name}: the values come from a capture, not from this host's devices"
            ],
        )

    def describe(self) -> str:
        """One line per source used or skipped, for people."""
        used = [f"using {s.name}" for s in self.sources] or ["using no accelerator source (CPU-only)"]
        skipped = [f"skipped: {why}" for why in self.skipped if why]
        return "\n".join(used + skipped + [f"note: {note}" for note in self.notes])

    def snapshot(self, workload: Mapping[str, Any] | None = None) -> Snapshot:
        """Read every source once and build the event; the cost is measured and recorded."""
        started = self.clock()
        collected_at = self.now()
        readings: list[Reading] = []
        errors: dict[str, str] = {}
        for s in self.sources:
            try:
                readings.append(s.read())
            except Exception as exc:  # one failed read (an nvidia-smi timeout) must not end a long job
                log.warning("reading %s failed, this snapshot goes without it: %s", s.name, exc)
                errors[s.name] = f"{type(exc).__name__}: {exc}"[:500]
        event = build_event(
            readings,
            source=self.source,
            collected_at=collected_at,
            host=self.host,
            workload=workload,
            frameworks=self.frameworks,
        )
        collect_ms = (self.clock() - started) * 1000
        names = tuple(s.name for s in self.sources)
        meta: dict[str, Any] = {"sources": list(names) or ["none"], "collect_ms": round(collect_ms, 3)}
        if errors:
            meta["errors"] = errors
        origins = [r.origin for r in readings if r.origin]
        if origins:
            meta["replay_of"] = origins
        # built after the timing, so the recorded number covers the whole snapshot; the
        # workload is a plain dict, nothing in it needs validating again. The id is fixed
        # here, once: every retry of this snapshot carries it
        event = event.model_copy(
            update={"workload": {**(event.workload or {}), "ca4_collector": meta}, "event_id": uuid7()}
        )
        return Snapshot(event=event, collect_ms=collect_ms, sources=names)

    def close(self) -> None:
        """Release every source (NVML shutdown)."""
        for s in self.sources:
            try:
                s.close()
            except Exception as exc:  # closing must not hide the caller's own error
                log.warning("closing %s failed: %s", s.name, exc)

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def default_source(
    *,
    provider: host_mod.Provider | None = None,
    session_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Source:
    """This producer's ``source``: platform, host name and one session id per collector.

    The session id is the Kafka key, so every snapshot of one session stays in order.
    """
    return Source(
        provider=provider or host_mod.detect_provider(),
        host=host_mod.hostname(),
        session_id=session_id or f"ca4-{uuid.uuid4().hex[:16]}",
        tags=dict(tags or {}),
    )
