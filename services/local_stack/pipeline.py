"""The pipeline as local processes: the Processor API and the Metadata Worker, configured like their pods."""

from __future__ import annotations

import os
from types import SimpleNamespace

from local_stack.config import StackConfig
from local_stack.procs import Process, http_ok, python, require_free_port, step, wait_until


def api_process(cfg: StackConfig) -> Process:
    """The API's process handle."""
    return Process("processor-api", cfg.run_dir, cfg.logs_dir)


def worker_process(cfg: StackConfig) -> Process:
    """The worker's process handle."""
    return Process("metadata-worker", cfg.run_dir, cfg.logs_dir)


def api_ready(cfg: StackConfig) -> bool:
    """The API answers /readyz (it can reach Kafka)."""
    return http_ok(f"{cfg.api_url}/readyz")


def worker_ready(cfg: StackConfig) -> bool:
    """The worker answers /readyz (database reachable, consumer running)."""
    return http_ok(f"{cfg.worker_url}/readyz")


def contract_env(contract: dict[str, str]) -> dict[str, str]:
    """Only the contract variables plus what a process needs to run at all: nothing from the
    user's shell leaks in, so the local stack proves the manifests' env is sufficient (tests
    start a second worker, or a client, the same way)."""
    base = {
        k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "VIRTUAL_ENV")
    }
    return {**base, "PYTHONUNBUFFERED": "1", **contract}


def _start(
    cfg: StackConfig, proc: Process, module: str, *, port_field: str, title: str, env: dict[str, str]
) -> None:
    """Start ``python -m module`` unless it runs already, and wait (60 s at most) until it is ready."""
    url = cfg.api_url if module == "processor_api" else cfg.worker_url
    if proc.alive():
        print(f"{proc.name} already running (pid {proc.pid()}) on {url}", flush=True)
        return
    require_free_port(cfg, port_field)
    ready = api_ready if module == "processor_api" else worker_ready
    with step(title):
        proc.start([python(), "-m", module], contract_env(env))
        wait_until(lambda: ready(cfg), 60, proc.name, proc.log_file, proc)


def start_api(cfg: StackConfig, env_overrides: dict[str, str] | None = None) -> None:
    """Start the API and wait until it is ready (Kafka reachable); ``env_overrides`` as for the worker."""
    env = {**cfg.api_env(), **(env_overrides or {})}
    _start(
        cfg,
        api_process(cfg),
        "processor_api",
        port_field="api_port",
        title=f"starting Processor API on {cfg.api_url}",
        env=env,
    )


def start_worker(cfg: StackConfig, env_overrides: dict[str, str] | None = None) -> None:
    """Start the worker and wait until it is ready (database reachable, consumer running).

    ``env_overrides`` replace contract variables (fault-injection tests route S3 through a proxy).
    """
    env = {**cfg.worker_env(), **(env_overrides or {})}
    title = f"starting Metadata Worker (probes on {cfg.worker_url})"
    _start(cfg, worker_process(cfg), "metadata_worker", port_field="worker_port", title=title, env=env)


def stop_api(cfg: StackConfig) -> bool:
    """SIGTERM (the API drains its requests), SIGKILL after 20 s; True when it was running."""
    return api_process(cfg).stop(timeout=20)


def stop_worker(cfg: StackConfig) -> bool:
    """SIGTERM (the worker finishes its batch and commits), SIGKILL after 20 s; True when it was running."""
    return worker_process(cfg).stop(timeout=20)


# the API and the worker in the shape of the other servers' modules (process, start, stop, ready)
API = SimpleNamespace(process=api_process, start=start_api, stop=stop_api, ready=api_ready)
WORKER = SimpleNamespace(process=worker_process, start=start_worker, stop=stop_worker, ready=worker_ready)
