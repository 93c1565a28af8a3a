"""Cloud TPUs through JAX: what ``jax.devices("tpu")`` and ``Device.memory_stats()`` report.

JAX is imported only on a host that looks like a TPU VM (a ``/dev/accel*`` or ``/dev/vfio``
device, or one of the TPU environment variables Colab and Cloud TPU VMs set), because
importing it on a GPU host initialises its CUDA backend, which is slow and may claim GPU
memory the user's own job wanted.

TPUs fill the same ``Accelerator`` shape as GPUs: ``device_kind``, ``device_id``, ``coords``
and ``core_on_chip`` from JAX, and memory from ``memory_stats()``. GPU-only fields (power,
clocks, ECC) are not "unsupported" on a TPU, they do not apply, so they are left out rather
than listed.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ca4_events.schema import Accelerator
from ca4_producer.readings import FieldReader, Reading, SourceUnavailable

_TPU_ENV = ("TPU_ACCELERATOR_TYPE", "TPU_NAME", "TPU_WORKER_ID", "COLAB_TPU_ADDR", "TPU_SKIP_MDS_QUERY")
_MEMORY_FIELDS = ("memory_total_bytes", "memory_used_bytes", "memory_free_bytes", "memory_peak_bytes")


def looks_like_tpu_host(env: Mapping[str, str] | None = None, dev: Path = Path("/dev")) -> bool:
    """Cheap hints that a TPU is attached, checked before paying for ``import jax``."""
    env = os.environ if env is None else env
    if any(env.get(name) for name in _TPU_ENV):
        return True
    # TPU v4 and later show up as /dev/accel0..N; v2/v3 VMs expose them through VFIO
    vfio = dev / "vfio"
    return any(dev.glob("accel[0-9]*")) or (vfio.is_dir() and any(vfio.glob("[0-9]*")))


class JaxTpuSource:
    """Reads every TPU core JAX sees on this host."""

    name = "jax-tpu"

    def __init__(self, jax: Any, host: str | None = None) -> None:
        self._jax = jax
        self._host = host or socket.gethostname()
        self.version = str(getattr(jax, "__version__", "")) or None

    @classmethod
    def open(cls, module: Any | None = None, *, force: bool = False) -> JaxTpuSource:
        """Import JAX and check it has TPU devices (``module`` replaces ``jax`` in tests)."""
        if module is None:
            if importlib.util.find_spec("jax") is None:
                raise SourceUnavailable("TPU: jax is not installed")
            if not force and not looks_like_tpu_host():
                raise SourceUnavailable("TPU: no TPU device or TPU environment variable on this host")
            module = importlib.import_module("jax")
        source = cls(module)
        try:
            devices = source._devices()
        except RuntimeError as exc:  # jax raises RuntimeError when the backend is absent
            raise SourceUnavailable(f"TPU: jax has no TPU backend ({exc})") from exc
        if not devices:
            raise SourceUnavailable("TPU: jax lists no TPU device")
        return source

    def _devices(self) -> list[Any]:
        return [d for d in self._jax.devices("tpu") if getattr(d, "platform", "tpu") == "tpu"]

    def read(self) -> Reading:
        """One pass over the TPU devices of this host (``jax.local_devices`` on a pod slice)."""
        local = getattr(self._jax, "local_devices", None)
        devices = local(backend="tpu") if callable(local) else self._devices()
        accelerators = tuple(self._accelerator(i, d) for i, d in enumerate(devices))
        return Reading(
            source=self.name,
            accelerators=accelerators,
            frameworks={"jax": self.version} if self.version else {},
        )

    def _accelerator(self, index: int, device: Any) -> Accelerator:
        r = FieldReader()
        kind = str(getattr(device, "device_kind", "") or "TPU")
        r.put("device_kind", kind)
        r.put("device_id", int(device.id))
        coords = getattr(device, "coords", None)
        r.put("coords", [int(c) for c in coords] if coords is not None else None)
        core = getattr(device, "core_on_chip", None)
        r.put("core_on_chip", int(core) if core is not None else None)
        try:
            stats = device.memory_stats()
        except (RuntimeError, NotImplementedError, AttributeError):
            stats = None
        if not stats:
            # some runtimes (and every CPU device) answer None: the device cannot report memory
            r.mark_unsupported(*_MEMORY_FIELDS)
        else:
            limit = stats.get("bytes_limit")
            used = stats.get("bytes_in_use")
            r.put("memory_total_bytes", limit)
            r.put("memory_used_bytes", used)
            r.put("memory_free_bytes", limit - used if limit is not None and used is not None else None)
            r.put("memory_peak_bytes", stats.get("peak_bytes_in_use"))
        return r.accelerator(
            kind="tpu",
            index=index,
            # device ids are unique within one slice; the host name keeps two slices apart
            uuid=f"TPU-{self._host}-{int(device.id)}",
            name=kind,
        )

    def close(self) -> None:
        """Nothing to release."""
