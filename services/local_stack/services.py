"""The Processor API and the Metadata Worker as local processes, configured like their pods."""

from __future__ import annotations

import os

from local_stack.config import StackConfig
from local_stack.procs import Process, http_ok, python, require_free_port, step, wait_until


def api_process(cfg: StackConfig) -> Process:
    """The API's process handle."""
    return Process("processor-api", cfg.run_dir, cfg.logs_dir)


def worker_process(cfg: StackConfig) -> Process:
    """The worker's process handle."""
    return Process("metadata-worker", cfg.run_dir, cfg.logs_dir)


def _env(contract: dict[str, str]) -> dict[str, str]:
    # only the contract variables plus what a process needs to run at all: nothing from the
    # user's shell leaks in, so the local stack proves the manifests' env is sufficient
    base = {
        k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "VIRTUAL_ENV")
    }
    return {**base, "PYTHONUNBUFFERED": "1", **contract}


def start_api(cfg: StackConfig, env_overrides: dict[str, str] | None = None) -> None:
    """Start the API and wait until it is ready (Kafka reachable); ``env_overrides`` as for the worker."""
    proc = api_process(cfg)
    if proc.alive():
        print(f"processor-api already running (pid {proc.pid()}) on {cfg.api_url}", flush=True)
        return
    require_free_port(cfg.api_port, "CA4_LOCAL_API_PORT")
    with step(f"starting Processor API on {cfg.api_url}"):
        proc.start([python(), "-m", "processor_api"], _env({**cfg.api_env(), **(env_overrides or {})}))
        wait_until(lambda: http_ok(f"{cfg.api_url}/readyz"), 60, "processor-api", proc.log_file, proc)


def start_worker(cfg: StackConfig, env_overrides: dict[str, str] | None = None) -> None:
    """Start the worker and wait until it is ready (database reachable, consumer running).

    ``env_overrides`` replace contract variables (fault-injection tests route S3 through a proxy).
    """
    proc = worker_process(cfg)
    if proc.alive():
        print(f"metadata-worker already running (pid {proc.pid()}) on {cfg.worker_url}", flush=True)
        return
    require_free_port(cfg.worker_port, "CA4_LOCAL_WORKER_PORT")
    with step(f"starting Metadata Worker (probes on {cfg.worker_url})"):
        proc.start([python(), "-m", "metadata_worker"], _env({**cfg.worker_env(), **(env_overrides or {})}))
        wait_until(lambda: http_ok(f"{cfg.worker_url}/readyz"), 60, "metadata-worker", proc.log_file, proc)
