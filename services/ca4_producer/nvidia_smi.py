"""``nvidia-smi`` as a source: its XML (``-q -x``), text (``-q``) and CSV (``--query-*``) outputs.

The collector falls back to ``nvidia-smi -q -x`` when NVML cannot be imported: the XML holds
nearly everything NVML reports. Two differences matter and are handled here:

- memory is printed in whole MiB; ``fb_memory_usage/used`` leaves out the memory the driver
  reserves (616 MiB on the H200), whereas NVML's ``used`` includes it. The event follows
  NVML (used = total - free), so the same GPU gives the same ``memory_used_bytes`` from
  either source, to within the MiB rounding of ``free``;
- the XML has no compute capability; the live source asks ``--query-gpu=uuid,compute_cap``
  once and fills it in.

A value printed as ``N/A`` / ``[N/A]`` / ``[Not Supported]`` is null and named in
``unsupported``; an element that is absent (another driver version) is just null.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Sequence

from ca4_producer.readings import Reading, SourceUnavailable
from ca4_producer.smi import SmiReport, parse_query_csv, parse_query_gpu_csv, parse_text, parse_xml

__all__ = [
    "NvidiaSmiSource",
    "Runner",
    "SmiReport",
    "parse_query_csv",
    "parse_query_gpu_csv",
    "parse_text",
    "parse_xml",
    "run_command",
]

Runner = Callable[[Sequence[str], float], str]


def run_command(argv: Sequence[str], timeout_s: float) -> str:
    """Run a command and return its stdout; ``SourceUnavailable`` when it fails or hangs."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SourceUnavailable(f"{argv[0]}: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stdout + done.stderr).strip().splitlines()
        raise SourceUnavailable(f"{' '.join(argv)} exited {done.returncode}: {detail[0] if detail else ''}")
    return done.stdout


class NvidiaSmiSource:
    """Reads every GPU with ``nvidia-smi -q -x`` (one process per snapshot, about 50-200 ms on a real GPU)."""

    name = "nvidia-smi"

    def __init__(self, binary: str, run: Runner = run_command, timeout_s: float = 20.0) -> None:
        self._binary = binary
        self._run = run
        self._timeout_s = timeout_s
        self._compute_caps = self._query_compute_caps()

    @classmethod
    def open(cls, binary: str | None = None, run: Runner = run_command) -> NvidiaSmiSource:
        """Find ``nvidia-smi`` on PATH and check that it can talk to a driver."""
        found = binary or shutil.which("nvidia-smi")
        if not found:
            raise SourceUnavailable("nvidia-smi: not on PATH (no NVIDIA driver installed here)")
        return cls(found, run)

    def _query_compute_caps(self) -> dict[str, str]:
        # compute_cap is missing from the XML; it is static, so one query at start is enough.
        # This also proves nvidia-smi reaches a driver: if not, the source is unavailable.
        try:
            out = self._run([self._binary, "--query-gpu=uuid,compute_cap", "--format=csv"], self._timeout_s)
        except SourceUnavailable:
            # drivers before 510 do not know compute_cap; the uuid alone still proves the driver answers
            self._run([self._binary, "--query-gpu=uuid", "--format=csv"], self._timeout_s)
            return {}
        return {
            row["uuid"]: row["compute_cap"]
            for row in parse_query_csv(out)
            if row.get("uuid") and re.fullmatch(r"\d{1,2}\.\d{1,2}", row.get("compute_cap", ""))
        }

    def read(self) -> Reading:
        """One ``nvidia-smi -q -x`` call, with the compute capabilities filled in."""
        report = parse_xml(self._run([self._binary, "-q", "-x"], self._timeout_s))
        accelerators = tuple(
            acc.model_copy(update={"compute_capability": self._compute_caps[acc.uuid]})
            if acc.compute_capability is None and acc.uuid in self._compute_caps
            else acc
            for acc in report.accelerators
        )
        return Reading(
            source=self.name,
            accelerators=accelerators,
            driver_version=report.driver_version,
            cuda_driver_version=report.cuda_version,
        )

    def close(self) -> None:
        """Nothing to release."""
