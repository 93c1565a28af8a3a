"""Latest values per accelerator as Prometheus gauges, for the "CA4 accelerator fleet" dashboard.

Per-device series are the one place where label cardinality can grow with the fleet, so
they are bounded twice: a device not seen for ``FLEET_METRICS_TTL_SECONDS`` disappears from
the next scrape, and at most ``FLEET_METRICS_MAX_DEVICES`` devices are exported (the most
recently seen win; the dropped count is a metric of its own). Labels are the device's
identity only (uuid, name, host), never a value.

The table is filled from the same device states the worker writes to ``gpu_devices``; with
several worker replicas each exports the devices it processed, so dashboards aggregate with
``max by (uuid)``.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

LABELS = ("uuid", "name", "host")
MAX_LABEL_LENGTH = 128


def _last(field: str) -> Callable[[dict[str, Any]], float | None]:
    """Read ``field`` of the device's last snapshot."""
    return lambda state: state["last"].get(field)


# metric name -> (help, how to read the value from a gpu_devices state)
GAUGES: dict[str, tuple[str, Callable[[dict[str, Any]], float | None]]] = {
    "ca4_accelerator_utilization_gpu_pct": (
        "GPU utilization in percent at the last snapshot.",
        _last("utilization_gpu_pct"),
    ),
    "ca4_accelerator_memory_used_bytes": (
        "Accelerator memory in use at the last snapshot.",
        _last("memory_used_bytes"),
    ),
    "ca4_accelerator_memory_total_bytes": (
        "Accelerator memory in total.",
        _last("memory_total_bytes"),
    ),
    "ca4_accelerator_temperature_gpu_c": (
        "GPU temperature in degrees Celsius at the last snapshot.",
        _last("temperature_gpu_c"),
    ),
    "ca4_accelerator_power_draw_w": (
        "Power draw in watts at the last snapshot.",
        _last("power_draw_w"),
    ),
    "ca4_accelerator_power_limit_w": (
        "Enforced power limit in watts.",
        _last("power_limit_w"),
    ),
    "ca4_accelerator_healthy": (
        "1 when no health flag is raised (thermal, hardware slowdown, ECC, row remap), else 0.",
        lambda s: _flag(s, "healthy"),
    ),
    "ca4_accelerator_thermal_trouble": (
        "1 when the device is thermally throttled or overheating.",
        lambda s: _either(s, "thermal_throttled", "overheating"),
    ),
    "ca4_accelerator_ecc_trouble": (
        "1 when uncorrected ECC errors or row-remap trouble were reported.",
        lambda s: _either(s, "ecc_uncorrected", "row_remap_trouble"),
    ),
    "ca4_accelerator_last_seen_timestamp_seconds": (
        "Unix time of the device's last snapshot (collected_at).",
        lambda s: s["last_seen_at"].timestamp(),
    ),
}


def _flag(state: dict[str, Any], name: str) -> float | None:
    health = state["last"].get("health")
    if not health or name not in health:
        return None
    return 1.0 if health[name] else 0.0


def _either(state: dict[str, Any], a: str, b: str) -> float | None:
    flags = [_flag(state, a), _flag(state, b)]
    known = [f for f in flags if f is not None]
    return max(known) if known else None


def _label(value: Any) -> str:
    return str(value or "")[:MAX_LABEL_LENGTH]


@dataclass
class _Entry:
    labels: tuple[str, str, str]
    values: dict[str, float]
    seen: float  # monotonic time the worker last updated it
    last_seen_at: dt.datetime  # the snapshot's collected_at: an older one (a replay) never replaces it


class FleetGauges(Collector):
    """A prometheus_client collector over the latest state of each accelerator."""

    def __init__(
        self, ttl_s: float = 900.0, max_devices: int = 1000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl_s = ttl_s
        self._max = max_devices
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._dropped = 0
        self._lock = threading.Lock()

    def update(self, states: list[dict[str, Any]]) -> None:
        """Record device states (from ``transform.latest_per_device``)."""
        now = self._clock()
        with self._lock:
            for state in states:
                current = self._entries.get(state["uuid"])
                if current is not None and state["last_seen_at"] < current.last_seen_at:
                    continue  # a replayed, older snapshot: gpu_devices refuses it too
                values: dict[str, float] = {}
                for name, (_, read) in GAUGES.items():
                    value = read(state)
                    if value is not None:
                        values[name] = float(value)
                labels = (_label(state["uuid"]), _label(state.get("name")), _label(state.get("host")))
                self._entries[state["uuid"]] = _Entry(labels, values, now, state["last_seen_at"])
            self._prune(now)

    def _prune(self, now: float) -> None:
        expired = [k for k, e in self._entries.items() if now - e.seen > self._ttl_s]
        for key in expired:
            del self._entries[key]
        if len(self._entries) > self._max:
            newest_first = sorted(self._entries.items(), key=lambda kv: kv[1].seen, reverse=True)
            self._dropped += len(self._entries) - self._max
            self._entries = dict(newest_first[: self._max])

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """Called by the registry at each scrape."""
        with self._lock:
            self._prune(self._clock())
            entries = list(self._entries.values())
            dropped = self._dropped
        for name, (help_text, _) in GAUGES.items():
            family = GaugeMetricFamily(name, help_text, labels=LABELS)
            for entry in entries:
                if name in entry.values:
                    family.add_metric(entry.labels, entry.values[name])
            yield family
        tracked = GaugeMetricFamily("ca4_fleet_devices_tracked", "Accelerators exported by this worker.")
        tracked.add_metric([], len(entries))
        yield tracked
        over = CounterMetricFamily(
            "ca4_fleet_devices_dropped",
            "Device entries left out because FLEET_METRICS_MAX_DEVICES was reached.",
        )
        over.add_metric([], dropped)
        yield over
